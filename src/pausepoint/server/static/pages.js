/* pausepoint pages: small progressive enhancements. Every page works without this file. */
"use strict";

/* JSON boxes (textarea[data-json]) are checked before their form is sent; the server checks again. */
function checkJsonBox(box) {
  var text = box.value.trim();
  var problem = "";
  if (text === "") {
    if (box.required) problem = "Enter the answer as JSON.";
  } else {
    try {
      var value = JSON.parse(text);
      if (box.dataset.json === "object" && (value === null || typeof value !== "object" || Array.isArray(value))) {
        problem = "This must be a JSON object, like {\"key\": \"value\"}.";
      }
    } catch (error) {
      problem = "Not valid JSON: " + error.message;
    }
  }
  var note = document.querySelector('[data-problem-for="' + box.id + '"]');
  if (note) {
    note.textContent = problem;
    note.hidden = problem === "";
  }
  if (problem) box.setAttribute("aria-invalid", "true"); else box.removeAttribute("aria-invalid");
  return problem === "";
}

document.addEventListener("submit", function (event) {
  var form = event.target;
  var boxes = form.querySelectorAll("textarea[data-json]");
  for (var i = 0; i < boxes.length; i++) {
    if (!checkJsonBox(boxes[i])) {
      event.preventDefault();
      boxes[i].focus();
      return;
    }
  }
});

/* The live inbox: rows arrive over server-sent events; ticked boxes stay ticked. */
function startLiveInbox(table) {
  if (!window.EventSource) return;
  var body = table.tBodies[0];
  var empty = document.querySelector("[data-empty]");
  var note = document.querySelector("[data-live-note]");
  var source = new EventSource(table.dataset.live);
  source.addEventListener("open", function () {
    if (note) note.textContent = "New pauses appear here as they come.";
    table.dataset.liveState = "open";
  });
  source.addEventListener("inbox", function (event) {
    var ticked = {};
    body.querySelectorAll("input[name=pick]:checked").forEach(function (box) { ticked[box.value] = true; });
    var before = body.rows.length;
    body.innerHTML = event.data;
    body.querySelectorAll("input[name=pick]").forEach(function (box) { box.checked = !!ticked[box.value]; });
    var count = body.rows.length;
    table.hidden = count === 0;
    if (empty) empty.hidden = count !== 0;
    if (note && count !== before) note.textContent = count + (count === 1 ? " run waits" : " runs wait") + " for an answer.";
    table.dataset.liveUpdates = String(Number(table.dataset.liveUpdates || "0") + 1);
  });
  source.addEventListener("error", function () {
    if (note) note.textContent = "Live updates paused; reconnecting. Reload to see the newest pauses.";
  });
  window.addEventListener("pagehide", function () { source.close(); });
}

document.addEventListener("DOMContentLoaded", function () {
  var table = document.querySelector("table[data-live]");
  if (table) startLiveInbox(table);
});
