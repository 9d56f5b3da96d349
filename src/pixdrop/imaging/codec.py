"""``VipsCodec``: the ``ImageCodec`` port on libvips, run in a pool of worker processes.

The server process never loads libvips: every decode happens in a worker (``pool.py``), under
the per-image deadline, and what comes back is plain data. Refusals become
``UnprocessableImage`` here, with the fields the worker named.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import anyio

from pixdrop.errors import UnprocessableImage
from pixdrop.imaging.pool import JobTimeout, WorkerCrashed, WorkerPool
from pixdrop.models import ImageDetails, ImageLimits, VariantSpec
from pixdrop.ports import ImageSource

__all__ = ["LARGE_BYTES", "VipsCodec"]

#: Files of this size or more are checked one at a time: libvips holds hundreds of rows of a
#: wide image while it decodes (about 95 MiB for a 1 GiB TIFF 8,191 pixels wide), so two at
#: once would double the decoders' peak, while either takes a fraction of its upload's time.
LARGE_BYTES = 64 * 1024 * 1024

log = logging.getLogger("pixdrop.imaging")


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0  # not for us to report: the worker's own read will


#: (decodes, encodes, libvips version), once known (see ``VipsCodec.start``).
_capabilities: tuple[tuple[str, ...], tuple[str, ...], str] | None = None


class VipsCodec:
    """``ImageCodec`` on libvips (pyvips); build it with :meth:`start`."""

    def __init__(
        self, pool: WorkerPool, decodes: tuple[str, ...], encodes: tuple[str, ...], version: str
    ) -> None:
        self.pool = pool
        #: One large file at a time (``LARGE_BYTES``); smaller ones take the other workers.
        self._large = anyio.Lock()
        self.decodes = decodes
        self.encodes = encodes
        self.version = version

    @classmethod
    async def start(
        cls, *, workers: int, decode_timeout: float, idle_timeout: float | None = 30.0
    ) -> VipsCodec:
        """Start the pool and ask a worker what its libvips can do.

        The answer is kept for the life of the process: it cannot change, and asking means
        starting a worker, which apps built one after another (tests) would pay each time.
        That worker is stopped once it has answered: workers start with the first image.
        """
        pool = WorkerPool(workers, decode_timeout, idle_timeout)
        global _capabilities
        if _capabilities is None:
            try:
                found = await cls._value(pool, "capabilities", deadline=60)
            except BaseException:
                await pool.close()
                raise
            _capabilities = (tuple(found[0]), tuple(found[1]), str(found[2]))
            log.info("libvips %s: decodes %s; encodes %s", found[2], found[0], found[1])
            # The asking worker goes: the server holds no decoder until an image comes.
            await pool.stop_idle()
        decodes, encodes, version = _capabilities
        return cls(pool, decodes, encodes, version)

    @staticmethod
    async def _value(pool: WorkerPool, job: str, *args: Any, deadline: float | None = None) -> Any:
        try:
            reply = await pool.run(job, *args, deadline=deadline)
        except JobTimeout:
            allowed = pool.timeout if deadline is None else deadline
            raise UnprocessableImage(
                f"Decoding the image took longer than {allowed:g} s, the limit for one image; "
                "send a smaller or simpler image.",
                reason="decode-timeout",
                limit="decode_timeout",
                allowed=allowed,
            ) from None
        except WorkerCrashed:
            log.warning("an image worker died during %s", job)
            raise UnprocessableImage(
                "The image decoder failed on this file; it is probably corrupt.",
                reason="decoder-crashed",
            ) from None
        if reply[0] == "ok":
            return reply[1]
        if reply[0] == "refused":
            raise UnprocessableImage(reply[1], **reply[2])
        raise RuntimeError(f"image worker failed in {job}: {reply[1]}")

    async def inspect(self, source: ImageSource, fmt: str, limits: ImageLimits) -> ImageDetails:
        large = isinstance(source, Path) and _size(source) >= LARGE_BYTES
        async with self._large if large else contextlib.nullcontext():
            details = await self._value(self.pool, "inspect", source, fmt, limits)
        assert isinstance(details, ImageDetails)
        return details

    async def render(self, source: ImageSource, fmt: str, spec: VariantSpec) -> bytes:
        data = await self._value(self.pool, "render", source, fmt, spec)
        assert isinstance(data, bytes)
        return data

    async def strip_gps(self, source: ImageSource, fmt: str) -> bytes | None:
        data = await self._value(self.pool, "strip_gps", source, fmt)
        assert data is None or isinstance(data, bytes)
        return data

    def prepare(self) -> None:
        self.pool.prepare()

    async def close(self) -> None:
        await self.pool.close()
