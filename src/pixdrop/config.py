"""Settings: one typed object, from flags and ``PIXDROP_*`` variables, validated at start-up.

There is no module-level instance: the CLI (or a test) builds one and hands it to
``create_app``. Sizes accept plain byte counts or units (``8MiB``, ``2GiB``, ``512kB``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import ByteSize, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "PIXDROP_"
MiB = 1024 * 1024

Size = Annotated[ByteSize, Field(gt=0)]


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
    access_log: bool = Field(True, description="Log one line per request on stderr.")

    @model_validator(mode="after")
    def _chunk_bounds(self) -> Settings:
        if self.min_chunk_size > self.max_chunk_size:
            raise ValueError("min_chunk_size must not exceed max_chunk_size")
        if not self.min_chunk_size <= self.default_chunk_size <= self.max_chunk_size:
            raise ValueError(
                "default_chunk_size must lie between min_chunk_size and max_chunk_size"
            )
        return self

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to SQLite inside the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'pixdrop.db'}"


class ConfigError(Exception):
    """A setting has a bad value; the message says which and why."""


def unknown_env_names(environ: Mapping[str, str]) -> list[str]:
    """``PIXDROP_*`` variables that name no setting (pydantic-settings ignores them silently)."""
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    known.add(ENV_PREFIX + "SERVER")  # the client's server URL, read by client commands
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
