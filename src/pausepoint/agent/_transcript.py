"""The reasoning chain as plain sentences, read from the conversation itself."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from ._tools import ASK_HUMAN

__all__ = ["transcript"]


def transcript(messages: Iterable[Mapping[str, Any]], *, limit: int = 300) -> list[str]:
    """Return one sentence per step of an agent's conversation.

    What the user asked, what the model said, which tool it called with
    what, what each tool returned, what a person was asked and answered, and
    how approvals were decided. The system message is left out.

    >>> transcript(snapshot["shared_state"]["messages"])
    ['User: My order ORD-7 arrived broken.',
     'Model called lookup_order(order_id="ORD-7").',
     'lookup_order returned: {"order_id":"ORD-7","total":900}', ...]

    Args:
        messages: The conversation (``state["messages"]``).
        limit: Texts longer than this many characters are shortened.
    """
    names: dict[str, str] = {}
    lines: list[str] = []
    for message in messages:
        role = message.get("role")
        content = _text(message.get("content"))
        if role == "user":
            lines.append(f"User: {_short(content, limit)}")
        elif role == "assistant":
            if content:
                lines.append(f"Model: {_short(content, limit)}")
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                name = str(function.get("name"))
                names[str(call.get("id"))] = name
                arguments = _arguments(function.get("arguments"))
                if name == ASK_HUMAN and isinstance(arguments, Mapping):
                    question = arguments.get("question")
                    lines.append(f"Model asked a human: {json.dumps(question, ensure_ascii=False)}")
                else:
                    lines.append(f"Model called {_call(name, arguments, limit)}.")
        elif role == "tool":
            name = names.get(str(message.get("tool_call_id")), "a tool")
            if name == ASK_HUMAN:
                lines.append(f"Human answered: {json.dumps(content, ensure_ascii=False)}")
            elif content.startswith("A human "):
                lines.append(f"{name}: {_short(content, limit)}")
            else:
                lines.append(f"{name} returned: {_short(content, limit)}")
    return lines


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, list):  # the multi-part content format
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return str(content)


def _arguments(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def _call(name: str, arguments: Any, limit: int) -> str:
    if isinstance(arguments, Mapping):
        shown = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in arguments.items())
    else:
        shown = f"<not JSON: {arguments!r}>"
    return _short(f"{name}({shown})", limit)


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
