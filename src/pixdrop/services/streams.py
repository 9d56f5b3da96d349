"""Body streams: a metered one that counts, hashes and bounds bytes on their way to the blob store,
and reading a (small) stream whole."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable, Sequence

from pixdrop.errors import PixdropError
from pixdrop.protocols.digest import ExpectedDigests, verify


class MeteredStream:
    """Wraps a body iterator; hashes with sha256 (always) plus any algorithm the client named.

    ``too_long`` builds the error raised as soon as more than ``limit`` bytes arrive, so an
    oversized body is refused without reading (or storing) the rest of it. The first
    ``head_size`` bytes are kept for the image prober.

    Hashing is not done while iterating: the blob store calls :meth:`observe` with each batch
    on the thread that writes it, so hashing overlaps with reading the socket (hashlib releases
    the GIL) instead of running on the event loop. Measured: see bench/README.md.
    """

    def __init__(
        self,
        body: AsyncIterator[bytes],
        *,
        limit: int,
        too_long: Callable[[], PixdropError],
        expected: ExpectedDigests | None = None,
        head_size: int = 0,
    ) -> None:
        self._body = body
        self._limit = limit
        self._too_long = too_long
        self.expected = expected or ExpectedDigests()
        self._hashers = {"sha256": hashlib.sha256(), **self.expected.hashers()}
        self._head_size = head_size
        self._head = bytearray()
        self.length = 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        async for block in self._body:
            if not block:
                continue
            self.length += len(block)
            if self.length > self._limit:
                raise self._too_long()
            if len(self._head) < self._head_size:
                self._head += block[: self._head_size - len(self._head)]
            yield block

    def observe(self, blocks: Sequence[bytes]) -> None:
        """Hash *blocks*: every block the stream yields must be observed once, in order."""
        for hasher in self._hashers.values():
            for block in blocks:
                hasher.update(block)

    async def drain(self) -> None:
        """Read and hash the whole body without storing it."""
        async for block in self._iterate():
            self.observe((block,))

    @property
    def sha256(self) -> str:
        return self._hashers["sha256"].hexdigest()

    @property
    def head(self) -> bytes:
        return bytes(self._head)

    def verify(self, what: str) -> None:
        """Raise ``DigestMismatch`` if the bytes do not match the client's digests."""
        verify(self.expected, {n: h.digest() for n, h in self._hashers.items()}, what)


async def collect(blocks: AsyncIterator[bytes]) -> bytes:
    """All of *blocks*, joined: for streams known to be small (or wanted whole anyway)."""
    return b"".join([block async for block in blocks])
