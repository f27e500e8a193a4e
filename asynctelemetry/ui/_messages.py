"""Captured content as chat messages, for the dashboard's call dialog and session view.

Content is kept only when the user turned capture on (``capture_content=True`` on the tracer or
the collector). It arrives in the shape each producer wrote it: the request body's messages of
the SDK (OpenAI chat and responses, Anthropic, Gemini) under ``gen_ai.input.messages``, the
OpenTelemetry GenAI messages with ``parts``, the indexed attributes of OpenLLMetry
(``gen_ai.prompt.0.role``) and OpenInference (``llm.input_messages.0.message.role``), or plain
text (``gen_ai.prompt``, ``input.value``). :func:`messages` reads each into one shape:

``{"role": "user", "source": "input", "parts": [{"kind": "text", "text": "…"}, …]}``

with part kinds ``text``, ``reasoning``, ``tool_call`` (``name``, ``id``, ``text``: the
arguments), ``tool_result`` (``id``, ``name``, ``text``, ``error``) and ``other`` (an image or a
block of an unknown type, named). What cannot be read (a value cut at the attribute bound, an
unknown shape) is kept as a text part, never dropped; keys that hold no messages (retrieved
documents, embeddings) are left to ``content``. The page writes every part as text.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["messages"]

Part = dict[str, Any]
Message = dict[str, Any]

#: Keys holding a whole list of messages (or text), in the order they are shown: source, role
#: of a bare text.
_WHOLE: Final = (
    ("gen_ai.system_instructions", "system", "system"),
    ("gen_ai.input.messages", "input", "user"),
    ("llm.prompts", "input", "user"),
    ("llm.prompt", "input", "user"),
    ("llm.input", "input", "user"),
    ("gen_ai.prompt", "input", "user"),
    ("gen_ai.content.prompt", "input", "user"),
    ("input.value", "input", "user"),
    ("traceloop.entity.input", "input", "user"),
    ("gen_ai.output.messages", "output", "assistant"),
    ("llm.completion", "output", "assistant"),
    ("llm.output", "output", "assistant"),
    ("gen_ai.completion", "output", "assistant"),
    ("gen_ai.content.completion", "output", "assistant"),
    ("output.value", "output", "assistant"),
    ("traceloop.entity.output", "output", "assistant"),
)
#: Indexed keys, one message per index: prefix, source, role when none is given.
_INDEXED: Final = (
    ("gen_ai.prompt.", "input", "user"),
    ("llm.input_messages.", "input", "user"),
    ("gen_ai.completion.", "output", "assistant"),
    ("llm.output_messages.", "output", "assistant"),
)
_INDEX: Final = re.compile(r"(\d{1,6})\.(?:message\.)?(.+)")
_TOOL_CALL: Final = re.compile(
    r"tool_calls\.(\d{1,4})\.(?:tool_call\.)?(?:function\.)?(name|arguments|id)"
)
#: Gemini's role of the model's turns.
_ROLES: Final = {"model": "assistant"}
#: Block types whose text is the message's text (OpenAI, Anthropic, the GenAI parts).
_TEXT_TYPES: Final = frozenset({"text", "input_text", "output_text"})
_REASONING_TYPES: Final = frozenset({"thinking", "reasoning"})


def messages(content: Mapping[str, Any]) -> list[Message]:
    """The chat messages in ``content`` (a call's captured attributes), in order: system,
    input, output."""
    found: list[Message] = []
    for key, source, role in _WHOLE:
        if key in content:
            found.extend(_whole(content[key], source, role))
    for prefix, source, role in _INDEXED:
        found.extend(_indexed(content, prefix, source, role))
    order = {"system": 0, "input": 1, "output": 2}
    found.sort(key=lambda m: order[m["source"]])  # stable: each source keeps its order
    return found


def _parsed(value: Any) -> Any:
    """A JSON text as its value; any other text (or a JSON text cut at the bound) as it is."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _whole(value: Any, source: str, role: str) -> list[Message]:
    value = _parsed(value)
    if isinstance(value, dict):
        for key in ("messages", "contents", "input"):  # OpenInference's input.value, a body
            if isinstance(value.get(key), list | str):
                return _whole(value[key], source, role)
        value = [value]
    if not isinstance(value, list):
        return [_message(role, source, [_text(value)])]
    if source == "system" and all(_is_block(v) for v in value):
        return [_message(role, source, _parts(value))]  # Anthropic's system blocks
    found = []
    for item in value:
        message = _item(item, source, role)
        if message is not None:
            found.append(message)
    return found


def _item(item: Any, source: str, role: str) -> Message | None:
    """One element of a list of messages (or of an OpenAI responses ``input``)."""
    if not isinstance(item, dict):
        return _message(role, source, [_text(item)])
    kind = item.get("type")
    if kind == "function_call":  # OpenAI responses: the model called a tool
        return _message(
            "assistant", source, [_tool_call(item.get("name"), item.get("call_id"), item)]
        )
    if kind == "function_call_output":
        part = _tool_result(item.get("call_id"), None, item.get("output"), error=False)
        return _message("tool", source, [part])
    if "role" not in item and "parts" not in item and "content" not in item:
        return _message(role, source, [_block(item)])  # a bare block: a message of its own
    who = str(item.get("role") or role)
    body = item.get("parts") if "parts" in item else item.get("content")
    parts = _parts(body)
    if who == "tool" and item.get("tool_call_id") is not None:  # OpenAI's tool answer
        text = "\n".join(p["text"] for p in parts if p.get("text"))
        parts = [_tool_result(item["tool_call_id"], item.get("name"), text, error=False)]
    for call in item.get("tool_calls") or ():  # OpenAI's assistant calling tools
        if isinstance(call, dict):
            inner = call.get("function")
            function: dict[str, Any] = inner if isinstance(inner, dict) else call
            parts.append(_tool_call(function.get("name"), call.get("id"), function))
    return _message(_ROLES.get(who, who), source, parts)


def _parts(body: Any) -> list[Part]:
    """A message's content: text, or a list of blocks (OpenAI, Anthropic, Gemini, GenAI)."""
    if body is None:
        return []
    if not isinstance(body, list):
        return [_text(body)]
    return [_block(block) for block in body]


def _block(block: Any) -> Part:
    if not isinstance(block, dict):
        return _text(block)
    kind = block.get("type")
    if kind in _TEXT_TYPES:
        return _text(block.get("text", block.get("content")))
    if kind in _REASONING_TYPES:
        return {"kind": "reasoning", "text": _string(block.get("thinking", block.get("content")))}
    if kind == "tool_use":  # Anthropic
        return _tool_call(block.get("name"), block.get("id"), block, "input")
    if kind == "tool_call":  # OpenTelemetry GenAI parts
        return _tool_call(block.get("name"), block.get("id"), block)
    if kind == "tool_result":  # Anthropic
        inner = _parts(block.get("content"))
        text = "\n".join(p.get("text") or "" for p in inner)
        return _tool_result(block.get("tool_use_id"), None, text, bool(block.get("is_error")))
    if kind == "tool_call_response":  # OpenTelemetry GenAI parts
        return _tool_result(block.get("id"), None, block.get("response"), error=False)
    for key in ("function_call", "functionCall"):  # Gemini parts
        if isinstance(block.get(key), dict):
            call = block[key]
            return _tool_call(call.get("name"), call.get("id"), call, "args")
    for key in ("function_response", "functionResponse"):
        if isinstance(block.get(key), dict):
            answer = block[key]
            return _tool_result(answer.get("id"), answer.get("name"), answer.get("response"), False)
    if kind is None and "text" in block:  # a Gemini part
        return _text(block["text"])
    if kind is None:
        return _text(block)  # an unknown shape: its JSON, never dropped
    return {"kind": "other", "text": f"[{_string(kind)}]"}  # an image, a file: named, not dumped


def _is_block(value: Any) -> bool:
    """A content block rather than a message (no role, no parts or content of its own)."""
    return isinstance(value, str) or (
        isinstance(value, dict) and not {"role", "parts", "content"} & value.keys()
    )


def _indexed(content: Mapping[str, Any], prefix: str, source: str, role: str) -> list[Message]:
    """Messages kept one attribute per field: ``<prefix><i>.role``, ``.content``,
    ``.tool_calls.<j>.name`` (OpenLLMetry), ``<prefix><i>.message.…`` (OpenInference)."""
    fields: dict[int, dict[str, Any]] = {}
    for key, value in content.items():
        if not key.startswith(prefix):
            continue
        match = _INDEX.fullmatch(key[len(prefix) :])
        if match is not None:
            fields.setdefault(int(match[1]), {})[match[2]] = value
    found = []
    for index in sorted(fields):
        one = fields[index]
        parts = [] if one.get("content") is None else [_text(_string(one["content"]))]
        calls: dict[int, dict[str, Any]] = {}
        for name, value in one.items():
            match = _TOOL_CALL.fullmatch(name)
            if match is not None:
                calls.setdefault(int(match[1]), {})[match[2]] = value
        for j in sorted(calls):
            call = calls[j]
            parts.append(_tool_call(call.get("name"), call.get("id"), call))
        who = str(one.get("role") or role)
        if who == "tool" and one.get("tool_call_id") is not None:
            text = "\n".join(p.get("text") or "" for p in parts)
            parts = [_tool_result(one["tool_call_id"], one.get("name"), text, error=False)]
        found.append(_message(_ROLES.get(who, who), source, parts))
    return found


def _message(role: str, source: str, parts: list[Part]) -> Message:
    return {"role": role, "source": source, "parts": parts}


def _string(value: Any) -> str:
    """Text as is; anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _text(value: Any) -> Part:
    return {"kind": "text", "text": _string(value if value is not None else "")}


def _tool_call(name: Any, call_id: Any, holder: dict[str, Any], key: str = "arguments") -> Part:
    arguments = holder.get(key)
    return {
        "kind": "tool_call",
        "name": None if name is None else _string(name),
        "id": None if call_id is None else _string(call_id),
        "text": None if arguments is None else _string(_parsed(arguments)),
    }


def _tool_result(call_id: Any, name: Any, result: Any, error: bool) -> Part:
    return {
        "kind": "tool_result",
        "name": None if name is None else _string(name),
        "id": None if call_id is None else _string(call_id),
        "text": "" if result is None else _string(result),
        "error": error,
    }
