"""Settings: one typed object, from flags and ``PIXDROP_*`` variables, validated at start-up.

There is no module-level instance: the CLI (or a test) builds one and hands it to
``create_app``. Sizes accept plain byte counts or units (``8MiB``, ``2GiB``, ``512kB``).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    ByteSize,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from pixdrop.formats import NAMES
from pixdrop.storage import default_blob_store_url

ENV_PREFIX = "PIXDROP_"
MiB = 1024 * 1024

_UNITS = {
    "": 1,
    "b": 1,
    **{f"{p}b": 1000**n for n, p in enumerate("kmgtpe", 1)},
    **{f"{p}ib": 1024**n for n, p in enumerate("kmgtpe", 1)},
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", re.IGNORECASE)


def _exact_size(value: Any) -> Any:
    """``2.01kb`` is 2010 bytes: a size with units, read exactly (pydantic's ``ByteSize``
    multiplies a float, and 2.01 * 1000 came out as 2009); whole bytes, rounded down."""
    if not isinstance(value, str):
        return value
    found = _SIZE.fullmatch(value)
    if found is None or found[2].lower() not in _UNITS:
        return value  # ByteSize refuses it, with its own message
    return int(Decimal(found[1]) * _UNITS[found[2].lower()])


Size = Annotated[ByteSize, BeforeValidator(_exact_size), Field(gt=0)]

#: Every format pixdrop knows; HEIC only where libheif has an HEVC decoder.
KNOWN_FORMATS = NAMES
#: Presets whose names are paths: ``GET /v1/images/{id}/thumb``.
DEFAULT_PRESETS = "thumb=256,small=512,medium=1024,large=2048"
DEFAULT_VARIANT_SIZES = "64,128,160,256,320,480,512,640,800,1024,1280,1600,2048"


class Settings(BaseSettings):
    """Every knob of the server. Field descriptions are the ``--help`` texts and the docs."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port to listen on (0: any free).")
    data_dir: Path = Field(
        Path("pixdrop-data"), description="Directory for blobs, staging files and SQLite."
    )
    database_url: str | None = Field(
        None,
        description="Metadata database: sqlite:///PATH or postgresql://USER@HOST/DB "
        "(default: SQLite in the data directory).",
    )
    blob_store: str | None = Field(
        None,
        description="Where image bytes and uploads in progress live: file:///PATH, or "
        "s3://BUCKET/PREFIX?endpoint_url=URL&region=REGION (default: the data directory).",
    )
    blob_redirect: bool = Field(
        False,
        description="Answer GET of an original that anyone may have (not a GPS-free copy) "
        "with a 302 to a presigned URL of the bucket, valid 300 s, instead of sending the "
        "bytes (S3 blob store only).",
    )
    workers: int = Field(1, ge=1, le=64, description="Worker processes.")
    public_url: str | None = Field(
        None,
        description="Base URL used in links (e.g. https://img.example.com); "
        "default: taken from each request.",
    )
    max_image_size: Size = Field(
        ByteSize(4 * 1024 * MiB), description="Largest image accepted by any upload path."
    )
    max_request_size: Size = Field(
        ByteSize(256 * MiB), description="Largest body of a one-request upload (POST /v1/images)."
    )
    default_chunk_size: Size = Field(
        ByteSize(8 * MiB), description="Chunk size when the client does not ask for one."
    )
    min_chunk_size: Size = Field(
        ByteSize(64 * 1024), description="Smallest chunk size a client may ask for."
    )
    max_chunk_size: Size = Field(
        ByteSize(64 * MiB), description="Largest chunk size a client may ask for."
    )
    max_chunks: int = Field(10_000, ge=1, description="Most chunks one upload may have.")
    upload_ttl: int = Field(
        86_400, ge=1, description="Seconds an unfinished upload is kept before it is swept."
    )
    sweep_interval: float = Field(
        60.0, gt=0, description="Seconds between sweeps of expired uploads."
    )
    tus_path: str = Field(
        "/files",
        pattern=r"^/[A-Za-z0-9._~/-]*[A-Za-z0-9._~-]$",
        description="Where the tus 1.0 and IETF resumable-upload endpoint is mounted.",
    )
    lock_wait: float = Field(
        5.0,
        gt=0,
        description="Seconds a resumable append waits for an older request on the same upload "
        "to step aside before answering 423.",
    )
    idle_timeout: float = Field(
        30.0,
        gt=0,
        description="Seconds without a byte of a request body after which the request ends: "
        "a resumable append keeps the bytes received, any other request is answered 408.",
    )
    header_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds a client has to send a request's head, from connecting (or from "
        "the first byte of a later request on the connection); then 408 and the connection "
        "closes.",
    )
    max_header_size: Size = Field(
        ByteSize(16 * 1024),
        description="Largest request head (request line and header fields); larger: 431.",
    )
    keep_alive_timeout: float = Field(
        5.0, gt=0, description="Seconds an idle connection is kept open between requests."
    )
    max_connections: int | None = Field(
        None,
        ge=1,
        description="Open connections per process beyond which requests are answered 503 "
        "(default: three quarters of the open-file limit, ulimit -n).",
    )
    shutdown_timeout: float = Field(
        30.0,
        ge=0,
        description="Seconds requests get to finish once shutdown begins; then resumable "
        "appends end keeping their bytes, and what still runs 5 s later is cancelled.",
    )
    append_checkpoint_bytes: Annotated[ByteSize, Field(ge=0)] = Field(
        ByteSize(8 * MiB),
        description="A resumable append (tus PATCH, IETF append) records what it has received "
        "every so many bytes, so a crash mid-request loses at most that much (0: off).",
    )
    append_checkpoint_seconds: float = Field(
        1.0,
        ge=0,
        description="A resumable append also records what it has received at least this "
        "often, in seconds, while bytes arrive (0: off; with --append-checkpoint-bytes 0 too, "
        "an append is recorded only when its request ends).",
    )
    cors_origins: str | None = Field(
        None,
        description="Origins allowed to call the API from browsers, comma-separated, or '*' "
        "(default: none, same origin only).",
    )
    trust_forwarded: bool = Field(
        False,
        description="Build absolute URLs from Forwarded / X-Forwarded-Proto / X-Forwarded-Host "
        "(only behind a proxy that sets them).",
    )
    fsync: bool = Field(
        True,
        description="Flush every acknowledged byte and record to the disk before answering. "
        "Off: acknowledged data survives a crash of pixdrop, not of the machine.",
    )
    access_log: bool = Field(True, description="Log one line per request on stderr.")
    log_format: Literal["text", "json", "auto"] = Field(
        "text",
        description="Log lines on stderr as text, or as one JSON object per line (json); "
        "auto: text on a terminal, JSON otherwise.",
    )
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Serve Prometheus metrics on this port of --host, and only there, with no "
        "key (default: at /metrics on the main port, which needs an admin key with --auth keys).",
    )
    rate_limit: str | None = Field(
        None,
        description="Requests one client address may make (anonymous and direct-upload grant "
        "traffic), e.g. 600/minute; also the default of a key's own rate. Health checks and "
        "the web page's files are not counted (default: no limit).",
    )
    redis_url: str | None = Field(
        None,
        description="Redis that keeps the rate-limit counters, shared by every node "
        "(redis://HOST:PORT/DB); default: each process counts in memory.",
    )
    max_open_uploads_per_client: int | None = Field(
        None,
        ge=1,
        description="Unfinished uploads one client address may hold at once (anonymous and "
        "direct-upload grant traffic; default: no limit).",
    )
    formats: str | None = Field(
        None,
        description="Accepted image formats, comma-separated, of "
        f"{','.join(KNOWN_FORMATS)} (default: every one of them the decoder supports).",
    )
    max_width: int = Field(32_768, ge=1, description="Widest image accepted, in pixels.")
    max_height: int = Field(32_768, ge=1, description="Tallest image accepted, in pixels.")
    max_pixels: int = Field(
        100_000_000, ge=1, description="Most pixels in one frame (width x height)."
    )
    max_frames: int = Field(
        1000, ge=1, description="Most frames (of an animation) or pages (of a TIFF) in one image."
    )
    image_workers: int = Field(
        2, ge=1, le=64, description="Decoder processes: how many images are decoded at once."
    )
    image_worker_idle: float = Field(
        30.0,
        gt=0,
        description="Seconds an idle decoder process lives before it exits; the next image "
        "starts one again (about 0.25 s).",
    )
    decode_timeout: float = Field(
        30.0, gt=0, description="Seconds one image may take to decode or render."
    )
    strip_gps: bool = Field(
        True, description="Serve originals without their GPS location to all but the uploader."
    )
    variant_presets: str = Field(
        DEFAULT_PRESETS,
        description="Named variant sizes, NAME=PIXELS (the longest side), comma-separated.",
    )
    variant_sizes: str = Field(
        DEFAULT_VARIANT_SIZES,
        description="Widths and heights a client may ask for with ?w= and ?h=, comma-separated.",
    )
    webhook_retry_base: float = Field(
        5.0,
        gt=0,
        description="Seconds before the first retry of a webhook delivery; each next wait "
        "doubles (up to an hour), with jitter.",
    )
    webhook_retry_for: float = Field(
        86_400.0,
        gt=0,
        description="Seconds a webhook delivery is retried before it is marked failed.",
    )
    webhook_timeout: float = Field(
        10.0, gt=0, description="Seconds one webhook delivery attempt may take."
    )
    webhook_concurrency: int = Field(
        16, ge=1, le=1024, description="Webhook deliveries in flight at once, per process."
    )
    webhook_refresh: float = Field(
        5.0,
        gt=0,
        description="Seconds between reads of the webhook endpoint list: a new endpoint gets "
        "events within this delay.",
    )
    hook_url: str | None = Field(
        None,
        description="Pre-create hook: asked (POST, JSON) before every upload is created, "
        "answers whether it may be (docs/operations.md).",
    )
    hook_timeout: float = Field(
        5.0, gt=0, description="Seconds the pre-create hook may take to answer."
    )
    hook_failure: Literal["open", "closed"] = Field(
        "closed",
        description="When the pre-create hook fails (no answer, or not a decision): 'closed' "
        "refuses the upload (503), 'open' lets it in.",
    )
    auth: Literal["keys", "none"] | None = Field(
        None,
        description="Access control: 'keys' (requests need an API key, docs/auth.md) or "
        "'none' (anyone may upload, list and delete with the delete token). Default: 'none' "
        "on a loopback address, 'keys' on any other.",
    )
    signing_key: str | None = Field(
        None,
        min_length=16,
        description="Secret that signs URLs of private images (GET /v1/images/{id}/signed-url); "
        "the same on every node (default: a random one per process, for one node only).",
    )
    signing_key_previous: str | None = Field(
        None,
        min_length=16,
        description="The signing key before the current one: URLs it signed keep working "
        "while keys are rotated.",
    )

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, value: str | None) -> str | None:
        if value is None:
            return None
        names = [n.strip().lower() for n in value.split(",") if n.strip()]
        unknown = [n for n in names if n not in KNOWN_FORMATS]
        if not names or unknown:
            raise ValueError(f"name formats among {','.join(KNOWN_FORMATS)}")
        return ",".join(dict.fromkeys(names))

    @field_validator("rate_limit")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from pixdrop.auth.ratelimit import parse_rate  # limits loads lazily: not at import

        parse_rate(value)
        return value

    @field_validator("variant_presets")
    @classmethod
    def _presets(cls, value: str) -> str:
        parse_presets(value)
        return value

    @field_validator("variant_sizes")
    @classmethod
    def _sizes(cls, value: str) -> str:
        parse_sizes(value)
        return value

    @model_validator(mode="after")
    def _chunk_bounds(self) -> Settings:
        if self.min_chunk_size > self.max_chunk_size:
            raise ValueError("min_chunk_size must not exceed max_chunk_size")
        if not self.min_chunk_size <= self.default_chunk_size <= self.max_chunk_size:
            raise ValueError(
                "default_chunk_size must lie between min_chunk_size and max_chunk_size"
            )
        return self

    @model_validator(mode="after")
    def _redirect_needs_s3(self) -> Settings:
        if self.blob_redirect and not (self.blob_store or "").lower().startswith("s3:"):
            raise ValueError(
                "blob_redirect needs an S3 blob store (--blob-store s3://...): a local store "
                "cannot presign URLs"
            )
        return self

    @property
    def auth_mode(self) -> Literal["keys", "none"]:
        """``auth`` as given; by default ``none`` on a loopback address, else ``keys``."""
        if self.auth is not None:
            return self.auth
        return "none" if is_loopback(self.host) else "keys"

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to SQLite inside the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'pixdrop.db'}"

    @property
    def resolved_blob_store(self) -> str:
        """The blob store URL, defaulting to the data directory (today's layout)."""
        if self.blob_store:
            return self.blob_store
        return default_blob_store_url(self.data_dir)

    @property
    def cors_origin_list(self) -> list[str]:
        """The allowed browser origins (empty: CORS off)."""
        if not self.cors_origins:
            return []
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]

    @property
    def format_list(self) -> tuple[str, ...] | None:
        """The formats asked for, or ``None`` for every one the decoder supports."""
        return tuple(self.formats.split(",")) if self.formats else None

    @property
    def preset_sizes(self) -> dict[str, int]:
        return parse_presets(self.variant_presets)

    @property
    def size_list(self) -> tuple[int, ...]:
        return parse_sizes(self.variant_sizes)


#: A preset's name is a path segment: lower-case letters, digits and dashes only.
_PRESET_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


def parse_presets(value: str) -> dict[str, int]:
    """``thumb=256,small=512`` → ``{"thumb": 256, "small": 512}``; raise ``ValueError``."""
    presets: dict[str, int] = {}
    for item in (part.strip() for part in value.split(",")):
        name, _, size = item.partition("=")
        if not _PRESET_NAME.fullmatch(name) or name == "original" or not size.isdigit():
            raise ValueError(f"presets are NAME=PIXELS (lower-case name, not 'original'): {item!r}")
        if not 1 <= int(size) <= 16_384:
            raise ValueError(f"preset size must be 1 to 16384: {item!r}")
        presets[name] = int(size)
    return presets


def is_loopback(host: str) -> bool:
    """Whether *host* (an address or ``localhost``) is reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_sizes(value: str) -> tuple[int, ...]:
    """``64,128`` → ``(64, 128)``; raise ``ValueError``."""
    parts = [part.strip() for part in value.split(",") if part.strip()]
    if not parts or not all(p.isdigit() and 1 <= int(p) <= 16_384 for p in parts):
        raise ValueError("sizes are whole numbers of pixels from 1 to 16384, comma-separated")
    return tuple(sorted({int(p) for p in parts}))


class ConfigError(Exception):
    """A setting has a bad value; the message says which and why."""


def unknown_env_names(environ: Mapping[str, str]) -> list[str]:
    """``PIXDROP_*`` variables that name no setting (pydantic-settings ignores them silently)."""
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    # Read by the client commands, not the server.
    known.update({ENV_PREFIX + "SERVER", ENV_PREFIX + "CLIENT_STATE_DIR", ENV_PREFIX + "API_KEY"})
    return sorted(k for k in environ if k.startswith(ENV_PREFIX) and k not in known)


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from the environment plus explicit *overrides*; raise ``ConfigError``."""
    env = os.environ if environ is None else environ
    stray = unknown_env_names(env)
    if stray:
        raise ConfigError(f"unknown setting(s) in the environment: {', '.join(stray)}")
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "settings"
            lines.append(f"{where}: {err['msg']}")
        raise ConfigError("invalid settings:\n  " + "\n  ".join(lines)) from exc
