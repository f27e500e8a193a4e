"""Did you mean: the closest of the names a store holds to a filter value that matched nothing.

One helper for every face: the CLI's ``--model`` and the dashboard's model and provider filters
ask :func:`known_values` and :func:`closest`; option names (store URLs, CLI flags) use
:func:`closest` too.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["HINTED", "closest", "known_values"]

#: Filters that get hints → the ``summary(by=...)`` groups whose keys are their values (a
#: model filter matches the model asked for or the one that answered).
HINTED: Final = {"model": ("model", "request_model"), "provider": ("provider",)}


def closest(given: str, known: Iterable[str], *, n: int = 3, cutoff: float = 0.6) -> list[str]:
    """Up to ``n`` of ``known``, closest to ``given`` first (difflib's ratio >= ``cutoff``)."""
    return difflib.get_close_matches(given, sorted(set(known)), n=n, cutoff=cutoff)


async def known_values(store: Any, field: str, **filters: Any) -> set[str]:
    """The values of ``field`` (a key of :data:`HINTED`) among the calls that pass ``filters``
    (read through ``summary``: rollups serve a large window)."""
    return {
        row.key
        for by in HINTED[field]
        for row in await store.summary(by=by, **filters)
        if row.key is not None
    }
