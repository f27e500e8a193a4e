"""A private PostgreSQL server for the tests: initdb into a temp dir, trust auth, 127.0.0.1.

Each pytest process (each xdist worker) starts its own server on a free port and stops it at
the end; ``$ASYNCTELEMETRY_TEST_POSTGRES`` (a DSN of a server whose user may create databases)
is used instead when set. Tests get a fresh database each (:func:`fresh_database`), so they never
see each other's calls. The binaries are Debian's (``/usr/lib/postgresql/*/bin``) or on PATH; when
none is found the fixture fails with a message saying what to install: these tests never skip.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

ENV: Final = "ASYNCTELEMETRY_TEST_POSTGRES"
_AS_ROOT: Final = os.geteuid() == 0 if hasattr(os, "geteuid") else False


def find_bin_dir() -> str:
    """The directory holding initdb and pg_ctl (the newest Debian version, else PATH)."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0,
    )
    for directory in reversed(candidates):
        if os.path.exists(os.path.join(directory, "initdb")):
            return directory
    initdb = shutil.which("initdb")
    if initdb is not None:
        return os.path.dirname(initdb)
    raise RuntimeError(
        "the PostgreSQL tests need a server: install Debian's postgresql package "
        f"(apt-get install postgresql; initdb and pg_ctl in /usr/lib/postgresql/*/bin) "
        f"or set ${ENV} to the DSN of a server whose user may create databases"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A running server: its DSN (to the ``postgres`` database) and how to stop/start it."""

    dsn: str
    data_dir: str | None = None
    bin_dir: str | None = None
    log: str | None = None

    def _ctl(self, *args: str) -> None:
        assert self.bin_dir is not None and self.data_dir is not None
        _run([os.path.join(self.bin_dir, "pg_ctl"), "-D", self.data_dir, *args])

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnect clients; ``immediate``: as a crash)."""
        self._ctl("stop", "-m", mode, "-w", "-t", "60")

    def start(self) -> None:
        """Start it again on the same port."""
        assert self.log is not None
        self._ctl("start", "-w", "-t", "60", "-l", self.log)

    @property
    def own(self) -> bool:
        """Whether the tests started this server (and may stop it)."""
        return self.data_dir is not None

    def dsn_for(self, database: str) -> str:
        """The DSN of another database on this server."""
        parts = urlsplit(self.dsn)
        return urlunsplit(parts._replace(path="/" + database))


def _run(argv: list[str]) -> None:
    if _AS_ROOT:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )


def start_server(
    *, private: bool = False, durable: bool = False, root: str | None = None
) -> Server:
    """A new private server (or the one ``$ASYNCTELEMETRY_TEST_POSTGRES`` names, unless
    ``private``: a test that stops and starts the server needs one of its own). ``durable``
    keeps PostgreSQL's default crash safety (fsync), for benchmarks. ``root``: a directory kept
    between runs (a benchmark's filled database): the server it holds is started again on a
    free port, or one is created there; stop it with ``server.stop()``, not ``stop_server``."""
    if os.environ.get(ENV) and not private and root is None:
        return Server(os.environ[ENV])
    bin_dir = find_bin_dir()
    if root is None:
        root = tempfile.mkdtemp(prefix="asynctelemetry-pg-")
    data_dir = os.path.join(root, "data")
    log = os.path.join(root, "server.log")
    if os.path.exists(os.path.join(data_dir, "PG_VERSION")):
        return _restart(Server("", data_dir, bin_dir, log))
    os.makedirs(root, exist_ok=True)
    if _AS_ROOT:
        shutil.chown(root, "postgres", "postgres")
    os.chmod(root, 0o700)
    _run(
        [
            os.path.join(bin_dir, "initdb"),
            "-D",
            data_dir,
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]
    )
    with open(os.path.join(data_dir, "postgresql.conf"), "a") as conf:
        conf.write(
            f"\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{root}'\n"
            "shared_buffers = 128MB\nmax_connections = 200\n"
        )
        if not durable:  # test data need no crash safety: the server goes with the run
            conf.write("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
    return _restart(Server("", data_dir, bin_dir, log))


def _restart(server: Server) -> Server:
    """Start the server of ``server.data_dir`` on a free port (tried again on another if one
    was taken in between)."""
    assert server.data_dir is not None
    port = _free_port()
    with open(os.path.join(server.data_dir, "postgresql.conf"), "a") as conf:
        conf.write(f"\nport = {port}\n")
    server.dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    for attempt in range(3):
        try:
            server.start()
            break
        except RuntimeError:
            if attempt == 2:
                raise
            time.sleep(0.5)  # another process took the port in between: try a new one
            port = _free_port()
            with open(os.path.join(server.data_dir, "postgresql.conf"), "a") as conf:
                conf.write(f"\nport = {port}\n")
            server.dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    return server


def stop_server(server: Server) -> None:
    """Stop a server the tests started and remove its files."""
    if not server.own:
        return
    try:
        server.stop("immediate")
    finally:
        assert server.data_dir is not None
        shutil.rmtree(os.path.dirname(server.data_dir), ignore_errors=True)


_shared: Server | None = None


def shared_server() -> Server:
    """This process's server, started on first use and stopped when the process exits."""
    global _shared
    if _shared is None:
        _shared = start_server()
        atexit.register(stop_server, _shared)
    return _shared


async def fresh_schema(server: Server) -> str:
    """Create an empty schema in the server's database; a DSN whose ``search_path`` is it.

    A schema is much cheaper to make than a database, and isolates a test as well: every
    table, sequence and partition of the store lives in it.
    """
    import asyncpg

    name = f"t_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(server.dsn)
    try:
        await conn.execute(f'CREATE SCHEMA "{name}"')
    finally:
        await conn.close()
    return f"{server.dsn}?search_path={name}"


async def drop_schema(server: Server, dsn: str) -> None:
    """Drop a schema made by :func:`fresh_schema` and everything in it."""
    import asyncpg

    name = dsn.rpartition("search_path=")[2]
    conn = await asyncpg.connect(server.dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def schema_dsn() -> AsyncIterator[str]:
    """A fresh schema on this process's server for the length of the block."""
    server = shared_server()
    dsn = await fresh_schema(server)
    try:
        yield dsn
    finally:
        await drop_schema(server, dsn)


_reused: str | None = None


async def emptied_schema_dsn() -> str:
    """One schema of this process, emptied (``TRUNCATE`` of ``calls``, the rollups, ``spans``,
    the session totals)
    on every call: for property tests that open a store per example, where a new schema each
    time would cost ~0.2 s."""
    global _reused
    import asyncpg

    if _reused is None:
        _reused = await fresh_schema(shared_server())
    conn = await asyncpg.connect(_reused)
    try:
        if await conn.fetchval("SELECT to_regclass('calls')") is not None:
            await conn.execute("TRUNCATE calls")
        if await conn.fetchval("SELECT to_regclass('rollups')") is not None:
            await conn.execute("TRUNCATE rollup_groups, rollups")
        if await conn.fetchval("SELECT to_regclass('spans')") is not None:
            await conn.execute("TRUNCATE spans")
        if await conn.fetchval("SELECT to_regclass('session_periods')") is not None:
            await conn.execute("TRUNCATE session_periods")
    finally:
        await conn.close()
    return _reused


async def fresh_database(server: Server) -> str:
    """Create an empty database on ``server``; its DSN."""
    import asyncpg

    name = f"t_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(server.dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return server.dsn_for(name)


async def drop_database(server: Server, dsn: str) -> None:
    """Drop a database made by :func:`fresh_database` (connections to it are ended)."""
    import asyncpg

    name = urlsplit(dsn).path.lstrip("/")
    conn = await asyncpg.connect(server.dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
