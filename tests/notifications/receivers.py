"""A local webhook receiver and a local SMTP server for the notification tests.

Both run in threads of the test process and record what they received, so a
test counts deliveries by pause id.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Received:
    """One webhook request as it arrived."""

    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1.

    ``fail_first``: answer HTTP 500 to the first tries of every delivery id.
    ``hold``: while set, requests wait (the sender hangs) until it is cleared.
    """

    fail_first: int = 0
    requests: list[Received] = field(default_factory=list)
    hold: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Event = field(default_factory=threading.Event)
    arrivals: int = 0
    _tries: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def url(self, path: str = "/hook") -> str:
        return f"json://127.0.0.1:{self.port}{path}"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.arrivals += 1
                receiver.arrived.set()
                while receiver.hold.is_set():
                    time.sleep(0.02)
                delivery = self.headers.get("X-Pausepoint-Delivery", "")
                with receiver._lock:
                    receiver._tries[delivery] += 1
                    status = 500 if receiver._tries[delivery] <= receiver.fail_first else 200
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the sender is gone (killed): not delivered
                    status = 0
                with receiver._lock:
                    receiver.requests.append(Received(dict(self.headers.items()), body, status))

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.hold.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def delivered(self, event: str | None = None, *, since: int = 0) -> Counter[str]:
        """Pause ids of the requests answered 200 (of one event, or all), counted.

        ``since``: only requests recorded after the first ``since``.
        """
        with self._lock:
            return Counter(
                r.json["pause_id"]
                for r in self.requests[since:]
                if r.status == 200 and (event is None or r.json["event"] == event)
            )

    def settled(self) -> bool:
        """Every request that arrived has been answered (or found its sender gone)."""
        with self._lock:
            return len(self.requests) == self.arrivals


class _Mailbox:
    def __init__(self, fail_first: int = 0) -> None:
        self.messages: list[Message] = []
        self.recipients: list[list[str]] = []
        self.refused = 0
        self._fail_first = fail_first
        self._tries: dict[str, int] = {}

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content)
        text = "".join(  # the parts' text: a multipart's boundary differs on every try
            str(part.get_payload(decode=True)) for part in message.walk() if not part.is_multipart()
        )
        tries = self._tries[text] = self._tries.get(text, 0) + 1
        if tries <= self._fail_first:
            self.refused += 1
            return "451 4.3.0 try again later"
        self.messages.append(message)
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"


class SmtpServer:
    """An SMTP server on 127.0.0.1 (aiosmtpd) keeping every message it gets."""

    def __init__(self, fail_first: int = 0) -> None:
        """``fail_first``: refuse each message (451, try later) this many times first."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.mailbox = _Mailbox(fail_first)
        self._controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)

    def url(self, to: str = "kim@example.com") -> str:
        return f"mailto://127.0.0.1:{self.port}?to={to}&from=pausepoint@example.com&mode=insecure"

    def start(self) -> SmtpServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    @property
    def messages(self) -> list[Message]:
        return list(self.mailbox.messages)


def wait_for(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    """Wait until ``condition()`` holds, failing after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)
