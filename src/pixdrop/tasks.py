"""Awaiting things side by side, keeping each one's result or error apart."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import anyio

A = TypeVar("A")
B = TypeVar("B")
T = TypeVar("T")


@dataclass(slots=True)
class Outcome(Generic[T]):
    """What one awaitable came to: a value, or the exception it raised."""

    value: T | None = None
    error: BaseException | None = None

    def unwrap(self) -> T:
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


async def settle(*awaitables: Awaitable[Any]) -> list[Outcome[Any]]:
    """Await all *awaitables* concurrently; every one runs to its end even if another fails.

    Cancellation is not caught: it cancels them all and propagates.
    """
    outcomes: list[Outcome[Any]] = [Outcome() for _ in awaitables]

    async def keep(outcome: Outcome[Any], awaitable: Awaitable[Any]) -> None:
        try:
            outcome.value = await awaitable
        except Exception as exc:
            outcome.error = exc

    async with anyio.create_task_group() as tasks:
        for outcome, awaitable in zip(outcomes, awaitables, strict=True):
            tasks.start_soon(keep, outcome, awaitable)
    return outcomes


async def both(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """Await *first* and *second* concurrently; if either fails, raise *first*'s error first."""
    one, two = await settle(first, second)
    return one.unwrap(), two.unwrap()
