"""Who is asking: bearer tokens for the API, a signed session cookie for the pages.

Tokens map to actors (``{"secret-token": "kim"}``); the mapping is read on every
request, so a token removed from it stops working at once, in sessions too.

A session cookie holds a random session id and a digest of the token the
person signed in with, never the token itself, signed with HMAC-SHA256. Forms
carry a CSRF token derived from the session id (HMAC again), so a page from
another site cannot post an answer on a signed-in person's behalf.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["SESSION_COOKIE", "Session", "SessionSigner", "actor_for_digest", "actor_for_token"]

SESSION_COOKIE = "pausepoint_session"


def token_digest(token: str) -> str:
    """Return the digest a session keeps instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def actor_for_token(tokens: Mapping[str, str], token: str) -> str | None:
    """Return the actor ``token`` stands for, comparing in constant time."""
    return actor_for_digest(tokens, token_digest(token)) if token else None


def actor_for_digest(tokens: Mapping[str, str], digest: str) -> str | None:
    """Return the actor of the token whose digest is ``digest``, if it is still known."""
    found = None
    for token, actor in tokens.items():
        if token and actor and hmac.compare_digest(token_digest(token), digest):
            found = actor
    return found


@dataclass(frozen=True, slots=True)
class Session:
    """A browser's session.

    Attributes:
        sid: Random id; CSRF tokens derive from it.
        token_digest: Digest of the token signed in with; ``None`` before sign-in.
        issued_at: When the cookie was made (UNIX seconds).
    """

    sid: str
    token_digest: str | None
    issued_at: float

    @classmethod
    def new(cls, token_digest: str | None = None) -> Session:
        """Return a fresh session (a new id: sign-in never keeps the old one)."""
        return cls(os.urandom(16).hex(), token_digest, time.time())


class SessionSigner:
    """Signs and reads session cookies; makes and checks CSRF tokens.

    Args:
        secret: The HMAC key; every process serving the same site needs the same one.
        max_age: Seconds a session lasts.
    """

    def __init__(self, secret: bytes, max_age: float = 12 * 3600) -> None:
        self._secret = secret
        self.max_age = max_age

    def _mac(self, purpose: bytes, payload: bytes) -> bytes:
        return hmac.new(self._secret, purpose + b"\x00" + payload, hashlib.sha256).digest()

    def dump(self, session: Session) -> str:
        """Return the cookie value for ``session``."""
        payload = json.dumps(
            {"sid": session.sid, "tok": session.token_digest, "iat": int(session.issued_at)},
            separators=(",", ":"),
        ).encode()
        return f"{_b64(payload)}.{_b64(self._mac(b'session', payload))}"

    def load(self, value: str | None) -> Session | None:
        """Return the session in a cookie value, or ``None`` if forged, mangled or expired."""
        if not value or value.count(".") != 1:
            return None
        body, mac = value.split(".")
        try:
            payload, signature = _unb64(body), _unb64(mac)
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(signature, self._mac(b"session", payload)):
            return None
        data = json.loads(payload)
        issued_at = float(data["iat"])
        if time.time() - issued_at > self.max_age:
            return None
        return Session(str(data["sid"]), data["tok"], issued_at)

    def csrf_token(self, session: Session) -> str:
        """Return the CSRF token forms of this session carry."""
        return _b64(self._mac(b"csrf", session.sid.encode()))

    def check_csrf(self, session: Session | None, token: str | None) -> bool:
        """Tell whether ``token`` is this session's CSRF token."""
        if session is None or not token:
            return False
        return hmac.compare_digest(token.encode(), self.csrf_token(session).encode())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
