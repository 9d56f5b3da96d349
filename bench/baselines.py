"""Baselines: what the machine does with the same bytes without pixdrop, in the same run.

An upload moves every byte over loopback TCP, writes it to disk with an fsync, and hashes it
with sha256; each baseline does one of those alone, as plainly as Python allows, so a
scenario's ratio to it says how much of that ceiling pixdrop reaches.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from pathlib import Path

MiB = 1024 * 1024
BLOCK = MiB
SOCKET_TIMEOUT = 120.0


def _sink(listener: socket.socket, received: list[int]) -> None:
    """Accept one connection and read it to the end, discarding the bytes."""
    conn, _ = listener.accept()
    buffer = bytearray(BLOCK)
    with conn:
        conn.settimeout(SOCKET_TIMEOUT)
        while count := conn.recv_into(buffer):
            received[0] += count


def loopback(data: bytes) -> None:
    """Send *data* in 1 MiB ``sendall``s over 127.0.0.1 to a thread that reads and discards it."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(SOCKET_TIMEOUT)
        received = [0]
        sink = threading.Thread(target=_sink, args=(listener, received), name="sink")
        sink.start()
        with socket.create_connection(listener.getsockname()[:2], SOCKET_TIMEOUT) as sock:
            view = memoryview(data)
            for start in range(0, len(data), BLOCK):
                sock.sendall(view[start : start + BLOCK])
            sock.shutdown(socket.SHUT_WR)
        sink.join(timeout=SOCKET_TIMEOUT)
    if received[0] != len(data):
        raise RuntimeError(f"loopback sink got {received[0]} of {len(data)} bytes")


def disk(
    data: bytes | memoryview, path: Path, block: int = BLOCK, *, fsync_each: bool = False
) -> None:
    """Write *data* to a new file at *path* in writes of *block* bytes (1 MiB), then fsync it;
    with *fsync_each*, after every write instead (the caller deletes)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        for start in range(0, len(view), block):
            part = view[start : start + block]
            while part:
                part = part[os.write(fd, part) :]
            if fsync_each:
                os.fsync(fd)
        if not fsync_each:
            os.fsync(fd)
    finally:
        os.close(fd)


def sha256(data: bytes) -> str:
    """The sha256 of *data*, in memory: the hashing every upload does on the server."""
    return hashlib.sha256(data).hexdigest()
