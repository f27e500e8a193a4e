"""What the command line reports instead of tracebacks, and who holds a busy port.

A command raises :class:`CLIError` (exit 1, a runtime failure) or :class:`UsageError` (exit 2, the
command line itself is wrong) with a one-line reason; ``main`` prints it. The port helpers read
``/proc`` (Linux) to name the process listening on a port the collector could not bind.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from typing import Final

__all__ = ["CLIError", "UsageError", "describe_bind_failure", "port_holder", "port_in_use"]

_LISTEN: Final = "0A"  # TCP_LISTEN in /proc/net/tcp


class CLIError(Exception):
    """A runtime failure: exit status 1, the message is the one-line reason."""

    exit_code = 1


class UsageError(CLIError):
    """The command line is wrong (a bad option value or combination): exit status 2."""

    exit_code = 2


def port_in_use(host: str, port: int) -> bool:
    """Whether binding ``host:port`` fails because something else holds it.

    The probe binds as the servers do (grpc and asyncio set ``SO_REUSEADDR`` on listening
    sockets), so connections of a collector stopped a moment ago, lingering in TIME-WAIT, do not
    count: only a socket that really listens there does.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        if os.name == "posix":  # on Windows SO_REUSEADDR would let the probe steal the port
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _LISTEN:
                continue
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def port_holder(port: int) -> str | None:
    """``"pid 1234 (python3 -m http.server)"`` for the process listening on ``port``, if visible.

    Reads ``/proc/net/tcp{,6}`` for the socket's inode and ``/proc/*/fd`` for its owner; returns
    ``None`` when that is not possible (not Linux, or the process belongs to another user).
    """
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    targets = {f"socket:[{inode}]" for inode in inodes}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"{fd_dir}/{fd}") in targets:
                    return f"pid {pid} ({_command(pid)})"
            except OSError:
                continue
    return None


def _command(pid: str) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        raw = b""
    command = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    if not command:
        try:
            command = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            command = "?"
    return command if len(command) <= 80 else command[:77] + "..."


def describe_bind_failure(host: str, port: int, what: str) -> str:
    """One line saying why ``host:port`` could not be bound, naming the holder when known."""
    if port and port_in_use(host, port):
        holder = port_holder(port)
        by = f" by {holder}" if holder else " by another process"
        return f"cannot start the {what}: port {port} on {host} is already in use{by}"
    return f"cannot start the {what}: cannot bind {host}:{port}"
