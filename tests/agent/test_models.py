"""Model adapters: the scripted model, and the OpenAI wire format against a local HTTP server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pausepoint import FlowChartExecutor
from pausepoint.agent import (
    AssistantMessage,
    ChatModel,
    ModelError,
    OpenAIChatModel,
    ScriptedModel,
    ScriptedReply,
    ToolCall,
    agent_chart,
    ask_human,
    transcript,
)
from pausepoint.errors import StageError

from .charts import lookup_order

REPLIES: dict[str, Any] = json.loads((Path(__file__).parent / "openai_replies.json").read_text())


@dataclass
class FakeOpenAI:
    """A chat-completions endpoint on 127.0.0.1 replaying queued replies, recording requests.

    Each queued reply is ``(status, body)``; a body that is a float means "sleep this long
    and then reply 200 with the next reply" (a slow server).
    """

    url: str = ""
    replies: list[tuple[int, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def queue(self, *replies: tuple[int, Any]) -> None:
        self.replies.extend(replies)


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            with lock:
                fake.requests.append(
                    {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
                )
                status, reply = fake.replies.pop(0) if fake.replies else (500, "queue empty")
            if isinstance(reply, float):
                time.sleep(reply)
                return
            data = reply.encode() if isinstance(reply, str) else json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def model_at(fake: FakeOpenAI, **options: Any) -> OpenAIChatModel:
    settings: dict[str, Any] = {"max_retries": 0, "retry_backoff": 0.01, **options}
    timeout = settings.pop("timeout", 5.0)
    return OpenAIChatModel(fake.url, "sk-test", "gpt-4o-mini", timeout, **settings)


# -- the OpenAI wire format --------------------------------------------------------


async def test_a_tool_call_reply_becomes_an_assistant_message(fake_openai: FakeOpenAI) -> None:
    """JSON-string arguments are parsed; the request carries model, messages, tools and the key."""
    fake_openai.queue((200, REPLIES["lookup"]))
    model = model_at(fake_openai, extra_body={"temperature": 0})
    messages = [{"role": "user", "content": "Where is ORD-1?"}]
    reply = await model.complete(messages, [lookup_order.spec])
    assert reply == AssistantMessage(
        None,
        (ToolCall("call_lk7Qm2", "lookup_order", {"order_id": "ORD-1"}),),
        usage={"prompt_tokens": 112, "completion_tokens": 18},
    )
    [request] = fake_openai.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == "Bearer sk-test"
    assert request["body"] == {
        "model": "gpt-4o-mini",
        "messages": messages,
        "tools": [lookup_order.spec.to_openai()],
        "temperature": 0,
    }
    assert "sk-test" not in repr(model)


async def test_arguments_that_are_not_json_are_kept_as_text(fake_openai: FakeOpenAI) -> None:
    """A truncated arguments string stays text, for the agent to refuse to the model."""
    fake_openai.queue((200, REPLIES["broken_arguments"]))
    reply = await model_at(fake_openai).complete([{"role": "user", "content": "x"}], [])
    assert reply.tool_calls[0].arguments == '{"order_id": "ORD-1"'
    assert "tools" not in fake_openai.requests[0]["body"]


async def test_server_errors_are_retried_then_reported(fake_openai: FakeOpenAI) -> None:
    """HTTP 503 is retried; when it persists, ModelError carries the status and the body."""
    fake_openai.queue((503, {"error": "overloaded"}), (200, REPLIES["final"]))
    model = model_at(fake_openai, max_retries=1)
    reply = await model.complete([{"role": "user", "content": "x"}], [])
    assert reply.content == "Your refund of $900 for ORD-1 is approved."
    assert len(fake_openai.requests) == 2

    fake_openai.queue(*[(500, {"error": {"message": "boom"}})] * 3)
    with pytest.raises(ModelError, match=r"HTTP 500: .*boom.*\(after 3 attempts\)") as caught:
        await model_at(fake_openai, max_retries=2).complete([{"role": "user", "content": "x"}], [])
    assert caught.value.status_code == 500


async def test_client_errors_are_not_retried(fake_openai: FakeOpenAI) -> None:
    """HTTP 400/401 fail at once: retrying would not help."""
    fake_openai.queue((401, {"error": {"message": "Incorrect API key"}}), (200, REPLIES["final"]))
    with pytest.raises(ModelError, match=r"HTTP 401: .*Incorrect API key") as caught:
        await model_at(fake_openai, max_retries=3).complete([{"role": "user", "content": "x"}], [])
    assert caught.value.status_code == 401
    assert len(fake_openai.requests) == 1


async def test_a_timeout_is_a_model_error(fake_openai: FakeOpenAI) -> None:
    """No reply within the timeout: ModelError saying so, without a status."""
    fake_openai.queue((200, 1.0))
    with pytest.raises(ModelError, match=r"no reply within 0.2 s") as caught:
        await model_at(fake_openai, timeout=0.2).complete([{"role": "user", "content": "x"}], [])
    assert caught.value.status_code is None


async def test_an_unreachable_server_is_a_model_error() -> None:
    """Connection refused: ModelError naming the URL."""
    model = OpenAIChatModel("http://127.0.0.1:9/v1", None, "m", 2.0, max_retries=0)
    with pytest.raises(ModelError, match=r"127.0.0.1:9/v1/chat/completions: cannot reach it"):
        await model.complete([{"role": "user", "content": "x"}], [])


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("<html>gateway</html>", id="not-json"),
        pytest.param({"choices": []}, id="no-choices"),
        pytest.param({"choices": [{"message": {"tool_calls": [{"id": "x"}]}}]}, id="no-function"),
    ],
)
async def test_a_reply_that_is_not_a_chat_completion_is_a_model_error(
    fake_openai: FakeOpenAI, body: Any
) -> None:
    """Anything but a chat completion: ModelError quoting what came back."""
    fake_openai.queue((200, body))
    with pytest.raises(ModelError, match="replied with something that is not a chat completion"):
        await model_at(fake_openai).complete([{"role": "user", "content": "x"}], [])


async def test_an_agent_over_the_wire_pauses_and_resumes(fake_openai: FakeOpenAI) -> None:
    """lookup → ask_human (pause) → final answer, against recorded replies; ids are the model's."""
    fake_openai.queue((200, REPLIES["lookup"]), (200, REPLIES["ask"]))
    chart = agent_chart(model_at(fake_openai), [lookup_order, ask_human], system="Support.")
    executor = FlowChartExecutor(chart)
    assert await executor.run({"prompt": "ORD-1 arrived broken"}) == "paused"
    checkpoint = json.loads(json.dumps(executor.get_checkpoint()))
    assert checkpoint["pause_data"]["question"] == "Refund $900 on ORD-1 (arrived broken)?"
    assert checkpoint["shared_state"]["usage"] == {"prompt_tokens": 292, "completion_tokens": 58}

    fake_openai.queue((200, REPLIES["final"]))
    resumed = FlowChartExecutor(
        agent_chart(model_at(fake_openai), [lookup_order, ask_human], system="Support.")
    )
    assert await resumed.resume(checkpoint, {"answer": "Yes, refund it."}) == "completed"
    # tokens add up over every model call, across the pause
    assert resumed.get_state()["usage"] == {"prompt_tokens": 522, "completion_tokens": 70}
    last_request = fake_openai.requests[-1]["body"]["messages"]
    assert last_request[-1] == {
        "role": "tool",
        "tool_call_id": "call_ah81Zp",
        "content": "Yes, refund it.",
    }
    assert last_request[2]["tool_calls"][0]["function"]["arguments"] == '{"order_id":"ORD-1"}'
    assert transcript(resumed.get_state()["messages"])[-3:] == [
        'Model asked a human: "Refund $900 on ORD-1 (arrived broken)?"',
        'Human answered: "Yes, refund it."',
        "Model: Your refund of $900 for ORD-1 is approved.",
    ]


async def test_a_failing_model_fails_the_run_with_the_model_error(fake_openai: FakeOpenAI) -> None:
    """The run fails with StageError at the model stage, caused by ModelError."""
    fake_openai.queue((502, "bad gateway"))
    executor = FlowChartExecutor(agent_chart(model_at(fake_openai), [lookup_order]))
    with pytest.raises(StageError, match=r"ModelError: model gpt-4o-mini .*HTTP 502") as caught:
        await executor.run({"prompt": "hi"})
    assert caught.value.stage_id == "model"
    assert isinstance(caught.value.__cause__, ModelError)


# -- the scripted model ------------------------------------------------------------


async def test_scripted_replies_follow_the_conversation_not_the_object() -> None:
    """The reply is picked by the assistant messages so far, so a fresh object continues."""
    script: list[ScriptedReply] = [
        AssistantMessage("one"),
        "two",
        lambda messages: f"three after {len(messages)}",
    ]
    first, fresh = ScriptedModel(script), ScriptedModel(script)
    assert isinstance(first, ChatModel)
    convo: list[dict[str, Any]] = [{"role": "user", "content": "hi"}]
    assert (await first.complete(convo, [])).content == "one"
    convo.append({"role": "assistant", "content": "one"})
    assert (await fresh.complete(convo, [])).content == "two"
    convo.append({"role": "assistant", "content": "two"})
    assert (await fresh.complete(convo, [lookup_order.spec])).content == "three after 3"
    assert fresh.calls[1].tools == ["lookup_order"]
    assert fresh.calls[1].messages == convo
