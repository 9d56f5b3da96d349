"""The pre-create hook (``--hook-url``): the operator's service decides whether an upload may
be created, before anything is staged or recorded, like tusd's ``pre-create``.

pixdrop POSTs JSON describing the upload about to be created::

    {"type": "pre-create",
     "upload": {"id", "size" (null: not declared yet), "filename", "content_type",
                "protocol" ("native" | "tus" | "ietf" | "one-request"), "metadata": {k: v}},
     "credential_id": the Principal's id (null: anonymous),
     "client_address": the client's IP address}

and expects ``200`` with ``{"allow": true}`` (optionally ``"metadata": {k: v}``, which
replaces the upload's metadata) or ``{"allow": false, "status": 403, "message": "..."}``,
which the client receives as a ``hook-refused`` problem with that status and message. Any
other answer, or none within ``--hook-timeout``, is a failure, and ``--hook-failure`` decides:
``closed`` (the default) answers ``hook-unavailable`` (503), ``open`` lets the upload in.

Who asks and from where is not known to the services: :class:`RequestScope` (an ASGI
middleware) keeps the request's scope in a context variable for the hook to read.

Each call is counted by outcome (``pixdrop_hook_calls``: ``allowed``, ``refused``,
``failed-open``, ``failed-closed``) and timed (``pixdrop_hook_duration_seconds``).
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from contextvars import ContextVar
from dataclasses import replace
from typing import Any, Literal

import anyio
import httpx
from starlette.requests import HTTPConnection

from pixdrop import metrics
from pixdrop.auth import principal_of
from pixdrop.errors import HookRefused, HookUnavailable, InvalidResumableRequest
from pixdrop.models import Upload
from pixdrop.protocols import fields
from pixdrop.protocols.tus import parse_metadata
from pixdrop.webhooks.tls import client_context

__all__ = ["PreCreateHook", "RequestScope"]

log = logging.getLogger("pixdrop.hooks")

Scope = MutableMapping[str, Any]
#: The ASGI scope of the request being served (None outside a request).
_SCOPE: ContextVar[Scope | None] = ContextVar("pixdrop_request_scope", default=None)


class RequestScope:
    """ASGI middleware: makes the request's scope visible to :class:`PreCreateHook`.

    The scope is the one object every inner layer sees, so the principal the authentication
    layer puts into it later is there when the hook asks.
    """

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        token = _SCOPE.set(scope) if scope["type"] == "http" else None
        try:
            await self.app(scope, receive, send)
        finally:
            if token is not None:
                _SCOPE.reset(token)


def _caller() -> tuple[str | None, str | None]:
    """The credential id and the client address of the request being served."""
    scope = _SCOPE.get()
    if scope is None:
        return None, None
    client = scope.get("client")
    return principal_of(HTTPConnection(scope)).id, client[0] if client else None


def _metadata(upload: Upload) -> dict[str, str]:
    if not upload.upload_metadata:
        return {}
    try:
        pairs = parse_metadata(upload.upload_metadata)
    except InvalidResumableRequest:
        return {}
    return {k: v.decode(errors="replace") for k, v in pairs.items()}


def _encode_metadata(values: Mapping[str, str]) -> str | None:
    text = ",".join(
        f"{key} {base64.b64encode(str(value).encode()).decode()}" for key, value in values.items()
    )
    return text or None


class PreCreateHook:
    """Ask ``--hook-url`` about each upload before it is created (module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        failure: Literal["open", "closed"] = "closed",
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.failure = failure
        self._client = client or httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, verify=client_context()
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def __call__(self, upload: Upload, way: str | None = None) -> Upload:
        """*upload* as it may be created (metadata perhaps changed); raise ``HookRefused``,
        or ``HookUnavailable`` when the hook fails closed."""
        credential, address = _caller()
        request = {
            "type": "pre-create",
            "upload": {
                "id": upload.id,
                "size": None if upload.length_deferred else upload.size,
                "filename": upload.filename,
                "content_type": upload.content_type,
                "protocol": way or upload.protocol,
                "metadata": _metadata(upload),
            },
            "credential_id": credential,
            "client_address": address,
        }
        started = time.perf_counter()
        try:
            decision = await self._ask(request)
        finally:
            metrics.HOOK_SECONDS.observe(time.perf_counter() - started)
        if decision is None:
            metrics.HOOK_CALLS.labels(f"failed-{self.failure}").inc()
            if self.failure == "open":
                return upload
            raise HookUnavailable("The upload hook did not answer; try again later.")
        allowed = decision.get("allow") is True
        metrics.HOOK_CALLS.labels("allowed" if allowed else "refused").inc()
        if not allowed:
            status = decision.get("status")
            status = status if isinstance(status, int) and 400 <= status <= 599 else 403
            message = decision.get("message")
            raise HookRefused(
                message if isinstance(message, str) and message else "The upload was refused.",
                status,
            )
        changed = decision.get("metadata")
        if isinstance(changed, dict):
            metadata = _encode_metadata(changed)
            fields.check_upload_metadata(metadata)
            upload = replace(upload, upload_metadata=metadata)
        return upload

    async def _ask(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """The hook's decision, or None for no answer, a non-200 or a body that is not one."""
        try:
            # The whole exchange within the timeout, not each read (a trickle never ends).
            with anyio.fail_after(self.timeout):
                response = await self._client.post(self.url, json=request)
        except TimeoutError:
            log.warning("upload hook %s did not answer within %s s", self.url, self.timeout)
            return None
        except httpx.HTTPError as exc:
            log.warning("upload hook %s failed: %s", self.url, exc or type(exc).__name__)
            return None
        if response.status_code != 200:
            log.warning("upload hook %s answered %d", self.url, response.status_code)
            return None
        try:
            decision = response.json()
        except ValueError:
            decision = None
        if not isinstance(decision, dict) or not isinstance(decision.get("allow"), bool):
            log.warning("upload hook %s answered 200 without a decision", self.url)
            return None
        return decision
