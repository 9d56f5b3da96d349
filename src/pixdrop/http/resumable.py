"""What tus (``http/tus.py``) and the IETF draft (``http/ietf.py``) share on the tus mount.

Both protocols serve the same upload resources from the same ``ResumableService``: the field
that tells their requests apart, the service, the upload URLs and the ``Pixdrop-Image`` header
naming an upload's stored image live here, so neither protocol module imports the other's.
"""

from __future__ import annotations

from typing import Final

from fastapi import Request

from pixdrop.http.state import base_url, runtime
from pixdrop.http.views import image_url, original_url
from pixdrop.services.resumable import ResumableService

#: The field that marks a request under the tus mount as the IETF draft's rather than tus's.
IETF_MARKER: Final = "upload-draft-interop-version"


def is_ietf(request: Request) -> bool:
    """Whether *request* speaks the IETF draft (else it is tus's)."""
    return IETF_MARKER in request.headers


def service(request: Request) -> ResumableService:
    """The running app's resumable-upload service."""
    return runtime(request).resumable


def upload_url(request: Request, upload_id: str) -> str:
    """The absolute URL of upload *upload_id* (its ``Location``)."""
    mount = runtime(request).settings.tus_path.rstrip("/")
    return f"{base_url(request)}{mount}/{upload_id}"


def image_header(request: Request, image_id: str) -> str:
    """``Pixdrop-Image``: an RFC 8941 dictionary naming the stored image, with the link fields
    of the JSON (``views.py``); ``url`` (deprecated) is ``image_url``, as it always was here."""
    base = base_url(request)
    meta, original = image_url(base, image_id), original_url(base, image_id)
    return f'id="{image_id}", image_url="{meta}", original_url="{original}", url="{meta}"'
