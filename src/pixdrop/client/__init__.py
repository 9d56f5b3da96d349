"""pixdrop's Python client: uploads that resume after a dropped connection or a killed process.

::

    from pixdrop.client import Client

    with Client("http://127.0.0.1:8000") as client:
        image = client.upload("cat.png", on_progress=print)
        client.download(image.id, "copy.png")
        client.delete(image.id, image.delete_token)

``AsyncClient`` has the same methods, awaited. Small files go in one request; larger ones in
chunks sent in parallel, each with its digest, the whole file's sha256 given at creation. A
resume record per file (``state.py``) lets a later run send only the chunks the server lacks.
Retries follow ``RetryPolicy``; refusals raise ``ProblemError`` subclasses (docs/client.md).
"""

from pixdrop.client._async import AsyncClient
from pixdrop.client._sync import Client
from pixdrop.client.errors import (
    BadRequestError,
    ConflictError,
    ForbiddenError,
    GoneError,
    IntegrityError,
    NotFoundError,
    PayloadTooLargeError,
    PixdropClientError,
    ProblemError,
    ServerError,
    TransferError,
    UnauthorizedError,
    UnprocessableError,
)
from pixdrop.client.models import Image, ImagePage, Progress, UploadStatus
from pixdrop.client.retry import RetryNotice, RetryPolicy
from pixdrop.client.state import STATE_DIR_ENV, ResumeStore, TokenStore, default_state_dir

__all__ = [
    "STATE_DIR_ENV",
    "AsyncClient",
    "BadRequestError",
    "Client",
    "ConflictError",
    "ForbiddenError",
    "GoneError",
    "Image",
    "ImagePage",
    "IntegrityError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PixdropClientError",
    "ProblemError",
    "Progress",
    "ResumeStore",
    "RetryNotice",
    "RetryPolicy",
    "ServerError",
    "TokenStore",
    "TransferError",
    "UnauthorizedError",
    "UnprocessableError",
    "UploadStatus",
    "default_state_dir",
]
