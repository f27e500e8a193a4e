"""Coverage-guided fuzz target (atheris/libFuzzer) for the collector's request path.

Each input is taken as the body of an OTLP ``Export`` call and goes the way the collector takes
it: parsed into the lean request (a parse failure is ``INVALID_ARGUMENT``, fine), every span
converted (:func:`convert_request`, with pricing and with and without content capture), every
record fully re-validated, and encoded as the SQLite row it would become. Anything that raises
there is a crash.

    make fuzz                                    # 60 s
    .venv/bin/python fuzz/fuzz_export.py -max_total_time=600 fuzz/corpus

Needs the ``fuzz`` extra: ``pip install 'asynctelemetry[fuzz]'``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["ASYNCTELEMETRY_STRICT"] = "1"  # internal errors raise: they are crashes here

atheris: Any = None
if __name__ == "__main__":  # fuzzing: atheris first, so our modules are instrumented on import
    try:
        import atheris
    except ImportError:
        pass

with (
    atheris.instrument_imports(include=["asynctelemetry"])
    if atheris is not None
    else contextlib.nullcontext()
):
    from google.protobuf.message import DecodeError

    from asynctelemetry import LLMCall, Pipeline, PriceTable
    from asynctelemetry._collector._convert import convert_request
    from asynctelemetry._collector._wire import LeanRequest
    from asynctelemetry._exceptions import MissingDependencyError
    from asynctelemetry._stores._door import enter
    from asynctelemetry._stores.sqlite.schema import encode_call

PRICES = PriceTable.default()
PIPELINE = Pipeline(price_table=PRICES)  # the collector prices after converting
MAX_START_NS = 2**63


def one_input(data: bytes) -> None:
    """The request path for one body; raises on any defect the collector must not have."""
    try:
        request = LeanRequest.FromString(data)
    except DecodeError:
        return
    for capture in (False, True):
        defects: dict[str, int] = {}
        calls, received, ignored, rejected = convert_request(request, capture, defects)
        if received != len(calls) + ignored + rejected:
            raise AssertionError("span counts do not add up")
        for call in PIPELINE.price(calls):
            if LLMCall.model_validate(call.model_dump()) != call:
                raise AssertionError(f"record changed under validation: {call!r}")
            row = encode_call(enter(call))
            for value in row:
                if isinstance(value, int) and not -(2**63) <= value < MAX_START_NS:
                    raise AssertionError(f"SQLite cannot hold {value} in {call!r}")


def seed_corpus(directory: Path) -> None:
    """A few valid requests to start from (the fuzzer mutates them)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.collector.helpers import llm_span, request_of

    directory.mkdir(parents=True, exist_ok=True)
    seeds = {
        "genai": {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 3,
        },
        "plano": {
            "llm.model": "gpt-4o",
            "llm.usage.prompt_tokens": 5,
            "plano.session_id": "s",
            "llm.time_to_first_token": 12.5,
            "llm.is_streaming": True,
        },
        "openinference": {
            "openinference.span.kind": "LLM",
            "llm.model_name": "claude",
            "llm.invocation_parameters": '{"model": "x", "stream": true}',
            "llm.token_count.prompt": 7,
            "input.value": "hi",
        },
        "racto": {
            "llm.provider": "openai",
            "llm.model": "gpt-4o-mini",
            "llm.cost_usd": 0.5,
            "llm.tool_calls": 2,
            "llm.cache_hit": "miss",
            "app.tags": ["a", "b"],
        },
    }
    for name, attributes in seeds.items():
        body = request_of([llm_span(attributes)]).SerializeToString()
        (directory / name).write_bytes(body)


def main() -> None:
    """Run libFuzzer with the given arguments (a corpus directory is seeded when empty)."""
    if atheris is None:
        raise MissingDependencyError("fuzz", "the fuzz targets")
    args = sys.argv[1:]
    for arg in args:
        if not arg.startswith("-"):
            corpus = Path(arg)
            if not corpus.exists() or not any(corpus.iterdir()):
                seed_corpus(corpus)
    atheris.Setup([sys.argv[0], *args], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
