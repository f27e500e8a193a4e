"""Model-name resolution: the names a model may be priced under, most specific first.

A model reaches us as the SDK, the gateway or the span spelled it: ``gpt-4o-2024-08-06``,
``openai/gpt-4o``, ``models/gemini-2.0-flash``, ``anthropic.claude-3-5-sonnet-20241022-v2:0``,
``claude-3-5-sonnet-latest``, ``GPT-4o``. :func:`candidates` turns one into the ordered list of
``(name, provider hint)`` pairs to try; the table tries each against its overrides, then
genai-prices (which has its own matchers for dated snapshots and versions), then the supplement.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["candidates"]

#: Leading path segments that are not providers (Vertex/Gemini resource names).
_NOT_PROVIDERS: Final = frozenset({"models", "publishers", "projects", "locations", "tunedmodels"})

# Bedrock ids: optional cross-region prefix, vendor, model, optional version suffix (-v2:0, :0).
_BEDROCK: Final = re.compile(
    r"^(?:(?:us|eu|apac|ap|global|jp|au|ca|us-gov)\.)?"
    r"(?P<vendor>anthropic|meta|mistral|amazon|cohere|ai21|deepseek|openai|qwen|writer)\."
    r"(?P<model>.+?)(?:-v\d+(?::\d+)?|:\d+)?$"
)
# A trailing date: -2024-08-06, -20241022, @20241022 (Vertex), _20241022.
_DATE: Final = re.compile(r"[-@_](?:20\d\d-?[01]\d-?[0-3]\d)$")
# A trailing month-day snapshot such as -0613 or -0125 (older OpenAI names).
_MMDD: Final = re.compile(r"-(?:0[1-9]|1[0-2])(?:[0-2]\d|3[01])$")


def candidates(model: str, provider: str | None) -> list[tuple[str, str | None]]:
    """The ``(name, provider hint)`` pairs to try for a model, most specific first, no repeats.

    Names are lowercased and stripped. A path prefix that names a provider (``openai/gpt-4o``)
    becomes the hint for the rest; a Bedrock id gives its vendor as hint; ``-latest`` and trailing
    dates are removed as last resorts.
    """
    name = model.strip().lower()
    hint = provider.strip().lower() if provider else None
    out: list[tuple[str, str | None]] = []

    def add(ref: str, ref_hint: str | None) -> None:
        if ref and (ref, ref_hint) not in out:
            out.append((ref, ref_hint))

    add(name, hint)
    # Path prefixes: "openai/gpt-4o", "models/gemini-2.0-flash", "bedrock/anthropic.claude-…",
    # "projects/p/locations/l/publishers/google/models/gemini-2.0-flash".
    rest, rest_hint = name, hint
    while "/" in rest:
        head, rest = rest.split("/", 1)
        if head not in _NOT_PROVIDERS and not _looks_like_id(head):
            rest_hint = head
        add(rest, rest_hint)
    if bedrock := _BEDROCK.match(rest):
        add(rest, "aws")
        rest, rest_hint = bedrock["model"], bedrock["vendor"]
        add(rest, rest_hint)
    base = rest
    if base.endswith("-latest"):
        base = base[: -len("-latest")]
        add(base, rest_hint)
    for pattern in (_DATE, _MMDD):
        stripped = pattern.sub("", base)
        if stripped != base:
            add(stripped, rest_hint)
            base = stripped
    return out


def _looks_like_id(segment: str) -> bool:
    # Project ids and regions in resource paths ("my-project-123", "us-central1") are not providers
    # we know; they are harmless as hints (an unknown hint is ignored) but keep the list short.
    return any(ch.isdigit() for ch in segment) and "-" in segment
