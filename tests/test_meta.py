"""A run's bookkeeping: read and written back through RunMeta."""

from __future__ import annotations

from pausepoint.durable._meta import RecordedAnswer, RunMeta


def test_meta_round_trips_and_keeps_the_keys_of_others() -> None:
    meta = RunMeta(
        input={"amount": 5},
        structure=["a"],
        redact=("card",),
        answer=RecordedAnswer(stage_id="s", pause_id="p", input={"ok": True}, actor="kim"),
        idempotency={"k": "p"},
        segment=3,
        whole=True,
        extra={"traceparent": "00-abc-def-01"},
    )
    doc = meta.to_json()
    assert doc["v"] == 2
    assert doc["traceparent"] == "00-abc-def-01"
    assert RunMeta.of(doc) == meta


def test_release_0_1_meta_is_read_and_its_cancel_request_dropped() -> None:
    old = {
        "input": {"amount": 5},
        "structure": ["a"],
        "redact": [],
        "answer": {"stage_id": "s", "pause_id": "p", "input": {"ok": True}},
        "cancel": {"actor": "ops", "reason": "x"},
    }
    meta = RunMeta.of(old)
    assert meta.answer is not None
    assert meta.answer.actor is None
    assert (meta.segment, meta.whole, dict(meta.extra)) == (0, False, {})
    assert "cancel" not in meta.to_json()
