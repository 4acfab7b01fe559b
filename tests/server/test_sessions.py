"""Session cookies and CSRF tokens signed with itsdangerous: forgery, other keys, rotation."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from pausepoint import Runs
from pausepoint.server import Tokens, create_app
from pausepoint.server._auth import Session, SessionSigner, session_keys

from .conftest import KIM, TOKENS, start_refund
from .test_pages import answer_form, hidden

COOKIE = "pausepoint_session"


def client_for(runs: Runs, secret: Any, tokens: Any = TOKENS) -> httpx.AsyncClient:
    app = create_app(runs, tokens, session_secret=secret)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def sign_in(client: httpx.AsyncClient, token: str = "tok-kim") -> str:
    form = await client.get("/login")
    data = {"token": token, "csrf": hidden(form.text, "csrf"), "next": "/"}
    assert (await client.post("/login", data=data)).status_code == 303
    return client.cookies[COOKIE]


async def signed_in_as(client: httpx.AsyncClient, cookie: str) -> str | None:
    """Who the server sees with ``cookie`` (``None``: it sends the browser to sign in)."""
    client.cookies.set(COOKIE, cookie)
    response = await client.get("/")
    if response.status_code == 303:
        assert response.headers["location"].startswith("/login")
        return None
    text = response.text
    start = text.find("Signed in as <strong>")
    return text[start + 21 : text.find("</strong>", start)] if start >= 0 else None


async def test_a_missing_or_forged_csrf_token_is_refused(runs: Runs) -> None:
    """Answer posts without the session's CSRF token (absent, mangled, another key's) get 403."""
    async with client_for(runs, "key-a") as client, client_for(runs, "key-b") as other:
        run = await start_refund(client)
        await sign_in(client)
        url = f"/runs/{run['run_id']}"
        form = {**answer_form((await client.get(url)).text), "field:approved": "true"}
        form["field:approver"] = "Kim"
        await sign_in(other)
        foreign = hidden((await other.get(url)).text, "csrf")  # another session, another key
        for csrf in (None, "", form["csrf"][:-2] + "xx", foreign, "plainly-wrong"):
            data = {k: v for k, v in form.items() if k != "csrf"}
            if csrf is not None:
                data["csrf"] = csrf
            refused = await client.post(url, data=data)
            assert refused.status_code == 403, csrf
            assert "did not come from this site" in refused.text
        record = (await client.get(f"/api/runs/{run['run_id']}", headers=KIM)).json()
        assert record["status"] == "paused"
        assert (await client.post(url, data=form)).status_code == 303


async def test_a_csrf_token_is_bound_to_its_session() -> None:
    signer = SessionSigner(session_keys("k"))
    one, two = Session.new("d"), Session.new("d")
    token = signer.csrf_token(one)
    assert signer.check_csrf(one, token)
    assert not signer.check_csrf(two, token)
    assert not signer.check_csrf(None, token)
    assert not signer.check_csrf(one, None)


async def test_a_cookie_signed_with_another_key_is_refused(runs: Runs) -> None:
    async with client_for(runs, "key-a") as a, client_for(runs, "key-b") as b:
        cookie = await sign_in(a)
        assert await signed_in_as(a, cookie) == "kim"
        assert await signed_in_as(b, cookie) is None
        mangled = cookie[:-3] + ("AAA" if not cookie.endswith("AAA") else "BBB")
        assert await signed_in_as(a, mangled) is None
        assert await signed_in_as(a, "not-a-cookie") is None


async def test_key_rotation_keeps_sessions_until_the_old_key_goes(runs: Runs) -> None:
    """Add a new key (newest last): old cookies stay valid, new ones use the new key.

    Remove the old key: cookies it signed are signed out; the new key's still work.
    """
    async with client_for(runs, "old") as before:
        old_cookie = await sign_in(before)
    async with client_for(runs, ["old", "new"]) as during:
        assert await signed_in_as(during, old_cookie) == "kim"
        during.cookies.clear()
        new_cookie = await sign_in(during, "tok-lee")
        run = await start_refund(during)
    # a form rendered while only the old key signed is accepted after the new key was added
    async with client_for(runs, "old") as old_page:
        old_page.cookies.set(COOKIE, old_cookie)
        url = f"/runs/{run['run_id']}"
        form = {**answer_form((await old_page.get(url)).text), "field:approved": "true"}
        form["field:approver"] = "Kim"
    async with client_for(runs, ["old", "new"]) as during:
        during.cookies.set(COOKIE, old_cookie)
        assert (await during.post(url, data=form)).status_code == 303
    async with client_for(runs, ["new"]) as after:
        assert await signed_in_as(after, old_cookie) is None
        assert await signed_in_as(after, new_cookie) == "lee"
    async with client_for(runs, "old") as rolled_back:
        assert await signed_in_as(rolled_back, new_cookie) is None  # "new" signed it


async def test_a_session_ends_when_its_token_is_revoked(runs: Runs) -> None:
    tokens = Tokens(TOKENS)
    async with client_for(runs, "k", tokens) as client:
        cookie = await sign_in(client)
        assert await signed_in_as(client, cookie) == "kim"
        del tokens["tok-kim"]
        assert await signed_in_as(client, cookie) is None
        assert (await client.get("/api/runs")).status_code == 401


def test_a_session_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    signer = SessionSigner(session_keys(["k"]), max_age=60)
    cookie = signer.dump(Session.new("digest"))
    loaded = signer.load(cookie)
    assert loaded is not None
    assert loaded.token_digest == "digest"
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 120)
    assert signer.load(cookie) is None
    monkeypatch.setattr(time, "time", lambda: now)
    token = signer.csrf_token(loaded)
    monkeypatch.setattr(time, "time", lambda: now + 120)
    assert not signer.check_csrf(loaded, token)


def test_session_secrets_are_checked() -> None:
    assert session_keys("a") == [b"a"]
    assert session_keys(["a", b"b"]) == [b"a", b"b"]
    assert len(session_keys(None)[0]) == 32
    with pytest.raises(ValueError, match="at least one key"):
        session_keys([])
    with pytest.raises(ValueError, match="must not be empty"):
        session_keys(["a", ""])
    with pytest.raises(TypeError, match="str or bytes"):
        session_keys([1])  # type: ignore[list-item]
