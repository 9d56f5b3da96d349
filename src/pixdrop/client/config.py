"""What both clients are configured with, and how an upload job is built from it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from pixdrop import __version__
from pixdrop.client.models import Progress
from pixdrop.client.retry import RetryNotice, RetryPolicy
from pixdrop.client.source import Fingerprint, Source
from pixdrop.client.state import ResumeStore
from pixdrop.client.transfer import DEFAULT_SINGLE_LIMIT, ProgressTracker, UploadJob


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """The settings shared by ``Client`` and ``AsyncClient`` (see their docstrings)."""

    base_url: str
    token: str | None = None
    timeout: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    single_request_limit: int | None = None
    resume: bool = True
    state_dir: Path | None = None
    max_connections: int = 8
    on_retry: Callable[[RetryNotice], None] | None = None

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"the server URL must start with http:// or https://: {self.base_url}")
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")

    @property
    def server(self) -> str:
        return self.base_url.rstrip("/")

    def http_options(self) -> dict[str, Any]:
        """Keyword arguments for ``httpx.Client`` / ``httpx.AsyncClient``."""
        headers = {"User-Agent": f"pixdrop-client/{__version__}"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return {
            "base_url": self.server,
            "headers": headers,
            "timeout": httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
            # The pool bounds the connections of every upload of this client together.
            "limits": httpx.Limits(
                max_connections=self.max_connections,
                max_keepalive_connections=self.max_connections,
            ),
        }

    def job(
        self,
        source: Source,
        fingerprint: Fingerprint,
        *,
        chunk_size: int | None,
        parallel: int,
        on_progress: Callable[[Progress], None] | None,
        resume: bool | None,
    ) -> UploadJob:
        if parallel < 1:
            raise ValueError("parallel must be at least 1")
        if chunk_size is not None and chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        limit = self.single_request_limit
        if limit is None:
            # A file that fits in one chunk gains nothing from being chunked.
            limit = chunk_size or DEFAULT_SINGLE_LIMIT
        return UploadJob(
            server=self.server,
            source=source,
            fingerprint=fingerprint,
            chunk_size=chunk_size,
            single_limit=limit,
            parallel=parallel,
            resume=self.resume if resume is None else resume,
            store=ResumeStore(self.state_dir),
            progress=ProgressTracker(source.size, on_progress),
        )
