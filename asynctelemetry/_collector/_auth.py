"""Bearer-token authentication for the collector: a grpc.aio server interceptor.

Every call must carry ``authorization: Bearer <token>`` metadata (what OTel SDK exporters send
with ``OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer <token>"``). The comparison is constant
time (:func:`hmac.compare_digest`); a missing or wrong token is answered ``UNAUTHENTICATED`` and
counted. The token is never logged or put in an error message.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

import grpc

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["BearerTokenInterceptor"]


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses calls without the right bearer token.

    Args:
        token: the shared secret clients must present.
        on_denied: called once per refused call (the collector counts them).
    """

    def __init__(self, token: str, on_denied: Callable[[], None] | None = None) -> None:
        if not token:
            raise ValueError("auth_token must not be empty")
        self._expected = f"Bearer {token}".encode()
        self._on_denied = on_denied
        self._deny = grpc.unary_unary_rpc_method_handler(_unauthenticated)

    def allows(self, metadata: Any) -> bool:
        """Whether ``metadata`` (pairs of key, value) carries the expected token."""
        presented = b""
        for key, value in metadata or ():
            if key == "authorization":
                presented = value.encode() if isinstance(value, str) else bytes(value)
                break
        return hmac.compare_digest(presented, self._expected)

    async def intercept_service(
        self,
        continuation: Callable[[Any], Awaitable[Any]],
        handler_call_details: Any,
    ) -> Any:
        """Continue to the service when the token matches, else answer UNAUTHENTICATED."""
        if self.allows(handler_call_details.invocation_metadata):
            return await continuation(handler_call_details)
        if self._on_denied is not None:
            self._on_denied()
        return self._deny


async def _unauthenticated(request: object, context: grpc.aio.ServicerContext) -> None:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")
