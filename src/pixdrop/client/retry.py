"""When to try a request again, and how long to wait first (pure: no clock, no sleeping).

Retried: connection errors and timeouts, ``5xx``, ``429``, and the ``409`` problems that mean
"not now" (``chunk-busy``: another request holds the chunk; ``conflict`` on ``complete``:
another request is completing the upload). Every request pixdrop's client retries is safe to
repeat: a chunk re-sent with the same bytes is acknowledged with ``200``, and ``complete``
answers the stored image once done. Other ``4xx`` are final.

The wait is exponential backoff with full jitter (a uniform draw in ``[0, backoff * 2**n]``,
capped), so clients cut off together do not come back together. A ``Retry-After`` from the
server is a floor, never shortened.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from pixdrop.client.errors import ProblemError, TransferError

#: 409 problem types that mean "retry shortly" rather than "you are wrong".
RETRYABLE_CONFLICTS = frozenset({"chunk-busy", "conflict"})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry. ``attempts`` counts the first try too."""

    attempts: int = 8
    backoff: float = 0.5
    max_backoff: float = 20.0
    #: The longest ``Retry-After`` honoured; a server asking for more is waited on this long.
    max_retry_after: float = 120.0

    def delay(self, failures: int, retry_after: float | None, rng: random.Random) -> float | None:
        """Seconds to wait after the *failures*-th failure, or ``None`` when out of attempts."""
        if failures >= self.attempts:
            return None
        ceiling = min(self.max_backoff, self.backoff * 2 ** (failures - 1))
        wait = rng.uniform(0, ceiling)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after))
        return wait


def retryable_status(status: int, slug: str) -> bool:
    """Whether an error answer with *status* and problem *slug* is worth another try."""
    return status >= 500 or status == 429 or (status == 409 and slug in RETRYABLE_CONFLICTS)


def retryable_exception(exc: Exception) -> bool:
    """Connection failures and timeouts are retried; a malformed URL or scheme never heals."""
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
        return False
    return isinstance(exc, httpx.TransportError)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def should_retry(exc: BaseException) -> bool:
    """Whether a failed attempt that raised *exc* is worth another."""
    if isinstance(exc, ProblemError):
        return retryable_status(exc.status, exc.slug)
    return isinstance(exc, Exception) and retryable_exception(exc)


def server_retry_after(exc: BaseException) -> float | None:
    return exc.retry_after if isinstance(exc, ProblemError) else None


@dataclass(frozen=True, slots=True)
class RetryNotice:
    """A failed attempt that will be tried again after ``delay`` seconds.

    ``what`` names the request (``PUT chunk 3``, ``POST /v1/uploads``); ``attempt`` is the
    number of the attempt about to be made (2 after the first failure); ``error`` is why the
    last one failed.
    """

    what: str
    attempt: int
    delay: float
    error: BaseException

    def __str__(self) -> str:
        wait = f"{self.delay:.1f}" if self.delay < 10 else f"{self.delay:.0f}"
        return f"retrying in {wait} s (attempt {self.attempt}): {describe(self.error)}"


def describe(exc: BaseException) -> str:
    """A short text for a failure: the problem's, or the exception's class and message."""
    if isinstance(exc, ProblemError):
        return str(exc)
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, TransferError) else f"{type(exc).__name__}: {text}"


def next_wait(
    policy: RetryPolicy,
    what: str,
    failures: int,
    exc: BaseException,
    rng: random.Random,
    on_retry: Callable[[RetryNotice], None] | None,
) -> float:
    """Seconds to wait after the *failures*-th failure (*exc*) of *what*, told to *on_retry*;
    raise the ``TransferError`` that gives up when the attempts are spent."""
    delay = policy.delay(failures, server_retry_after(exc), rng)
    if delay is None:
        raise gave_up(what, failures, exc) from exc
    if on_retry is not None:
        on_retry(RetryNotice(what, failures + 1, delay, exc))
    return delay


def gave_up(what: str, failures: int, exc: BaseException) -> TransferError:
    return TransferError(f"{what} failed {failures} times; the last error: {exc}", exc)
