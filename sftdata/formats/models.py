"""Pydantic models of the three interchange formats, used for their JSON Schemas.

The converters in this package are the behaviour; these models document the accepted
shapes for tools and users (``schemas/*.schema.json``). Extra fields are allowed
because the converters keep them in ``meta``.
"""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class AlpacaRow(_Open):
    """One Alpaca record."""

    instruction: str = Field(description="The task; the user turn.")
    input: str | None = Field(default=None, description="Optional context appended to the instruction after a newline.")
    output: str = Field(description="The answer; the assistant turn.")
    system: str | None = Field(default=None, description="Optional system prompt.")
    history: list[tuple[str, str]] | None = Field(
        default=None, description="Earlier [user, assistant] pairs, oldest first."
    )


class ShareGPTTurn(BaseModel):
    """One ShareGPT turn (user/assistant/tool are accepted as aliases)."""

    model_config = ConfigDict(populate_by_name=True)
    from_: Literal["system", "human", "gpt", "function_call", "observation", "user", "assistant", "tool"] = Field(
        alias="from"
    )
    value: str = Field(description="Turn text; for function_call a JSON {name, arguments} object or list.")


class ShareGPTRow(_Open):
    """One ShareGPT conversation."""

    conversations: list[ShareGPTTurn] = Field(min_length=1)
    system: str | None = Field(default=None, description="Optional system prompt.")
    tools: str | None = Field(default=None, description="JSON string: a list of function specs.")


class TextPart(BaseModel):
    type: Literal["text"] = "text"
    text: str


class OpenAIFunction(BaseModel):
    name: str
    arguments: str = Field(description="JSON-encoded arguments.")


class OpenAIToolCall(BaseModel):
    id: str | None = None
    type: Literal["function"] = "function"
    function: OpenAIFunction


class OpenAIMessage(BaseModel):
    """One OpenAI chat message."""

    role: Literal["system", "user", "assistant", "tool"]
    content: Union[str, list[TextPart], None]
    tool_calls: list[OpenAIToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None
    weight: float | None = Field(default=None, description="Loss weight of this message (0 or 1 in OpenAI fine-tuning).")


class OpenAIRow(_Open):
    """One OpenAI chat fine-tuning record."""

    messages: list[OpenAIMessage] = Field(min_length=1)
    tools: list[dict[str, Any]] | None = None
