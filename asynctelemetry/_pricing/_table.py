"""The price table: overrides, then genai-prices, then the bundled supplement, memoised per name.

Layer 2. ``PriceTable.default()`` is one shared instance; ``with_overrides`` and ``from_file``
derive new tables that share the price data but keep their own memo. Each distinct
``(model, provider)`` is resolved once; after that :meth:`PriceTable.cost_of` is a dictionary hit
and a few multiplications (the hot path of the tracer and the collector).
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import threading
from collections.abc import Mapping
from importlib import resources
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Final, Unpack

from pydantic import ValidationError

from .._exceptions import ConfigError
from ._genai import _FALLBACK_PROVIDERS, PROVIDER_ALIASES, GenaiCatalog, genai_prices_version
from ._model import PRICED_TOKENS, ModelPricing, Rates, TokenCounts, cost_from_rates, rates_of
from ._names import candidates

if TYPE_CHECKING:
    from .._record import LLMCall

__all__ = ["FREE_FAILURES", "PriceTable", "bills_nothing", "default_models"]

#: A call's token counts, in :meth:`PriceTable.price_call`'s order.
_CALL_TOKENS: Final = attrgetter(*PRICED_TOKENS)

#: Most distinct (model, provider) pairs remembered by one table; past it the oldest are
#: forgotten first. Bounds memory when a collector receives spans with endless distinct names.
MAX_MEMO: Final = 8192
#: Most unknown names remembered (normalised: stripped, lowercased), apart from the memo, so
#: that a flood of unknown names neither costs a resolution each time it repeats (in any
#: spelling) nor pushes the known names out of the memo.
MAX_MISSES: Final = 65_536
#: Keys allowed in supplement entries besides the ModelPricing fields (provenance only).
_SUPPLEMENT_META: Final = frozenset({"provider", "source", "note"})
_Key = tuple[str, str | None]
#: Providers that bill nothing for a request they answer with an HTTP error (4xx/5xx: refused,
#: rate-limited, overloaded, failed): such a failed call with no usage costs $0. A failure of
#: any other provider, or one without an HTTP error status (a timeout, a dropped connection: the
#: model may have run), with no usage is unpriced: unknown, not zero (docs/pricing.md).
FREE_FAILURES: Final = frozenset(
    {
        "openai",
        "azure",
        "azure.ai.openai",
        "anthropic",
        "google",
        "gcp.gemini",
        "gcp.vertex_ai",
        "gcp.gen_ai",
    }
)


def bills_nothing(provider: str | None, status: str | None, status_code: int | None) -> bool:
    """Whether a call with no usage is known to cost nothing: it failed with an HTTP error
    status from a provider of :data:`FREE_FAILURES`."""
    if status != "error" or status_code is None or not 400 <= status_code < 600 or not provider:
        return False
    name = provider.lower()
    return PROVIDER_ALIASES.get(name, name) in FREE_FAILURES


class _PriceData:
    """The shared, lazily loaded price data: the genai-prices catalog and our supplement."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._catalog: GenaiCatalog | None = None
        self._supplement: dict[str, ModelPricing] | None = None
        self._flat: dict[int, ModelPricing | None] = {}
        self.resolutions = 0  # names resolved (not memo hits), by every table

    @property
    def loaded(self) -> bool:
        """Whether pricing needs no import, file read or lock any more (no lock taken here)."""
        return self._catalog is not None and self._supplement is not None

    def load(self) -> None:
        """Import genai-prices and read the supplement (about a second the first time): blocks,
        so it runs in a thread (:meth:`PriceTable.load`)."""
        catalog = self.catalog
        catalog.compile_matchers()
        for name in ("gpt-4o", "asynctelemetry-unknown-model"):  # first lookups warm its caches
            catalog.find(name, None)
        self.supplement  # noqa: B018 - the property reads it
        genai_prices_version()
        # The import left a few hundred thousand new objects: the full collection they are due
        # is made here, in the loading thread, not on the loop at some later allocation.
        gc.collect()

    @property
    def catalog(self) -> GenaiCatalog:
        if self._catalog is None:
            with self._lock:
                if self._catalog is None:
                    self._catalog = GenaiCatalog()
        return self._catalog

    @property
    def supplement(self) -> dict[str, ModelPricing]:
        if self._supplement is None:
            text = resources.files("asynctelemetry").joinpath("_prices_supplement.json").read_text()
            models = json.loads(text)["models"]
            self._supplement = {
                name.lower(): ModelPricing.model_validate(
                    {k: v for k, v in entry.items() if k not in _SUPPLEMENT_META}
                )
                for name, entry in models.items()
            }
        return self._supplement

    def from_genai(self, ref: str, hint: str | None) -> ModelPricing | None:
        catalog = self.catalog
        model = catalog.find(ref, catalog.provider_id(hint))
        if model is None:
            return None
        key = id(model)  # genai-prices' ModelInfo objects live as long as the module
        if key not in self._flat:
            self._flat[key] = catalog.pricing(model)
        return self._flat[key]


_DATA = _PriceData()


def _named(table: Mapping[str, ModelPricing], ref: str, hint: str | None) -> ModelPricing | None:
    if hint is not None and (found := table.get(f"{hint}/{ref}")) is not None:
        return found
    return table.get(ref)


class PriceTable:
    """Model prices with name resolution and a per-name memo.

    Resolution order for a model name: your overrides, then genai-prices (pydantic's maintained
    price database, bundled with the installed package, never fetched), then asynctelemetry's
    bundled supplement. Within each, the name is tried as given, without a provider path prefix,
    as a Bedrock id, without ``-latest`` and without a trailing date (see ``docs/pricing.md``).
    """

    __slots__ = (
        "__weakref__",
        "_misses",
        "_overrides",
        "_pricing",
        "_rates",
        "_suffix",
        "_version",
    )

    _default: PriceTable | None = None

    def __init__(
        self,
        overrides: Mapping[str, ModelPricing | Mapping[str, Any]] | None = None,
        *,
        _suffix: str = "",
    ) -> None:
        """A table over the default price data with ``overrides`` taking precedence.

        Raises:
            ConfigError: an override is not a valid price (negative, not finite, unknown key).
        """
        self._overrides = _validated(overrides or {})
        self._suffix = _suffix
        self._version: str | None = None
        self._rates: dict[_Key, Rates | None] = {}
        self._pricing: dict[_Key, ModelPricing | None] = {}
        self._misses: dict[_Key, None] = {}  # normalised names known to have no price

    @classmethod
    def default(cls) -> PriceTable:
        """The shared default table (genai-prices is imported on its first lookup, not here)."""
        if cls._default is None:
            cls._default = cls()
        return cls._default

    @property
    def version(self) -> str:
        """Version of the price data, for ``LLMCall.price_version``: ``"genai-prices X.Y.Z"``.

        ``+overrides:<sha256 prefix>`` is appended for tables with overrides, and
        ``+file:<sha256 prefix>`` for tables read from a file.
        """
        if self._version is None:  # read package metadata once: the tracer asks on every call
            self._version = f"genai-prices {genai_prices_version()}{self._suffix}"
        return self._version

    @property
    def loaded(self) -> bool:
        """Whether the price data is in memory, so that pricing a call does no import, no file
        read and takes no lock (see :meth:`load`)."""
        return _DATA.loaded

    def load(self) -> None:
        """Load the price data now: genai-prices' import and the bundled supplement, about a
        second the first time in a process, then nothing. It blocks: from an event loop, run it
        in a thread (``await asyncio.to_thread(table.load)``); tracers and collectors do that
        when they start. Without it, the first lookup loads the data."""
        _DATA.load()
        self.version  # noqa: B018 - reads the package metadata once

    def lookup(self, model: str, provider: str | None = None) -> ModelPricing | None:
        """The prices of ``model`` (``provider`` is a hint; wrong or unknown hints are ignored).

        Returns ``None`` for a model nobody prices. Each distinct pair is resolved once.
        """
        key = (model, provider)
        try:
            return self._pricing[key]
        except KeyError:
            return self._fill(key)[0]

    def cost_of(
        self, model: str, provider: str | None = None, **tokens: Unpack[TokenCounts]
    ) -> float | None:
        """The cost in USD of one call to ``model``, or ``None`` when its price is unknown (no
        fallback to another name: :meth:`price_call` is the rule calls are priced by).

        Token semantics: ``input_tokens`` includes cached reads and cache writes;
        ``output_tokens`` includes reasoning tokens (see ``docs/pricing.md``).

        Raises:
            ValueError: a count that is not None or an int >= 0.
        """
        return self.price_call(model, None, provider, **tokens)

    def price_call(
        self,
        model: str,
        request_model: str | None = None,
        provider: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cached_input_tokens: int | None = None,
        cache_creation_tokens: int | None = None,
        reasoning_tokens: int | None = None,
        *,
        status: str | None = None,
        status_code: int | None = None,
    ) -> float | None:
        """The one pricing rule: the cost of a call by its response ``model``, or, when the table
        does not know that name (a fine-tune, a new snapshot), by its ``request_model``.

        A call whose usage is unknown (no token count at all: a stream whose usage never came,
        one abandoned or never read) has no cost (``None``, unpriced), never ``0.0``; except a
        failed call (``status="error"``) answered with an HTTP error status by a provider that
        bills nothing for it (:func:`bills_nothing`), which costs ``0.0``.

        Every path prices through this method (the pipeline for the tracer, the collector and
        replay; ``reprice``; the metrics' ``record_request``), so the same call gets the same
        cost whichever way it arrives. ``None`` when neither model has a price. Each distinct
        name is resolved once; after that this is a dictionary hit and a few multiplications.

        Raises:
            ValueError: a count that is not None or an int >= 0.
        """
        if not (  # one test on the hot path; the loop below names the bad count
            (input_tokens is None or (input_tokens.__class__ is int and input_tokens >= 0))
            and (output_tokens is None or (output_tokens.__class__ is int and output_tokens >= 0))
            and (
                cached_input_tokens is None
                or (cached_input_tokens.__class__ is int and cached_input_tokens >= 0)
            )
            and (
                cache_creation_tokens is None
                or (cache_creation_tokens.__class__ is int and cache_creation_tokens >= 0)
            )
            and (
                reasoning_tokens is None
                or (reasoning_tokens.__class__ is int and reasoning_tokens >= 0)
            )
        ):
            for count in (
                input_tokens,
                output_tokens,
                cached_input_tokens,
                cache_creation_tokens,
                reasoning_tokens,
            ):
                if count is not None and (count.__class__ is not int or count < 0):
                    raise ValueError(f"token counts must be ints >= 0, got {count!r}")
        return self._checked_cost(
            model,
            request_model,
            provider,
            input_tokens,
            output_tokens,
            cached_input_tokens,
            cache_creation_tokens,
            reasoning_tokens,
            status,
            status_code,
        )

    def _checked_cost(
        self,
        model: str,
        request_model: str | None,
        provider: str | None,
        input_tokens: int | None,
        output_tokens: int | None,
        cached_input_tokens: int | None,
        cache_creation_tokens: int | None,
        reasoning_tokens: int | None,
        status: str | None,
        status_code: int | None,
        /,
    ) -> float | None:
        """:meth:`price_call` for counts already checked (ints >= 0 or None: a record's, a
        row's), every argument in order: the rule itself, which the pipeline prices by."""
        if (
            input_tokens is None
            and output_tokens is None
            and cached_input_tokens is None
            and cache_creation_tokens is None
            and reasoning_tokens is None
        ):
            return 0.0 if bills_nothing(provider, status, status_code) else None
        memo = self._rates
        try:
            rates = memo[(model, provider)]
        except KeyError:
            rates = self._fill((model, provider))[1]
        if rates is None:
            if not request_model or request_model == model:
                return None
            try:
                rates = memo[(request_model, provider)]
            except KeyError:
                rates = self._fill((request_model, provider))[1]
            if rates is None:
                return None
        return cost_from_rates(
            rates,
            input_tokens,
            output_tokens,
            cached_input_tokens,
            cache_creation_tokens,
            reasoning_tokens,
        )

    def cost(self, call: LLMCall) -> float | None:
        """The cost of a recorded call by :meth:`price_call`'s rule (``request_model`` when
        ``model`` has no price)."""
        return self.price_call(
            call.model,
            call.request_model,
            call.provider,
            *_CALL_TOKENS(call),
            status=call.status,
            status_code=call.status_code,
        )

    def with_overrides(
        self, overrides: Mapping[str, ModelPricing | Mapping[str, Any]]
    ) -> PriceTable:
        """A new table whose ``overrides`` (model name → prices) win over everything else.

        An override named ``gpt-4o`` also covers ``openai/gpt-4o`` and dated snapshots such as
        ``gpt-4o-2024-08-06``; name ``azure/gpt-4o`` to override one provider only.

        Raises:
            ConfigError: a price is negative, not finite, or has an unknown field.
        """
        added = _validated(overrides)
        return self._derive(added, f"+overrides:{_digest(added)}")

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> PriceTable:
        """The default table with overrides read from a JSON or TOML file.

        The file maps model names to prices, at top level or under a ``models`` key::

            {"models": {"my-model": {"input_per_million": 1.0, "output_per_million": 2.0}}}

        This reads the file synchronously: call it at start-up, not inside a busy event loop.

        Raises:
            ConfigError: the file is missing or unreadable, not valid JSON/TOML, or a price in it
                is not valid; the message names the path and the reason.
        """
        where = os.fspath(path)
        try:
            with open(where, "rb") as handle:
                raw = handle.read()
        except OSError as exc:
            raise ConfigError(
                f"price file {where}: cannot read it ({exc.strerror or exc})"
            ) from exc
        data = _parse(where, raw)
        try:
            added = _validated(data)
        except ConfigError as exc:
            raise ConfigError(f"price file {where}: {exc}") from exc
        digest = hashlib.sha256(raw).hexdigest()[:12]
        return cls.default()._derive(added, f"+file:{digest}")

    # -- internals ------------------------------------------------------------------------

    def _derive(self, added: dict[str, ModelPricing], suffix: str) -> PriceTable:
        table = PriceTable(_suffix=self._suffix + suffix)
        table._overrides = {**self._overrides, **added}
        return table

    def is_resolved(self, model: str, provider: str | None = None) -> bool:
        """Whether pricing ``model`` is a dictionary hit (resolved before, found or not)."""
        return (model, provider) in self._rates or _normalised(model, provider) in self._misses

    def _fill(self, key: _Key) -> tuple[ModelPricing | None, Rates | None]:
        normal = _normalised(*key)
        if normal in self._misses:
            return None, None
        pricing = self._resolve(*key)
        _DATA.resolutions += 1
        if not _DATA.resolutions % MAX_MEMO and _DATA._catalog is not None:
            _DATA.catalog.reset_caches()  # they grow with every distinct name asked
        if pricing is None:
            if len(self._misses) >= MAX_MISSES:
                del self._misses[next(iter(self._misses))]  # the oldest
            self._misses[normal] = None
            return None, None
        rates = rates_of(pricing)
        if len(self._pricing) >= MAX_MEMO:
            oldest = next(iter(self._pricing))
            del self._pricing[oldest], self._rates[oldest]
        self._pricing[key] = pricing
        self._rates[key] = rates
        return pricing, rates

    def _resolve(self, model: str, provider: str | None) -> ModelPricing | None:
        if not isinstance(model, str) or not model.strip():
            return None
        names = candidates(model, provider)
        if self._overrides:
            for ref, hint in names:
                if (found := _named(self._overrides, ref, hint)) is not None:
                    return found
        for ref, hint in names:
            if (found := _DATA.from_genai(ref, hint)) is not None:
                return found
        supplement = _DATA.supplement
        for ref, hint in names:
            if (found := _named(supplement, ref, hint)) is not None:
                return found
        return None


def _normalised(model: object, provider: object) -> _Key:
    """The key a name resolves by (:func:`~._names.candidates` strips and lowercases)."""
    name = model.strip().lower() if isinstance(model, str) else ""
    hint = provider.strip().lower() if isinstance(provider, str) and provider.strip() else None
    return name, hint


def _validated(overrides: Mapping[str, Any]) -> dict[str, ModelPricing]:
    if not isinstance(overrides, Mapping):
        raise ConfigError(
            f"price overrides must map model names to prices, got {type(overrides).__name__}"
        )
    out: dict[str, ModelPricing] = {}
    for name, value in overrides.items():
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"price override names must be non-empty strings, got {name!r}")
        if isinstance(value, ModelPricing):
            out[name.strip().lower()] = value
            continue
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"price for {name!r} must be a table of rates, got {type(value).__name__}"
            )
        try:
            out[name.strip().lower()] = ModelPricing.model_validate(dict(value))
        except ValidationError as exc:
            reasons = "; ".join(
                f"{'.'.join(map(str, err['loc'])) or 'value'}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(f"price for {name!r} is not valid: {reasons}") from exc
    return out


def _digest(overrides: dict[str, ModelPricing]) -> str:
    canonical = json.dumps(
        {name: pricing.model_dump(mode="json") for name, pricing in sorted(overrides.items())},
        sort_keys=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:8]


def _parse(where: str, raw: bytes) -> Mapping[str, Any]:
    try:
        text = raw.decode("utf-8")
        if where.lower().endswith(".toml"):
            import tomllib

            data: Any = tomllib.loads(text)
        else:
            data = json.loads(text, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError, TOMLDecodeError
        kind = "TOML" if where.lower().endswith(".toml") else "JSON"
        raise ConfigError(f"price file {where}: not valid {kind} ({exc})") from exc
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"price file {where}: expected a table of models, got {type(data).__name__}"
        )
    models = data.get("models", data)
    if not isinstance(models, Mapping):
        raise ConfigError(f"price file {where}: 'models' must be a table of models")
    return models


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a price")


def default_models() -> dict[str, ModelPricing]:
    """Every model the default table knows, by genai-prices id (first parties first) and
    supplement name, lowercased; built on first use."""
    catalog = _DATA.catalog
    order = {name: i for i, name in enumerate(_FALLBACK_PROVIDERS)}
    ranked = sorted(
        catalog.iter_models(), key=lambda item: order.get(item[0], len(order))
    )  # first parties first; sorted() is stable, so genai-prices' order otherwise
    everything: dict[str, ModelPricing] = {}
    for _, model in ranked:
        name = model.id.lower()
        if name not in everything and (pricing := catalog.pricing(model)) is not None:
            everything[name] = pricing
    for name, pricing in _DATA.supplement.items():
        everything.setdefault(name, pricing)
    return everything
