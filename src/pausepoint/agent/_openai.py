"""An adapter for OpenAI-compatible chat-completions endpoints, over httpx.

Speaks ``POST {base_url}/chat/completions`` as OpenAI, vLLM, Ollama, llama.cpp's
server, LiteLLM and most hosted gateways do. Needs ``httpx`` (imported when a
request is made).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._errors import ModelError
from ._messages import AssistantMessage, ToolCall, ToolSpec

if TYPE_CHECKING:
    import httpx

__all__ = ["OpenAIChatModel"]

_RETRYABLE = frozenset({408, 409, 429, 500, 502, 503, 504})


class OpenAIChatModel:
    """A :class:`~pausepoint.agent.ChatModel` over the OpenAI chat-completions wire format.

    Tool-call arguments arrive as JSON text; those that parse to an object
    become a dict, anything else stays text for the agent to refuse (the
    model is then told its arguments were not valid JSON).

    Args:
        base_url: The API root, e.g. ``https://api.openai.com/v1`` or
            ``http://127.0.0.1:11434/v1``.
        api_key: Sent as ``Authorization: Bearer <api_key>``; ``None`` sends none.
        model: The model name.
        timeout: Seconds for one request (connect, send, wait and read).
        max_retries: Retries after a timeout, a connection failure, HTTP 429 or
            5xx, with exponential backoff from ``retry_backoff`` seconds.
        retry_backoff: The first backoff, in seconds.
        extra_body: More fields for every request (``temperature``, ``tool_choice`` ...).
        transport: An httpx transport to send through (tests, proxies).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        model: str,
        timeout: float = 60.0,
        *,
        max_retries: int = 2,
        retry_backoff: float = 0.5,
        extra_body: Mapping[str, Any] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.timeout = timeout
        self.max_retries = max(0, max_retries)
        self.retry_backoff = retry_backoff
        self.extra_body = dict(extra_body or {})
        self._api_key = api_key
        self._transport = transport

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIChatModel(url={self.url!r}, model={self.model!r})"

    async def complete(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[ToolSpec]
    ) -> AssistantMessage:
        """Send the conversation; return the first choice's message.

        Raises:
            ModelError: A timeout, connection failure or HTTP error that
                outlasted the retries (``status_code`` set for HTTP errors), or
                a reply that is not a chat completion.
        """
        import httpx

        body: dict[str, Any] = {"model": self.model, "messages": list(messages)}
        if tools:
            body["tools"] = [spec.to_openai() for spec in tools]
        body.update(self.extra_body)
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        async with httpx.AsyncClient(timeout=self.timeout, transport=self._transport) as client:
            attempt = 0
            while True:
                try:
                    response = await client.post(self.url, json=body, headers=headers)
                except httpx.TimeoutException:
                    problem, status = f"no reply within {self.timeout:g} s", None
                except httpx.TransportError as exc:
                    problem, status = f"cannot reach it ({type(exc).__name__}: {exc})", None
                else:
                    if response.status_code < 400:
                        return _parse(response, self.url)
                    problem = f"HTTP {response.status_code}: {_excerpt(response.text)}"
                    status = response.status_code
                    if status not in _RETRYABLE:
                        raise ModelError(
                            f"model {self.model} at {self.url}: {problem}", status_code=status
                        )
                if attempt >= self.max_retries:
                    tries = f" (after {attempt + 1} attempts)" if attempt else ""
                    raise ModelError(
                        f"model {self.model} at {self.url}: {problem}{tries}", status_code=status
                    )
                await asyncio.sleep(self.retry_backoff * 2**attempt)
                attempt += 1


def _parse(response: httpx.Response, url: str) -> AssistantMessage:
    try:
        data = response.json()
        message = data["choices"][0]["message"]
        if not isinstance(message, Mapping):
            raise TypeError("message is not an object")
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            content = _text_of(content)
        calls = []
        for raw in message.get("tool_calls") or ():
            function = raw["function"]
            name = function["name"]
            if not isinstance(name, str):
                raise TypeError("a tool call's name is not a string")
            arguments = function.get("arguments")
            calls.append(
                ToolCall(
                    id=str(raw["id"]) if raw.get("id") else None,
                    name=name,
                    arguments=_arguments(arguments),
                )
            )
    except (ValueError, LookupError, TypeError) as exc:
        raise ModelError(
            f"model at {url} replied with something that is not a chat completion "
            f"({type(exc).__name__}: {exc}): {_excerpt(response.text)}",
            status_code=response.status_code,
        ) from None
    return AssistantMessage(content=content, tool_calls=tuple(calls), usage=_usage(data))


def _usage(data: Mapping[str, Any]) -> dict[str, int] | None:
    """The reply's token counts, when the server sent them (it need not)."""
    usage = data.get("usage")
    if not isinstance(usage, Mapping):
        return None
    counts = {
        key: usage[key]
        for key in ("prompt_tokens", "completion_tokens")
        if type(usage.get(key)) is int
    }
    return counts or None


def _arguments(raw: Any) -> Mapping[str, Any] | str:
    """Arguments arrive as JSON text; an object becomes a dict, anything else stays text."""
    if isinstance(raw, Mapping):  # a few servers send an object
        return dict(raw)
    if raw is None:
        return {}
    text = str(raw)
    try:
        parsed = json.loads(text) if text.strip() else {}
    except ValueError:
        return text
    return parsed if isinstance(parsed, dict) else text


def _text_of(content: Any) -> str:
    """Join the text parts of a content list (the multi-part format)."""
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    raise TypeError(f"content is a {type(content).__name__}")


def _excerpt(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
