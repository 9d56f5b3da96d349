"""The body of one resumable append (bounded, hashed beside the disk writes, stoppable), and
what an append answers."""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import anyio
from starlette.requests import ClientDisconnect

from pixdrop.errors import ChecksumMismatch, ClientGone, InvalidResumableRequest, PixdropError
from pixdrop.models import Image, Upload
from pixdrop.services.images import StoredImage

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


class AppendBody:
    """One append's request body: bounded, hashed on the writer thread, and stoppable.

    Iteration ends early (``interrupted``) when the client disconnects, sends nothing for
    *idle_timeout* seconds, or a newer request calls :meth:`stop`; the bytes yielded so far
    are written and recorded as usual. The first *head_size* bytes are kept (``head``).
    """

    def __init__(
        self,
        body: AsyncIterator[bytes],
        *,
        limit: int,
        too_long: Callable[[], PixdropError],
        checksums: tuple[str, ...],
        idle_timeout: float,
        head_size: int = 0,
    ) -> None:
        self._body = body
        self._limit = limit
        self._too_long = too_long
        self._idle_timeout = idle_timeout
        self._scope: anyio.CancelScope | None = None
        self._sha256 = hashlib.sha256()
        self._checks = {name: new_hasher(name) for name in checksums}
        self._head_size = head_size
        self._head = bytearray()
        self.length = 0
        self.interrupted = False
        self.taken_over = False

    def __aiter__(self) -> AppendBody:
        return self

    async def __anext__(self) -> bytes:
        while not self.interrupted:
            block: bytes | None = None
            with anyio.CancelScope(deadline=anyio.current_time() + self._idle_timeout) as scope:
                self._scope = scope
                try:
                    block = await self._body.__anext__()
                except (ClientDisconnect, ClientGone):
                    pass
                finally:
                    self._scope = None
            if block is None:  # cancelled by stop(), idle, or the client disconnected
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

    def stop(self) -> None:
        """Ask the request to end its body where it is (a newer request takes over)."""
        self.taken_over = True
        self.interrupted = True
        if self._scope is not None:
            self._scope.cancel()

    def observe(self, blocks: Sequence[bytes]) -> None:
        for block in blocks:
            self._sha256.update(block)
            for hasher in self._checks.values():
                hasher.update(block)

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    @property
    def head(self) -> bytes:
        return bytes(self._head)

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
        self.verify(checksum or (trailer_checksum and trailer_checksum()))
        return written

    def verify(self, checksum: Checksum | None) -> None:
        """Raise unless the body matches *checksum* (``None``: an announced trailer never came)."""
        if checksum is None:
            raise InvalidResumableRequest(
                "The request announced an Upload-Checksum trailer but did not send it; the "
                "data was discarded."
            )
        if self.digest(checksum.algorithm) != checksum.digest:
            raise ChecksumMismatch(
                f"The body does not match its {checksum.algorithm} checksum; it was discarded. "
                "Send it again.",
                algorithm=checksum.algorithm,
            )

    def digest(self, algorithm: str) -> bytes | None:
        """The body's digest by *algorithm*, if it was asked to compute that one."""
        hasher = self._checks.get(algorithm)
        return None if hasher is None else hasher.digest()


@dataclass(frozen=True, slots=True)
class Progress:
    """What a client resuming an upload needs to know."""

    upload: Upload
    #: Bytes received; ``None`` for a final upload whose partial uploads are not all complete.
    offset: int | None
    #: The total size, once known.
    length: int | None
    #: The stored image, once the upload completed (``None`` if it was deleted since).
    image: Image | None


@dataclass(frozen=True, slots=True)
class AppendResult:
    """The outcome of one append: the new progress and, if it completed an image, the image."""

    progress: Progress
    #: Set when this request completed the upload (the delete token is only here, once).
    stored: StoredImage | None
    #: The body ended early (client gone or idle); what arrived is kept.
    interrupted: bool
