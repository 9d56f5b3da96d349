"""Rate limits: how many requests a client may make in a moving window, counted in Redis
(shared by every node) or in the process's memory.

The counting is the ``limits`` library's moving window: a request is allowed if fewer than
``amount`` requests of the same client fell in the last ``window`` seconds, so there is no
burst at a window's edge. With ``--redis-url`` every node counts in the same Redis keys (one
sorted list per client and rate, kept by an atomic Lua script); without it each process counts
on its own.

The answer carries what the IETF draft (draft-ietf-httpapi-ratelimit-headers) puts in
headers: ``RateLimit-Policy: "address";q=600;w=60`` (the policy: quota and window) and
``RateLimit: "address";r=17;t=42`` (what is left, and seconds until the window frees room).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

__all__ = ["Decision", "RateLimiter", "parse_rate"]

#: Keys in Redis start with this, so pixdrop's counters are told apart from others'.
NAMESPACE = "pixdrop"


def parse_rate(text: str) -> RateLimitItem:
    """``600/minute``, ``10/second``, ``1000 per hour`` ...; ``ValueError`` if it is none."""
    try:
        item = parse(text)
    except ValueError:
        raise ValueError(
            f"a rate is COUNT/PERIOD, such as 600/minute or 10/second, not {text!r}"
        ) from None
    if item.amount < 1:
        raise ValueError(f"a rate allows at least one request, not {text!r}")
    return item


@dataclass(frozen=True, slots=True)
class Decision:
    """One request counted: allowed or not, and what the headers say."""

    allowed: bool
    policy: str
    quota: int
    window: int
    remaining: int
    #: Seconds until the oldest request counted leaves the window (room for one more).
    reset: int

    def headers(self) -> dict[str, str]:
        """``RateLimit-Policy`` and ``RateLimit`` (and ``Retry-After`` when refused)."""
        name = f'"{self.policy}"'
        headers = {
            "RateLimit-Policy": f"{name};q={self.quota};w={self.window}",
            "RateLimit": f"{name};r={self.remaining};t={self.reset}",
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, self.reset))
        return headers


class RateLimiter:
    """Counts requests per client identity, in Redis or in memory."""

    def __init__(self, storage: Storage, default: str) -> None:
        self.storage = storage
        self.default = parse_rate(default)
        self._strategy = MovingWindowRateLimiter(storage)
        self._items: dict[str, RateLimitItem] = {}

    @classmethod
    def open(cls, default: str, redis_url: str | None = None) -> RateLimiter:
        """A limiter counting in Redis at *redis_url* (``redis://``, ``rediss://``), else in
        this process's memory. Redis is reached lazily, at the first request."""
        if redis_url is None:
            return cls(MemoryStorage(), default)
        uri = "async+" + redis_url if not redis_url.startswith("async+") else redis_url
        storage = storage_from_string(uri, implementation="redispy", key_prefix=NAMESPACE)
        assert isinstance(storage, Storage)  # an async+ scheme gives an async storage
        return cls(storage, default)

    def _item(self, rate: str | None) -> RateLimitItem:
        if rate is None:
            return self.default
        item = self._items.get(rate)
        if item is None:
            item = self._items[rate] = parse_rate(rate)
        return item

    async def hit(self, identity: str, *, policy: str, rate: str | None = None) -> Decision:
        """Count one request of *identity* against *rate* (default: the server's)."""
        item = self._item(rate)
        allowed = await self._strategy.hit(item, identity)
        stats = await self._strategy.get_window_stats(item, identity)
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        return Decision(
            allowed=allowed,
            policy=policy,
            quota=item.amount,
            window=item.get_expiry(),
            remaining=max(0, stats.remaining),
            reset=reset,
        )
