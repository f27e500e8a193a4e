"""``tracer.context(...)``: values every call started inside a block carries.

Layer 5 (producer side). The values live in one :class:`contextvars.ContextVar`, so they follow
``await`` and are copied into tasks created inside the block (``asyncio.create_task``,
``TaskGroup``), and a task created elsewhere does not see them. Blocks nest: an inner block's
session, route, user and attributes override the outer block's, the rest is inherited; tags add
up (the outer block's first). Arguments given to ``llm_call`` itself win over the block's.
"""

from __future__ import annotations

import contextvars
import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final, Self

from ._call import check_text
from ._exceptions import ConfigError
from ._record import MAX_ATTRIBUTE_LENGTH, MAX_ATTRIBUTES, checked_tags

if TYPE_CHECKING:
    from types import TracebackType

    from ._record import AttributeValue

__all__ = ["CallContext", "Scope", "current_scope"]


@dataclass(frozen=True, slots=True)
class Scope:
    """The values in force: session, route, user, tags and attributes (read by ``llm_call``)."""

    session_id: str | None
    route_name: str | None
    attributes: dict[str, AttributeValue]
    user_id: str | None = None
    tags: tuple[str, ...] = ()

    def within(self, outer: Scope | None) -> Scope:
        """These values inside ``outer``'s block: this block's session, route, user and
        attributes win, the rest is inherited; tags add up (the outer block's first)."""
        if outer is None:
            return replace(self, attributes=dict(self.attributes))
        try:
            tags = checked_tags((*outer.tags, *self.tags)) if self.tags else outer.tags
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return Scope(
            self.session_id if self.session_id is not None else outer.session_id,
            self.route_name if self.route_name is not None else outer.route_name,
            {**outer.attributes, **self.attributes},
            self.user_id if self.user_id is not None else outer.user_id,
            tags,
        )


#: The innermost ``tracer.context(...)`` block of this context, merged with the blocks around it.
current_scope: Final[contextvars.ContextVar[Scope | None]] = contextvars.ContextVar(
    "asynctelemetry_scope", default=None
)


class CallContext:
    """A block (``with`` or ``async with``) whose values every call started inside carries.

    Made by :meth:`AsyncTracer.context`. The same object may be entered again after it exits,
    and nested in itself; each exit restores what was in force at the matching entry.
    """

    __slots__ = ("_own", "_tokens")

    def __init__(
        self,
        session_id: str | None,
        route_name: str | None,
        attributes: dict[str, AttributeValue],
        user_id: str | None = None,
        tags: object = (),
    ) -> None:
        try:
            if session_id is not None:
                session_id = check_text("session_id", session_id)
            if route_name is not None:
                route_name = check_text("route_name", route_name)
            if user_id is not None:
                user_id = check_text("user_id", user_id)
            checked = checked_tags(tags)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if len(attributes) > MAX_ATTRIBUTES:
            raise ConfigError(f"at most {MAX_ATTRIBUTES} attributes")
        for key, value in attributes.items():
            if not isinstance(value, str | int | float | bool):
                raise ConfigError(
                    f"attribute {key!r} must be str, int, float or bool, got {type(value).__name__}"
                )
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"attribute {key!r} must be finite")
            if isinstance(value, str) and len(value) > MAX_ATTRIBUTE_LENGTH:
                raise ConfigError(f"attribute {key!r} is longer than {MAX_ATTRIBUTE_LENGTH}")
        self._own = Scope(session_id, route_name, attributes, user_id, checked)
        self._tokens: list[contextvars.Token[Scope | None]] = []

    @property
    def session_id(self) -> str | None:
        """The session this block sets (``None``: inherited)."""
        return self._own.session_id

    @property
    def route_name(self) -> str | None:
        """The route this block sets (``None``: inherited)."""
        return self._own.route_name

    @property
    def user_id(self) -> str | None:
        """The user this block sets (``None``: inherited)."""
        return self._own.user_id

    @property
    def tags(self) -> tuple[str, ...]:
        """The tags this block adds to those of the blocks around it."""
        return self._own.tags

    def __enter__(self) -> Self:
        scope = self._own.within(current_scope.get())
        self._tokens.append(current_scope.set(scope))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        token = self._tokens.pop()
        try:
            current_scope.reset(token)
        except ValueError:
            # Exited in another context than the one it was entered in (a generator resumed
            # elsewhere): that context goes away with its value.
            pass

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(self, *exc_info: Any) -> None:
        self.__exit__(*exc_info)

    def __repr__(self) -> str:
        own = self._own
        return (
            f"CallContext(session_id={own.session_id!r}, route_name={own.route_name!r}, "
            f"user_id={own.user_id!r}, tags={own.tags!r}, attributes={own.attributes!r})"
        )
