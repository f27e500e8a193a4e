"""Where and how a collector serves: address, TLS, bearer token and request limits, together.

The settings that travel together (as httpx's ``Timeout`` and ``Limits`` do), checked once when
the collector is made, so a bad one is a :class:`~asynctelemetry.ConfigError` naming it before
anything binds. Shared by the gRPC service and the OTLP/HTTP receiver.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .._exceptions import ConfigError, require_int
from .._http_limits import HttpLimits

if TYPE_CHECKING:
    from os import PathLike

__all__ = ["Serving"]


@dataclass(frozen=True, slots=True)
class Serving:
    """A collector's serving settings (see :class:`~asynctelemetry.AsyncCollector`'s arguments).

    Attributes:
        host: the interface to bind.
        port: the gRPC port asked for (0: any free one).
        http_port: the OTLP/HTTP port asked for, or None (gRPC only).
        tls: the certificate and key files, or None (plain text).
        auth_token: the bearer token every call must carry, or None.
        max_message_bytes: largest request accepted.
        backpressure_timeout: seconds a request waits for queue room before it is refused.
        retry_delay: seconds a refused client is asked to wait.
        http_limits: the OTLP/HTTP receiver's deadlines and caps.
    """

    host: str
    port: int
    http_port: int | None
    tls: tuple[Path, Path] | None
    auth_token: str | None
    max_message_bytes: int
    backpressure_timeout: float
    retry_delay: float
    http_limits: HttpLimits

    @classmethod
    def checked(
        cls,
        *,
        host: object,
        port: object,
        http_port: object,
        tls: tuple[str | PathLike[str] | None, str | PathLike[str] | None],
        auth_token: str | None,
        max_message_bytes: object,
        backpressure_timeout: float,
        retry_delay: float,
        http_limits: HttpLimits | None,
    ) -> Serving:
        """These settings, or a ``ConfigError`` naming the first that cannot work."""
        if http_limits is not None and not isinstance(http_limits, HttpLimits):
            raise ConfigError(f"http_limits must be an HttpLimits, not {http_limits!r}")
        cert, key = tls
        if (cert is None) != (key is None):
            raise ConfigError("tls_cert and tls_key go together")
        max_bytes = require_int("max_message_bytes", max_message_bytes, 1024)
        if not isinstance(host, str) or not host:
            raise ConfigError(
                "host must name an interface (127.0.0.1 by default; 0.0.0.0 or :: for every one)"
            )
        seconds = {"backpressure_timeout": backpressure_timeout, "retry_delay": retry_delay}
        for name, value in seconds.items():
            if not (isinstance(value, int | float) and 0 <= value < math.inf):
                raise ConfigError(f"{name} must be finite seconds >= 0, not {value!r}")
        if auth_token is not None and not auth_token:
            raise ConfigError("auth_token must not be empty")
        return cls(
            host=host,
            port=_port("port", port),
            http_port=None if http_port is None else _port("http_port", http_port),
            tls=(Path(cert), Path(key)) if cert and key else None,
            auth_token=auth_token,
            max_message_bytes=max_bytes,
            backpressure_timeout=backpressure_timeout,
            retry_delay=retry_delay,
            http_limits=http_limits or HttpLimits(),
        )


def _port(name: str, value: object) -> int:
    """A TCP port number (0: any free one), or ``ConfigError``."""
    number = require_int(name, value, 0)
    if number > 65535:
        raise ConfigError(f"{name} must be in 0..65535, not {number}")
    return number
