"""Tools: JSON Schema from the signature, validation, calling, and the decorator's forms."""

from __future__ import annotations

import threading
from datetime import date
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field

from pausepoint.agent import AgentError, AgentSetupError, Tool, ToolCallError, ask_human, tool


class Address(BaseModel):
    street: str
    city: str


def ship(
    order_id: str, to: Address, on: date | None = None, speed: Literal["slow", "fast"] = "slow"
) -> str:
    """Ship an order.

    Ships it today unless told otherwise.

    Args:
        order_id: The order to ship.
        to: Where to.
        on: The day to ship it; today by default.
        speed: How fast.

    Returns:
        A tracking number.
    """
    return f"{order_id}->{to.city}@{on}:{speed}"


def test_schema_and_description_come_from_signature_and_docstring() -> None:
    """Annotations give types, defaults give optionality, the docstring gives descriptions."""
    shipping = tool(ship)
    assert shipping.name == "ship"
    assert shipping.description == "Ship an order.\n\nShips it today unless told otherwise."
    schema = shipping.parameters
    assert schema["type"] == "object"
    assert schema["required"] == ["order_id", "to"]
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert props["order_id"] == {
        "type": "string",
        "title": "Order Id",
        "description": "The order to ship.",
    }
    assert props["to"]["$ref"] == "#/$defs/Address"
    assert props["speed"]["enum"] == ["slow", "fast"]
    assert props["on"]["description"] == "The day to ship it; today by default."
    spec = shipping.spec.to_openai()
    assert spec["type"] == "function"
    assert spec["function"]["name"] == "ship"
    assert spec["function"]["parameters"] == schema


async def test_arguments_are_validated_and_revived_before_the_call() -> None:
    """JSON arguments become the annotated types (a model, a date) for the function."""
    shipping = tool(ship)
    args = shipping.validate(
        '{"order_id": "A", "to": {"street": "1 Main", "city": "Oslo"}, "on": "2025-01-02"}'
    )
    assert await shipping.run(args) == "A->Oslo@2025-01-02:slow"
    assert shipping.dump(args) == {
        "order_id": "A",
        "to": {"street": "1 Main", "city": "Oslo"},
        "on": "2025-01-02",
        "speed": "slow",
    }


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("{not json", "the arguments of ship are not valid JSON"),
        ('"a string"', "must be a JSON object, not str"),
        ({"order_id": "A"}, "invalid arguments for ship: to: Field required"),
        (
            {"order_id": "A", "to": {"street": "x", "city": "y"}, "speed": "warp"},
            "speed: Input should be 'slow' or 'fast'",
        ),
        (
            {"order_id": "A", "to": {"street": "x", "city": "y"}, "colour": "red"},
            "colour: Extra inputs are not permitted",
        ),
    ],
)
def test_bad_arguments_raise_tool_call_error_written_for_the_model(
    arguments: Any, message: str
) -> None:
    """Every problem is a ToolCallError whose message names the tool and the field."""
    with pytest.raises(ToolCallError, match=message) as caught:
        tool(ship).validate(arguments)
    assert caught.value.tool == "ship"


def test_empty_argument_text_means_no_arguments() -> None:
    """Some models send "" for a tool without parameters."""

    @tool
    def ping() -> str:
        """Ping."""
        return "pong"

    assert ping.validate("").model_dump() == {}


def test_decorator_forms_and_overrides() -> None:
    """@tool, @tool(...), tool(fn, name=, description=) all make Tools; calling one calls fn."""

    @tool
    def plain(x: int) -> int:
        return x + 1

    @tool(requires_approval=True, name="risky-op", description="Does something risky.")
    def risky(x: int) -> int:
        return x

    assert isinstance(plain, Tool)
    assert plain(1) == 2
    assert plain.description == "plain"
    assert risky.name == "risky-op"
    assert risky.requires_approval
    assert risky.description == "Does something risky."
    assert tool(plain).fn is plain.fn


def test_annotated_field_descriptions_are_kept() -> None:
    """Annotated[..., Field(description=...)] describes a parameter without a docstring."""

    @tool
    def greet(name: Annotated[str, Field(description="Who to greet", min_length=1)]) -> str:
        return f"hi {name}"

    assert greet.parameters["properties"]["name"]["description"] == "Who to greet"
    with pytest.raises(ToolCallError, match="at least 1 character"):
        greet.validate({"name": ""})


async def test_parameter_names_pydantic_reserves_still_work() -> None:
    """A parameter called ``json`` or ``schema`` keeps its name for the model."""

    @tool
    def fetch(json: bool, schema: str = "public") -> str:
        return f"{json}/{schema}"

    assert set(fetch.parameters["properties"]) == {"json", "schema"}
    args = fetch.validate({"json": True})
    assert fetch.dump(args) == {"json": True, "schema": "public"}
    assert await fetch.run(args) == "True/public"


async def test_positional_only_parameters_are_passed_positionally() -> None:
    """def f(a, /, b) is called as f(a, b=...)."""

    @tool
    def div(a: float, /, b: float) -> float:
        return a / b

    assert await div.run(div.validate({"a": 6, "b": 3})) == 2.0


async def test_sync_tools_run_in_a_worker_thread_async_ones_on_the_loop() -> None:
    """A blocking sync tool does not run on the event loop's thread."""
    loop_thread = threading.get_ident()

    @tool
    def where() -> int:
        return threading.get_ident()

    @tool
    async def where_async() -> int:
        return threading.get_ident()

    assert await where.run(where.validate({})) != loop_thread
    assert await where_async.run(where_async.validate({})) == loop_thread


def test_untyped_parameters_accept_any_json() -> None:
    """A parameter without annotation is described as any value."""

    @tool
    def echo(value):  # type: ignore[no-untyped-def]
        return value

    assert echo.validate({"value": [1, {"a": None}]}).model_dump() == {"value": [1, {"a": None}]}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(
            lambda: tool(lambda *args: None, name="f"), r"\*args cannot be described", id="varargs"
        ),
        pytest.param(
            lambda: tool(lambda **kw: None, name="f"), r"\*kw cannot be described", id="varkw"
        ),
        pytest.param(
            lambda: tool(print, name="has space"), "must be 1 to 64 letters", id="bad-name"
        ),
        pytest.param(lambda: tool(42), "is not callable", id="not-callable"),  # type: ignore[call-overload]
    ],
)
def test_tools_that_cannot_be_described_are_refused(make: Any, message: str) -> None:
    """What a model could not call properly is an AgentSetupError when the tool is made."""
    with pytest.raises(AgentSetupError, match=message):
        make()


class Opaque:
    """A type pydantic knows nothing about."""


def test_a_type_without_json_schema_is_refused() -> None:
    """A parameter type pydantic cannot describe is refused, naming the tool."""

    def use(thing: Opaque) -> None:
        pass

    with pytest.raises(AgentSetupError, match="tool 'use': its parameters cannot be described"):
        tool(use)


def test_an_annotation_that_does_not_resolve_is_refused() -> None:
    """A type only a local scope knows would leave the arguments unchecked: refused."""

    class Local(BaseModel):
        x: int

    def use(thing: Local) -> None:
        pass

    with pytest.raises(
        AgentSetupError, match=r"tool 'use': cannot resolve its annotations .*Local"
    ):
        tool(use)


async def test_ask_human_is_a_tool_the_agent_answers_by_pausing() -> None:
    """ask_human has a question parameter; run outside an agent, it says where it works."""
    assert ask_human.name == "ask_human"
    assert ask_human.asks_human
    assert ask_human.parameters["required"] == ["question"]
    with pytest.raises(AgentError, match="only runs inside an agent"):
        await ask_human.run(ask_human.validate({"question": "?"}))
    with pytest.raises(AgentError, match="only runs inside an agent"):
        ask_human("?")
