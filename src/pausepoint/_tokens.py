"""Bearer tokens and the people they stand for, kept as digests only.

A token is written ``SECRET=ACTOR[:GROUP,GROUP]``: ``s3cret=kim:managers,finance``
gives whoever sends ``s3cret`` the name ``kim`` and the groups ``managers`` and
``finance``. The secret is everything before the last ``=``, so secrets may hold
``=`` (base64 padding); names and groups may not hold ``=``, ``:``, ``,`` or spaces.

:class:`Tokens` keeps the SHA-256 digest of each secret and its
:class:`~pausepoint.durable.people.Actor`, never the secret itself. Lookups digest the
token presented and look the digest up.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path

from pausepoint.durable.people import ADMIN_GROUP, Actor
from pausepoint.errors import TokenFormatError

__all__ = [
    "Tokens",
    "TokensFile",
    "parse_token",
    "parse_tokens_file",
    "parse_tokens_text",
    "token_digest",
]

log = logging.getLogger("pausepoint.server")

_NAME = re.compile(r"[^\s=:,]+")


def token_digest(token: str) -> str:
    """Return the SHA-256 digest (hex) kept instead of ``token``."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse_token(
    text: str, *, source: str = "--token", line: int | None = None
) -> tuple[str, Actor]:
    """Read ``SECRET=ACTOR[:GROUP,GROUP]``; return the secret and its actor.

    Raises:
        TokenFormatError: The text is not written that way; the message names
            ``source`` (and ``line``) and never repeats the secret.
    """
    where = source if line is None else f"{source}, line {line}"
    secret, sep, who = text.strip().rpartition("=")
    if not sep or not secret.strip():
        raise TokenFormatError(
            f"{where}: a token is written SECRET=ACTOR[:GROUP,GROUP] "
            "(for example s3cret=kim:managers,finance)",
            source=source,
            line=line,
        )
    if secret != secret.strip() or any(c.isspace() for c in secret):
        raise TokenFormatError(
            f"{where}: the secret holds white space; a secret is one word",
            source=source,
            line=line,
        )
    name, colon, groups_text = who.strip().partition(":")
    groups = [g.strip() for g in groups_text.split(",")] if colon else []
    if not _NAME.fullmatch(name):
        raise TokenFormatError(
            f"{where}: the actor after '=' must be one name without spaces, ':' or ',' "
            f"(got {name!r}); write SECRET=ACTOR[:GROUP,GROUP]",
            source=source,
            line=line,
        )
    for group in groups:
        if not _NAME.fullmatch(group):
            raise TokenFormatError(
                f"{where}: the groups of {name!r} must be names separated by commas, "
                f"without spaces or ':' (got {groups_text.strip()!r})",
                source=source,
                line=line,
            )
    return secret, Actor(name, groups=frozenset(groups))


def parse_tokens_text(text: str, *, source: str) -> dict[str, Actor]:
    """Read tokens one per line; blank lines and lines starting with ``#`` are skipped.

    Raises:
        TokenFormatError: A line is malformed, or a secret appears twice
            (the message gives the line number).
    """
    found: dict[str, Actor] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        secret, actor = parse_token(stripped, source=source, line=number)
        if secret in found:
            raise TokenFormatError(
                f"{source}, line {number}: this secret is given twice (for "
                f"{found[secret].name!r} and {actor.name!r}); each token stands for one actor",
                source=source,
                line=number,
            )
        found[secret] = actor
    return found


def parse_tokens_file(path: str | os.PathLike[str]) -> dict[str, Actor]:
    """Read a tokens file (see :func:`parse_tokens_text`).

    Raises:
        TokenFormatError: The file cannot be read, or a line is malformed.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenFormatError(
            f"cannot read the tokens file {os.fspath(path)!r}: {exc}", source=os.fspath(path)
        ) from None
    return parse_tokens_text(text, source=os.fspath(path))


def _actor(value: str | Actor, secret_source: str) -> Actor:
    if isinstance(value, Actor):
        return value
    if isinstance(value, str):
        return parse_token(f"x={value}", source=secret_source)[1]
    raise TypeError(f"a token stands for an actor name or an Actor, not {type(value).__name__}")


class Tokens:
    """Bearer tokens and the actors they stand for, kept as SHA-256 digests only.

    ``Tokens({"s3cret": "kim:managers", "t0ken": Actor("lee")})``: a plain
    name, a ``NAME:GROUP,GROUP`` string, or an :class:`~pausepoint.durable.people.Actor`.
    The secrets are digested at once and not kept. Changes take effect on
    the next request, in open sessions too: ``tokens["new"] = "ann"`` adds a
    token, ``del tokens["s3cret"]`` (or :meth:`discard`) revokes one.

    Thread-safe: a table may be changed while requests are answered.
    """

    def __init__(self, tokens: Mapping[str, str | Actor] | None = None) -> None:
        self._lock = threading.Lock()
        self._by_digest: dict[str, Actor] = {}
        for secret, actor in (tokens or {}).items():
            self[secret] = actor

    def __setitem__(self, secret: str, actor: str | Actor) -> None:
        if not isinstance(secret, str) or not secret:
            raise TokenFormatError("a token's secret must be a non-empty string", source="tokens")
        found = _actor(actor, "tokens")
        with self._lock:
            self._by_digest[token_digest(secret)] = found

    def __delitem__(self, secret: str) -> None:
        with self._lock:
            del self._by_digest[token_digest(secret)]

    def discard(self, secret: str) -> None:
        """Revoke ``secret`` if it is known."""
        with self._lock:
            self._by_digest.pop(token_digest(secret), None)

    def replace(self, tokens: Mapping[str, Actor]) -> None:
        """Replace every token at once (what a tokens file does when it changes)."""
        fresh = {token_digest(secret): actor for secret, actor in tokens.items()}
        with self._lock:
            self._by_digest = fresh

    def __contains__(self, secret: object) -> bool:
        return isinstance(secret, str) and self.actor_for(secret) is not None

    def __len__(self) -> int:
        return len(self._current())

    def _current(self) -> dict[str, Actor]:
        return self._by_digest

    def actor_for(self, secret: str) -> Actor | None:
        """Return the actor ``secret`` stands for, or ``None`` if it is not known (now)."""
        return self.actor_for_digest(token_digest(secret)) if secret else None

    def actor_for_digest(self, digest: str) -> Actor | None:
        """Return the actor of the token whose digest is ``digest``, if it is still known."""
        return self._current().get(digest)

    def digests(self) -> frozenset[str]:
        """The digests of the known tokens (what this table keeps instead of secrets)."""
        return frozenset(self._current())

    def actors(self) -> list[Actor]:
        """Every actor some token stands for."""
        return list(self._current().values())

    def principals(self) -> frozenset[str]:
        """Every actor name and group the tokens name, and ``admin``."""
        names = {ADMIN_GROUP}
        for actor in self._current().values():
            names.update(actor.principals)
        return frozenset(names)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} tokens)"


class TokensFile(Tokens):
    """Tokens read from a file, read again whenever the file changes.

    Each lookup looks at the file's size, modification time and inode; when
    any changed, the file is read again, so deleting a line revokes its token
    on the next request. A file that has become unreadable or malformed
    refuses every token it held (the problem is logged with its line number)
    until it is fixed: write the new file beside the old one and rename it over.

    Args:
        path: The tokens file: ``SECRET=ACTOR[:GROUP,GROUP]`` per line.
        extra: Tokens from elsewhere (``--token``), kept beside the file's;
            the file wins for a secret given in both.

    Raises:
        TokenFormatError: At construction, when the file cannot be read or a
            line is malformed.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, extra: Mapping[str, str | Actor] | None = None
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self._extra = {token_digest(s): _actor(a, "tokens") for s, a in (extra or {}).items()}
        self._reload_lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._reload(initial=True)

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _reload(self, *, initial: bool = False) -> None:
        stamp = self._stat()
        try:
            tokens = parse_tokens_file(self.path)
        except TokenFormatError as exc:
            if initial:
                raise
            log.error("tokens file refused; its tokens are refused until it is fixed: %s", exc)
            tokens = {}
        fresh = {**self._extra, **{token_digest(s): a for s, a in tokens.items()}}
        with self._lock:
            self._by_digest = fresh
        self._stamp = stamp

    def _current(self) -> dict[str, Actor]:
        if self._stat() != self._stamp:
            with self._reload_lock:
                if self._stat() != self._stamp:
                    self._reload()
        return self._by_digest

    def __setitem__(self, secret: str, actor: str | Actor) -> None:
        raise TypeError(f"tokens read from {self.path} change with the file: edit the file")

    def __delitem__(self, secret: str) -> None:
        raise TypeError(f"tokens read from {self.path} change with the file: edit the file")

    def discard(self, secret: str) -> None:
        """Not available: edit the file."""
        raise TypeError(f"tokens read from {self.path} change with the file: edit the file")
