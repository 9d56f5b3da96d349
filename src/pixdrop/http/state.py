"""What request handlers reach through ``request.app.state``: settings and services."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from pixdrop.auth.principal import TokenResolver
from pixdrop.auth.signing import UrlSigner
from pixdrop.config import Settings
from pixdrop.ports import MetadataStore
from pixdrop.protocols.forwarded import forwarded_origin
from pixdrop.services import ImageService, UploadService
from pixdrop.services.completion import Completion
from pixdrop.services.grants import DirectUploads
from pixdrop.services.lifecycle import Lifecycle
from pixdrop.services.oneshot import OneShot
from pixdrop.services.renditions import RenditionService
from pixdrop.services.resumable import ResumableService


@dataclass(frozen=True, slots=True)
class Runtime:
    """The services one app instance runs on, built by the lifespan in ``app.py``."""

    settings: Settings
    images: ImageService
    uploads: UploadService
    meta: MetadataStore
    renditions: RenditionService
    resumable: ResumableService
    oneshot: OneShot
    lifecycle: Lifecycle
    completion: Completion
    direct: DirectUploads
    #: Bearer secrets' resolvers by prefix (``auth.middleware``): API keys, grants.
    resolvers: dict[str, TokenResolver] = field(default_factory=dict)
    #: Signs and checks the URLs of private images.
    signer: UrlSigner = field(default_factory=lambda: UrlSigner([]))


def runtime(request: Request) -> Runtime:
    """The running app's services (a FastAPI dependency)."""
    value = request.app.state.runtime
    assert isinstance(value, Runtime)
    return value


def base_url(request: Request) -> str:
    """Absolute base for links: the configured public URL; else, behind a trusted proxy, what
    the proxy says the client asked for; else the request's own."""
    settings = runtime(request).settings
    if settings.public_url:
        return settings.public_url.rstrip("/")
    own = str(request.base_url).rstrip("/")
    if settings.trust_forwarded:
        scheme, host = forwarded_origin(request.headers)
        if scheme or host:
            root = request.scope.get("root_path", "").rstrip("/")
            return f"{scheme or request.url.scheme}://{host or request.url.netloc}{root}"
    return own
