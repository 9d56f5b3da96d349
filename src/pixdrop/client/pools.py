"""Connection pools in shards of a few connections each, for clients with many connections.

httpcore's pool, on every request it starts or finishes, walks all its connections and queued
requests (and checks each idle connection's socket): its cost per request grows with the square
of the connections in use. With 16 uploads at once through one pool of 16, that bookkeeping was
half of the async client's CPU. Split into shards of at most ``PER_SHARD`` connections, each
request goes to the least busy shard, and the total stays at the client's ``max_connections``.
Measured with 1 KiB chunk PUTs, 16 at once: 3.4-3.6 ms of client CPU per request with one pool,
1.6-1.7 ms with shards of 4 (``bench/peers/changes.md``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

__all__ = ["PER_SHARD", "ShardedAsyncTransport", "shard_sizes"]

#: Connections per shard: a handful keeps httpcore's walk short without idling connections.
PER_SHARD = 4


def shard_sizes(connections: int, per_shard: int = PER_SHARD) -> list[int]:
    """*connections* split into as few shards of at most *per_shard* as possible, evenly."""
    if connections < 1:
        raise ValueError("connections must be at least 1")
    count = -(-connections // per_shard)
    base, extra = divmod(connections, count)
    return [base + (index < extra) for index in range(count)]


class _Released(httpx.AsyncByteStream):
    """A response body that tells its shard when it is closed (its connection is free)."""

    def __init__(self, stream: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            release, self._release = self._release, None
            if release is not None:  # once, however often the body is closed
                release()


class ShardedAsyncTransport(httpx.AsyncBaseTransport):
    """``httpx.AsyncHTTPTransport`` split into shards (see the module docstring).

    *options* go to each shard's ``httpx.AsyncHTTPTransport`` (``verify``, ``retries``...).
    """

    def __init__(self, connections: int, **options: Any) -> None:
        self.sizes = shard_sizes(connections)
        self.busy = [0] * len(self.sizes)
        self._shards = [
            httpx.AsyncHTTPTransport(
                limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
                **options,
            )
            for size in self.sizes
        ]

    def _pick(self) -> int:
        shares = [busy / size for busy, size in zip(self.busy, self.sizes, strict=True)]
        return shares.index(min(shares))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = self._pick()
        self.busy[index] += 1

        def release() -> None:
            self.busy[index] -= 1

        try:
            response = await self._shards[index].handle_async_request(request)
        except BaseException:
            release()
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _Released(response.stream, release)
        return response

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()
