"""Checkpoint size of a long agent conversation: pausepoint beside LangGraph.

    python -m bench.agent_size            # 100 model turns
    python -m bench.agent_size --quick    # 10 turns (CI smoke)

One scripted conversation, the same for every contender: each turn the model
says a sentence and calls ``search`` (its result is ~90 bytes in the *terse*
profile, ~1 KB in the *typical* one); at the middle turn and at the last turn
it calls ``ask_human`` instead. Each contender runs to the middle question,
is answered, and runs to the last question, where it is measured while paused:

- **latest**: what resuming needs: pausepoint's checkpoint as compact JSON (as
  the stores write it); for LangGraph (``InMemorySaver``) the latest checkpoint,
  its metadata, the channel blobs it points at and its pending writes.
- **record**: pausepoint's run record as the store holds it (checkpoint,
  pauses, bookkeeping; a paused run keeps no snapshot beside its checkpoint).
- **kept**: everything the store holds for the conversation. pausepoint runs it
  through ``Runs`` on the memory store and counts the run's record, its audit
  and its journal. LangGraph keeps every checkpoint of the thread, each with its
  own copy of the ``messages`` channel.
- **written**: the bytes written over the whole conversation. For pausepoint,
  every record, audit event and journal entry ``Runs`` handed the store: the
  create with its claim, one journal entry per finished stage (with
  ``durability="stage"``), the claim of the resume (the whole record, as the
  relational stores rewrite the row), and each pause with its checkpoint; lease
  renewals (a number each) are left out. For LangGraph, what it keeps.
- **messages**: the conversation itself as compact JSON (OpenAI format), the yardstick.

Two what-if rows show what an engine change would give pausepoint: the
execution tree without ``ms``/``reads``/``writes``, and the checkpoint without
the tree (kept append-only beside it instead, like the audit).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import operator
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any, Literal, TypedDict

import pausepoint
from pausepoint import Runs
from pausepoint.agent import (
    AssistantMessage,
    ScriptedModel,
    agent_chart,
    ask_human,
    tool,
    tool_call,
)
from pausepoint.stores._common import event_to_doc, run_to_doc, step_to_doc
from pausepoint.stores.base import AuditEvent, Decider, JournalEntry, StoredRun, Update
from pausepoint.stores.memory import MemoryStore

Durability = Literal["stage", "pause"]

SYSTEM = "You are a research assistant. Use search; ask a human when unsure."
PROMPT = "Go through the records one by one and flag anything odd."
ANSWER = "Carry on, and flag only records with a score above 90."


def size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


# -- the conversation ----------------------------------------------------------------


@dataclass(frozen=True)
class Script:
    """What the model says each turn, and what the tool returns."""

    turns: int
    profile: str

    @property
    def human_turns(self) -> tuple[int, int]:
        return (self.turns // 2, self.turns)

    def reply(self, turn: int) -> AssistantMessage:
        """The model's reply in turn ``turn`` (1-based); ``turns + 1`` is the final answer."""
        if turn > self.turns:
            return AssistantMessage("All records checked; three flagged.")
        if turn in self.human_turns:
            question = f"Record {turn} looks odd. Should I keep going?"
            return AssistantMessage(
                "I need a decision.", [tool_call("ask_human", {"question": question})]
            )
        return AssistantMessage(
            f"Checking record {turn} next.", [tool_call("search", {"query": f"record {turn}"})]
        )

    def result(self, query: str) -> str:
        """What ``search`` returns, as the tool message's content."""
        n = int(query.split()[-1])
        if self.profile == "terse":
            return json.dumps({"id": f"rec-{n}", "status": "ok", "score": n % 97})
        hits = [
            {
                "id": f"rec-{n}-{k}",
                "title": f"Quarterly filing {n}.{k} for Northwind Traders",
                "address": f"{100 + k} Harbour Street, Springfield",
                "score": (n * 7 + k) % 97,
                "notes": "Filed on time; totals match the ledger; one attachment missing.",
            }
            for k in range(5)
        ]
        return json.dumps({"query": query, "hits": hits})


# -- pausepoint ------------------------------------------------------------------------


@dataclass
class Figures:
    contender: str
    latest: int
    kept: int | None
    written: int | None
    messages: int
    note: str = ""
    record: int | None = None


async def measure_pausepoint(
    script: Script, durability: Durability = "stage"
) -> tuple[list[Figures], dict[str, int]]:
    @tool
    def search(query: str) -> str:
        """Search the records."""
        return script.result(query)

    model = ScriptedModel([script.reply(turn) for turn in range(1, script.turns + 2)], record=False)
    chart = agent_chart(
        model, [search, ask_human], system=SYSTEM, max_turns=script.turns + 1, name="Agent"
    )
    store = Counted(MemoryStore())
    async with Runs(store, {"agent": chart}, durability=durability) as runs:
        record = await runs.start("agent", {"prompt": PROMPT})
        assert record.status == "paused"
        record = await runs.resume(record.run_id, {"answer": ANSWER})
        assert record.status == "paused"
        stored = await store.get(record.run_id)
        kept = (
            stored_size(stored)
            + sum(size(event_to_doc(e)) for e in await store.audit(record.run_id))
            + sum(size(step_to_doc(s)) for s in await store.journal(record.run_id))
        )
    checkpoint = stored.checkpoint
    assert checkpoint is not None
    messages = checkpoint["shared_state"]["messages"]
    assert checkpoint["shared_state"]["turn"] == script.turns
    msg_bytes = size(messages)
    latest = size(checkpoint)
    tree = size(checkpoint["execution_tree"])
    state = size(checkpoint["shared_state"])
    trimmed = dict(checkpoint, execution_tree=_trim(checkpoint["execution_tree"]))
    apart = dict(checkpoint, execution_tree=[])
    breakdown = {
        "checkpoint": latest,
        "messages": msg_bytes,
        "state besides messages": state - msg_bytes,
        "execution tree": tree,
        "tree per turn": tree // script.turns,
        "the rest": latest - state - tree,
    }
    breakdown.update({f"written: {part}": count for part, count in store.parts.items()})
    if durability == "pause":
        row = Figures(
            "pausepoint, durability=pause",
            latest,
            kept,
            store.written,
            msg_bytes,
            record=stored_size(stored),
        )
        return [row], breakdown
    return [
        Figures("pausepoint", latest, kept, store.written, msg_bytes, record=stored_size(stored)),
        Figures("  what if: tree without ms/reads/writes", size(trimmed), None, None, msg_bytes),
        Figures("  what if: tree kept beside the checkpoint", size(apart), None, None, msg_bytes),
    ], breakdown


def stored_size(run: StoredRun) -> int:
    """The bytes of a run record as a store holds it: its JSON fields, in compact JSON."""
    return size(run_to_doc(run, version=run.version))


class Counted:
    """A store wrapper that adds up the bytes of every record, audit event and journal entry written.

    Each write method of the ``Store`` protocol is counted as its caller hands
    it over: a record whole (the relational stores rewrite the row), but for a
    checkpoint or snapshot an update keeps as it read it (the SQL stores do not
    write those columns again), events and entries as their JSON documents.
    Reads and lease renewals pass through.
    """

    def __init__(self, store: Any) -> None:
        self._store = store
        self.written = 0
        self.parts = {"record": 0, "audit": 0, "journal": 0}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _count(
        self,
        run: StoredRun | None,
        events: Sequence[AuditEvent] = (),
        steps: Sequence[JournalEntry] = (),
    ) -> None:
        counts = {
            "record": 0 if run is None else stored_size(run),
            "audit": sum(size(event_to_doc(e)) for e in events),
            "journal": sum(size(step_to_doc(s)) for s in steps),
        }
        for part, count in counts.items():
            self.parts[part] += count
            self.written += count

    async def create(
        self,
        run: StoredRun,
        events: Sequence[AuditEvent],
        steps: Sequence[JournalEntry] = (),
        outbox: Sequence[Any] = (),
    ) -> StoredRun:
        self._count(run, events, steps)
        return await self._store.create(run, events, steps, outbox)  # type: ignore[no-any-return]

    async def replace(
        self, run: StoredRun, *, expected_version: int, events: Sequence[AuditEvent] = ()
    ) -> StoredRun:
        self._count(run, events)
        return await self._store.replace(  # type: ignore[no-any-return]
            run, expected_version=expected_version, events=events
        )

    async def update(
        self, run_id: str, decide: Decider, *, light: bool = False, audit: bool = False
    ) -> tuple[StoredRun, tuple[AuditEvent, ...]]:
        def counted(current: StoredRun) -> Update | None:
            change = decide(current)
            if change is not None:
                run = change.run
                if not light:  # what the SQL stores leave unwritten: the values kept as read
                    kept = {
                        name: None
                        for name in ("checkpoint", "snapshot")
                        if getattr(run, name) is getattr(current, name)
                    }
                    run = dataclasses.replace(run, **kept)
                self._count(run, change.events, change.steps)
            return change

        return await self._store.update(  # type: ignore[no-any-return]
            run_id, counted, light=light, audit=audit
        )

    async def append_steps(
        self, run_id: str, owner: str, steps: Sequence[JournalEntry], lease_until: float
    ) -> Mapping[str, Any] | None:
        self._count(None, steps=steps)
        return await self._store.append_steps(  # type: ignore[no-any-return]
            run_id, owner, steps, lease_until
        )

    async def append_audit(self, run_id: str, events: Sequence[AuditEvent]) -> None:
        self._count(None, events)
        await self._store.append_audit(run_id, events)


def _trim(tree: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for node in tree:
        kept = {k: v for k, v in node.items() if k not in ("ms", "reads", "writes")}
        if "resume" in kept:
            kept["resume"] = {
                k: v for k, v in kept["resume"].items() if k not in ("ms", "reads", "writes")
            }
        if "children" in kept:
            kept["children"] = _trim(kept["children"])
        out.append(kept)
    return out


# -- LangGraph ----------------------------------------------------------------------------


def langgraph_versions() -> str | None:
    try:
        return f"langgraph {version('langgraph')} (checkpoint {version('langgraph-checkpoint')})"
    except PackageNotFoundError:
        return None


def measure_langgraph(script: Script, style: str) -> Figures:
    """A StateGraph loop (model → tools → model) with interrupt() for ask_human."""
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Command, interrupt

    if style == "dicts":

        class DictState(TypedDict):
            messages: Annotated[list[dict[str, Any]], operator.add]

        state_type: Any = DictState

        def to_native(message: dict[str, Any]) -> Any:
            return message

        def from_native(message: Any) -> dict[str, Any]:
            return dict(message)

    else:
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
        from langgraph.graph import MessagesState

        state_type = MessagesState

        def to_native(message: dict[str, Any]) -> Any:
            role = message["role"]
            if role == "system":
                return SystemMessage(message["content"])
            if role == "user":
                return HumanMessage(message["content"])
            if role == "tool":
                return ToolMessage(message["content"], tool_call_id=message["tool_call_id"])
            calls = [
                {
                    "id": c["id"],
                    "name": c["function"]["name"],
                    "args": json.loads(c["function"]["arguments"]),
                    "type": "tool_call",
                }
                for c in message.get("tool_calls", [])
            ]
            return AIMessage(message["content"] or "", tool_calls=calls)

        def from_native(message: Any) -> dict[str, Any]:
            if isinstance(message, AIMessage):
                out: dict[str, Any] = {"role": "assistant", "content": message.content or None}
                if message.tool_calls:
                    out["tool_calls"] = [
                        {
                            "id": c["id"],
                            "type": "function",
                            "function": {
                                "name": c["name"],
                                "arguments": json.dumps(c["args"], separators=(",", ":")),
                            },
                        }
                        for c in message.tool_calls
                    ]
                return out
            if isinstance(message, ToolMessage):
                return {
                    "role": "tool",
                    "tool_call_id": message.tool_call_id,
                    "content": message.content,
                }
            role = "system" if isinstance(message, SystemMessage) else "user"
            return {"role": role, "content": message.content}

    def model(state: Any) -> dict[str, Any]:
        turn = 1 + sum(1 for m in state["messages"] if from_native(m)["role"] == "assistant")
        reply = script.reply(turn)
        calls = [
            type(c)(f"call_{turn}_{i}", c.name, c.arguments) for i, c in enumerate(reply.tool_calls)
        ]
        return {"messages": [to_native(AssistantMessage(reply.content, calls).to_message())]}

    def tools(state: Any) -> dict[str, Any]:
        last = from_native(state["messages"][-1])
        results = []
        for call in last["tool_calls"]:
            args = json.loads(call["function"]["arguments"])
            if call["function"]["name"] == "ask_human":
                content = interrupt({"question": args["question"]})
            else:
                content = script.result(args["query"])
            results.append({"role": "tool", "tool_call_id": call["id"], "content": content})
        return {"messages": [to_native(r) for r in results]}

    def route(state: Any) -> str:
        return "tools" if from_native(state["messages"][-1]).get("tool_calls") else END

    graph = StateGraph(state_type)
    graph.add_node("model", model)
    graph.add_node("tools", tools)
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", route, ["tools", END])
    graph.add_edge("tools", "model")
    saver = InMemorySaver()
    app = graph.compile(checkpointer=saver)
    config: Any = {"configurable": {"thread_id": "t"}, "recursion_limit": 10 * script.turns + 10}
    start = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]
    app.invoke({"messages": [to_native(m) for m in start]}, config)
    app.invoke(Command(resume=ANSWER), config)
    snapshot = app.get_state(config)
    assert snapshot.interrupts, "LangGraph should be waiting at the last question"
    messages = [from_native(m) for m in snapshot.values["messages"]]

    latest_id = snapshot.config["configurable"]["checkpoint_id"]
    entries = saver.storage["t"][""]
    checkpoint_bytes, metadata_bytes, _ = entries[latest_id]
    checkpoint = saver.serde.loads_typed(checkpoint_bytes)
    blobs = {key: value for key, value in saver.blobs.items() if key[0] == "t"}
    latest = len(checkpoint_bytes[1]) + len(metadata_bytes[1])
    latest += sum(
        len(blobs[("t", "", channel, ver)][1])
        for channel, ver in checkpoint["channel_versions"].items()
        if ("t", "", channel, ver) in blobs
    )
    latest += sum(len(w[2][1]) for w in saver.writes.get(("t", "", latest_id), {}).values())
    kept = sum(len(c[1]) + len(m[1]) for c, m, _ in entries.values())
    kept += sum(len(value[1]) for value in blobs.values())
    kept += sum(
        len(w[2][1])
        for key, writes in saver.writes.items()
        if key[0] == "t"
        for w in writes.values()
    )
    label = "LangGraph, dict messages" if style == "dicts" else "LangGraph, add_messages"
    note = f"{len(entries)} checkpoints, append-only"
    return Figures(label, latest, kept, kept, size(messages), note=note)


# -- the table ------------------------------------------------------------------------------


def run(turns: int) -> None:
    lg = langgraph_versions()
    print(f"pausepoint {pausepoint.__version__} · {lg or 'LangGraph not installed'}")
    print(f"Python {platform.python_version()} on {platform.machine()} ({platform.system()})")
    print(
        f"{turns} model turns, ask_human at turns {turns // 2} and {turns}; "
        "measured while paused at the last one. Bytes.\n"
    )
    header = (
        f"{'profile':8} {'contender':44} {'latest':>10} {'record':>10} {'kept':>11} "
        f"{'written':>11} {'messages':>10} {'latest/messages':>16} {'written/record':>15}  note"
    )
    print(header)
    print("-" * len(header))
    breakdowns = {}
    for profile in ("terse", "typical"):
        script = Script(turns, profile)
        rows, breakdowns[profile] = asyncio.run(measure_pausepoint(script))
        rows += asyncio.run(measure_pausepoint(script, "pause"))[0]
        if lg is not None:
            rows += [measure_langgraph(script, "dicts"), measure_langgraph(script, "objects")]
        for row in rows:
            ratio = (
                ""
                if row.record is None or row.written is None
                else f"{row.written / row.record:.2f}x"
            )
            print(
                f"{profile:8} {row.contender:44} {row.latest:>10,} {_n(row.record):>10} "
                f"{_n(row.kept):>11} {_n(row.written):>11} {row.messages:>10,} "
                f"{row.latest / row.messages:>15.2f}x {ratio:>15}  {row.note}"
            )
    print("\npausepoint's checkpoint part by part, and what durability='stage' wrote:")
    for profile, parts in breakdowns.items():
        print(f"  {profile:8} " + " · ".join(f"{k} {v:,}" for k, v in parts.items()))


def _n(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.agent_size", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="10 turns instead of 100 (CI smoke)")
    parser.add_argument("--turns", type=int, default=None, help="model turns (default 100)")
    args = parser.parse_args(argv)
    run(args.turns or (10 if args.quick else 100))


if __name__ == "__main__":
    main()
