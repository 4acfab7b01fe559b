"""One Answer value: its JSON (a worker's message) and Runs.answer beside Runs.resume."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from pausepoint import Answer, PermissionDeniedError, Runs, open_store
from test_people import charts


class Decision(BaseModel):
    approved: bool


def test_an_answer_round_trips_through_json() -> None:
    answer = Answer(
        input=Decision(approved=True),
        actor="kim",
        groups=["managers", "finance"],  # any collection, kept as a frozenset
        pause_id="p1",
        idempotency_key="k1",
    )
    assert answer.groups == frozenset({"managers", "finance"})
    doc = answer.to_json()
    assert doc == {
        "input": {"approved": True},
        "actor": "kim",
        "pause_id": "p1",
        "idempotency_key": "k1",
        "stage_id": None,
        "groups": ["finance", "managers"],
    }
    again = Answer.from_json(doc)
    assert again == Answer(
        input={"approved": True},
        actor="kim",
        groups=frozenset({"managers", "finance"}),
        pause_id="p1",
        idempotency_key="k1",
    )
    trusted = Answer(input=1)
    assert "groups" not in trusted.to_json()  # workers of older releases take no groups
    assert Answer.from_json(trusted.to_json()) == trusted
    with pytest.raises(TypeError, match=r"groups=\['managers'\]"):
        Answer(input=1, groups="managers")  # type: ignore[arg-type]


async def test_runs_answer_is_resume_with_one_value() -> None:
    async with Runs(open_store("memory://"), charts()) as runs:
        run = await runs.start("static", {"amount": 700})
        assert run.pause is not None
        refused = Answer(input={"approved": True}, actor="lee", groups=frozenset({"finance"}))
        with pytest.raises(PermissionDeniedError):
            await runs.check_answer(run.run_id, refused)
        with pytest.raises(PermissionDeniedError):
            await runs.answer(run.run_id, refused)
        answer = Answer(
            input={"approved": True},
            actor="kim",
            groups=frozenset({"managers"}),
            pause_id=run.pause.pause_id,
            idempotency_key="once",
        )
        done = await runs.answer(run.run_id, answer)
        assert done.status == "completed"
        again = await runs.answer(run.run_id, answer)  # the same key: the first outcome
        assert again.status == "completed"
        assert [e.kind for e in again.audit].count("resumed") == 1
