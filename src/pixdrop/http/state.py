"""What request handlers reach through ``request.app.state``: settings and services."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from pixdrop.config import Settings
from pixdrop.ports import MetadataStore
from pixdrop.services import ImageService, UploadService
from pixdrop.services.renditions import RenditionService


@dataclass(frozen=True, slots=True)
class Runtime:
    """The services one app instance runs on, built by the lifespan in ``app.py``."""

    settings: Settings
    images: ImageService
    uploads: UploadService
    meta: MetadataStore
    renditions: RenditionService


def runtime(request: Request) -> Runtime:
    """The running app's services (a FastAPI dependency)."""
    value = request.app.state.runtime
    assert isinstance(value, Runtime)
    return value


def base_url(request: Request) -> str:
    """Absolute base for links: the configured public URL, else the request's own."""
    configured = runtime(request).settings.public_url
    return (configured or str(request.base_url)).rstrip("/")
