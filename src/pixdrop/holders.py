"""Who holds a lease: a name for this process that says which host and process it is, so
that a holder on this host whose process is gone can be told apart (``holder_is_dead``).

Used by the lease store (``metadata/leases.py``) and the lease keeper (``services/leases.py``);
it reads ``/proc`` and signals nothing (``kill(pid, 0)`` only asks).
"""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path

__all__ = ["holder_is_dead", "new_holder"]


def _host() -> str:
    """This host, as holders name it: the host name and the PID namespace, so that two
    containers sharing a host name (``--network host``) are not taken for one host whose
    process ids they could check."""
    name = socket.gethostname()[:64] or "localhost"
    try:
        namespace = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return name
    return f"{name}@{namespace.removeprefix('pid:[').removesuffix(']')}"


def new_holder() -> str:
    """A new holder name: ``<host>/<pid>/<random>`` (at most 105 characters)."""
    return f"{_host()}/{os.getpid()}/{secrets.token_hex(8)}"


def holder_is_dead(holder: str) -> bool:
    """True if *holder* (from :func:`new_holder`) was a process on this host that is gone.

    False when unsure: another host, a name not made by :func:`new_holder`, or a process id
    that is alive (perhaps reused: the lease then waits for its expiry, as any other).
    """
    host, _, rest = holder.partition("/")
    pid_text, _, _token = rest.partition("/")
    if host != _host() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: alive, another user's
        return False
    try:  # killed but not yet reaped by its parent: dead all the same
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]
