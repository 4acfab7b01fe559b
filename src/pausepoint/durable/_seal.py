"""Encryption at rest: the values of redacted keys are sealed before the store keeps them.

``Runs(store, charts, encryption_key=...)`` puts a :class:`SealedStore` between
itself and the store. On the way in it replaces the value of every redacted key
(the chart's ``redact`` keys, at any depth, as :mod:`pausepoint.engine._redact` hides
them) by ``{"$sealed": "<Fernet token>"}`` in what the store keeps of a run:

* the checkpoint (state, input, pauses' data, execution tree, continuation);
* the record's bookkeeping (the run's input, the last answer given);
* every journal entry (what a stage set, the pauses a ``paused`` step holds);
* answers kept for a business key nobody waits on yet.

On the way out it puts the values back, so nothing above the store sees a
sealed value. The checkpoint is signed (``signing_key=``) before it is sealed
and verified after it is opened. What is sealed is flagged (``"sealed"`` in the
record's meta and in the journal entry's data), so reading a run that holds
none costs nothing.

Keys: Fernet keys (``cryptography``, extra ``pausepoint[crypto]``), several for
rotation: the first encrypts, every one decrypts (:class:`~cryptography.fernet.MultiFernet`).
A run sealed with a key this ``Runs`` lacks, or read by a ``Runs`` without any
key, raises :class:`~pausepoint.errors.EncryptionKeyError` and nothing is
written. Without a key a ``Runs`` still wraps its store, only to notice sealed runs.

The pending index (pause data, already redacted) and the audit (redacted) are
kept as they are, so the inbox and the history can be read without the key.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pausepoint.engine._redact import REDACTED
from pausepoint.errors import EncryptionKeyError
from pausepoint.stores.base import (
    AuditEvent,
    BufferedSignal,
    Decider,
    InboxEntry,
    JournalEntry,
    LeaseRenewer,
    OutboxEntry,
    PendingPage,
    RunPage,
    Store,
    StoredRun,
    Update,
)

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

__all__ = [
    "ENCRYPTION_KEYS_ENV",
    "EncryptionKey",
    "SealedStore",
    "keys_from_env",
    "peek",
    "sealer",
    "unwrapped",
]

ENCRYPTION_KEYS_ENV = "PAUSEPOINT_ENCRYPTION_KEYS"
"""The encryption keys of the ``pausepoint`` command and Celery workers: newest first, commas."""

EncryptionKey = str | bytes | Sequence[str | bytes]
"""One Fernet key, or several newest first (the first encrypts, all decrypt)."""

MARK = "$sealed"
"""The key of a sealed value: ``{"$sealed": token}``."""

FLAG = "sealed"
"""Set in a record's meta and a journal entry's data holding sealed values."""


def keys_from_env(environ: Mapping[str, str]) -> list[str] | None:
    """The keys named by :data:`ENCRYPTION_KEYS_ENV` (newest first), or ``None``."""
    text = environ.get(ENCRYPTION_KEYS_ENV, "")
    keys = [key.strip() for key in text.split(",") if key.strip()]
    return keys or None


def sealer(key: EncryptionKey | None) -> MultiFernet | None:
    """The cipher for ``key`` (``None`` without a key).

    Raises:
        EncryptionKeyError: A key is not a Fernet key (32 url-safe base64-encoded bytes).
        ImportError: ``cryptography`` is not installed (``pip install 'pausepoint[crypto]'``).
    """
    if key is None:
        return None
    keys = [key] if isinstance(key, str | bytes) else list(key)
    if not keys:
        raise EncryptionKeyError("encryption_key is an empty list: give at least one Fernet key")
    try:
        from cryptography.fernet import Fernet, MultiFernet
    except ImportError as exc:  # pragma: no cover - the dev extra installs it
        raise ImportError(
            "Runs(encryption_key=...) needs the cryptography package: "
            "pip install 'pausepoint[crypto]'"
        ) from exc
    fernets = []
    for position, one in enumerate(keys):
        try:
            fernets.append(Fernet(one))
        except (ValueError, TypeError) as exc:
            raise EncryptionKeyError(
                f"encryption_key #{position} is not a Fernet key (32 url-safe base64-encoded "
                "bytes; make one with cryptography.fernet.Fernet.generate_key())"
            ) from exc
    return MultiFernet(fernets)


def _is_token(value: Mapping[str, Any]) -> bool:
    """Whether ``value`` is a sealed value: ``{"$sealed": "<token>"}`` and nothing else."""
    return len(value) == 1 and isinstance(value.get(MARK), str)


class _Cipher:
    """Seals and opens values; ``fernet`` is ``None`` for a ``Runs`` without a key."""

    def __init__(self, fernet: MultiFernet | None) -> None:
        self.fernet = fernet

    def seal(self, value: Any, keys: Collection[str]) -> Any:
        if self.fernet is None or not keys:
            return value
        return self._seal(value, keys)

    def _seal(self, value: Any, keys: Collection[str]) -> Any:
        if isinstance(value, Mapping):
            if _is_token(value):
                return value  # sealed already
            return {
                k: self._token(v) if k in keys else self._seal(v, keys) for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self._seal(item, keys) for item in value]
        return value

    def _token(self, value: Any) -> dict[str, str]:
        assert self.fernet is not None
        plain = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        return {MARK: self.fernet.encrypt(plain).decode("ascii")}

    def open(self, value: Any, what: str, run_id: str | None, *, lenient: bool = False) -> Any:
        """``value`` with its sealed values decrypted; ``what`` names it in errors."""
        if isinstance(value, Mapping):
            if _is_token(value):
                return self._plain(value[MARK], what, run_id, lenient)
            return {k: self.open(v, what, run_id, lenient=lenient) for k, v in value.items()}
        if isinstance(value, list):
            return [self.open(item, what, run_id, lenient=lenient) for item in value]
        return value

    def _plain(self, token: str, what: str, run_id: str | None, lenient: bool) -> Any:
        from cryptography.fernet import InvalidToken

        if self.fernet is None:
            if lenient:
                return REDACTED
            raise EncryptionKeyError(
                f"{what} was stored with encrypted values and this Runs has no "
                "encryption_key: pass the key it was written with (Runs(encryption_key=...))",
                run_id=run_id,
            )
        try:
            return json.loads(self.fernet.decrypt(token.encode("ascii")))
        except InvalidToken:
            if lenient:
                return REDACTED
            raise EncryptionKeyError(
                f"{what} was stored with encrypted values that none of this Runs' encryption "
                "keys decrypts: pass the key it was written with (while rotating, keep the "
                "old keys after the new one)",
                run_id=run_id,
            ) from None


class SealedStore:
    """A :class:`~pausepoint.stores.Store` that seals redacted values on their way in.

    See the module docstring. Every method of the wrapped store is available;
    those that carry checkpoints, bookkeeping or journal entries seal and open them.

    Args:
        store: The store that keeps the runs.
        fernet: The cipher (:func:`sealer`), ``None`` to only notice sealed runs.
        keys: The redact keys of every registered chart; a record's own
            (``meta["redact"]``) are sealed too.
    """

    def __init__(self, store: Store, fernet: MultiFernet | None, keys: Iterable[str]) -> None:
        self.inner = store
        self._cipher = _Cipher(fernet)
        self._keys = frozenset(keys)

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def url(self) -> str:
        """The wrapped store's URL."""
        return self.inner.url

    # -- sealing and opening ----------------------------------------------------

    def _run_keys(self, meta: Mapping[str, Any]) -> frozenset[str]:
        own = meta.get("redact")
        return self._keys | frozenset(own) if own else self._keys

    def _seal_run(self, run: StoredRun) -> StoredRun:
        if self._cipher.fernet is None:
            return run
        keys = self._run_keys(run.meta)
        if not keys:
            return run
        meta = dict(self._cipher.seal(dict(run.meta), keys))
        meta[FLAG] = 1
        checkpoint = run.checkpoint
        if checkpoint is not None:
            checkpoint = self._cipher.seal(checkpoint, keys)
        return dataclasses.replace(run, meta=meta, checkpoint=checkpoint)

    def _open_run(self, run: StoredRun, *, lenient: bool = False) -> StoredRun:
        if not run.meta.get(FLAG):
            return run
        meta = {k: v for k, v in run.meta.items() if k != FLAG}
        what = f"run {run.run_id!r}"
        meta = self._cipher.open(meta, what, run.run_id, lenient=lenient)
        checkpoint = run.checkpoint
        if checkpoint is not None:
            checkpoint = self._cipher.open(checkpoint, what, run.run_id, lenient=lenient)
        return dataclasses.replace(run, meta=meta, checkpoint=checkpoint)

    def _seal_steps(
        self, steps: Sequence[JournalEntry], keys: frozenset[str]
    ) -> Sequence[JournalEntry]:
        if self._cipher.fernet is None or not keys or not steps:
            return steps
        return [
            dataclasses.replace(step, data={**self._cipher.seal(dict(step.data), keys), FLAG: 1})
            for step in steps
        ]

    def _open_steps(self, run_id: str, steps: Sequence[JournalEntry]) -> tuple[JournalEntry, ...]:
        return tuple(
            dataclasses.replace(
                step,
                data=self._cipher.open(
                    {k: v for k, v in step.data.items() if k != FLAG},
                    f"the journal of run {run_id!r}",
                    run_id,
                ),
            )
            if step.data.get(FLAG)
            else step
            for step in steps
        )

    # -- the store's methods that carry sealed values ------------------------------

    async def create(
        self,
        run: StoredRun,
        events: Sequence[AuditEvent],
        steps: Sequence[JournalEntry] = (),
        outbox: Sequence[OutboxEntry] = (),
    ) -> StoredRun:
        """See :meth:`Store.create` (outbox entries hold redacted pause data: kept as they are)."""
        if self._cipher.fernet is not None:
            steps = self._seal_steps(steps, self._run_keys(run.meta))
            run = self._seal_run(run)
        return self._open_run(await self.inner.create(run, events, steps, outbox))

    async def get(self, run_id: str) -> StoredRun:
        """See :meth:`Store.get`."""
        return self._open_run(await self.inner.get(run_id))

    async def replace(
        self, run: StoredRun, *, expected_version: int, events: Sequence[AuditEvent] = ()
    ) -> StoredRun:
        """See :meth:`Store.replace`."""
        stored = await self.inner.replace(
            self._seal_run(run), expected_version=expected_version, events=events
        )
        return self._open_run(stored)

    async def update(
        self, run_id: str, decide: Decider, *, light: bool = False, audit: bool = False
    ) -> tuple[StoredRun, tuple[AuditEvent, ...]]:
        """See :meth:`Store.update`: ``decide`` sees the opened record."""

        def sealed(current: StoredRun) -> Update | None:
            update = decide(self._open_run(current))
            if update is None or self._cipher.fernet is None:
                return update  # without a key nothing is sealed: written as decided
            keys = self._run_keys(update.run.meta)
            return dataclasses.replace(
                update, run=self._seal_run(update.run), steps=self._seal_steps(update.steps, keys)
            )

        stored, events = await self.inner.update(run_id, sealed, light=light, audit=audit)
        return self._open_run(stored), events

    async def append_steps(
        self, run_id: str, owner: str, steps: Sequence[JournalEntry], lease_until: float
    ) -> Mapping[str, Any] | None:
        """See :meth:`Store.append_steps`."""
        return await self.inner.append_steps(
            run_id, owner, self._seal_steps(steps, self._keys), lease_until
        )

    async def journal(self, run_id: str, *, start: int = 0) -> tuple[JournalEntry, ...]:
        """See :meth:`Store.journal`."""
        return self._open_steps(run_id, await self.inner.journal(run_id, start=start))

    def renewer(self) -> LeaseRenewer:
        """See :meth:`Store.renewer`."""
        return self.inner.renewer()

    async def append_audit(self, run_id: str, events: Sequence[AuditEvent]) -> None:
        """See :meth:`Store.append_audit`."""
        await self.inner.append_audit(run_id, events)

    async def audit(self, run_id: str) -> tuple[AuditEvent, ...]:
        """See :meth:`Store.audit`."""
        return await self.inner.audit(run_id)

    async def list_pending(self, **filters: Any) -> PendingPage:
        """See :meth:`Store.list_pending`."""
        return await self.inner.list_pending(**filters)

    async def list_due(self, now: float, *, limit: int = 100) -> tuple[StoredRun, ...]:
        """See :meth:`Store.list_due`."""
        return tuple(self._open_run(r) for r in await self.inner.list_due(now, limit=limit))

    async def list_stale(self, now: float, *, limit: int = 100) -> tuple[StoredRun, ...]:
        """See :meth:`Store.list_stale`."""
        return tuple(self._open_run(r) for r in await self.inner.list_stale(now, limit=limit))

    async def list_runs(self, **filters: Any) -> RunPage:
        """See :meth:`Store.list_runs`: a value no key opens shows as ``"***"``."""
        page = await self.inner.list_runs(**filters)
        items = tuple(self._open_run(r, lenient=True) for r in page.items)
        return dataclasses.replace(page, items=items)

    async def list_keyed(self, key: str, *, limit: int = 100) -> tuple[InboxEntry, ...]:
        """See :meth:`Store.list_keyed`."""
        return await self.inner.list_keyed(key, limit=limit)

    async def delete(self, run_id: str, *, expected_version: int) -> None:
        """See :meth:`Store.delete`."""
        await self.inner.delete(run_id, expected_version=expected_version)

    async def purge(self, **filters: Any) -> tuple[str, ...]:
        """See :meth:`Store.purge`."""
        return await self.inner.purge(**filters)

    async def buffer_signal(self, signal: BufferedSignal, *, limit: int) -> bool:
        """See :meth:`Store.buffer_signal`: the answer's redacted values are sealed."""
        sealed = dataclasses.replace(signal, input=self._cipher.seal(signal.input, self._keys))
        return await self.inner.buffer_signal(sealed, limit=limit)

    async def take_signal(self, key: str, now: float) -> BufferedSignal | None:
        """See :meth:`Store.take_signal`."""
        signal = await self.inner.take_signal(key, now)
        if signal is None:
            return None
        return dataclasses.replace(
            signal, input=self._cipher.open(signal.input, f"the answer kept under {key!r}", None)
        )

    async def drop_expired_signals(self, now: float) -> int:
        """See :meth:`Store.drop_expired_signals`."""
        return await self.inner.drop_expired_signals(now)

    async def aclose(self) -> None:
        """See :meth:`Store.aclose`."""
        await self.inner.aclose()


async def peek(store: Store, run_id: str) -> StoredRun:
    """``run_id``'s record with sealed values left sealed: its status and version, no key needed.

    For what reads only the record's facts (erasing a run), so it works
    without the key the run was written with. Never write it back.
    """
    return await unwrapped(store).get(run_id)


def unwrapped(store: Store) -> Store:
    """The store under any :class:`SealedStore`."""
    while isinstance(store, SealedStore):
        store = store.inner
    return store
