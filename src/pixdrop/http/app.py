"""The composition root: ``create_app(settings)`` is the only code that picks concrete backends."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
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

from pixdrop import __version__, logs, metrics
from pixdrop.auth.grants import GrantResolver
from pixdrop.auth.keys import KeyResolver
from pixdrop.auth.middleware import AuthMiddleware
from pixdrop.auth.principal import GRANT_PREFIX, KEY_PREFIX
from pixdrop.auth.ratelimit import RateLimiter
from pixdrop.auth.scopes import ANY, require
from pixdrop.auth.signing import UrlSigner
from pixdrop.config import KNOWN_FORMATS, ConfigError, Settings, is_loopback, load_settings
from pixdrop.http import (
    chunks,
    direct,
    errors,
    fastpath,
    keys,
    limits,
    listing,
    openapi,
    serve,
    simple,
    tus,
    variants,
    web,
    webhooks,
)
from pixdrop.http import metrics as metrics_endpoint
from pixdrop.http.connections import SHUTDOWN_GRACE, ConnectionLimits, default_max_connections
from pixdrop.http.h1 import http_protocol_class
from pixdrop.http.middleware import RequestLogMiddleware
from pixdrop.http.problems import problems, responses
from pixdrop.http.ratelimit import RateLimitMiddleware
from pixdrop.http.schemas import Health, Ready
from pixdrop.http.state import Runtime, runtime
from pixdrop.imaging import HeaderProber
from pixdrop.imaging.codec import VipsCodec
from pixdrop.metadata import SqlMetadataStore, open_metadata_store
from pixdrop.metadata.file_leases import MACHINE_TTL
from pixdrop.metadata.leases import FileLeases, SqlLeases, open_leases, refuse_other_machines
from pixdrop.models import ImageLimits, utcnow
from pixdrop.ports import BlobStore, ImageCodec
from pixdrop.services import Completion, ImageService, Lifecycle, UploadLimits, UploadService
from pixdrop.services.appends import Checkpoints
from pixdrop.services.grants import DirectUploads
from pixdrop.services.leases import LeaseKeeper
from pixdrop.services.locks import LeaseLocks
from pixdrop.services.renditions import RenditionService
from pixdrop.services.resumable import ResumableService
from pixdrop.storage import open_blob_store
from pixdrop.tasks import both
from pixdrop.webhooks.hook import PreCreateHook, RequestScope
from pixdrop.webhooks.sender import SenderSettings, open_sender

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
    "RateLimit",
    "RateLimit-Policy",
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
        max_open_per_client=settings.max_open_uploads_per_client,
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
    formats = _accepted_formats(settings, codec)
    lifecycle = Lifecycle(
        staging=store.staging,
        meta=meta,
        limits=_upload_limits(settings),
        clock=utcnow,
        hook=_pre_create_hook(settings),
        blobs=store.blobs,
        locks=locks,
        codec=codec,
    )
    completion = Completion(
        staging=store.staging,
        blobs=store.blobs,
        locks=locks,
        prober=HeaderProber(formats),
        codec=codec,
        limits=_image_limits(settings),
        clock=utcnow,
        grants=meta,
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
        checkpoints=Checkpoints(
            int(settings.append_checkpoint_bytes), settings.append_checkpoint_seconds
        ),
    )
    signer = UrlSigner([settings.signing_key, settings.signing_key_previous])
    if signer.ephemeral:
        log.warning(
            "no --signing-key: signed URLs of private images work on this process only, "
            "until it restarts"
        )
    direct = DirectUploads(
        meta=meta,
        clock=utcnow,
        formats=tuple(formats),
        max_image_size=int(settings.max_image_size),
    )
    return Runtime(
        resolvers={KEY_PREFIX: KeyResolver(meta), GRANT_PREFIX: GrantResolver(direct)},
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
        direct=direct,
    )


def _pre_create_hook(settings: Settings) -> PreCreateHook | None:
    if not settings.hook_url:
        return None
    return PreCreateHook(
        settings.hook_url, timeout=settings.hook_timeout, failure=settings.hook_failure
    )


def _sender_settings(settings: Settings) -> SenderSettings:
    return SenderSettings(
        retry_base=settings.webhook_retry_base,
        timeout=settings.webhook_timeout,
        retry_for=settings.webhook_retry_for,
        concurrency=settings.webhook_concurrency,
        refresh=settings.webhook_refresh,
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
                metrics.UPLOADS_EXPIRED.inc(await rt.lifecycle.sweep())
                await backends.leases.purge()
                metrics.SWEEPS.labels("ok").inc()
        except Exception:  # a failed sweep must not end the sweeper; the next one retries
            metrics.SWEEPS.labels("failed").inc()
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
        workers=settings.image_workers,
        decode_timeout=settings.decode_timeout,
        idle_timeout=settings.image_worker_idle,
    )
    try:
        backends = await open_backends(settings, codec)
    except BaseException:
        await codec.close()
        raise
    rt = build_runtime(settings, backends)
    app.state.runtime = rt
    # Webhooks: the store writes events from here on; the sender delivers them.
    sender = open_sender(
        backends.meta, backends.keeper, _sender_settings(settings), settings.public_url or ""
    )
    app.state.webhooks = sender
    app.state.blob_store = backends.store
    try:
        async with anyio.create_task_group() as tasks:
            await tasks.start(backends.keeper.run)
            await tasks.start(sender.run)
            tasks.start_soon(_sweep_forever, rt, backends, settings.sweep_interval)
            if isinstance(backends.leases, FileLeases):
                tasks.start_soon(_beat_forever, backends.leases)
            yield
            begin_shutdown(app)
            tasks.cancel_scope.cancel()
    finally:
        if isinstance(rt.lifecycle.hook, PreCreateHook):
            await rt.lifecycle.hook.close()
        await backends.leases.close()
        await rt.meta.close()
        await backends.store.close()
        await codec.close()


#: How long ``/readyz`` waits for each store to answer before calling it down.
READY_TIMEOUT = 5.0
#: ``/readyz``'s own 503, beside the connection layer's problem of the same status.
NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {
        "model": Ready,
        "description": "Not ready: the database or the blob store does not answer now, or "
        "the server shuts down (application/json); or a problem of the connection layer",
    }
}


def begin_shutdown(app: FastAPI) -> None:
    """From now on ``/readyz`` answers 503, so load balancers stop sending new requests
    while those in flight finish (called when the server starts to stop)."""
    app.state.shutting_down = True


async def _healthz(request: Request) -> JSONResponse:
    """Liveness: the process answers. Nothing else is asked (a database that is down is a
    readiness matter: restarting pixdrop would not bring it back)."""
    return JSONResponse({"status": "ok", "version": __version__})


async def _answers(ping: Callable[[], Awaitable[None]], what: str) -> str:
    try:
        with anyio.fail_after(READY_TIMEOUT):
            await ping()
    except TimeoutError:
        log.warning("readiness: the %s did not answer within %s s", what, READY_TIMEOUT)
        return "timeout"
    except Exception as exc:  # whatever the driver raises: the store is not usable now
        log.warning("readiness: the %s does not answer: %s", what, exc)
        return "down"
    return "ok"


async def _readyz(request: Request) -> JSONResponse:
    """Readiness: 200 when the database and the blob store both answer a cheap request now;
    503 while either does not, and while the server shuts down."""
    if getattr(request.app.state, "shutting_down", False):
        return JSONResponse({"status": "shutting-down"}, status_code=503)
    store: BlobStore = request.app.state.blob_store
    database, blobs = await both(
        _answers(runtime(request).meta.ping, "database"), _answers(store.ping, "blob store")
    )
    ready = database == blobs == "ok"
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "database": database, "blob_store": blobs},
        status_code=200 if ready else 503,
    )


def create_app(settings: Settings) -> FastAPI:
    """Build the ASGI app for *settings*; stores open when the app starts (lifespan)."""
    # FastAPIOffline serves the Swagger UI and ReDoc assets from the package instead of a CDN,
    # so /docs works on machines without internet access.
    app = FastAPIOffline(
        title="pixdrop",
        version=__version__,
        description=DESCRIPTION,
        lifespan=_lifespan,
        generate_unique_id_function=openapi.operation_id,
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
    app.include_router(direct.router)  # its routes say what they need (the upload URL: none)
    app.include_router(chunks.router, dependencies=upload)
    app.include_router(listing.router)
    app.include_router(serve.router)
    app.include_router(variants.router)  # after serve: /original is not a variant
    app.include_router(limits.router, dependencies=anyone)
    app.include_router(keys.router)
    app.include_router(webhooks.router)
    app.include_router(web.router)
    app.include_router(tus.router(settings), dependencies=upload)
    app.add_api_route(
        "/healthz",
        _healthz,
        methods=["GET"],
        tags=["operations"],
        response_model=Health,
        responses=problems("healthz"),
        operation_id="healthz",
    )
    app.add_api_route(
        "/readyz",
        _readyz,
        methods=["GET"],
        tags=["operations"],
        response_model=Ready,
        summary="Readiness",
        responses=responses("readyz", NOT_READY),
        operation_id="readyz",
    )
    if settings.metrics_port is None:  # else served on a port of its own (cli/serve.py)
        app.add_route("/metrics", metrics_endpoint.endpoint, include_in_schema=False)
    openapi.install(app, settings)
    # Innermost first: the pre-create hook reads the scope the routes see (RequestScope);
    # method override and tus versioning see the request before routing;
    # CORS answers preflights before anything else; the request log wraps it all.
    # The chunk PUT and the tus PATCH and creation go to their endpoints without the router
    # (fastpath.py); the routes, their scope check and the exception handlers are the app's.
    hot = [
        route
        for endpoint in (chunks.put_chunk, tus.patch, tus.create)
        for route in fastpath.find_routes(app.routes, endpoint)
    ]
    app.add_middleware(
        fastpath.DirectRoutes,
        routes=tuple((route, (upload[0].dependency,)) for route in hot),
        handlers=app.exception_handlers,
    )
    app.add_middleware(RequestScope)
    app.add_middleware(tus.TusMiddleware, mount=settings.tus_path)
    if settings.rate_limit is not None:
        # Inside CORS (a 429 still reaches browser code) and inside the authentication layer,
        # which must leave the principal in the scope before this counts by it.
        limiter = RateLimiter.open(settings.rate_limit, settings.redis_url)
        app.add_middleware(
            RateLimitMiddleware, limiter=limiter, trust_forwarded=settings.trust_forwarded
        )
    # The credential, resolved once: inside CORS (a 401 still reaches browser code), outside
    # the rate limiter (which counts by the principal).
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
    limits = ConnectionLimits(
        header_timeout=settings.header_timeout,
        max_header_size=int(settings.max_header_size),
        idle_timeout=settings.idle_timeout,
        max_connections=settings.max_connections or default_max_connections(),
        shutdown_timeout=settings.shutdown_timeout,
    )
    return {
        "http": http_protocol_class(limits=limits),
        "timeout_keep_alive": settings.keep_alive_timeout,
        # What still runs this long after the shutdown deadline is cancelled (see connections).
        "timeout_graceful_shutdown": settings.shutdown_timeout + SHUTDOWN_GRACE,
        **proxy,
    }


def app_from_environment() -> FastAPI:
    """App factory for worker processes: settings come from ``PIXDROP_*`` variables."""
    settings = load_settings()
    logs.configure(settings.log_format, access_log=settings.access_log)
    return create_app(settings)
