"""Every span attribute key asynctelemetry reads or writes, as constants and mapping tables.

Layer 2: the tracer writes spans with these names and the collector reads spans with the same
tables, so a round trip cannot drift. Mappings are data: :data:`FIELD_KEYS` lists, per
:class:`~asynctelemetry.LLMCall` field, the attribute keys that may carry it, in precedence order
(first present and valid wins): our own keys, the gateway's ``llm.usage.*`` keys (Plano), the
RactoGateway tracer's ``llm.*`` keys, the OpenTelemetry GenAI conventions (their current names
first, then the names they replaced), OpenLLMetry's variants, OpenLIT's, then OpenInference.
:data:`KEY_KINDS` says how each key's value is read, and the collector builds its one key →
(field, kind, rank) lookup from these two tables. The tracer writes the current GenAI names
(:func:`call_attributes`), with the RactoGateway ``llm.*`` keys beside them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

# --- OpenTelemetry GenAI semantic conventions --------------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_SYSTEM: Final = "gen_ai.system"  # the older name of gen_ai.provider.name
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_PROMPT_TOKENS: Final = "gen_ai.usage.prompt_tokens"  # older name
GEN_AI_USAGE_COMPLETION_TOKENS: Final = "gen_ai.usage.completion_tokens"  # older name
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: Final = "gen_ai.usage.cache_write.input_tokens"
#: The name of ``gen_ai.usage.cache_write.input_tokens`` before semantic-conventions-genai#440.
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
GEN_AI_REQUEST_STREAM: Final = "gen_ai.request.stream"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"  # seconds
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
ERROR_TYPE: Final = "error.type"
# The end user (OTel general conventions: ``user.id``; ``enduser.id`` is its older name).
USER_ID: Final = "user.id"
ENDUSER_ID: Final = "enduser.id"
#: The OTel exception event (``span.record_exception``) and its attributes.
EXCEPTION_EVENT: Final = "exception"
EXCEPTION_TYPE: Final = "exception.type"
EXCEPTION_MESSAGE: Final = "exception.message"
ERROR_MESSAGE: Final = "error.message"  # some instrumentations put the text on the span
SERVER_ADDRESS: Final = "server.address"
SERVICE_NAME: Final = "service.name"

# --- OpenTelemetry GenAI client metrics (semantic-conventions-genai, 2026) ----------------------
GEN_AI_TOKEN_MODALITY: Final = "gen_ai.token.modality"
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"  # the legacy gen_ai.client.token.usage's split
#: ``error.type`` of a failed call whose error has no name (the conventions' fallback value).
ERROR_TYPE_OTHER: Final = "_OTHER"
METRIC_INFERENCE_DURATION: Final = "gen_ai.client.inference.duration"
METRIC_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.inference.time_to_first_chunk"
METRIC_TIME_PER_OUTPUT_CHUNK: Final = "gen_ai.client.inference.time_per_output_chunk"
METRIC_USAGE_INPUT_TOKENS: Final = "gen_ai.client.inference.usage.input_tokens"
METRIC_USAGE_OUTPUT_TOKENS: Final = "gen_ai.client.inference.usage.output_tokens"
METRIC_USAGE_CACHE_READ_TOKENS: Final = "gen_ai.client.inference.usage.cache_read.input_tokens"
METRIC_USAGE_CACHE_WRITE_TOKENS: Final = "gen_ai.client.inference.usage.cache_write.input_tokens"
METRIC_USAGE_REASONING_TOKENS: Final = "gen_ai.client.inference.usage.reasoning.output_tokens"
METRIC_OPERATION_INPUT_TOKENS: Final = "gen_ai.client.inference.operation.input_tokens"
METRIC_OPERATION_OUTPUT_TOKENS: Final = "gen_ai.client.inference.operation.output_tokens"
#: The names the 2026 conventions replaced (``legacy_names=True`` of the OTLP metrics exporter).
METRIC_LEGACY_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
METRIC_LEGACY_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
#: Explicit bucket boundaries of the conventions' duration, time-to-first-chunk and
#: time-per-output-chunk histograms (and of the legacy ``gen_ai.client.operation.duration``), s.
GEN_AI_DURATION_BUCKETS: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
#: Explicit bucket boundaries of the conventions' token histograms (per-operation token counts and
#: the legacy ``gen_ai.client.token.usage``).
GEN_AI_TOKEN_BUCKETS: Final = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip

# --- The RactoGateway tracer's keys ------------------------------------------------------------
LLM_PROVIDER: Final = "llm.provider"
LLM_MODEL: Final = "llm.model"
LLM_OPERATION: Final = "llm.operation"
LLM_LATENCY_MS: Final = "llm.latency_ms"
LLM_INPUT_TOKENS: Final = "llm.input_tokens"
LLM_OUTPUT_TOKENS: Final = "llm.output_tokens"
LLM_COST_USD: Final = "llm.cost_usd"
LLM_CACHE_HIT: Final = "llm.cache_hit"
LLM_TOOL_CALLS: Final = "llm.tool_calls"
LLM_ERROR_TYPE: Final = "llm.error_type"

# --- The gateway (Plano) keys ------------------------------------------------------------------
LLM_USAGE_PROMPT_TOKENS: Final = "llm.usage.prompt_tokens"
LLM_USAGE_COMPLETION_TOKENS: Final = "llm.usage.completion_tokens"
LLM_USAGE_TOTAL_TOKENS: Final = "llm.usage.total_tokens"
LLM_USAGE_CACHED_INPUT_TOKENS: Final = "llm.usage.cached_input_tokens"
LLM_USAGE_CACHE_CREATION_TOKENS: Final = "llm.usage.cache_creation_tokens"
LLM_USAGE_REASONING_TOKENS: Final = "llm.usage.reasoning_tokens"
LLM_TIME_TO_FIRST_TOKEN: Final = "llm.time_to_first_token"  # milliseconds
LLM_DURATION_MS: Final = "llm.duration_ms"
LLM_IS_STREAMING: Final = "llm.is_streaming"
MODEL_REQUESTED: Final = "model.requested"
PLANO_SESSION_ID: Final = "plano.session_id"
PLANO_ROUTE_NAME: Final = "plano.route.name"
ROUTING_STRATEGY: Final = "routing.strategy"
ROUTING_SELECTION_REASON: Final = "routing.selection_reason"
HTTP_STATUS_CODE: Final = "http.status_code"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
REQUEST_ID: Final = "request_id"

# --- OpenInference -----------------------------------------------------------------------------
OPENINFERENCE_SPAN_KIND: Final = "openinference.span.kind"
LLM_MODEL_NAME: Final = "llm.model_name"
LLM_SYSTEM: Final = "llm.system"
EMBEDDING_MODEL_NAME: Final = "embedding.model_name"
LLM_INVOCATION_PARAMETERS: Final = "llm.invocation_parameters"
LLM_TOKEN_COUNT_PROMPT: Final = "llm.token_count.prompt"
LLM_TOKEN_COUNT_COMPLETION: Final = "llm.token_count.completion"
LLM_TOKEN_COUNT_TOTAL: Final = "llm.token_count.total"
LLM_TOKEN_COUNT_PROMPT_CACHE_READ: Final = "llm.token_count.prompt_details.cache_read"
LLM_TOKEN_COUNT_PROMPT_CACHE_WRITE: Final = "llm.token_count.prompt_details.cache_write"
LLM_TOKEN_COUNT_COMPLETION_REASONING: Final = "llm.token_count.completion_details.reasoning"
SESSION_ID: Final = "session.id"
TAG_TAGS: Final = "tag.tags"  # a list of strings
AGENT_NAME: Final = "agent.name"
LLM_REQUEST_MODEL_NAME: Final = "llm.request.model_name"
LLM_RESPONSE_MODEL_NAME: Final = "llm.response.model_name"
LLM_TOKEN_COUNT_PROMPT_CACHE_INPUT: Final = "llm.token_count.prompt_details.cache_input"
EMBEDDING_INVOCATION_PARAMETERS: Final = "embedding.invocation_parameters"
#: OpenInference span kinds that are calls to a model; every other kind is not an LLM call.
OPENINFERENCE_LLM_KINDS: Final[dict[str, str]] = {"LLM": "chat", "EMBEDDING": "embed"}
#: OpenInference JSON-string attributes whose ``"model"`` (or ``"model_name"``) names the model.
MODEL_JSON_KEYS: Final[tuple[str, ...]] = (
    LLM_INVOCATION_PARAMETERS,
    EMBEDDING_INVOCATION_PARAMETERS,
)

# --- OpenLLMetry (Traceloop) variants ----------------------------------------------------------
LLM_REQUEST_TYPE: Final = "llm.request.type"  # chat | completion | embedding | rerank
GEN_AI_USAGE_TOTAL_TOKENS: Final = "gen_ai.usage.total_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS_OLD: Final = "gen_ai.usage.cache_read_input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS_OLD: Final = "gen_ai.usage.cache_creation_input_tokens"
GEN_AI_USAGE_REASONING_TOKENS: Final = "gen_ai.usage.reasoning_tokens"
GEN_AI_IS_STREAMING: Final = "gen_ai.is_streaming"
TRACELOOP_USER_ID: Final = "traceloop.association.properties.user_id"
TRACELOOP_SESSION_ID: Final = "traceloop.association.properties.session_id"

TRACELOOP_SPAN_KIND: Final = "traceloop.span.kind"  # workflow | task | agent | tool
TRACELOOP_ENTITY_NAME: Final = "traceloop.entity.name"

# --- Langfuse (its OTel endpoint's keys) -------------------------------------------------------
LANGFUSE_USER_ID: Final = "langfuse.user.id"
LANGFUSE_SESSION_ID: Final = "langfuse.session.id"
LANGFUSE_TRACE_TAGS: Final = "langfuse.trace.tags"

# --- OpenLIT (1.45 writes the current GenAI keys plus these; older releases the "older" ones) ---
GEN_AI_USAGE_COST: Final = "gen_ai.usage.cost"  # USD, priced by OpenLIT's own price list
GEN_AI_SERVER_TIME_TO_FIRST_TOKEN: Final = "gen_ai.server.time_to_first_token"  # seconds
GEN_AI_SERVER_TTFT: Final = "gen_ai.server.ttft"  # seconds, the older name
GEN_AI_CLIENT_TOKEN_USAGE: Final = "gen_ai.client.token.usage"  # total tokens, as an attribute
GEN_AI_REQUEST_IS_STREAM: Final = "gen_ai.request.is_stream"  # the older gen_ai.request.stream

# --- Our own keys (what no convention above carries) -------------------------------------------
AT_STATUS: Final = "asynctelemetry.status"  # ok | error | cancelled (OTel status has no cancelled)
AT_PRICE_VERSION: Final = "asynctelemetry.price_version"
AT_CACHE_HIT: Final = "asynctelemetry.cache_hit"
AT_TOOL_CALLS: Final = "asynctelemetry.tool_calls"
AT_SPAN_KIND: Final = "asynctelemetry.span.kind"  # a step's kind (TraceSpan.kind)
#: The agent a step other than an agent runs under (an agent's own name is gen_ai.agent.name).
AT_AGENT_NAME: Final = "asynctelemetry.agent.name"

#: A step's kind → the ``gen_ai.operation.name`` of the GenAI conventions (agent and framework
#: spans: ``invoke_agent {name}``, ``execute_tool {name}``, ``invoke_workflow {name}`` whose
#: name is ``gen_ai.agent.name`` since the workflow span merged into invoke_agent, and
#: ``retrieval {name}``). Other kinds have no operation: their span name is the step's name.
STEP_OPERATIONS: Final[dict[str, str]] = {
    "agent": "invoke_agent",
    "tool": "execute_tool",
    "workflow": "invoke_workflow",
    "retrieval": "retrieval",
}

#: Our operation names → ``gen_ai.operation.name`` values of the GenAI conventions.
GEN_AI_OPERATIONS: Final[dict[str, str]] = {
    "chat": "chat",
    "stream": "chat",
    "embed": "embeddings",
    "completion": "text_completion",
}

#: Operation names of other conventions → ours (GenAI ``gen_ai.operation.name``, OpenLLMetry
#: ``llm.request.type``). Values not listed are kept as they are.
OPERATION_ALIASES: Final[dict[str, str]] = {
    "chat": "chat",
    "generate_content": "chat",
    "text_completion": "completion",
    "completion": "completion",
    "embeddings": "embed",
    "embedding": "embed",
}
#: ``gen_ai.operation.name`` values that are not calls to a model (agent and tool spans).
NON_LLM_OPERATIONS: Final[frozenset[str]] = frozenset(
    {"execute_tool", "invoke_agent", "create_agent", "invoke_workflow", "retrieval"}
)

#: ``gen_ai.operation.name`` of the agent and framework spans → a step's kind.
STEP_KIND_OF_OPERATION: Final[dict[str, str]] = {
    "invoke_agent": "agent",
    "create_agent": "agent",
    "execute_tool": "tool",
    "invoke_workflow": "workflow",
    "retrieval": "retrieval",
}
#: OpenInference ``openinference.span.kind`` values that are steps → their kind.
OPENINFERENCE_STEP_KINDS: Final[dict[str, str]] = {
    "AGENT": "agent",
    "TOOL": "tool",
    "CHAIN": "workflow",
    "RETRIEVER": "retrieval",
    "RERANKER": "retrieval",
    "GUARDRAIL": "guardrail",
    "EVALUATOR": "evaluator",
}
#: OpenLLMetry ``traceloop.span.kind`` values → a step's kind.
TRACELOOP_STEP_KINDS: Final[dict[str, str]] = {
    "workflow": "workflow",
    "task": "internal",
    "agent": "agent",
    "tool": "tool",
}
#: Attribute keys that make a span not otherwise classified an ``http`` step.
HTTP_KEYS: Final[frozenset[str]] = frozenset(
    {"http.request.method", "http.method", "http.route", "url.full", "http.url"}
)

#: Per LLMCall field, the span attribute keys that may carry it, first present and valid wins.
#: Order: ours, gateway (Plano), RactoGateway ``llm.*``, OTel GenAI, OpenLLMetry, OpenLIT,
#: OpenInference.
#: ``response_model`` is not a field: the record's ``model`` is the response model when known,
#: else the requested one.
FIELD_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "call_id": (REQUEST_ID,),
    "request_model": (MODEL_REQUESTED, GEN_AI_REQUEST_MODEL, LLM_REQUEST_MODEL_NAME),
    "response_model": (
        LLM_MODEL,
        GEN_AI_RESPONSE_MODEL,
        LLM_RESPONSE_MODEL_NAME,
        LLM_MODEL_NAME,
        EMBEDDING_MODEL_NAME,
    ),
    "provider": (LLM_PROVIDER, GEN_AI_PROVIDER_NAME, GEN_AI_SYSTEM, LLM_SYSTEM),
    "operation": (LLM_OPERATION, GEN_AI_OPERATION_NAME, LLM_REQUEST_TYPE),
    "session_id": (
        PLANO_SESSION_ID,
        GEN_AI_CONVERSATION_ID,
        TRACELOOP_SESSION_ID,
        SESSION_ID,
        LANGFUSE_SESSION_ID,
    ),
    "user_id": (USER_ID, ENDUSER_ID, TRACELOOP_USER_ID, LANGFUSE_USER_ID),
    "agent_name": (GEN_AI_AGENT_NAME, AGENT_NAME),
    "tags": (TAG_TAGS, LANGFUSE_TRACE_TAGS),
    "error_message": (ERROR_MESSAGE, EXCEPTION_MESSAGE),
    "route_name": (PLANO_ROUTE_NAME,),
    "is_streaming": (
        LLM_IS_STREAMING,
        GEN_AI_REQUEST_STREAM,
        GEN_AI_IS_STREAMING,
        GEN_AI_REQUEST_IS_STREAM,
    ),
    "status_code": (HTTP_STATUS_CODE, HTTP_RESPONSE_STATUS_CODE),
    "error_type": (LLM_ERROR_TYPE, ERROR_TYPE),
    "input_tokens": (
        LLM_USAGE_PROMPT_TOKENS,
        LLM_INPUT_TOKENS,
        GEN_AI_USAGE_INPUT_TOKENS,
        GEN_AI_USAGE_PROMPT_TOKENS,
        LLM_TOKEN_COUNT_PROMPT,
    ),
    "output_tokens": (
        LLM_USAGE_COMPLETION_TOKENS,
        LLM_OUTPUT_TOKENS,
        GEN_AI_USAGE_OUTPUT_TOKENS,
        GEN_AI_USAGE_COMPLETION_TOKENS,
        LLM_TOKEN_COUNT_COMPLETION,
    ),
    "total_tokens": (
        LLM_USAGE_TOTAL_TOKENS,
        GEN_AI_USAGE_TOTAL_TOKENS,
        GEN_AI_CLIENT_TOKEN_USAGE,
        LLM_TOKEN_COUNT_TOTAL,
    ),
    "cached_input_tokens": (
        LLM_USAGE_CACHED_INPUT_TOKENS,
        GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
        GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS_OLD,
        LLM_TOKEN_COUNT_PROMPT_CACHE_READ,
        LLM_TOKEN_COUNT_PROMPT_CACHE_INPUT,
    ),
    "cache_creation_tokens": (
        LLM_USAGE_CACHE_CREATION_TOKENS,
        GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
        GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
        GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS_OLD,
        LLM_TOKEN_COUNT_PROMPT_CACHE_WRITE,
    ),
    "reasoning_tokens": (
        LLM_USAGE_REASONING_TOKENS,
        GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
        GEN_AI_USAGE_REASONING_TOKENS,
        LLM_TOKEN_COUNT_COMPLETION_REASONING,
    ),
    "duration_ms": (LLM_DURATION_MS, LLM_LATENCY_MS),
    "ttft_ms": (
        LLM_TIME_TO_FIRST_TOKEN,
        GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
        GEN_AI_SERVER_TIME_TO_FIRST_TOKEN,
        GEN_AI_SERVER_TTFT,
    ),
    "cache_hit": (AT_CACHE_HIT, LLM_CACHE_HIT),
    "tool_calls": (AT_TOOL_CALLS, LLM_TOOL_CALLS),
    "routing_strategy": (ROUTING_STRATEGY,),
    "routing_reason": (ROUTING_SELECTION_REASON,),
    "cost_usd": (LLM_COST_USD, GEN_AI_USAGE_COST),
    "price_version": (AT_PRICE_VERSION,),
    "status": (AT_STATUS,),
}

#: How a field's value is read from an ``AnyValue``: ``str`` (non-empty text, at most
#: :data:`MAX_FIELD_LENGTH` characters), ``tokens`` (an integer in 0..MAX_TOKENS), ``millis``
#: (a finite number of milliseconds in 0..MAX_DURATION_MS), ``usd`` (a finite number >= 0),
#: ``bool``, ``http`` (an integer in 0..999), ``status`` (ok | error | cancelled), ``operation``
#: (text mapped through :data:`OPERATION_ALIASES`), ``tags`` (an array of strings, or a JSON
#: array as text, or one string: a tuple of distinct tags), ``message`` (non-empty text, cut to
#: ``MAX_ERROR_MESSAGE`` characters).
FIELD_KINDS: Final[dict[str, str]] = {
    "call_id": "str",
    "request_model": "str",
    "response_model": "str",
    "provider": "str",
    "operation": "operation",
    "session_id": "str",
    "user_id": "str",
    "agent_name": "str",
    "tags": "tags",
    "error_message": "message",
    "route_name": "str",
    "is_streaming": "bool",
    "status_code": "http",
    "error_type": "str",
    "input_tokens": "tokens",
    "output_tokens": "tokens",
    "total_tokens": "tokens",
    "cached_input_tokens": "tokens",
    "cache_creation_tokens": "tokens",
    "reasoning_tokens": "tokens",
    "duration_ms": "millis",
    "ttft_ms": "millis",
    "cache_hit": "str",
    "tool_calls": "tokens",
    "routing_strategy": "str",
    "routing_reason": "str",
    "cost_usd": "usd",
    "price_version": "str",
    "status": "status",
}
#: Keys whose value is read differently from the rest of their field.
KEY_KINDS: Final[dict[str, str]] = {
    LLM_OPERATION: "str",  # our own operation names, kept verbatim
    # seconds, converted to milliseconds
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: "seconds",
    GEN_AI_SERVER_TIME_TO_FIRST_TOKEN: "seconds",
    GEN_AI_SERVER_TTFT: "seconds",
}
#: Longest text accepted for a field (model, provider, session…); longer is a defect.
MAX_FIELD_LENGTH: Final = 512

#: Attribute keys (exact) that hold prompt or completion text: dropped unless content capture is on.
CONTENT_KEYS: Final[frozenset[str]] = frozenset(
    {
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.prompt",
        "gen_ai.completion",
        "input.value",
        "output.value",
        "llm.prompts",
        "llm.prompt",
        "llm.completion",
        "llm.input",
        "llm.output",
        "llm.function_call",
        "llm.choices",
        "embedding.text",
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
        "gen_ai.retrieval.documents",
        "gen_ai.retrieval.query.text",
        "gen_ai.content.completion.chunk",
        "llm.content.completion.chunk",
        "traceloop.entity.input",
        "traceloop.entity.output",
        # OpenLIT: reasoning text, tool arguments and results, image prompts and results
        "gen_ai.content.prompt",
        "gen_ai.content.completion",
        "gen_ai.content.reasoning",
        "gen_ai.content.revised_prompt",
        "gen_ai.tool.args",
        "gen_ai.tool.input",
        "gen_ai.tool.output",
        "gen_ai.response.image",
    }
)
#: Key prefixes that hold prompt or completion text (``gen_ai.prompt.0.content`` …).
CONTENT_PREFIXES: Final[tuple[str, ...]] = (
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "llm.input_messages.",
    "llm.output_messages.",
    "llm.prompts.",
    "embedding.embeddings.",
    "retrieval.documents.",
    "llm.prompt_template.",
    "llm.choices.",
    "input.images.",
    "output.images.",
    "input.documents.",
    "output.documents.",
    "reranker.input_documents.",
    "reranker.output_documents.",
)


def is_content_key(key: str) -> bool:
    """Whether an attribute key carries prompt, completion or embedding text."""
    return key in CONTENT_KEYS or key.startswith(CONTENT_PREFIXES)


if TYPE_CHECKING:
    from ._record import AttributeValue, LLMCall, TraceSpan

# (field, keys written) for the plain fields of a record: every key gets the field's value.
_WRITTEN: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("provider", (GEN_AI_PROVIDER_NAME, LLM_PROVIDER)),
    ("request_model", (GEN_AI_REQUEST_MODEL,)),
    ("model", (GEN_AI_RESPONSE_MODEL, LLM_MODEL)),
    ("session_id", (GEN_AI_CONVERSATION_ID,)),
    ("user_id", (USER_ID,)),
    ("agent_name", (GEN_AI_AGENT_NAME,)),
    ("route_name", (PLANO_ROUTE_NAME,)),
    ("is_streaming", (GEN_AI_REQUEST_STREAM, LLM_IS_STREAMING)),
    ("status_code", (HTTP_STATUS_CODE,)),
    ("error_type", (ERROR_TYPE, LLM_ERROR_TYPE)),
    ("input_tokens", (GEN_AI_USAGE_INPUT_TOKENS, LLM_INPUT_TOKENS)),
    ("output_tokens", (GEN_AI_USAGE_OUTPUT_TOKENS, LLM_OUTPUT_TOKENS)),
    ("total_tokens", (LLM_USAGE_TOTAL_TOKENS,)),
    ("cached_input_tokens", (GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,)),
    ("cache_creation_tokens", (GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,)),
    ("reasoning_tokens", (GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,)),
    ("duration_ms", (LLM_LATENCY_MS,)),
    ("ttft_ms", (LLM_TIME_TO_FIRST_TOKEN,)),
    ("cache_hit", (LLM_CACHE_HIT,)),
    ("routing_strategy", (ROUTING_STRATEGY,)),
    ("routing_reason", (ROUTING_SELECTION_REASON,)),
    ("cost_usd", (LLM_COST_USD,)),
    ("price_version", (AT_PRICE_VERSION,)),
)
# (field, key, factor) for fields a convention carries in another unit: the key gets the field's
# value times the factor (the GenAI conventions count time in seconds, our records milliseconds).
# The collector reads the exact milliseconds from the ``_WRITTEN`` key, which ranks first.
_WRITTEN_SCALED: Final[tuple[tuple[str, str, float], ...]] = (
    ("ttft_ms", GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, 0.001),
)


def span_name(call: LLMCall) -> str:
    """The span name of the GenAI conventions: ``"{operation} {model}"``."""
    return f"{call.operation} {call.request_model or call.model}"


def exception_event(
    error_type: str | None, message: str | None
) -> dict[str, AttributeValue] | None:
    """The attributes of the OTel ``exception`` event of a failed step, None without either."""
    if error_type is None and message is None:
        return None
    event: dict[str, AttributeValue] = {}
    if error_type is not None:
        event[EXCEPTION_TYPE] = error_type
    if message is not None:
        event[EXCEPTION_MESSAGE] = message
    return event


def call_attributes(call: LLMCall) -> dict[str, AttributeValue | tuple[str, ...]]:
    """The span attributes that carry ``call``: GenAI keys, RactoGateway ``llm.*`` keys, ours.

    The one place that turns a record into attributes: the tracer's SDK spans and the OTLP
    exporters both use it, and the collector reads the same keys back through
    :data:`FIELD_KEYS`, so a round trip gives back an equal record. ``call.attributes`` come
    first, so a known key always carries the record's own value. The error message travels as
    the span status description and the ``exception`` event (:func:`exception_event`).
    """
    attrs: dict[str, AttributeValue | tuple[str, ...]] = dict(call.attributes)
    attrs[GEN_AI_OPERATION_NAME] = GEN_AI_OPERATIONS.get(call.operation, call.operation)
    attrs[LLM_OPERATION] = call.operation
    values = call.__dict__
    for field, keys in _WRITTEN:
        value = values[field]
        if value is not None:
            for key in keys:
                attrs[key] = value
    for field, key, factor in _WRITTEN_SCALED:
        value = values[field]
        if value is not None:
            attrs[key] = value * factor
    if call.tags:
        attrs[TAG_TAGS] = call.tags
    attrs[LLM_TOOL_CALLS] = call.tool_calls
    if call.status == "cancelled":  # ok and error travel as the span status
        attrs[AT_STATUS] = call.status
    if call.span_id is None or call.call_id != call.span_id:
        attrs[REQUEST_ID] = call.call_id
    return attrs


def step_span_name(kind: str, name: str) -> str:
    """A step's span name: ``"{operation} {name}"`` for the GenAI kinds, else its name."""
    operation = STEP_OPERATIONS.get(kind)
    return name if operation is None else f"{operation} {name}"


def step_attributes(step: TraceSpan) -> dict[str, AttributeValue]:
    """The span attributes that carry a step (the one place, as :func:`call_attributes` is for
    calls): the GenAI agent and tool keys, the user and session keys, ours for the rest."""
    attrs: dict[str, AttributeValue] = dict(step.attributes)
    kind = step.kind
    operation = STEP_OPERATIONS.get(kind)
    if operation is not None:
        attrs[GEN_AI_OPERATION_NAME] = operation
    attrs[AT_SPAN_KIND] = kind
    if kind in ("agent", "workflow"):
        attrs[GEN_AI_AGENT_NAME] = step.name
    if step.agent_name is not None and kind != "agent":
        attrs[AT_AGENT_NAME] = step.agent_name
    if step.tool_name is not None:
        attrs[GEN_AI_TOOL_NAME] = step.tool_name
    if step.session_id is not None:
        attrs[GEN_AI_CONVERSATION_ID] = step.session_id
    if step.user_id is not None:
        attrs[USER_ID] = step.user_id
    if step.error_type is not None:
        attrs[ERROR_TYPE] = step.error_type
    if step.status == "cancelled":
        attrs[AT_STATUS] = step.status
    return attrs
