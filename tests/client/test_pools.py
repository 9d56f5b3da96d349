"""The async client's sharded connection pool, over real sockets: it never opens more than
``max_connections``, uses all of them under load, and frees a connection when its response
body is closed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import pytest

from pixdrop.client.pools import ShardedAsyncTransport, shard_sizes


@dataclass
class CountingServer:
    """A minimal keep-alive HTTP/1.1 server on 127.0.0.1 that answers each request after
    *delay* seconds and counts its open connections."""

    delay: float
    open: int = 0
    peak: int = 0
    ports: set[int] = field(default_factory=set)
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        self.peak = max(self.peak, self.open)
        self.ports.add(writer.get_extra_info("peername")[1])
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                await asyncio.sleep(self.delay)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()


@asynccontextmanager
async def counting_server(delay: float) -> AsyncIterator[CountingServer]:
    state = CountingServer(delay)
    server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    state.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        yield state


@pytest.mark.parametrize(
    ("connections", "sizes"), [(1, [1]), (4, [4]), (5, [3, 2]), (16, [4] * 4), (10, [4, 3, 3])]
)
def test_shard_sizes_add_up(connections: int, sizes: list[int]) -> None:
    assert shard_sizes(connections) == sizes


@pytest.mark.parametrize("connections", [1, 6, 16])
def test_load_uses_every_connection_and_no_more(connections: int) -> None:
    async def main() -> CountingServer:
        async with counting_server(delay=0.05) as server:
            transport = ShardedAsyncTransport(connections)
            async with httpx.AsyncClient(transport=transport, base_url=server.url) as client:
                replies = await asyncio.gather(
                    *(client.put("/x", content=b"a" * 100) for _ in range(4 * connections))
                )
                assert all(r.status_code == 200 and r.text == "ok" for r in replies)
                assert transport.busy == [0] * len(transport.sizes)
            return server

    server = asyncio.run(main())
    assert server.peak == connections
    assert len(server.ports) == connections  # kept alive and reused, never reopened


def test_a_streamed_response_holds_its_connection_until_closed() -> None:
    async def main() -> None:
        async with counting_server(delay=0) as server:
            transport = ShardedAsyncTransport(2)
            async with httpx.AsyncClient(transport=transport, base_url=server.url) as client:
                async with client.stream("GET", "/a") as first:
                    assert transport.busy == [1]
                    async with client.stream("GET", "/b") as second:
                        assert transport.busy == [2]
                        assert await second.aread() == b"ok"
                    assert transport.busy == [1]
                    assert await first.aread() == b"ok"
                assert transport.busy == [0]
                # A failed request frees its place too.
                with pytest.raises(httpx.ConnectError):
                    await client.get("http://127.0.0.1:1/")
                assert transport.busy == [0]

    asyncio.run(main())
