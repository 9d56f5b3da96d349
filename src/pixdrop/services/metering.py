"""Request-body metering, in one place: every body that reaches a store goes through ``Body``.

A ``Body`` wraps the iterator the HTTP layer hands over and, on its way to ``Staging.put_part``:

* bounds it (``too_long`` is raised as soon as more than ``limit`` bytes arrive, so an
  oversized body is refused without storing the rest);
* keeps its first ``head_size`` bytes (for the image prober);
* hashes it with what the client asked to be checked (RFC 9530 digests, a tus checksum).
  Hashing is not done while iterating: the store calls :meth:`Body.observe` with each batch on
  the thread that writes it, so hashing overlaps with reading the socket (hashlib releases the
  GIL). The sha256 of the bytes is the store's (it is part of the receipt);
* for resumable appends (``interruptible``), ends early instead of failing when the client goes
  away (``ClientGone``), sends nothing for ``idle_timeout`` seconds, or a newer request calls
  :meth:`Body.stop`: the bytes received so far are then kept (``interrupted``).

Bodies of every kind are also bounded where they arrive: pixdrop's HTTP/1.1 protocol ends a
body that sends nothing for ``idle_timeout`` seconds, or is still coming at the shutdown
deadline, by raising ``BodyEnded`` (a ``ClientGone``) from the body iterator
(``pixdrop.http.connections``). An interruptible body keeps its bytes as above; any other one
fails with it, so that nothing is recorded and its lease (a chunk's) is released at once.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import anyio

from pixdrop.errors import ChecksumMismatch, ClientGone, InvalidResumableRequest, PixdropError
from pixdrop.protocols.digest import ExpectedDigests, verify

__all__ = [
    "CHECKSUM_ALGORITHMS",
    "Body",
    "Checksum",
    "checksum_algorithms",
    "new_hasher",
]

#: Checksum algorithms of the tus checksum extension, as tus names them.
CHECKSUM_ALGORITHMS = ("sha1", "sha256", "sha512", "md5", "crc32")


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def digest(self) -> bytes: ...


class _Crc32:
    """CRC-32 (IEEE) with the hashlib interface; the digest is the big-endian 32-bit value."""

    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes, /) -> None:
        self._value = zlib.crc32(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(4, "big")


def new_hasher(algorithm: str) -> _Hasher:
    """A hasher for one of ``CHECKSUM_ALGORITHMS``."""
    if algorithm == "crc32":
        return _Crc32()
    if algorithm in CHECKSUM_ALGORITHMS:
        return hashlib.new(algorithm)
    raise ValueError(f"unsupported checksum algorithm {algorithm!r}")


@dataclass(frozen=True, slots=True)
class Checksum:
    """A checksum a client sent for one request body (tus ``Upload-Checksum``)."""

    algorithm: str
    digest: bytes


def checksum_algorithms(
    checksum: Checksum | None, trailer_checksum: Callable[[], Checksum | None] | None
) -> tuple[str, ...]:
    """What to hash a body with: the algorithm of its *checksum*, or every supported one when
    the checksum comes in a trailer, after the body (none if the body carries no checksum)."""
    if checksum is not None:
        return (checksum.algorithm,)
    return CHECKSUM_ALGORITHMS if trailer_checksum else ()


class Body:
    """One request body on its way to a store (see the module docstring)."""

    def __init__(
        self,
        body: AsyncIterator[bytes],
        *,
        limit: int,
        too_long: Callable[[], PixdropError],
        expected: ExpectedDigests | None = None,
        checksums: tuple[str, ...] = (),
        head_size: int = 0,
        idle_timeout: float | None = None,
    ) -> None:
        self._body = body
        self._limit = limit
        self._too_long = too_long
        self.expected = expected or ExpectedDigests()
        self._digests = self.expected.hashers()
        #: The store's receipt gives the body's sha256 (see ``store_hashes_sha256``).
        self._sha256_by_store = False
        self._checks = {name: new_hasher(name) for name in checksums}
        self._head_size = head_size
        self._head = bytearray()
        self._idle_timeout = idle_timeout
        self._scope: anyio.CancelScope | None = None
        self.length = 0
        #: The body ended early (client gone, idle, or stopped); only for an interruptible one.
        self.interrupted = False
        #: A newer request asked this one to stop.
        self.taken_over = False

    @property
    def interruptible(self) -> bool:
        return self._idle_timeout is not None

    def __aiter__(self) -> Body:
        return self

    async def __anext__(self) -> bytes:
        while not self.interrupted:
            block = await self._next_block()
            if block is None:
                self.interrupted = True
                break
            if not block:
                continue
            if self.length + len(block) > self._limit:
                raise self._too_long()
            self.length += len(block)
            if len(self._head) < self._head_size:
                self._head += block[: self._head_size - len(self._head)]
            return block
        raise StopAsyncIteration

    async def _next_block(self) -> bytes | None:
        """The next block; ``None`` when an interruptible body ends early. ``StopAsyncIteration``
        at its end; ``ClientGone`` propagates from a body that is not interruptible."""
        if self._idle_timeout is None:
            return await self._body.__anext__()
        with anyio.CancelScope(deadline=anyio.current_time() + self._idle_timeout) as scope:
            self._scope = scope
            try:
                return await self._body.__anext__()
            except ClientGone:
                return None
            finally:
                self._scope = None
        return None  # cancelled: stop() or idle

    def stop(self) -> None:
        """Ask the request to end its body where it is (a newer request takes over)."""
        self.taken_over = True
        self.interrupted = True
        if self._scope is not None:
            self._scope.cancel()

    def observe(self, blocks: Sequence[bytes]) -> None:
        """Hash *blocks*: every block the body yields must be observed once, in order."""
        for hasher in (*self._digests.values(), *self._checks.values()):
            for block in blocks:
                hasher.update(block)

    async def drain(self) -> str:
        """Read and hash the whole body without storing it; return its sha256 (hex)."""
        sha256 = hashlib.sha256()
        async for block in self:
            sha256.update(block)
            self.observe((block,))
        return sha256.hexdigest()

    @property
    def head(self) -> bytes:
        return bytes(self._head)

    def store_hashes_sha256(self) -> None:
        """The store the whole body goes to computes its sha256 anyway (a part's receipt):
        a client's ``sha-256`` digest is then checked against that, not hashed twice.
        :meth:`verify_digests` must be given the store's sha256."""
        if self._digests.pop("sha256", None) is not None:
            self._sha256_by_store = True

    def verify_digests(self, what: str, sha256: str | None = None) -> None:
        """Raise ``DigestMismatch`` if the bytes do not match the client's RFC 9530 digests.
        *sha256*: the store's sha256 of the whole body, after ``store_hashes_sha256``."""
        computed = {n: h.digest() for n, h in self._digests.items()}
        if self._sha256_by_store:
            if sha256 is None:
                raise RuntimeError("the body's sha256 was left to the store: pass it")
            computed["sha256"] = bytes.fromhex(sha256)
        verify(self.expected, computed, what)

    def kept(
        self,
        written: int,
        checksum: Checksum | None,
        trailer_checksum: Callable[[], Checksum | None] | None,
    ) -> int:
        """How many of the *written* bytes to keep: all of them, unless the body carries a
        checksum. Then an interrupted body keeps none (it cannot be checked) and a whole one
        is verified (``ChecksumMismatch`` if it differs)."""
        if not self._checks:
            return written
        if self.interrupted:
            return 0
        self.verify_checksum(checksum or (trailer_checksum and trailer_checksum()))
        return written

    def verify_checksum(self, checksum: Checksum | None) -> None:
        """Raise unless the body matches *checksum* (``None``: an announced trailer never came)."""
        if checksum is None:
            raise InvalidResumableRequest(
                "The request announced an Upload-Checksum trailer but did not send it; the "
                "data was discarded."
            )
        hasher = self._checks.get(checksum.algorithm)
        if hasher is None or hasher.digest() != checksum.digest:
            raise ChecksumMismatch(
                f"The body does not match its {checksum.algorithm} checksum; it was discarded. "
                "Send it again.",
                algorithm=checksum.algorithm,
            )
