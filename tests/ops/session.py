"""A scripted session against a real server, what it must leave in the metrics, and a scraper.

The session uploads four images, one by each way in (one request, native chunks, tus, the
IETF draft), has one refused (not an image), asks for a variant and deletes an image.
``expected`` says how much each metric must have grown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.http.helpers import create_upload, noise_png, put_chunk

#: A metric sample: its name and labels (sorted pairs).
Key = tuple[str, tuple[tuple[str, str], ...]]
TUS = {"Tus-Resumable": "1.0.0"}
NOT_AN_IMAGE = b"these bytes are no image at all" * 8


def key(name: str, **labels: str) -> Key:
    return name, tuple(sorted(labels.items()))


def scrape(url: str) -> dict[Key, float]:
    """Every sample at *url* (a ``/metrics`` URL), parsed by prometheus-client's own parser."""
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def grown(before: dict[Key, float], after: dict[Key, float], wanted: Key) -> float:
    return after.get(wanted, 0.0) - before.get(wanted, 0.0)


@dataclass
class Session:
    """What the session sent and received, to compare the metrics with."""

    received: dict[str, int] = field(default_factory=dict)  # route -> request body bytes
    thumb_bytes: int = 0


def run_session(base_url: str) -> Session:
    done = Session()
    one, chunked, tus, ietf = (noise_png(48, seed) for seed in (1, 2, 3, 4))
    # A new connection per request: with several workers, any of them may answer each.
    with httpx.Client(
        base_url=base_url, timeout=60, limits=httpx.Limits(max_keepalive_connections=0)
    ) as client:
        first = client.post("/v1/images", content=one)
        assert first.status_code == 201, first.text
        refused = client.post("/v1/images", content=NOT_AN_IMAGE)
        assert refused.status_code == 422, refused.text
        done.received["/v1/images"] = len(one) + len(NOT_AN_IMAGE)

        upload = create_upload(client, len(chunked))
        assert put_chunk(client, upload["id"], 0, chunked).status_code == 201
        completed = client.post(f"/v1/uploads/{upload['id']}/complete")
        assert completed.status_code in (200, 201), completed.text
        done.received["/v1/uploads/{upload_id}/chunks/{index}"] = len(chunked)

        created = client.post("/files", headers={**TUS, "Upload-Length": str(len(tus))})
        assert created.status_code == 201, created.text
        patched = client.patch(
            httpx.URL(created.headers["location"]).path,
            content=tus,
            headers={
                **TUS,
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
        )
        assert patched.status_code == 204, patched.text
        done.received["/files/{upload_id}"] = len(tus)

        drafted = client.post(
            "/files",
            content=ietf,
            headers={"Upload-Draft-Interop-Version": "8", "Upload-Complete": "?1"},
        )
        assert drafted.status_code == 201, drafted.text
        done.received["/files"] = len(ietf)

        image = first.json()
        thumb = client.get(f"/v1/images/{image['id']}/thumb")
        assert thumb.status_code == 200, thumb.text
        done.thumb_bytes = len(thumb.content)
        deleted = client.delete(
            f"/v1/images/{image['id']}",
            headers={"Authorization": f"Bearer {image['delete_token']}"},
        )
        assert deleted.status_code == 204, deleted.text
    return done


def expected_growth(done: Session) -> dict[Key, float]:
    """How much each metric grows in the session (the scrapes themselves aside)."""
    requests = "pixdrop_http_requests_total"
    return {
        key(requests, route="/v1/images", method="POST", status="201"): 1,
        key(requests, route="/v1/images", method="POST", status="422"): 1,
        key(requests, route="/v1/uploads", method="POST", status="201"): 1,
        key(
            requests, route="/v1/uploads/{upload_id}/chunks/{index}", method="PUT", status="201"
        ): 1,
        key(requests, route="/files", method="POST", status="201"): 2,
        key(requests, route="/files/{upload_id}", method="PATCH", status="204"): 1,
        key(requests, route="/v1/images/{image_id}/{variant}", method="GET", status="200"): 1,
        key(requests, route="/v1/images/{image_id}", method="DELETE", status="204"): 1,
        key("pixdrop_http_request_duration_seconds_count", route="/v1/images", method="POST"): 2,
        **{
            key("pixdrop_http_received_bytes_total", route=route): size
            for route, size in done.received.items()
        },
        key(
            "pixdrop_http_sent_bytes_total", route="/v1/images/{image_id}/{variant}"
        ): done.thumb_bytes,
        # Opened as uploads: the native one, the tus one and the IETF one (complete at once).
        key("pixdrop_uploads_opened_total"): 3,
        key("pixdrop_uploads_completed_total"): 4,
        key("pixdrop_uploads_refused_total", reason="unknown-format"): 1,
        key("pixdrop_images_stored_total", blob="new"): 4,
        key("pixdrop_images_deleted_total"): 1,
        key("pixdrop_decode_seconds_count", job="inspect"): 4,
        key("pixdrop_decode_seconds_count", job="render"): 1,
        # Each completion and the delete hold their blob's lease, and so does storing the
        # variant; it is rendered under a lease of its own. The tus PATCH and the IETF
        # creation (which carried the bytes) each took the upload's writer lease.
        key("pixdrop_lock_wait_seconds_count", kind="blob"): 6,
        key("pixdrop_lock_wait_seconds_count", kind="render"): 1,
        key("pixdrop_lock_wait_seconds_count", kind="writer"): 2,
    }
