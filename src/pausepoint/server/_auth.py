"""Who is asking: bearer tokens for the API, a signed session cookie for the pages.

Tokens live in a :class:`~pausepoint._tokens.Tokens` table (digests only) and
are looked up on every request, so a token revoked there stops working at
once, in sessions too.

A session cookie holds a random session id and the digest of the token the
person signed in with, never the token itself. It is signed with itsdangerous
(``URLSafeTimedSerializer``), which also dates it: a cookie older than the
session's lifetime is refused. Several keys may be given for rotation: the
newest (last) signs, every one of them verifies. Forms carry a CSRF token
bound to the session id (signed by the same keys under another salt), so a
page from another site cannot post an answer on a signed-in person's behalf.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request

from pausepoint._tokens import Tokens, token_digest
from pausepoint.durable.people import Actor

__all__ = [
    "SESSION_COOKIE",
    "Access",
    "Session",
    "SessionSigner",
    "Tokens",
    "session_keys",
    "token_digest",
]

SESSION_COOKIE = "pausepoint_session"


@dataclass(frozen=True, slots=True)
class Session:
    """A browser's session.

    Attributes:
        sid: Random id; CSRF tokens are bound to it.
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


def session_keys(secret: str | bytes | Sequence[str | bytes] | None) -> list[bytes]:
    """Return the signing keys, oldest first (the last one signs).

    ``None`` makes one random key, so sessions end with the process.

    Raises:
        ValueError: An empty key, or an empty list.
    """
    if secret is None:
        return [os.urandom(32)]
    given = [secret] if isinstance(secret, str | bytes) else list(secret)
    if not given:
        raise ValueError("session_secret: give at least one key, or None for a random one")
    keys = []
    for key in given:
        if not isinstance(key, str | bytes):
            raise TypeError(f"session_secret: a key is a str or bytes, not {type(key).__name__}")
        if not key:
            raise ValueError("session_secret: a key must not be empty")
        keys.append(key.encode() if isinstance(key, str) else key)
    return keys


class SessionSigner:
    """Signs and reads session cookies; makes and checks CSRF tokens.

    Args:
        keys: Signing keys, oldest first: the last signs, all of them verify.
            Every process serving the same site needs the same keys.
        max_age: Seconds a session (and a form's CSRF token) lasts.
    """

    def __init__(self, keys: Sequence[bytes], max_age: float = 12 * 3600) -> None:
        self._session = URLSafeTimedSerializer(list(keys), salt="pausepoint.session")
        self._csrf = URLSafeTimedSerializer(list(keys), salt="pausepoint.csrf")
        self.max_age = max_age

    def dump(self, session: Session) -> str:
        """Return the cookie value for ``session``."""
        return self._session.dumps({"sid": session.sid, "tok": session.token_digest})

    def load(self, value: str | None) -> Session | None:
        """Return the session in a cookie value, or ``None`` if forged, mangled or expired."""
        if not value:
            return None
        try:
            data, signed_at = self._session.loads(
                value, max_age=int(self.max_age), return_timestamp=True
            )
        except BadSignature:  # SignatureExpired and BadTimeSignature too
            return None
        if not isinstance(data, dict) or not isinstance(data.get("sid"), str):
            return None
        digest = data.get("tok")
        return Session(
            data["sid"], digest if isinstance(digest, str) else None, signed_at.timestamp()
        )

    def csrf_token(self, session: Session) -> str:
        """Return a CSRF token for this session's forms."""
        return self._csrf.dumps(session.sid)

    def check_csrf(self, session: Session | None, token: str | None) -> bool:
        """Tell whether ``token`` was made for this session (and has not expired)."""
        if session is None or not token:
            return False
        try:
            sid: Any = self._csrf.loads(token, max_age=int(self.max_age))
        except BadSignature:
            return False
        return isinstance(sid, str) and hmac.compare_digest(sid.encode(), session.sid.encode())


def actor_of_session(tokens: Tokens, session: Session | None) -> Actor | None:
    """Return who is signed in to ``session``, if their token is still known."""
    if session is None or session.token_digest is None:
        return None
    return tokens.actor_for_digest(session.token_digest)


@dataclass(frozen=True, slots=True)
class Access:
    """Who may read and write: the tokens, the session signer, and whether reads are public."""

    tokens: Tokens
    signer: SessionSigner
    public_read: bool = False

    def session_of(self, request: Request) -> Session | None:
        """Return the request's session, if its cookie is signed by one of our keys and fresh."""
        return self.signer.load(request.cookies.get(SESSION_COOKIE))

    def signed_in(self, request: Request) -> Actor | None:
        """Return who is signed in to the request's session (``None`` if nobody)."""
        return actor_of_session(self.tokens, self.session_of(request))
