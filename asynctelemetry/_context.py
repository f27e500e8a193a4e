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
from typing import TYPE_CHECKING, Any, Final, Self

from ._call import check_text
from ._exceptions import ConfigError
from ._record import MAX_ATTRIBUTE_LENGTH, MAX_ATTRIBUTES, checked_tags

if TYPE_CHECKING:
    from types import TracebackType

    from ._record import AttributeValue

__all__ = ["CallContext", "Scope", "current_scope"]


class Scope:
    """The values in force: session, route, user, tags and attributes (read by ``llm_call``)."""

    __slots__ = ("attributes", "route_name", "session_id", "tags", "user_id")

    def __init__(
        self,
        session_id: str | None,
        route_name: str | None,
        attributes: dict[str, AttributeValue],
        user_id: str | None = None,
        tags: tuple[str, ...] = (),
    ) -> None:
        self.session_id = session_id
        self.route_name = route_name
        self.attributes = attributes
        self.user_id = user_id
        self.tags = tags


#: The innermost ``tracer.context(...)`` block of this context, merged with the blocks around it.
current_scope: Final[contextvars.ContextVar[Scope | None]] = contextvars.ContextVar(
    "asynctelemetry_scope", default=None
)


class CallContext:
    """A block (``with`` or ``async with``) whose values every call started inside carries.

    Made by :meth:`AsyncTracer.context`. The same object may be entered again after it exits,
    and nested in itself; each exit restores what was in force at the matching entry.
    """

    __slots__ = ("_attributes", "_route_name", "_session_id", "_tags", "_tokens", "_user_id")

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
            self._tags = checked_tags(tags)
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
        self._session_id = session_id
        self._route_name = route_name
        self._user_id = user_id
        self._attributes = attributes
        self._tokens: list[contextvars.Token[Scope | None]] = []

    @property
    def session_id(self) -> str | None:
        """The session this block sets (``None``: inherited)."""
        return self._session_id

    @property
    def route_name(self) -> str | None:
        """The route this block sets (``None``: inherited)."""
        return self._route_name

    @property
    def user_id(self) -> str | None:
        """The user this block sets (``None``: inherited)."""
        return self._user_id

    @property
    def tags(self) -> tuple[str, ...]:
        """The tags this block adds to those of the blocks around it."""
        return self._tags

    def __enter__(self) -> Self:
        outer = current_scope.get()
        if outer is None:
            scope = Scope(
                self._session_id,
                self._route_name,
                dict(self._attributes),
                self._user_id,
                self._tags,
            )
        else:
            try:
                tags = checked_tags((*outer.tags, *self._tags)) if self._tags else outer.tags
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            scope = Scope(
                self._session_id if self._session_id is not None else outer.session_id,
                self._route_name if self._route_name is not None else outer.route_name,
                {**outer.attributes, **self._attributes},
                self._user_id if self._user_id is not None else outer.user_id,
                tags,
            )
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
        return (
            f"CallContext(session_id={self._session_id!r}, route_name={self._route_name!r}, "
            f"user_id={self._user_id!r}, tags={self._tags!r}, attributes={self._attributes!r})"
        )
