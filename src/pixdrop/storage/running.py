"""The sha256 of an upload's bytes, kept up while they arrive in order (``LocalStaging``).

An upload's whole-content sha256 (its content address) used to be computed at completion by
reading the staging file back: for a 512 MiB upload, a third of a second of CPU on the path
from the last byte to the answer. When a part starts exactly where the bytes hashed so far
end (sequential chunks, tus and IETF appends, a creation that carries bytes), its bytes are
hashed into a copy of the running state as they stream past, the copy replacing the state
when the part is written. Parts out of order (parallel chunks) are not waited for: the
running hash stops at the first gap, and completion hashes the file as before.

The state is trusted only if it covers exactly the parts the upload recorded, receipt for
receipt (start, end and the part's sha256, computed from the same blocks): a part that was
written but then refused (a checksum mismatch) or re-sent with other bytes makes the lists
differ, and the file is hashed. A chunk's receipt is its own sha256 (hashed twice: its client
is answered it), an append's is the running state's digest at its end (a prefix receipt,
``models.Part``), so an append's bytes are hashed once: 1.01 -> 0.72 s of CPU per 512 MiB
appended in 8 MiB parts (``python -m bench.staging_cpu``). It lives in this process only
(``--workers``, other nodes and restarts just hash at completion) and is bounded: the oldest
uploads are forgotten past ``LIMIT``.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from pixdrop.models import Part

__all__ = ["Extension", "RunningDigests"]

#: Uploads whose running hash is kept at once; past it the least recently extended goes.
LIMIT: Final = 4096


@dataclass(slots=True)
class _Running:
    hasher: Any = field(default_factory=hashlib.sha256)
    end: int = 0
    #: (start, end, sha256) of the parts hashed in, in order.
    receipts: list[tuple[int, int, str]] = field(default_factory=list)
    #: An extension is under way (one at a time: a second part at the same offset waits
    #: its turn by not taking part).
    extending: bool = False


class Extension:
    """One part's bytes on their way into an upload's running hash."""

    __slots__ = ("_digests", "_start", "_upload_id", "hasher")

    def __init__(self, digests: RunningDigests, upload_id: str, start: int, hasher: Any) -> None:
        self._digests = digests
        self._upload_id = upload_id
        self._start = start
        #: The running state with this part's bytes added as they come. At offset 0 it is a
        #: fresh sha256, the part's own hash too: one hasher serves both.
        self.hasher = hasher

    @property
    def first(self) -> bool:
        """Whether the part starts the upload (its own hash is the running one)."""
        return self._start == 0

    def commit(self, part: Part) -> None:
        """The part is written: its bytes are the next of the upload's."""
        self._digests._commit(self._upload_id, self._start, self.hasher, part)

    def drop(self) -> None:
        """The part failed: the running hash stays where it was."""
        self._digests._drop(self._upload_id)


class RunningDigests:
    """Running sha256 states of the uploads of one process (module docstring)."""

    def __init__(self, limit: int = LIMIT) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._states: OrderedDict[str, _Running] = OrderedDict()

    def begin(self, upload_id: str, start: int) -> Extension | None:
        """An extension for a part at *start*, if it continues the running hash; else
        ``None`` (a gap, or another part is extending it)."""
        with self._lock:
            state = self._states.get(upload_id)
            if state is None:
                if start != 0:
                    return None
                state = self._states[upload_id] = _Running()
                while len(self._states) > self._limit:
                    self._states.popitem(last=False)
            if state.extending or state.end != start:
                return None
            state.extending = True
            self._states.move_to_end(upload_id)
            return Extension(self, upload_id, start, state.hasher.copy())

    def _commit(self, upload_id: str, start: int, hasher: Any, part: Part) -> None:
        with self._lock:
            state = self._states.get(upload_id)
            if state is None or state.end != start:
                return  # forgotten (aborted, evicted) meanwhile
            state.extending = False
            if part.end > start:
                state.hasher, state.end = hasher, part.end
                state.receipts.append((part.start, part.end, part.sha256))

    def _drop(self, upload_id: str) -> None:
        with self._lock:
            state = self._states.get(upload_id)
            if state is not None:
                state.extending = False

    def sha256(self, upload_id: str, parts: Sequence[Part]) -> str | None:
        """The sha256 of the object *parts* make, if the running hash covers exactly them."""
        with self._lock:
            state = self._states.get(upload_id)
            if state is None or state.extending:
                return None
            recorded = sorted((p.start, p.end, p.sha256) for p in parts if p.end > p.start)
            if recorded != state.receipts:
                return None
            return str(state.hasher.hexdigest())

    def forget(self, upload_id: str) -> None:
        with self._lock:
            self._states.pop(upload_id, None)
