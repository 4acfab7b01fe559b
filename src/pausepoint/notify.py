"""Notification webhooks: how pausepoint signs them, and how a receiver checks them.

A ``json://host/path`` (plain HTTP) or ``jsons://host/path`` (HTTPS) URL in
``notify=`` receives each notification as a ``POST`` of a JSON object (see
``docs/notifications.md`` for its fields). With ``Runs(notify_secret=...)``
every request carries three headers:

``X-Pausepoint-Timestamp``
    When it was sent, in whole UNIX seconds.
``X-Pausepoint-Signature``
    ``sha256=`` and the hex HMAC-SHA256, keyed with the secret, of the
    timestamp, a dot, and the raw body: ``f"{timestamp}.".encode() + body``.
``X-Pausepoint-Delivery``
    The delivery's id: the same for every retry of one notification, so a
    receiver can drop the repeats an at-least-once delivery may bring.

A receiver checks the signature over the body exactly as received (before any
JSON parsing) and refuses timestamps too far from its clock, so a captured
request cannot be replayed later::

    from pausepoint.notify import verify_signature

    verify_signature(secret, body, timestamp=headers["X-Pausepoint-Timestamp"],
                     signature=headers["X-Pausepoint-Signature"])  # raises if forged or stale

This module imports nothing beyond the standard library.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from .errors import WebhookSignatureError

__all__ = [
    "DELIVERY_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Pausepoint-Signature"
TIMESTAMP_HEADER = "X-Pausepoint-Timestamp"
DELIVERY_HEADER = "X-Pausepoint-Delivery"


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def sign(secret: str | bytes, body: bytes, timestamp: int | str) -> str:
    """Return the ``X-Pausepoint-Signature`` value of ``body`` sent at ``timestamp``.

    Args:
        secret: The shared secret (``Runs(notify_secret=...)``).
        body: The raw request body.
        timestamp: The ``X-Pausepoint-Timestamp`` value (whole UNIX seconds).
    """
    digest = hmac.new(_key(secret), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def verify_signature(
    secret: str | bytes,
    body: bytes,
    *,
    timestamp: str | int | None,
    signature: str | None,
    tolerance: float = 300.0,
    now: float | None = None,
) -> None:
    """Check a webhook request's signature and freshness; return quietly when both hold.

    Args:
        secret: The shared secret.
        body: The raw request body, byte for byte as received.
        timestamp: The ``X-Pausepoint-Timestamp`` header.
        signature: The ``X-Pausepoint-Signature`` header.
        tolerance: Refuse timestamps more than this many seconds from ``now``.
        now: The receiver's clock (default: ``time.time()``).

    Raises:
        WebhookSignatureError: A header is missing or malformed, the timestamp is
            outside the tolerance, or the signature does not match.
    """
    if timestamp is None or signature is None:
        raise WebhookSignatureError(
            f"the request lacks the {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header: "
            "it was not signed by pausepoint (is notify_secret set on the sender?)"
        )
    try:
        sent = int(timestamp)
    except (TypeError, ValueError):
        raise WebhookSignatureError(
            f"{TIMESTAMP_HEADER} must be whole UNIX seconds, got {timestamp!r}"
        ) from None
    clock = time.time() if now is None else now
    if abs(clock - sent) > tolerance:
        raise WebhookSignatureError(
            f"{TIMESTAMP_HEADER} {sent} is {abs(clock - sent):.0f}s away from this clock "
            f"(tolerance {tolerance:g}s): a replayed or delayed request, or a wrong clock"
        )
    if not hmac.compare_digest(sign(secret, body, sent), signature.strip()):
        raise WebhookSignatureError(
            f"{SIGNATURE_HEADER} does not match the body: the body was changed, or the "
            "secret differs from the sender's"
        )
