"""``/v1/webhooks``: the admin API for webhook endpoints (scope admin), the same as
``pixdrop webhooks``.

``POST`` adds an endpoint and answers its signing secret, once; ``GET`` lists endpoints (never
a secret); ``DELETE /v1/webhooks/{id}`` removes one, with its deliveries. ``GET
/v1/webhooks/deliveries`` pages through deliveries, newest first (``?state=failed``: those given
up), and ``POST /v1/webhooks/deliveries/{id}/resend`` queues one again with the same
``webhook-id``. Every node reads the endpoint list every ``--webhook-refresh`` seconds; the
node that answers reads it at once.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.convertors import Convertor, register_url_convertor

from pixdrop.auth.scopes import require
from pixdrop.errors import NotFound
from pixdrop.http.errors import invalid_request
from pixdrop.http.problems import problems
from pixdrop.http.schemas import (
    CREATE_WEBHOOK_BODY,
    DeliveryPage,
    IssuedWebhookOut,
    WebhookList,
)
from pixdrop.http.wire import read_json_body
from pixdrop.models import utcnow
from pixdrop.webhooks import outbox as q
from pixdrop.webhooks.sender import Sender


class _IdConvertor(Convertor[str]):
    """A path segment shaped as a pixdrop id (``models.new_id``): ``/v1/webhooks/{id}`` then
    never matches ``/v1/webhooks/deliveries``, whose ``Allow`` is ``GET`` alone."""

    regex = "[A-Za-z0-9_-]{22}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("pixdrop_id", _IdConvertor())

router = APIRouter(tags=["webhooks"], dependencies=[Depends(require("admin"))])

#: Deliveries per page at most (and by default, as ``pixdrop webhooks deliveries``).
MAX_LIMIT = 200
DEFAULT_LIMIT = 50
#: Delivery ids are BIGINT; a cursor past what JSON numbers hold exactly is refused (400).
MAX_CURSOR = 2**53
NO_STORE = {"Cache-Control": "no-store"}


class CreateWebhook(BaseModel):
    """Body of ``POST /v1/webhooks`` (``schemas.CreateWebhookIn`` publishes it); what the
    values must be is ``outbox.new_endpoint``'s to say."""

    model_config = ConfigDict(extra="forbid")

    url: str
    events: list[str] = Field(min_length=1)
    secret: str | None = None


def _sender(request: Request) -> Sender:
    sender = request.app.state.webhooks
    assert isinstance(sender, Sender)
    return sender


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def webhook_json(endpoint: q.Endpoint) -> dict[str, Any]:
    """An endpoint as the API shows it: never its secret."""
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": list(endpoint.events),
        "created_at": _when(endpoint.created_at),
    }


def delivery_json(d: q.Delivery) -> dict[str, Any]:
    return {
        "id": d.seq,
        "event_id": d.event_id,
        "type": d.event_type,
        "endpoint_id": d.endpoint_id,
        "url": d.url,
        "resource": d.resource,
        "state": d.state,
        "attempts": d.attempts,
        "last_status": d.last_status,
        "last_error": d.last_error,
        "queued_at": _when(d.created_at),
        "next_attempt_at": _when(d.next_attempt_at) if d.state == "pending" else None,
    }


def _parse(raw: bytes) -> q.Endpoint:
    try:
        spec = CreateWebhook.model_validate_json(raw or b"null")
    except ValidationError as exc:
        raise invalid_request(exc.errors()) from None
    try:
        return q.new_endpoint(spec.url, spec.events, spec.secret, utcnow())
    except q.InvalidEndpoint as exc:
        raise invalid_request([{"loc": (exc.field,), "msg": str(exc)}]) from None


@router.post(
    "/v1/webhooks",
    status_code=201,
    summary="Add a webhook endpoint (its secret, once)",
    openapi_extra=CREATE_WEBHOOK_BODY,
    response_model=IssuedWebhookOut,
    responses=problems("create_webhook"),
)
async def create_webhook(request: Request) -> JSONResponse:
    endpoint = _parse(await read_json_body(request))
    sender = _sender(request)
    await sender.outbox.run(partial(q.add_endpoint, endpoint=endpoint))
    await sender.refresh()  # this node sends from the next event on
    body = {**webhook_json(endpoint), "secret": endpoint.secret}
    return JSONResponse(
        body,
        status_code=201,
        headers={"Location": f"/v1/webhooks/{endpoint.id}", **NO_STORE},
    )


@router.get(
    "/v1/webhooks",
    summary="List webhook endpoints (no secrets)",
    response_model=WebhookList,
    responses=problems("list_webhooks"),
)
async def list_webhooks(request: Request) -> JSONResponse:
    found = await _sender(request).outbox.run(q.list_endpoints, writes=False)
    return JSONResponse({"webhooks": [webhook_json(e) for e in found]}, headers=NO_STORE)


@router.get(
    "/v1/webhooks/deliveries",
    summary="List webhook deliveries, newest first",
    response_model=DeliveryPage,
    responses=problems("list_deliveries"),
)
async def list_deliveries(
    request: Request,
    state: Annotated[
        Literal["pending", "delivered", "failed"] | None,
        Query(description="Only deliveries in this state (failed: given up, resendable)."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Deliveries per page.")] = (
        DEFAULT_LIMIT
    ),
    cursor: Annotated[
        int | None, Query(ge=1, le=MAX_CURSOR, description="next_cursor of the previous page.")
    ] = None,
) -> JSONResponse:
    # One more than a page tells whether there is a next one.
    found = await _sender(request).outbox.run(
        partial(q.list_deliveries, limit=limit + 1, state=state, before=cursor), writes=False
    )
    page = found[:limit]
    more = len(found) > limit
    return JSONResponse(
        {
            "deliveries": [delivery_json(d) for d in page],
            "next_cursor": page[-1].seq if more else None,
        },
        headers=NO_STORE,
    )


@router.post(
    "/v1/webhooks/deliveries/{delivery_id}/resend",
    status_code=204,
    summary="Queue a delivery again (same webhook-id)",
    responses=problems("resend_delivery"),
)
async def resend_delivery(
    request: Request, delivery_id: Annotated[int, Path(ge=1, le=MAX_CURSOR)]
) -> Response:
    queued = await _sender(request).outbox.run(partial(q.resend, seq=delivery_id, now=utcnow()))
    if not queued:
        raise NotFound(f"There is no delivery {delivery_id}.")
    return Response(status_code=204)


@router.delete(
    "/v1/webhooks/{webhook_id:pixdrop_id}",
    status_code=204,
    summary="Remove a webhook endpoint (and its deliveries)",
    responses=problems("remove_webhook"),
)
async def remove_webhook(request: Request, webhook_id: str) -> Response:
    sender = _sender(request)
    removed = await sender.outbox.run(partial(q.remove_endpoint, endpoint_id=webhook_id))
    if not removed:
        raise NotFound(f"There is no webhook endpoint {webhook_id!r}.")
    await sender.refresh()  # this node stops sending it new events at once
    return Response(status_code=204)
