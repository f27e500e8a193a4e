"""Token usage read from provider responses by duck typing: no SDK is imported.

:func:`usage_from_response` reads a whole response, :func:`usage_from_chunk` one streaming event;
both work on SDK objects (attributes) and on decoded JSON (dicts, camelCase or snake_case keys).
Every result is normalised to asynctelemetry's token semantics: ``input_tokens`` includes cache
reads and cache writes, ``output_tokens`` includes reasoning tokens. Anthropic (and Bedrock
Converse) report input *excluding* cache reads and writes, so their three counts are added up.

Shapes are data (:data:`SHAPES`): each maps our fields to the paths it sums, so supporting another
provider is a table entry, not a branch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Final

from ._record import MAX_TOKENS

__all__ = [
    "SHAPES",
    "TOKEN_FIELDS",
    "ChunkInfo",
    "Usage",
    "google_parts",
    "read_anthropic_event",
    "read_chunk",
    "read_google_chunk",
    "read_openai_chat_chunk",
    "read_responses_event",
    "usage_from_chunk",
    "usage_from_response",
]

#: The token counts of a call, in the record's field order.
TOKEN_FIELDS: Final = (
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cached_input_tokens",
    "cache_creation_tokens",
    "reasoning_tokens",
)


@dataclass(slots=True)
class Usage:
    """Token counts of one call in asynctelemetry's semantics, plus tool calls and model.

    ``input_tokens`` includes ``cached_input_tokens`` and ``cache_creation_tokens``;
    ``output_tokens`` includes ``reasoning_tokens``. ``None`` means "not reported".
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cached_input_tokens: int | None = None
    cache_creation_tokens: int | None = None
    reasoning_tokens: int | None = None
    tool_calls: int = 0
    response_model: str | None = None
    #: Why the model stopped, as the provider says it (Google GenAI's candidates), if it said.
    finish_reasons: tuple[str, ...] | None = None

    def merge(self, other: Usage | None) -> Usage:
        """Combine successive partial usages of one stream into a new :class:`Usage`.

        Token counts and the model: the later non-``None`` value wins (providers report
        cumulative counts). Tool calls add up (each event reports the calls it starts). When the
        later part gives no total, the total is recomputed from input and output.
        """
        if other is None:
            return Usage(*(getattr(self, f.name) for f in fields(self)))
        merged = Usage(tool_calls=self.tool_calls + other.tool_calls)
        for name in (*TOKEN_FIELDS, "response_model", "finish_reasons"):
            value = getattr(other, name)
            setattr(merged, name, getattr(self, name) if value is None else value)
        if other.total_tokens is None:
            merged.total_tokens = _total(merged.input_tokens, merged.output_tokens)
            if merged.total_tokens is None:
                merged.total_tokens = self.total_tokens
        return merged

    def as_fields(self) -> dict[str, int]:
        """The token counts that are known, by :class:`LLMCall` field name (for ``set_usage``)."""
        out = {name: value for name in TOKEN_FIELDS if (value := getattr(self, name)) is not None}
        return out


# A path is a tuple of snake_case steps; the camelCase spelling of each step is tried too.
_Path = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Shape:
    """How one provider's usage block maps to our fields: each field sums its paths."""

    name: str
    fields: Mapping[str, tuple[_Path, ...]]

    @property
    def compiled(self) -> tuple[tuple[str, tuple[tuple[tuple[str, str], ...], ...]], ...]:
        """The same table with each step's camelCase spelling worked out once."""
        found = _COMPILED.get(self.name)
        if found is None:
            found = _COMPILED[self.name] = tuple(
                (field, tuple(tuple((step, _camel(step)) for step in path) for path in paths))
                for field, paths in self.fields.items()
            )
        return found


_COMPILED: dict[str, tuple[tuple[str, tuple[tuple[tuple[str, str], ...], ...]], ...]] = {}


#: Usage shapes, by the key that identifies them inside the usage block.
SHAPES: Final = {
    # OpenAI Chat Completions and every OpenAI-compatible API (Mistral, DeepSeek, Groq, …).
    "openai_chat": Shape(
        "openai_chat",
        {
            "input_tokens": (("prompt_tokens",),),
            "output_tokens": (("completion_tokens",),),
            "total_tokens": (("total_tokens",),),
            "cached_input_tokens": (("prompt_tokens_details", "cached_tokens"),),
            "cache_creation_tokens": (("prompt_tokens_details", "cache_write_tokens"),),
            "reasoning_tokens": (("completion_tokens_details", "reasoning_tokens"),),
        },
    ),
    # OpenAI Responses API: input includes cached, output includes reasoning (as ours).
    "openai_responses": Shape(
        "openai_responses",
        {
            "input_tokens": (("input_tokens",),),
            "output_tokens": (("output_tokens",),),
            "total_tokens": (("total_tokens",),),
            "cached_input_tokens": (("input_tokens_details", "cached_tokens"),),
            "cache_creation_tokens": (("input_tokens_details", "cache_write_tokens"),),
            "reasoning_tokens": (("output_tokens_details", "reasoning_tokens"),),
        },
    ),
    # Anthropic Messages: input_tokens EXCLUDES cache reads and writes; add the three.
    "anthropic": Shape(
        "anthropic",
        {
            "input_tokens": (
                ("input_tokens",),
                ("cache_read_input_tokens",),
                ("cache_creation_input_tokens",),
            ),
            "output_tokens": (("output_tokens",),),
            "cached_input_tokens": (("cache_read_input_tokens",),),
            "cache_creation_tokens": (("cache_creation_input_tokens",),),
            "reasoning_tokens": (("output_tokens_details", "thinking_tokens"),),
        },
    ),
    # Bedrock Converse: inputTokens excludes cache reads and writes, like Anthropic.
    "bedrock_converse": Shape(
        "bedrock_converse",
        {
            "input_tokens": (
                ("input_tokens",),
                ("cache_read_input_tokens",),
                ("cache_write_input_tokens",),
            ),
            "output_tokens": (("output_tokens",),),
            "total_tokens": (("total_tokens",),),
            "cached_input_tokens": (("cache_read_input_tokens",),),
            "cache_creation_tokens": (("cache_write_input_tokens",),),
        },
    ),
    # Google GenAI (Gemini API, Vertex): prompt includes cached content; candidates exclude
    # thoughts, so output = candidates + thoughts; tool-use prompt tokens are input.
    "google": Shape(
        "google",
        {
            "input_tokens": (("prompt_token_count",), ("tool_use_prompt_token_count",)),
            "output_tokens": (("candidates_token_count",), ("thoughts_token_count",)),
            "total_tokens": (("total_token_count",),),
            "cached_input_tokens": (("cached_content_token_count",),),
            "reasoning_tokens": (("thoughts_token_count",),),
        },
    ),
}

_RESPONSES_OBJECTS: Final = frozenset({"response"})
#: Output item types of the Responses API that are tool calls.
_RESPONSES_TOOL_SUFFIX: Final = "_call"
#: Anthropic content block types that are tool calls.
_ANTHROPIC_TOOL_BLOCKS: Final = frozenset({"tool_use", "server_tool_use"})


def usage_from_response(resp: object) -> Usage | None:
    """Read the usage of a whole response (OpenAI Chat/Responses, Anthropic, Google GenAI).

    Returns ``None`` when the object carries no usage block. Never raises on odd input: values
    that are not non-negative integers are treated as missing.
    """
    if resp is None:
        return None
    google = _get(resp, "usage_metadata")
    if google is not None:
        usage = _read(google, SHAPES["google"])
        usage.tool_calls = _google_tool_calls(resp)
        usage.response_model = _str(_get(resp, "model_version")) or _str(_get(resp, "model"))
        usage.finish_reasons = _google_finish_reasons(resp)
        return _with_total(usage)
    block = _get(resp, "usage")
    if block is None or isinstance(block, (str, bytes, int, float)):
        return None
    shape = _shape_of(resp, block)
    usage = _read(block, shape)
    usage.response_model = _str(_get(resp, "model"))
    if shape.name == "openai_chat":
        usage.tool_calls = _openai_chat_tool_calls(resp)
    elif shape.name == "openai_responses":
        usage.tool_calls = _count(
            _get(resp, "output"), lambda item: _type_of(item).endswith(_RESPONSES_TOOL_SUFFIX)
        )
    elif shape.name == "anthropic":
        usage.tool_calls = _count(
            _get(resp, "content"), lambda item: _type_of(item) in _ANTHROPIC_TOOL_BLOCKS
        )
    elif shape.name == "bedrock_converse":
        message = _get(_get(resp, "output"), "message")
        usage.tool_calls = _count(
            _get(message, "content"), lambda item: _get(item, "tool_use") is not None
        )
    return _with_total(usage)


def usage_from_chunk(chunk: object) -> Usage | None:
    """Read what one streaming event says about usage; merge them with :meth:`Usage.merge`.

    Understands OpenAI Chat chunks (the final chunk's ``usage``; tool calls started in deltas),
    OpenAI Responses events (``response.completed``), Anthropic events (``message_start`` for the
    input side, ``message_delta`` for output, ``content_block_start`` for tool calls) and Google
    GenAI chunks. Returns ``None`` for events that say nothing about usage or tool calls.
    """
    return read_chunk(chunk)[1]


#: ``(carries output, usage)`` of one streamed chunk; see :func:`read_chunk`.
ChunkInfo = tuple[bool, Usage | None]
_NOTHING: Final[ChunkInfo] = (False, None)
_CONTENT: Final[ChunkInfo] = (True, None)
_ANTHROPIC_EVENTS: Final = frozenset(
    {
        "message_start",
        "message_delta",
        "message_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "ping",
        "error",
    }
)
#: Responses API events that end a response and carry it whole (usage, output, model).
_RESPONSES_FINAL: Final = frozenset(
    {"response.completed", "response.incomplete", "response.failed"}
)


def read_chunk(chunk: object) -> ChunkInfo:
    """Whether one streamed chunk carries output (the first such chunk is the first token), and
    the usage it reports, for any provider's chunk shape.

    Output is text, a refusal, reasoning, audio or a tool call; an opening frame that only names
    the role, a keep-alive or a usage-only chunk carries none. A chunk of a shape this module does
    not know counts as output (every chunk is a token), with no usage.
    """
    if chunk is None:
        return _NOTHING
    kind = _type_of(chunk)
    if kind:
        if kind.startswith("response."):
            return read_responses_event(chunk)
        if kind in _ANTHROPIC_EVENTS:
            return read_anthropic_event(chunk)
    if _get(chunk, "usage_metadata") is not None or _get(chunk, "candidates") is not None:
        return read_google_chunk(chunk)
    if _get(chunk, "choices") is not None or _get(chunk, "usage") is not None:
        return read_openai_chat_chunk(chunk)
    return _CONTENT


def read_google_chunk(chunk: object) -> ChunkInfo:
    """One Google GenAI streamed response (``generate_content_stream``): output when a candidate
    has parts; usage, model and finish reasons from the chunk's ``usage_metadata`` and
    candidates (each chunk reports the counts so far)."""
    return google_parts(chunk)[0], _nonempty(usage_from_response(chunk))


def read_openai_chat_chunk(chunk: object) -> ChunkInfo:
    """One OpenAI Chat Completions chunk (and OpenAI-compatible APIs): output in any choice's
    delta (content, refusal, reasoning, audio, tool calls); usage on the last chunk
    (``stream_options={"include_usage": True}``); tool calls that start (they carry an id); the
    answering model on the opening frame (the one that names the role) and the usage chunk."""
    if _HOW.get(type(chunk)) == _PYDANTIC:
        fast = _chat_model_chunk(chunk)
        if fast is not None:
            return fast
    content = False
    opening = False
    started = 0
    for choice in _items(_get(chunk, "choices")):
        delta = _get(choice, "delta")
        if delta is None:
            continue
        if _get(delta, "role"):
            opening = True
        calls = _items(_get(delta, "tool_calls"))
        if calls:
            content = True
            for call in calls:
                if _get(call, "id"):
                    started += 1
        elif not content:
            for name in _CHAT_DELTA_OUTPUT:
                if _get(delta, name):
                    content = True
                    break
    block = _get(chunk, "usage")
    if block is not None and not isinstance(block, (str, bytes, int, float)):
        usage = _read(block, SHAPES["openai_chat"])
        usage.response_model = _str(_get(chunk, "model"))
        usage.tool_calls = started
        return content, _with_total(usage)
    if started or opening:  # the opening frame names the model that answers
        return content, Usage(tool_calls=started, response_model=_str(_get(chunk, "model")))
    return content, None


def _chat_model_chunk(chunk: Any) -> ChunkInfo | None:
    """:func:`read_openai_chat_chunk` for an SDK (pydantic) chunk whose choices and deltas are
    models too, reading their fields straight from ``__dict__`` (every chunk of every stream
    comes through here); ``None`` for anything else, which the general path reads."""
    content = opening = False
    started = 0
    for choice in chunk.__dict__.get("choices") or ():
        if _HOW.get(type(choice)) != _PYDANTIC:
            return None
        delta = _get(choice, "delta")  # LiteLLM keeps it (and the delta's fields) as extras
        if delta is None:
            continue
        if _HOW.get(type(delta)) != _PYDANTIC:
            return None
        values = delta.__dict__
        if values.get("role"):
            opening = True
        calls = values.get("tool_calls")
        if calls:
            content = True
            started += sum(1 for call in calls if _get(call, "id"))
        elif not content:
            extra = delta.__pydantic_extra__
            for name in _CHAT_DELTA_OUTPUT:
                if values.get(name) or (extra and extra.get(name)):
                    content = True
                    break
    extra = chunk.__pydantic_extra__
    if chunk.__dict__.get("usage") is not None or (extra and extra.get("usage") is not None):
        return None  # the last chunk (LiteLLM keeps its usage as an extra): the general path
    if started or opening:
        model = chunk.__dict__.get("model")
        return content, Usage(tool_calls=started, response_model=_str(model))
    return (True, None) if content else _NOTHING


#: Fields of a chat delta that carry output (``reasoning_content``: DeepSeek and other
#: OpenAI-compatible APIs that stream reasoning).
_CHAT_DELTA_OUTPUT: Final = ("content", "refusal", "function_call", "audio", "reasoning_content")


def read_responses_event(event: object) -> ChunkInfo:
    """One OpenAI Responses API event: ``*.delta`` events and tool-call items that start carry
    output; ``response.completed`` (or incomplete, failed) carries usage, model and tool calls."""
    kind = _type_of(event)
    if kind.endswith(".delta"):
        return _CONTENT
    if kind in _RESPONSES_FINAL:
        return False, usage_from_response(_get(event, "response"))
    if kind == "response.output_item.added":
        return _type_of(_get(event, "item")).endswith(_RESPONSES_TOOL_SUFFIX), None
    return _NOTHING


def read_anthropic_event(event: object) -> ChunkInfo:
    """One Anthropic Messages event: deltas and tool-use blocks carry output; ``message_start``
    reports the input side of usage and the model, ``message_delta`` the output side."""
    kind = _type_of(event)
    if kind == "content_block_delta":
        return _CONTENT
    if kind == "message_delta":
        return False, _nonempty(_read(_get(event, "usage"), SHAPES["anthropic"]))
    if kind == "content_block_start":
        block = _get(event, "content_block")
        if _type_of(block) in _ANTHROPIC_TOOL_BLOCKS:
            return True, Usage(tool_calls=1)
        return bool(_get(block, "text")), None
    if kind == "message_start":
        message = _get(event, "message")
        usage = _read(_get(message, "usage"), SHAPES["anthropic"])
        usage.response_model = _str(_get(message, "model"))
        return False, _nonempty(usage)
    return _NOTHING


# -- helpers ---------------------------------------------------------------------------------


_CAMEL: dict[str, str] = {}


def _camel(name: str) -> str:
    camel = _CAMEL.get(name)
    if camel is None:
        head, *rest = name.split("_")
        camel = _CAMEL[name] = head + "".join(part.title() for part in rest)
    return camel


def _get(obj: object, name: str) -> Any:
    """``obj[name]`` or ``obj.name``, trying the camelCase spelling too; ``None`` if absent."""
    if obj is None:
        return None
    kind = type(obj)
    if kind is dict:
        value = obj.get(name)  # type: ignore[attr-defined]
        return obj.get(_camel(name)) if value is None and "_" in name else value  # type: ignore[attr-defined]
    how = _HOW.get(kind)
    if how is None:
        how = _HOW[kind] = _how_to_read(kind)
    if how == _PYDANTIC:
        # Fields live in __dict__, extra fields in __pydantic_extra__: a failed getattr on an SDK
        # model costs microseconds (its __getattr__ raises), a dict miss costs nothing.
        fields = obj.__dict__
        value = fields.get(name)
        if value is None:
            extra = obj.__pydantic_extra__  # type: ignore[attr-defined]
            if extra:
                value = extra.get(name)
        return value
    if how == _MAPPING:
        value = obj.get(name)  # type: ignore[attr-defined]
        return obj.get(_camel(name)) if value is None and "_" in name else value  # type: ignore[attr-defined]
    value = getattr(obj, name, None)
    if value is None and "_" in name:
        value = getattr(obj, _camel(name), None)
    return value


_PYDANTIC: Final = 1
_MAPPING: Final = 2
_OBJECT: Final = 3
#: How objects of each type are read (decided once per type: ABC checks are slow).
_HOW: dict[type, int] = {}


def _how_to_read(kind: type) -> int:
    if isinstance(kind.__dict__.get("__pydantic_fields__"), dict) or (
        hasattr(kind, "__pydantic_fields__") and hasattr(kind, "__pydantic_extra__")
    ):
        return _PYDANTIC
    if issubclass(kind, Mapping):
        return _MAPPING
    return _OBJECT


def _tokens(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= MAX_TOKENS else None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return _tokens(int(value))
    return None


def _read(block: object, shape: Shape) -> Usage:
    usage = Usage()
    if block is None:
        return usage
    for name, paths in shape.compiled:
        total: int | None = None
        for path in paths:
            node: Any = block
            for snake, camel in path:
                if node is None:
                    break
                if type(node) is dict:
                    found = node.get(snake)
                    node = node.get(camel) if found is None else found
                else:  # mappings, objects, SDK models (read without a failed getattr)
                    node = _get(node, snake)
            count = _tokens(node)
            if count is not None:
                total = count if total is None else total + count
        setattr(usage, name, total)
    return usage


def _shape_of(resp: object, block: object) -> Shape:
    if _get(block, "prompt_tokens") is not None or _get(block, "completion_tokens") is not None:
        return SHAPES["openai_chat"]
    raw_camel = block.get("inputTokens") if isinstance(block, Mapping) else None
    if raw_camel is None and not isinstance(block, Mapping):
        raw_camel = getattr(block, "inputTokens", None)
    if raw_camel is not None:  # only Bedrock Converse spells it camelCase at this level
        return SHAPES["bedrock_converse"]
    if (
        _get(block, "input_tokens_details") is not None
        or _get(block, "output_tokens_details") is not None
        or _str(_get(resp, "object")) in _RESPONSES_OBJECTS
    ):
        return SHAPES["openai_responses"]
    if _get(resp, "output") is not None and _get(resp, "content") is None:
        return SHAPES["openai_responses"]  # the Responses API without token details
    # Anthropic: "type": "message", cache_* keys, or input/output tokens alone (the same either
    # way when no cache is reported).
    return SHAPES["anthropic"]


def _with_total(usage: Usage) -> Usage:
    if usage.total_tokens is None:
        usage.total_tokens = _total(usage.input_tokens, usage.output_tokens)
    return usage


def _total(input_tokens: int | None, output_tokens: int | None) -> int | None:
    if input_tokens is None or output_tokens is None:
        return None
    return input_tokens + output_tokens


def _nonempty(usage: Usage | None) -> Usage | None:
    if usage is None:
        return None
    if usage.tool_calls or usage.finish_reasons:
        return usage
    if any(getattr(usage, name) is not None for name in TOKEN_FIELDS):
        return usage
    return None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _type_of(item: object) -> str:
    kind = _get(item, "type")
    return kind if isinstance(kind, str) else ""


def _items(value: object) -> Sequence[Any]:
    if value is None:
        return ()
    if type(value) is list or type(value) is tuple:
        return value
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return value
    return ()


def _count(items: object, predicate: Any) -> int:
    return sum(1 for item in _items(items) if predicate(item))


def _openai_chat_tool_calls(resp: object) -> int:
    total = 0
    for choice in _items(_get(resp, "choices")):
        total += len(_items(_get(_get(choice, "message"), "tool_calls")))
    return total


def _google_tool_calls(resp: object) -> int:
    return google_parts(resp)[1]


def google_parts(resp: object) -> tuple[bool, int]:
    """Whether a Google GenAI response (or streamed chunk) has candidate parts (output), and
    how many of them are function calls."""
    has_parts = False
    calls = 0
    for candidate in _items(_get(resp, "candidates")):
        parts = _items(_get(_get(candidate, "content"), "parts"))
        if parts:
            has_parts = True
            for part in parts:
                # An SDK part's fields are in its __dict__ (every chunk comes through here).
                values = part.__dict__ if _HOW.get(type(part)) == _PYDANTIC else None
                if values is None:
                    if _get(part, "function_call") is not None:
                        calls += 1
                elif values.get("function_call") is not None:
                    calls += 1
    return has_parts, calls


def _google_finish_reasons(resp: object) -> tuple[str, ...] | None:
    reasons = tuple(
        str.__str__(reason)  # the SDK's FinishReason is a str enum: its value
        for candidate in _items(_get(resp, "candidates"))
        if isinstance(reason := _get(candidate, "finish_reason"), str) and reason
    )
    return reasons or None
