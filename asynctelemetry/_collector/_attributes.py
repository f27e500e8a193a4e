"""A span's raw attributes → checked field values and kept extras, mostly in C.

Every serialized ``KeyValue`` (the lean parser leaves them as bytes, see :mod:`._wire`) is
looked up in a cache of what it gave before: an entry ``(slot, value)`` where the slot says what
the attribute sets, and the value is already checked. A span's entries form a dict, ``slot →
value``; when no two attributes share a slot and none counts a defect, the tuple of its slots (the
span's *shape*: instrumentations write the same keys in the same order) indexes a compiled
:class:`_Plan` that reads every field and extra with two ``itemgetter`` calls. Building the dict,
the shape and the plan's reads happen in C; Python runs only for attributes seen for the first
time (:meth:`_AttributeCache.__missing__`). Anything unusual (duplicate keys, defects, content
dropped by key) falls back to :func:`collect_slowly`, the same rules one attribute at a time.

Slots: a :class:`_Slot` for a field at a precedence rank (from
:data:`~asynctelemetry._conventions.FIELD_KEYS`), the key text for an extra attribute, the key
bytes for an attribute that is dropped (content, empty values), :data:`SPAN_KIND` and
:data:`MODEL_JSON` for OpenInference's markers, or a fresh :class:`_Counted` for a value that
counts a defect each time it is seen (never cached).
"""

from __future__ import annotations

import json
import math
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Final

from .._conventions import (
    FIELD_KEYS,
    FIELD_KINDS,
    KEY_KINDS,
    MAX_FIELD_LENGTH,
    MODEL_JSON_KEYS,
    OPENINFERENCE_SPAN_KIND,
    OPERATION_ALIASES,
    is_content_key,
)
from .._record import (
    MAX_ATTRIBUTE_LENGTH,
    MAX_ATTRIBUTES,
    MAX_DURATION_MS,
    MAX_TOKENS,
    bounded_message,
    checked_tags,
)
from ._wire import TOO_DEEP, decode_value, split_key

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, MutableMapping

__all__ = [
    "EMPTY_PLAN",
    "Collected",
    "attribute_cache",
    "collect",
    "collect_slowly",
    "lookup",
    "plan_of",
]

_STATUSES: Final = frozenset({"ok", "error", "cancelled"})


class _Defect:
    """A reader's verdict on a bad value; its name is the defect kind counted in the stats."""

    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        self.kind = kind


WRONG_TYPE: Final = _Defect("wrong_type")
NEGATIVE: Final = _Defect("negative")
TOO_LARGE: Final = _Defect("too_large")
NON_FINITE: Final = _Defect("non_finite")
TOO_LONG: Final = _Defect("too_long")
BAD_VALUE: Final = _Defect("bad_value")
_ABSENT: Final = _Defect("absent")  # an empty string: as if the key were not there


# -- readers: a decoded AnyValue → checked value or a _Defect --------------------------------------
def _number(value: object) -> float | int | _Defect:
    kind = value.__class__
    if kind is int:
        return value  # type: ignore[return-value]
    if kind is float:
        return value if math.isfinite(value) else NON_FINITE  # type: ignore[arg-type,return-value]
    if kind is str:  # some gateways send numbers as text
        try:
            parsed = float(value)  # type: ignore[arg-type]
        except ValueError:
            return WRONG_TYPE
        return parsed if math.isfinite(parsed) else NON_FINITE
    return WRONG_TYPE


def _read_tokens(value: object) -> int | _Defect:
    if value.__class__ is not int:
        read = _number(value)
        if read.__class__ is _Defect:
            return read
        if read != int(read):  # type: ignore[arg-type]
            return WRONG_TYPE
        value = int(read)
    return _bounded(value, MAX_TOKENS)  # type: ignore[return-value]


def _bounded(number: float, most: float) -> float | _Defect:
    """``number`` when it is within ``0 … most``, else the defect it is."""
    if number < 0:
        return NEGATIVE
    if number > most:
        return TOO_LARGE
    return number


def _millis(number: float) -> float | _Defect:
    return _bounded(number, MAX_DURATION_MS)


def _read_millis(value: object) -> float | _Defect:
    read = _number(value)
    return read if isinstance(read, _Defect) else _millis(float(read))


def _read_seconds(value: object) -> float | _Defect:
    read = _number(value)
    if read.__class__ is _Defect:
        return read
    return _millis(float(read) * 1000.0)  # type: ignore[arg-type]


def _read_usd(value: object) -> float | _Defect:
    read = _number(value)
    if read.__class__ is _Defect:
        return read
    return NEGATIVE if read < 0 else float(read)  # type: ignore[operator,arg-type]


def _read_str(value: object) -> str | _Defect:
    if value.__class__ is not str:
        return _ABSENT if value is None else WRONG_TYPE
    if not value:
        return _ABSENT
    return value if len(value) <= MAX_FIELD_LENGTH else TOO_LONG


def _read_operation(value: object) -> str | _Defect:
    text = _read_str(value)
    return text if isinstance(text, _Defect) else OPERATION_ALIASES.get(text, text)


def _read_bool(value: object) -> bool | _Defect:
    return value if value.__class__ is bool else WRONG_TYPE


def _read_http(value: object) -> int | _Defect:
    read = _read_tokens(value)
    if read.__class__ is _Defect:
        return read
    return read if read <= 999 else BAD_VALUE  # type: ignore[operator]


def _read_status(value: object) -> str | _Defect:
    text = _read_str(value)
    if text.__class__ is _Defect:
        return text
    return text if text in _STATUSES else BAD_VALUE


def _read_tags(value: object) -> tuple[str, ...] | _Defect:
    if value.__class__ is str:
        text: str = value
        if not text:
            return _ABSENT
        if text.startswith("["):  # a JSON array sent as text
            try:
                value = json.loads(text)
            except (ValueError, RecursionError):
                return BAD_VALUE
        else:
            value = [text]
    if value.__class__ is not list:
        return _ABSENT if value is None else WRONG_TYPE
    try:
        tags = checked_tags(value)
    except ValueError:
        return BAD_VALUE
    return tags or _ABSENT


def _read_message(value: object) -> str | _Defect:
    if value.__class__ is not str:
        return _ABSENT if value is None else WRONG_TYPE
    return bounded_message(value) or _ABSENT


_READERS: Final[dict[str, Callable[[object], Any]]] = {
    "tags": _read_tags,
    "message": _read_message,
    "str": _read_str,
    "operation": _read_operation,
    "tokens": _read_tokens,
    "millis": _read_millis,
    "seconds": _read_seconds,
    "usd": _read_usd,
    "bool": _read_bool,
    "http": _read_http,
    "status": _read_status,
}


# -- slots ----------------------------------------------------------------------------------------
class _Slot:
    """A field set at a precedence rank (0 wins), or a marker (field None)."""

    __slots__ = ("field", "rank")

    def __init__(self, field: str | None, rank: int) -> None:
        self.field = field
        self.rank = rank

    def __repr__(self) -> str:
        return f"_Slot({self.field!r}, {self.rank})"


#: OpenInference's ``openinference.span.kind`` (value: the decoded AnyValue).
SPAN_KIND: Final = _Slot(None, 0)
#: One of the invocation-parameters JSON keys that may name the model.
MODEL_JSON: Final = _Slot(None, 1)


class _Counted:
    """A fresh slot per sighting: defects to count, and what the attribute still gives."""

    __slots__ = ("inner", "kind")

    def __init__(self, kind: str, inner: tuple[object, object] | None = None) -> None:
        self.kind = kind
        self.inner = inner


def _compile() -> dict[bytes, tuple[_Slot, Callable[[object], Any]]]:
    """The one lookup built from the tables: attribute key (UTF-8) → (slot, reader)."""
    spec: dict[bytes, tuple[_Slot, Callable[[object], Any]]] = {}
    for field, keys in FIELD_KEYS.items():
        for rank, key in enumerate(keys):
            raw = key.encode()
            if raw in spec:
                raise RuntimeError(f"{key!r} is listed for two fields")
            spec[raw] = (_Slot(field, rank), _READERS[KEY_KINDS.get(key, FIELD_KINDS[field])])
    return spec


_SPEC: Final = _compile()
_SPAN_KIND_KEY: Final = OPENINFERENCE_SPAN_KIND.encode()
_MODEL_JSON_KEYS: Final = frozenset(key.encode() for key in MODEL_JSON_KEYS)


class _KeyCache(dict[bytes, tuple[str, bool]]):
    """Unknown keys seen before: bytes → (text, is a content key). Bounded."""

    __slots__ = ("size",)

    def __init__(self, size: int = 8192) -> None:
        super().__init__()
        self.size = size

    def __missing__(self, raw: bytes) -> tuple[str, bool]:
        text = raw.decode(errors="replace")
        entry = (text, is_content_key(text))
        if len(self) < self.size:
            self[raw] = entry
        return entry


_KEYS: Final = _KeyCache()


def _extra_value(value: object) -> tuple[object, str | None]:
    """An unknown attribute's decoded value as (value kept or None, defect kind or None)."""
    kind = value.__class__
    if kind is str:
        if len(value) > MAX_ATTRIBUTE_LENGTH:  # type: ignore[arg-type]
            return value[:MAX_ATTRIBUTE_LENGTH], "attribute_truncated"  # type: ignore[index]
        return value, None
    if kind is int or kind is bool:
        return value, None
    if kind is float:
        return (value, None) if math.isfinite(value) else (None, "non_finite")  # type: ignore[arg-type]
    if value is TOO_DEEP:
        return None, "too_deep"
    if kind is list and all(
        item.__class__ in (str, int, bool) or (item.__class__ is float and math.isfinite(item))
        for item in value  # type: ignore[attr-defined]
    ):
        text = json.dumps(value, ensure_ascii=False)
        if len(text) <= MAX_ATTRIBUTE_LENGTH:
            return text, None
    if value is not None:
        return None, "attribute_unsupported"
    return None, None


def _decode(raw: bytes, capture_content: bool) -> tuple[tuple[object, object], bytes]:
    """The ``(slot, value)`` entry of one serialized attribute (see the module docstring), and
    its key."""
    key, end = split_key(raw)
    if not key:
        return (_Counted("malformed_attribute"), None), key
    spec = _SPEC.get(key)
    if spec is not None:
        slot, reader = spec
        value = reader(decode_value(raw, end))
        if value.__class__ is _Defect:
            return ((key, None) if value is _ABSENT else (_Counted(value.kind), None)), key
        return (slot, value), key
    if key == _SPAN_KIND_KEY:
        return (SPAN_KIND, decode_value(raw, end)), key
    if key in _MODEL_JSON_KEYS:
        return (MODEL_JSON, decode_value(raw, end)), key
    text, content = _KEYS[key]
    if content and not capture_content:
        return (key, None), key
    kept, defect = _extra_value(decode_value(raw, end))
    if defect is not None:
        return (_Counted(defect, None if kept is None else (text, kept)), None), key
    return ((key, None) if kept is None else (text, kept)), key


#: Serialized attributes (key and value) up to this size are remembered, with what they gave.
_CACHED_ATTRIBUTE_BYTES: Final = 160
_CACHE_ENTRIES: Final = 16_384
#: Values remembered per key: past this, a key's values are taken not to repeat (response ids,
#: request ids) and are decoded each time rather than crowd the others out of the cache.
_ENTRIES_PER_KEY: Final = 4096


class _AttributeCache(dict[bytes, tuple[object, object]]):
    """Raw ``KeyValue`` bytes → ``(slot, value)``; a miss decodes, and keeps what may repeat.

    Most attributes repeat exactly (operation, provider, models, server address, app keys, token
    counts), so most need no decoding at all. A key stops being remembered after
    ``_ENTRIES_PER_KEY`` values; full, the cache starts again.
    """

    __slots__ = ("capture_content", "per_key", "unique")

    def __init__(self, capture_content: bool) -> None:
        super().__init__()
        self.capture_content = capture_content
        self.per_key: dict[bytes, int] = {}
        #: Keys of kept extras no longer remembered (their values do not repeat: response
        #: ids): key bytes → the extra's name. Their short string values skip the general
        #: decoding; anything else takes it (:func:`_decode`).
        self.unique: dict[bytes, str] = {}

    def __missing__(self, raw: bytes) -> tuple[object, object]:
        size = raw[1] if len(raw) > 2 and raw[0] == 0x0A else 0x80
        if size < 0x80:
            name = self.unique.get(raw[2 : 2 + size])
            if name is not None:
                value = decode_value(raw, 2 + size)
                if value.__class__ is str and len(value) <= MAX_ATTRIBUTE_LENGTH:
                    return name, value
        entry, key = _decode(raw, self.capture_content)
        if entry[0].__class__ is _Counted or len(raw) > _CACHED_ATTRIBUTE_BYTES:
            return entry
        kept = self.per_key.get(key, 0)
        if kept >= _ENTRIES_PER_KEY:
            if entry[0].__class__ is str and entry[1].__class__ is str:
                self.unique[key] = entry[0]
            return entry
        if len(self) >= _CACHE_ENTRIES or len(self.per_key) >= _CACHE_ENTRIES:
            self.clear()
            self.per_key.clear()
            self.unique.clear()
            kept = 0
        self.per_key[key] = kept + 1
        self[raw] = entry
        return entry


_CACHES: Final = {False: _AttributeCache(False), True: _AttributeCache(True)}


def attribute_cache(capture_content: bool) -> _AttributeCache:
    """The process-wide attribute cache for one content setting."""
    return _CACHES[capture_content]


# -- plans -------------------------------------------------------------------------------------
def _getter(keys: tuple[int, ...]) -> Callable[[tuple[object, ...]], tuple[object, ...]]:
    """``itemgetter`` that always returns a tuple."""
    if len(keys) > 1:
        return itemgetter(*keys)
    if keys:
        only = keys[0]
        return lambda d: (d[only],)
    return lambda d: ()


class _Plan:
    """How to read spans of one shape: the position giving each field, the extras kept."""

    __slots__ = (
        "builder",
        "dropped",
        "extra_names",
        "extra_positions",
        "extras",
        "fields",
        "model_json",
        "operation_rank",
        "positions",
        "size",
        "span_kind",
        "values",
    )

    def __init__(self, slots: tuple[object, ...]) -> None:
        best: dict[str, tuple[int, int]] = {}  # field → (rank, position)
        extras: list[str] = []
        positions: list[int] = []
        self.span_kind: int | None = None
        self.model_json: int | None = None
        for position, slot in enumerate(slots):
            if slot.__class__ is _Slot:
                field = slot.field
                if field is None:
                    if slot is SPAN_KIND:
                        self.span_kind = position
                    else:
                        self.model_json = position
                elif field not in best or slot.rank < best[field][0]:
                    best[field] = (slot.rank, position)
            elif slot.__class__ is str and len(extras) < MAX_ATTRIBUTES:
                extras.append(slot)
                positions.append(position)
        self.size = len(slots)
        #: Field → position of the value that gives it.
        self.positions = {field: position for field, (_, position) in best.items()}
        self.fields = tuple(best)
        self.values = _getter(tuple(self.positions.values()))
        self.extra_names = tuple(extras)
        self.extra_positions = tuple(positions)
        self.extras = _getter(self.extra_positions)
        #: What the converter compiled for this shape (see ``_convert``), once it has.
        self.builder: Any = None
        self.dropped = sum(slot.__class__ is str for slot in slots) - len(extras)
        operation = best.get("operation")
        self.operation_rank = None if operation is None else operation[0]


def _plan(slots: tuple[object, ...]) -> _Plan | None:
    """The plan for a new shape, or None when it needs :func:`collect_slowly`: a slot seen
    twice (a repeated key) or a defect to count. Plans are remembered, but not for shapes with
    a fresh defect slot (they never repeat)."""
    if len(set(slots)) != len(slots):
        plan = None
    elif all(slot.__class__ in _PLAIN for slot in slots):
        plan = _Plan(slots)
    else:
        return None
    if len(_PLANS) >= _MAX_PLANS:
        _PLANS.clear()
    _PLANS[slots] = plan
    return plan


_PLANS: Final[dict[tuple[object, ...], _Plan | None]] = {}
_MAX_PLANS: Final = 4096
_PLAIN: Final = frozenset((_Slot, str, bytes))
_NEW: Final = _Plan(())

#: (fields found, kept extras or None, span kind, invocation JSON, rank of the operation key).
Collected = tuple[dict[str, Any], dict[str, object] | None, object, object, int | None]
#: The plan of spans without attributes.
EMPTY_PLAN: Final = _Plan(())


def lookup(attributes: Iterable[bytes], cache: _AttributeCache) -> tuple[_Plan | None, Any]:
    """``(plan, values)`` for a span of a planned shape (the values in attribute order), or
    ``(None, entries)`` for one that needs :func:`collect_slowly`."""
    return plan_of(list(map(cache.__getitem__, attributes)))


def plan_of(entries: list[tuple[object, object]]) -> tuple[_Plan | None, Any]:
    """:func:`lookup` for a span's entries already read through the cache (a wide span is
    read in chunks, the event loop getting a turn between them)."""
    if not entries:
        return EMPTY_PLAN, ()
    slots, values = zip(*entries, strict=True)
    plan = _PLANS.get(slots, _NEW)
    if plan is _NEW:
        plan = _plan(slots)
    if plan is None:
        return None, entries
    return plan, values


def collect(
    attributes: Iterable[bytes], cache: _AttributeCache, defects: MutableMapping[str, int]
) -> Collected:
    """Read a span's serialized attributes: for each field the first valid key by precedence,
    the extras to keep (at most ``MAX_ATTRIBUTES``, in order), OpenInference's markers.

    Defects are counted into ``defects`` by kind.
    """
    plan, values = lookup(attributes, cache)
    if plan is None:
        return collect_slowly(values, defects)
    if plan is EMPTY_PLAN:
        return {}, None, None, None, None
    if plan.dropped:
        defects["attributes_dropped"] = defects.get("attributes_dropped", 0) + plan.dropped
    return (
        dict(zip(plan.fields, plan.values(values), strict=True)),
        dict(zip(plan.extra_names, plan.extras(values), strict=True)) if plan.extra_names else None,
        None if plan.span_kind is None else values[plan.span_kind],
        None if plan.model_json is None else values[plan.model_json],
        plan.operation_rank,
    )


def collect_slowly(
    entries: list[tuple[object, object]], defects: MutableMapping[str, int]
) -> Collected:
    """:func:`collect` one attribute at a time: duplicate keys, defects, dropped content."""
    found: dict[str, Any] = {}
    ranks: dict[str, int] = {}
    extra: dict[str, object] | None = None
    span_kind: object = None
    model_json: object = None
    for entry in entries:
        slot, value = entry
        if slot.__class__ is _Counted:
            kind = slot.kind
            defects[kind] = defects.get(kind, 0) + 1
            if slot.inner is None:
                continue
            slot, value = slot.inner
        if slot.__class__ is _Slot:
            field = slot.field
            if field is not None:
                if slot.rank < ranks.get(field, 99):
                    found[field] = value
                    ranks[field] = slot.rank
            elif slot is SPAN_KIND:
                span_kind = value
            elif model_json is None:
                model_json = value
        elif slot.__class__ is str:
            if extra is None:
                extra = {slot: value}
            elif len(extra) < MAX_ATTRIBUTES:
                extra[slot] = value
            else:
                defects["attributes_dropped"] = defects.get("attributes_dropped", 0) + 1
    return found, extra, span_kind, model_json, ranks.get("operation")
