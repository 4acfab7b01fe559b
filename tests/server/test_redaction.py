"""A pause's redacted data never shows: Runs, the inbox index, the API, the pages, the CLI.

The card chart pauses with the card number at the top of its data, nested in an
object and inside a list. Every place that shows or sends the pause gets
``"***"``; the stored checkpoint keeps the real value, and the run uses it.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import _secret_charts as cards
from pausepoint import Runs, open_store
from pausepoint.cli import app

from .conftest import KIM, make_client

SHOWN = {
    "question": cards.QUESTION,
    "card_number": "***",
    "customer": {"name": "Ann Example", "card_number": "***"},
    "items": [{"card_number": "***"}],
}


def assert_hidden(text: str) -> None:
    for secret in (cards.CARD, cards.CARD_DIGITS, cards.CVV):
        assert secret not in text


async def test_pause_data_is_redacted_everywhere_it_is_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Record, inbox, store index, audit, API, inbox and run pages, ``ls`` and ``show``: no card number."""
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    async with Runs(open_store(url), {"card": cards.card_chart()}) as runs:
        paused = await runs.start("card", {"card_number": cards.CARD, "order": 1}, actor="api")
        run_id = paused.run_id
        assert paused.pause is not None
        assert paused.pause.data == SHOWN
        assert (await runs.get(run_id)).pauses[0].data == SHOWN
        assert (await runs.pending()).items[0].pause.data == SHOWN
        # the inbox index as stored, read by anything listing pauses (notifications too)
        assert (await runs.store.list_pending()).items[0].pause.data == SHOWN
        assert (await runs.store.get(run_id)).pauses[0].data == SHOWN
        stored = await runs.store.get(run_id)
        assert stored.checkpoint is not None  # only the checkpoint keeps the real value
        assert stored.checkpoint["pauses"][0]["data"]["card_number"] == cards.CARD_DIGITS
        assert_hidden(json.dumps([e.data for e in (await runs.get(run_id)).audit]))

        async with make_client(runs) as client:
            texts = [
                (await client.get(f"/api/runs/{run_id}", headers=KIM)).text,
                (await client.get("/api/runs", headers=KIM)).text,
                (await client.get("/api/runs?status=all", headers=KIM)).text,
            ]
            body = json.loads(texts[0])
            assert body["pause"]["data"] == SHOWN
            form = await client.get("/login")
            csrf = html.unescape(re.findall(r'name="csrf" value="([^"]*)"', form.text)[0])
            signed = await client.post("/login", data={"token": "tok-kim", "csrf": csrf})
            assert signed.status_code == 303
            inbox = await client.get("/")
            page = await client.get(f"/runs/{run_id}")
            assert cards.QUESTION in html.unescape(inbox.text)
            assert page.status_code == 200
            texts += [inbox.text, page.text]
        for text in texts:
            assert_hidden(text)

    monkeypatch.setenv("PAUSEPOINT_STORE", url)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    for args in (["ls"], ["ls", "--json"], ["show", run_id], ["show", run_id, "--json"]):
        outcome = await asyncio.to_thread(runner.invoke, app, args, catch_exceptions=False)
        assert outcome.exit_code == 0, outcome.output
        assert_hidden(outcome.output)
    shown = json.loads(
        (await asyncio.to_thread(runner.invoke, app, ["show", run_id, "--json"])).stdout
    )
    assert shown["pause"]["data"] == SHOWN

    async with Runs(open_store(url), {"card": cards.card_chart()}) as runs:
        done = await runs.resume(run_id, cards.answer(), actor="kim")
        assert done.status == "completed"
        assert cards.CHARGED[-1] == f"{run_id} {cards.CARD_DIGITS} {cards.CVV}"
        assert_hidden(json.dumps(done.snapshot))
        assert_hidden(json.dumps([e.data for e in done.audit]))
