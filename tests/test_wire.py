"""Wire helpers: varints, RetryInfo, gRPC endpoints and the retry rule, checked against the
protobuf library's own encoding of the same messages."""

from __future__ import annotations

import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from asynctelemetry import ConfigError
from asynctelemetry._wire import (
    RETRY_INFO_KEY,
    STATUS_DETAILS_KEY,
    GrpcTarget,
    decode_varint,
    encode_varint,
    grpc_target,
    is_retryable,
    retry_delay_from_metadata,
    retry_info,
    rpc_status,
)


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**32, 2**63 - 1])
def test_varints_round_trip_as_protobuf_writes_them(value: int) -> None:
    """encode_varint writes what protobuf writes (a Duration's seconds field), decode reads it."""
    expected = duration_pb2.Duration(seconds=value).SerializeToString()[1:] or b"\x00"
    assert encode_varint(value) == expected
    assert decode_varint(expected + b"tail", 0) == (value, len(expected))


def test_negative_int64_is_ten_bytes_and_bad_varints_raise() -> None:
    """A negative int64 is its two's complement; a cut or endless varint is an IndexError."""
    assert encode_varint(-1) == duration_pb2.Duration(seconds=-1).SerializeToString()[1:]
    with pytest.raises(IndexError):
        decode_varint(b"\x80\x80", 0)
    with pytest.raises(IndexError):
        decode_varint(b"\xff" * 11, 0)


def _status_trailer(seconds: float) -> tuple[str, bytes]:
    detail = any_pb2.Any()
    info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration())
    info.retry_delay.FromNanoseconds(int(seconds * 1e9))
    detail.Pack(info)
    status = status_pb2.Status(code=8, message="slow down", details=[detail])
    return (STATUS_DETAILS_KEY, status.SerializeToString())


def test_retry_info_round_trip() -> None:
    """Our RetryInfo bytes are what google.rpc.RetryInfo parses, and we read both places a
    server may put one (its own key, or inside grpc-status-details-bin)."""
    raw = retry_info(1.25)
    parsed = error_details_pb2.RetryInfo.FromString(raw)
    assert (parsed.retry_delay.seconds, parsed.retry_delay.nanos) == (1, 250_000_000)
    assert retry_delay_from_metadata([(RETRY_INFO_KEY, raw)]) == 1.25
    assert retry_delay_from_metadata([(RETRY_INFO_KEY, b"\x0a\x00")]) == 0.0  # zero delay
    assert retry_delay_from_metadata([(RETRY_INFO_KEY, b"\x0a")]) is None  # cut short
    assert retry_delay_from_metadata([_status_trailer(1.5)]) == pytest.approx(1.5)
    assert retry_delay_from_metadata([(STATUS_DETAILS_KEY, b"\xff\xff")]) is None
    assert retry_delay_from_metadata([("other", b"")]) is None
    assert retry_delay_from_metadata(None) is None


def test_rpc_status_is_a_google_rpc_status() -> None:
    """The OTLP/HTTP error body parses as google.rpc.Status, RetryInfo detail included."""
    status = status_pb2.Status.FromString(rpc_status(14, "behind", 2.5))
    assert (status.code, status.message) == (14, "behind")
    info = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info)
    assert info.retry_delay.ToNanoseconds() == 2_500_000_000
    assert retry_delay_from_metadata([(STATUS_DETAILS_KEY, rpc_status(14, "x", 0.5))]) == 0.5
    assert not status_pb2.Status.FromString(rpc_status(3, "bad")).details


@pytest.mark.parametrize(
    ("endpoint", "insecure", "want"),
    [
        pytest.param("http://h:4317", None, GrpcTarget("h:4317", False), id="http-plain"),
        pytest.param("grpc://h:4317/", None, GrpcTarget("h:4317", False), id="grpc-plain"),
        pytest.param("https://h:4317", None, GrpcTarget("h:4317", True), id="https-tls"),
        pytest.param("grpcs://h:4317", None, GrpcTarget("h:4317", True), id="grpcs-tls"),
        pytest.param("h:4317", None, GrpcTarget("h:4317", True), id="bare-tls-by-default"),
        pytest.param("h:4317", True, GrpcTarget("h:4317", False), id="bare-insecure"),
        pytest.param("https://h:4317", True, GrpcTarget("h:4317", False), id="insecure-wins"),
    ],
)
def test_one_reading_of_grpc_endpoints(
    endpoint: str, insecure: bool | None, want: GrpcTarget
) -> None:
    """The scheme decides TLS; a bare host:port is TLS unless insecure=True (secure default)."""
    assert grpc_target(endpoint, insecure) == want


@pytest.mark.parametrize("endpoint", ["", "  ", "ftp://h:1", "http://", "h:1/v1/traces"])
def test_bad_endpoints_are_config_errors(endpoint: str) -> None:
    """Empty, other schemes, no host or a path: ConfigError naming the problem."""
    with pytest.raises(ConfigError):
        grpc_target(endpoint)


@pytest.mark.parametrize(
    ("code", "delay", "want"),
    [
        ("UNAVAILABLE", None, True),
        ("DEADLINE_EXCEEDED", None, True),
        ("CANCELLED", None, True),
        ("DATA_LOSS", None, True),
        ("RESOURCE_EXHAUSTED", None, False),
        ("RESOURCE_EXHAUSTED", 1.0, True),
        ("INVALID_ARGUMENT", 1.0, False),
        ("UNAUTHENTICATED", None, False),
    ],
)
def test_one_retry_rule(code: str, delay: float | None, want: bool) -> None:
    """The OTLP specification's codes; RESOURCE_EXHAUSTED only with a RetryInfo delay."""
    assert is_retryable(code, delay) is want
