"""The composition root: ``create_app(settings)`` is the only code that picks concrete backends."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

import anyio
from anyio import to_thread
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.middleware.cors import CORSMiddleware

from pixdrop import __version__
from pixdrop.auth.keys import KeyResolver
from pixdrop.auth.middleware import AuthMiddleware
from pixdrop.auth.principal import KEY_PREFIX
from pixdrop.auth.scopes import ANY, require
from pixdrop.auth.signing import UrlSigner
from pixdrop.config import KNOWN_FORMATS, ConfigError, Settings, is_loopback, load_settings
from pixdrop.http import chunks, errors, keys, limits, listing, serve, simple, tus, variants, web
from pixdrop.http.h1 import http_protocol_class
from pixdrop.http.middleware import RequestLogMiddleware
from pixdrop.http.state import Runtime, runtime
from pixdrop.imaging import HeaderProber
from pixdrop.imaging.codec import VipsCodec
from pixdrop.metadata import SqlMetadataStore, open_metadata_store
from pixdrop.metadata.file_leases import MACHINE_TTL
from pixdrop.metadata.leases import FileLeases, SqlLeases, open_leases, refuse_other_machines
from pixdrop.models import ImageLimits, utcnow
from pixdrop.ports import BlobStore, ImageCodec
from pixdrop.services import Completion, ImageService, Lifecycle, UploadLimits, UploadService
from pixdrop.services.leases import LeaseKeeper
from pixdrop.services.locks import LeaseLocks
from pixdrop.services.renditions import RenditionService
from pixdrop.services.resumable import ResumableService
from pixdrop.storage import open_blob_store

log = logging.getLogger("pixdrop")

DESCRIPTION = """\
Upload images over plain HTTP, in one request (`POST /v1/images`) or in chunks that may arrive
in any order and in parallel (`/v1/uploads`). After a failure, `GET /v1/uploads/{id}` says
exactly which chunks are missing. tus 1.0 and IETF resumable-upload clients use `/files/`.
Every error is an RFC 9457 `application/problem+json` body.
"""

CORS_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
#: Response headers browser code may read: the resumable protocols live in headers.
CORS_EXPOSED = [
    "Location",
    "ETag",
    "Retry-After",
    "X-Request-Id",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Metadata",
    "Upload-Defer-Length",
    "Upload-Expires",
    "Upload-Concat",
    "Upload-Complete",
    "Upload-Incomplete",
    "Upload-Limit",
    "Repr-Digest",
    "Accept-Patch",
    "Upload-Draft-Interop-Version",
    "Tus-Resumable",
    "Tus-Version",
    "Tus-Extension",
    "Tus-Max-Size",
    "Tus-Checksum-Algorithm",
    "Pixdrop-Image",
    "Pixdrop-Delete-Token",
]


def _accepted_formats(settings: Settings, codec: ImageCodec) -> list[str]:
    """The formats asked for, each of which the codec must decode; by default, all it can."""
    wanted = settings.format_list
    if wanted is None:
        return [f for f in codec.decodes if f in KNOWN_FORMATS]
    missing = [f for f in wanted if f not in codec.decodes]
    if missing:
        raise ConfigError(f"formats: this server's decoder cannot read {', '.join(missing)}")
    return list(wanted)


def _image_limits(settings: Settings) -> ImageLimits:
    return ImageLimits(
        max_width=settings.max_width,
        max_height=settings.max_height,
        max_pixels=settings.max_pixels,
        max_frames=settings.max_frames,
    )


def _upload_limits(settings: Settings) -> UploadLimits:
    return UploadLimits(
        max_image_size=int(settings.max_image_size),
        default_chunk_size=int(settings.default_chunk_size),
        min_chunk_size=int(settings.min_chunk_size),
        max_chunk_size=int(settings.max_chunk_size),
        max_chunks=settings.max_chunks,
        ttl=timedelta(seconds=settings.upload_ttl),
    )


@dataclass(frozen=True, slots=True)
class Backends:
    """What the runtime's services stand on, to be closed when the app stops."""

    store: BlobStore
    meta: SqlMetadataStore
    leases: SqlLeases | FileLeases
    keeper: LeaseKeeper
    codec: ImageCodec


def build_runtime(settings: Settings, backends: Backends) -> Runtime:
    store, meta, codec = backends.store, backends.meta, backends.codec
    locks = LeaseLocks(backends.keeper)
    lifecycle = Lifecycle(
        staging=store.staging, meta=meta, limits=_upload_limits(settings), clock=utcnow
    )
    completion = Completion(
        staging=store.staging,
        blobs=store.blobs,
        locks=locks,
        prober=HeaderProber(_accepted_formats(settings, codec)),
        codec=codec,
        limits=_image_limits(settings),
        clock=utcnow,
    )
    images = ImageService(blobs=store.blobs, meta=meta, locks=locks)
    renditions = RenditionService(
        images=images,
        codec=codec,
        presets=settings.preset_sizes,
        sizes=settings.size_list,
        strip_gps=settings.strip_gps,
        patience=settings.decode_timeout * 2 + 10,
    )
    uploads = UploadService(
        lifecycle=lifecycle, completion=completion, staging=store.staging, meta=meta, locks=locks
    )
    resumable = ResumableService(
        lifecycle=lifecycle,
        completion=completion,
        staging=store.staging,
        meta=meta,
        locks=locks,
        max_request_size=int(settings.max_request_size),
        lock_wait=settings.lock_wait,
        idle_timeout=settings.idle_timeout,
    )
    signer = UrlSigner([settings.signing_key, settings.signing_key_previous])
    if signer.ephemeral:
        log.warning(
            "no --signing-key: signed URLs of private images work on this process only, "
            "until it restarts"
        )
    return Runtime(
        resolvers={KEY_PREFIX: KeyResolver(meta)},
        signer=signer,
        settings=settings,
        images=images,
        uploads=uploads,
        meta=meta,
        renditions=renditions,
        resumable=resumable,
        oneshot=resumable.oneshot,
        lifecycle=lifecycle,
        completion=completion,
    )


async def open_backends(settings: Settings, codec: ImageCodec) -> Backends:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # `pixdrop serve` refuses with one line before this; an app built otherwise refuses here.
    await to_thread.run_sync(refuse_other_machines, settings.resolved_database_url)
    # Opening an S3 store asks the bucket (a blocking call): off the event loop.
    store = await to_thread.run_sync(
        partial(
            open_blob_store,
            settings.resolved_blob_store,
            sync=settings.fsync,
            scratch=settings.data_dir / "tmp",
        )
    )
    meta = await to_thread.run_sync(
        partial(open_metadata_store, settings.resolved_database_url, sync=settings.fsync)
    )
    leases = open_leases(meta)
    keeper = LeaseKeeper(leases, lock_wait=settings.lock_wait)
    return Backends(store, meta, leases, keeper, codec)


async def _sweep_forever(rt: Runtime, backends: Backends, interval: float) -> None:
    """Sweep expired and orphaned uploads every *interval* seconds, on one process of all
    those sharing the database at a time (the holder of the ``sweeper`` lease); also drop
    lease rows their dead holders left behind."""
    while True:
        await anyio.sleep(interval)
        try:
            if await backends.keeper.lead("sweeper", ttl=interval * 3):
                await rt.lifecycle.sweep()
                await backends.leases.purge()
        except Exception:  # a failed sweep must not end the sweeper; the next one retries
            log.exception("sweeping expired uploads failed")


async def _beat_forever(leases: FileLeases) -> None:
    """Tell other machines that this one serves the SQLite data (they refuse to start)."""
    while True:
        try:
            await leases.beat()
        except Exception:  # a missed beat only weakens the guard; the next one retries
            log.exception("recording this machine in the leases database failed")
        await anyio.sleep(MACHINE_TTL / 3)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    codec = await VipsCodec.start(
        workers=settings.image_workers, decode_timeout=settings.decode_timeout
    )
    try:
        backends = await open_backends(settings, codec)
    except BaseException:
        await codec.close()
        raise
    rt = build_runtime(settings, backends)
    app.state.runtime = rt
    try:
        async with anyio.create_task_group() as tasks:
            await tasks.start(backends.keeper.run)
            tasks.start_soon(_sweep_forever, rt, backends, settings.sweep_interval)
            if isinstance(backends.leases, FileLeases):
                tasks.start_soon(_beat_forever, backends.leases)
            yield
            tasks.cancel_scope.cancel()
    finally:
        await backends.leases.close()
        await rt.meta.close()
        await backends.store.close()
        await codec.close()


async def _healthz(request: Request) -> JSONResponse:
    await runtime(request).meta.ping()
    return JSONResponse({"status": "ok", "version": __version__})


def create_app(settings: Settings) -> FastAPI:
    """Build the ASGI app for *settings*; stores open when the app starts (lifespan)."""
    # FastAPIOffline serves the Swagger UI and ReDoc assets from the package instead of a CDN,
    # so /docs works on machines without internet access.
    app = FastAPIOffline(
        title="pixdrop",
        version=__version__,
        description=DESCRIPTION,
        lifespan=_lifespan,
    )
    app.state.settings = settings
    if settings.auth_mode == "none" and not is_loopback(settings.host):
        log.warning(
            "--auth none on %s: anyone who can reach this address may upload, list and read "
            "every image; use --auth keys (docs/auth.md)",
            settings.host,
        )
    errors.install(app)
    upload, anyone = [Depends(require("upload"))], [Depends(require(ANY))]
    app.include_router(simple.router, dependencies=upload)
    app.include_router(chunks.router, dependencies=upload)
    app.include_router(listing.router)
    app.include_router(serve.router)
    app.include_router(variants.router)  # after serve: /original is not a variant
    app.include_router(limits.router, dependencies=anyone)
    app.include_router(keys.router)
    app.include_router(web.router)
    app.include_router(tus.router(settings), dependencies=upload)
    app.add_api_route("/healthz", _healthz, methods=["GET"], tags=["operations"])
    # Innermost first: method override and tus versioning see the request before routing;
    # CORS answers preflights before anything else; the request log wraps it all.
    app.add_middleware(tus.TusMiddleware, mount=settings.tus_path)
    # The credential, resolved once: inside CORS (a 401 still reaches browser code), outside
    # anything that counts by the principal (a rate limiter goes between tus and this).
    app.add_middleware(AuthMiddleware)
    origins = settings.cors_origin_list
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=CORS_METHODS,
            allow_headers=["*"],
            expose_headers=CORS_EXPOSED,
            max_age=86_400,
        )
    app.add_middleware(RequestLogMiddleware, access_log=settings.access_log)
    return app


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How uvicorn must serve the app: pixdrop's HTTP/1.1 protocol class (request trailers,
    104 responses) and proxy headers trusted only when ``trust_forwarded`` says so (uvicorn's
    default trusts X-Forwarded-* from 127.0.0.1)."""
    proxy: dict[str, Any] = (
        {"proxy_headers": True, "forwarded_allow_ips": "*"}
        if settings.trust_forwarded
        else {"proxy_headers": False}
    )
    return {"http": http_protocol_class(), **proxy}


def app_from_environment() -> FastAPI:
    """App factory for worker processes: settings come from ``PIXDROP_*`` variables."""
    return create_app(load_settings())
