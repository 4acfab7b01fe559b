-- wrk script for bench.wrk_load.
--
-- done() prints one line starting "WRK_JSON " with the counts and latencies.
-- What is sent depends on the environment:
--
-- * neither variable: every connection repeats the request given on wrk's
--   command line;
-- * WRK_PATHS (a file, one path per line): GET requests cycling through the
--   paths, each thread from its own place in the list;
-- * WRK_ANSWERS (a file, one "run_id pause_id" per line) and WRK_THREADS:
--   thread i answers lines i, i + WRK_THREADS, ... once each (POST
--   /api/runs/{id}/resume). Once all its answers are sent, its connections wait
--   (delay()) instead of sending more; once all are answered it prints
--   "WRK_THREAD_DONE", and bench.wrk_load interrupts wrk when every thread has
--   (wrk then ends at once and reports the time until then).

local answers_path = os.getenv("WRK_ANSWERS")
local paths_path = os.getenv("WRK_PATHS")

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, '
      .. '"write": %d, "status": %d, "timeout": %d, "mean_us": %.1f, "p50_us": %d, '
      .. '"p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(99), latency.max
  ))
end

if answers_path == nil and paths_path == nil then
  return
end

local next_thread = 0

function setup(thread)
  thread:set("thread_index", next_thread)
  next_thread = next_thread + 1
end

if paths_path ~= nil then
  local paths, at = {}, 0

  function init(args)
    for line in io.lines(paths_path) do
      table.insert(paths, line)
    end
    at = thread_index * 7 -- threads start apart in the list
  end

  function request()
    at = at % #paths + 1
    return wrk.format("GET", paths[at])
  end

  return
end

local answers = {}
local reserved, sent, answered = 0, 0, 0
local body = '{"input": {"approved": true, "approver": "kim"}, "pause_id": "%s"}'

function init(args)
  local threads = tonumber(os.getenv("WRK_THREADS"))
  local line_number = 0
  for line in io.lines(answers_path) do
    if line_number % threads == thread_index then
      local run_id, pause_id = line:match("^(%S+) (%S+)$")
      table.insert(answers, {run_id, pause_id})
    end
    line_number = line_number + 1
  end
end

-- wrk asks delay() before each request of a connection, then request() once
-- the delay is over: the answer is set aside here, so two connections never
-- both take the last one.
function delay()
  if reserved < #answers then
    reserved = reserved + 1
    return 0
  end
  return 3600000 -- nothing left to send: wait (wrk is interrupted long before)
end

local function resume(answer)
  local path = "/api/runs/" .. answer[1] .. "/resume"
  return wrk.format("POST", path, nil, string.format(body, answer[2]))
end

local verified = false

function request()
  if thread_index == 0 and not verified then
    -- wrk calls request() once on the first thread to check the request
    -- before it sends anything: that call must not use up an answer.
    verified = true
    return resume(answers[1])
  end
  if sent == #answers then
    -- Only after a reconnection (an error wrk reports), which skips delay().
    return wrk.format("GET", "/api/runs?limit=1")
  end
  sent = sent + 1
  reserved = math.max(reserved, sent)
  return resume(answers[sent])
end

function response(status, headers, response_body)
  answered = answered + 1
  if answered == #answers then
    io.stdout:write("WRK_THREAD_DONE\n")
    io.stdout:flush()
  end
end
