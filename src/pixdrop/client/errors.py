"""The client's errors: what the server refused (with its problem details), what never got through.

The tree::

    PixdropClientError                 base of everything the client raises on purpose
    ├── ProblemError                   the server answered with an error (status, type, title,
    │   │                              detail and the whole problem body)
    │   ├── BadRequestError        400
    │   ├── UnauthorizedError      401  a delete without a token
    │   ├── ForbiddenError         403  a wrong delete token
    │   ├── NotFoundError          404
    │   ├── ConflictError          409
    │   ├── GoneError              410  the upload expired
    │   ├── PayloadTooLargeError   413
    │   ├── UnprocessableError     422  not an image, or the sha256 did not match
    │   └── ServerError            5xx  (only ever seen inside a TransferError: 5xx are retried)
    ├── TransferError                  retries exhausted; ``last_error`` says what failed last
    └── IntegrityError                 downloaded bytes that do not match their sha256

``problem_error`` picks the class from the status alone; the problem ``type`` (see ``slug``)
tells the cases of one status apart (``chunk-busy`` and ``upload-incomplete`` are both 409).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar


class PixdropClientError(Exception):
    """Base class of the client's own errors."""


class ProblemError(PixdropClientError):
    """The server refused a request; carries its RFC 9457 problem details."""

    status_code: ClassVar[int | None] = None

    def __init__(self, status: int, body: dict[str, Any], retry_after: float | None = None):
        self.status = status
        self.body = body
        self.type = str(body.get("type") or "about:blank")
        self.title = str(body.get("title") or f"HTTP {status}")
        self.detail = str(body.get("detail") or "")
        #: Seconds the server asked us to wait (``Retry-After``), when it said so.
        self.retry_after = retry_after
        super().__init__(f"{status} {self.title}: {self.detail}" if self.detail else self.title)

    @property
    def slug(self) -> str:
        """The last segment of the problem type: ``/problems/chunk-busy`` → ``chunk-busy``."""
        return self.type.rstrip("/").rsplit("/", 1)[-1]


class BadRequestError(ProblemError):
    status_code = 400


class UnauthorizedError(ProblemError):
    status_code = 401


class ForbiddenError(ProblemError):
    status_code = 403


class NotFoundError(ProblemError):
    status_code = 404


class ConflictError(ProblemError):
    status_code = 409


class GoneError(ProblemError):
    status_code = 410


class PayloadTooLargeError(ProblemError):
    status_code = 413


class UnprocessableError(ProblemError):
    status_code = 422


class ServerError(ProblemError):
    """A 5xx answer."""


class TransferError(PixdropClientError):
    """A request kept failing (connection errors, timeouts, 5xx, 429) until retries ran out."""

    def __init__(self, message: str, last_error: BaseException | None = None) -> None:
        super().__init__(message)
        self.last_error = last_error


class IntegrityError(PixdropClientError):
    """Bytes received from the server do not match the sha256 it announced for them."""


_BY_STATUS: dict[int, type[ProblemError]] = {
    cls.status_code: cls
    for cls in (
        BadRequestError,
        UnauthorizedError,
        ForbiddenError,
        NotFoundError,
        ConflictError,
        GoneError,
        PayloadTooLargeError,
        UnprocessableError,
    )
    if cls.status_code is not None
}


def problem_error(status: int, content: bytes, retry_after: float | None = None) -> ProblemError:
    """The typed error for an error response; a body that is no problem object is kept as text."""
    try:
        parsed = json.loads(content) if content else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        body: dict[str, Any] = parsed
    else:
        # A proxy's HTML error page, say: keep its start so the message still helps.
        text = content[:500].decode("utf-8", "replace").strip()
        body = {"title": f"HTTP {status}", "status": status, "detail": text}
    cls = ServerError if status >= 500 else _BY_STATUS.get(status, ProblemError)
    return cls(status, body, retry_after)
