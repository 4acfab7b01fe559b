"""LangGraph: ``StateGraph`` + ``interrupt()`` + ``Command(resume=...)`` + ``InMemorySaver``.

The graph is compiled once; every run gets a fresh ``thread_id``; a resume is
a new ``graph.invoke(Command(resume=...), config)`` against the same saver,
which is how LangGraph resumes. LangGraph's defaults are kept (``durability``
``"async"``: checkpoints are written by a background thread while the next
step runs, and waited for before ``invoke`` returns). The savers are emptied
after every timed batch, off the clock, so they do not grow across batches.

When LangGraph is not installed, :data:`UNAVAILABLE` says how to get it and
nothing else here may be called.
"""

from __future__ import annotations

import itertools
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypedDict

from .harness import Case
from .scenarios import (
    REFUND_ANSWER,
    REFUND_FINAL_STATUS,
    REFUND_INPUT,
    REFUND_QUESTION,
    expect,
    risk_of,
)

NAME = "LangGraph"

try:
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Command, interrupt
except ImportError:  # the optional extra is missing
    UNAVAILABLE: str | None = "n/a (pip install 'pausepoint[bench]')"
else:
    UNAVAILABLE = None


def versions() -> str | None:
    """``langgraph X (checkpoint Y)``, or ``None`` when not installed."""
    if UNAVAILABLE is not None:
        return None
    try:
        return f"{version('langgraph')} (checkpoint {version('langgraph-checkpoint')})"
    except PackageNotFoundError:
        return "unknown version"


_thread_ids = itertools.count()


def _configs(k: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"configurable": {"thread_id": f"t{next(_thread_ids)}"}, **extra} for _ in range(k)]


def _emptied(saver: InMemorySaver) -> None:
    saver.storage.clear()
    saver.writes.clear()
    saver.blobs.clear()


# -- S1: linear chain ------------------------------------------------------


class ChainState(TypedDict):
    x: int


def _step(state: ChainState) -> dict[str, int]:
    return {"x": state["x"] + 1}


def chain_case(n: int, *, checkpointer: bool = True) -> Case:
    builder = StateGraph(ChainState)
    for i in range(n):
        builder.add_node(f"s{i}", _step)
        builder.add_edge(START if i == 0 else f"s{i - 1}", f"s{i}")
    builder.add_edge(f"s{n - 1}", END)
    saver = InMemorySaver() if checkpointer else None
    graph = builder.compile(checkpointer=saver)
    limit = n + 10  # one super-step per stage; the default limit is 25

    def run(config: dict[str, Any]) -> dict[str, Any]:
        return graph.invoke({"x": 0}, config)

    expect(run(_configs(1, recursion_limit=limit)[0])["x"] == n, f"LangGraph chain of {n}")
    if saver is None:
        return Case(run, prepare=lambda k: _configs(k, recursion_limit=limit))
    _emptied(saver)
    return Case(
        run,
        prepare=lambda k: _configs(k, recursion_limit=limit),
        reset=lambda: _emptied(saver),
    )


# -- S2: refund chart ------------------------------------------------------


class RefundState(TypedDict, total=False):
    order_id: str
    amount: int
    status: str
    risk_level: str
    approved: bool
    approver: str


def _receive(state: RefundState) -> dict[str, Any]:
    return {"status": "received" if state["order_id"] else "invalid"}


def _approve(state: RefundState) -> dict[str, Any]:
    amount = state["amount"]
    risk_level = risk_of(amount)
    if amount > 100:
        answer = interrupt({"question": f"Approve ${amount} refund?", "risk_level": risk_level})
        return {
            "risk_level": risk_level,
            "approved": answer["approved"],
            "approver": answer["approver"],
        }
    return {"risk_level": risk_level}


def _process(state: RefundState) -> dict[str, Any]:
    return {"status": "refunded" if state["approved"] else "rejected"}


def _refund_graph() -> tuple[Any, InMemorySaver]:
    builder = StateGraph(RefundState)
    builder.add_node("receive", _receive)
    builder.add_node("approve", _approve)
    builder.add_node("process", _process)
    builder.add_edge(START, "receive")
    builder.add_edge("receive", "approve")
    builder.add_edge("approve", "process")
    builder.add_edge("process", END)
    saver = InMemorySaver()
    return builder.compile(checkpointer=saver), saver


def _run_to_pause(graph: Any, config: dict[str, Any]) -> Any:
    graph.invoke(REFUND_INPUT, config)
    return graph.get_state(config)


def refund_pause_case() -> Case:
    graph, saver = _refund_graph()
    state = _run_to_pause(graph, _configs(1)[0])
    expect(state.interrupts[0].value["question"] == REFUND_QUESTION, "LangGraph refund pauses")
    _emptied(saver)
    return Case(lambda config: _run_to_pause(graph, config), _configs, lambda: _emptied(saver))


def refund_resume_case() -> Case:
    graph, saver = _refund_graph()

    def paused_threads(k: int) -> list[dict[str, Any]]:
        configs = _configs(k)
        for config in configs:
            graph.invoke(REFUND_INPUT, config)
        return configs

    def resume(config: dict[str, Any]) -> dict[str, Any]:
        return graph.invoke(Command(resume=REFUND_ANSWER), config)

    done = resume(paused_threads(1)[0])
    expect(done["status"] == REFUND_FINAL_STATUS, "LangGraph refund completes")
    _emptied(saver)
    return Case(resume, paused_threads, lambda: _emptied(saver))


def refund_checkpoint_bytes() -> tuple[int, str, int]:
    """Bytes stored for one paused thread: what resume loads, what it counted, and everything.

    Counts the byte payloads of ``serde.dumps_typed`` the saver stored for the
    thread: the latest checkpoint and its metadata, the channel blobs that
    checkpoint's ``channel_versions`` point at, and the pending writes
    (the interrupt) of that checkpoint. The last figure adds every earlier
    checkpoint of the thread, its metadata, blobs and writes (the history).
    Ids, type tags and dict keys are not counted.
    """
    graph, saver = _refund_graph()
    config = _configs(1)[0]
    graph.invoke(REFUND_INPUT, config)
    thread = config["configurable"]["thread_id"]
    latest = saver.get_tuple(config)
    expect(latest is not None, "LangGraph saved a checkpoint")
    assert latest is not None
    ns = latest.config["configurable"].get("checkpoint_ns", "")
    checkpoint_id = latest.config["configurable"]["checkpoint_id"]

    checkpoint_bytes, metadata_bytes, _ = saver.storage[thread][ns][checkpoint_id]
    needed = len(checkpoint_bytes[1]) + len(metadata_bytes[1])
    for channel, channel_version in latest.checkpoint["channel_versions"].items():
        blob = saver.blobs.get((thread, ns, channel, channel_version))
        if blob is not None:
            needed += len(blob[1])
    for _task, _channel, value, _path in saver.writes.get((thread, ns, checkpoint_id), {}).values():
        needed += len(value[1])

    everything = sum(
        len(cp[1]) + len(meta[1])
        for per_ns in saver.storage[thread].values()
        for cp, meta, _parent in per_ns.values()
    )
    everything += sum(len(blob[1]) for key, blob in saver.blobs.items() if key[0] == thread)
    everything += sum(
        len(value[1])
        for key, writes in saver.writes.items()
        if key[0] == thread
        for _task, _channel, value, _path in writes.values()
    )
    what = "serde.dumps_typed payloads: latest checkpoint + metadata + its blobs + pending writes"
    return needed, what, everything
