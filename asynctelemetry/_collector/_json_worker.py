"""Large OTLP/JSON bodies are encoded in a worker process, never on the event loop.

``json.loads`` is C code that holds the GIL for the whole body (about 100 ms for 16 MiB on an
idle core, seconds on a busy one), so a worker *thread* would stall the loop just the same; the
encoder after it is Python. One worker process (``python -m
asynctelemetry._collector._json_worker``, started on the first large body and stopped with the
receiver) parses and encodes bodies of at least :data:`JSON_IN_PROCESS_BYTES`, one at a time;
smaller bodies are encoded on the loop in steps. The loop only copies bytes through the pipes.

Protocol on the worker's stdin/stdout: a request is an 8-byte big-endian length and the body;
an answer is one status byte (``0`` encoded, ``1`` not OTLP/JSON), an 8-byte length and the
serialized ``ExportTraceServiceRequest`` or the UTF-8 error message. A process (not
``multiprocessing``) so that nothing of the user's main module is imported again.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Final

__all__ = ["JSON_IN_PROCESS_BYTES", "JsonWorker", "WorkerLost"]

#: Bodies at least this large (after decompression) are encoded in the worker process.
JSON_IN_PROCESS_BYTES: Final = 128 * 1024
_OK, _BAD = 0, 1
_HEADER: Final = 8


class WorkerLost(Exception):
    """The worker process died or could not start: the request may be retried."""


class JsonWorker:
    """One worker process encoding OTLP/JSON bodies, started when first needed."""

    def __init__(self) -> None:
        self._process: asyncio.subprocess.Process | None = None
        self._turn = asyncio.Lock()  # one body at a time through the pipes
        self.bodies = 0  # bodies encoded by worker processes

    async def encode(self, body: bytes) -> bytes:
        """The serialized request of an OTLP/JSON body, encoded in the worker process.

        Raises:
            BadJson: the body is not an OTLP/JSON trace request.
            WorkerLost: the worker died; a new one is started for the next body.
        """
        from ._otlp_json import BadJson

        async with self._turn:
            process = self._process
            if process is None or process.returncode is not None:
                try:
                    process = self._process = await asyncio.create_subprocess_exec(
                        sys.executable,
                        "-m",
                        __name__,
                        stdin=asyncio.subprocess.PIPE,
                        stdout=asyncio.subprocess.PIPE,
                    )
                except OSError as exc:
                    raise WorkerLost(f"cannot start the JSON worker: {exc}") from exc
            assert process.stdin is not None and process.stdout is not None
            try:
                process.stdin.write(len(body).to_bytes(_HEADER, "big"))
                process.stdin.write(body)
                await process.stdin.drain()
                head = await process.stdout.readexactly(1 + _HEADER)
                payload = await process.stdout.readexactly(int.from_bytes(head[1:], "big"))
            except (OSError, asyncio.IncompleteReadError) as exc:
                await self._stop(process)
                raise WorkerLost("the JSON worker process was lost") from exc
            except BaseException:  # cancelled mid-exchange: the pipes are out of step
                await self._stop(process)
                raise
            self.bodies += 1
        if head[0] == _BAD:
            raise BadJson(payload.decode(errors="replace"))
        return payload

    async def _stop(self, process: asyncio.subprocess.Process) -> None:
        if self._process is process:
            self._process = None
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        with contextlib.suppress(Exception):
            await asyncio.shield(process.wait())

    async def aclose(self) -> None:
        """Stop the worker process (what it was encoding is abandoned). Idempotent."""
        process = self._process
        if process is not None:
            await self._stop(process)


def _serve() -> None:  # pragma: no cover - runs in the worker process
    """The worker process: encode bodies from stdin until it closes."""
    from ._otlp_json import BadJson, json_to_request

    source, sink = sys.stdin.buffer, sys.stdout.buffer
    while len(head := source.read(_HEADER)) == _HEADER:
        body = source.read(int.from_bytes(head, "big"))
        try:
            status, payload = _OK, json_to_request(body)
        except BadJson as exc:
            status, payload = _BAD, str(exc).encode()
        sink.write(bytes((status,)) + len(payload).to_bytes(_HEADER, "big"))
        sink.write(payload)
        sink.flush()


if __name__ == "__main__":  # pragma: no cover - the worker process
    _serve()
