"""Every Prometheus metric pixdrop exports, defined here and nowhere else.

Modules record into these objects (``metrics.UPLOADS_OPENED.inc()``); ``http/metrics.py``
serves them. Each metric is listed in docs/operations.md with what it counts: a metric added
here gets its line there.

**Several worker processes** (``--workers N``): uvicorn's workers are separate processes, so
each one's counters live in its own memory. prometheus-client's multiprocess mode keeps every
value in a memory-mapped file under ``PROMETHEUS_MULTIPROC_DIR`` instead, and a scrape (on
any worker, or on the ``--metrics-port`` server of the supervisor) sums the files. The
variable must be set before prometheus-client is imported in a worker: ``use_multiprocess``
does that in the supervisor, before it starts the workers (they are spawned, not forked, and
inherit its environment). With one process no directory is used.

Labels are bounded sets only: route *templates* (``/v1/uploads/{upload_id}``), never raw
paths; problem reasons and job names from fixed lists.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from prometheus_client import Counter, Gauge, Histogram

from pixdrop import __version__

__all__ = ["MULTIPROC_ENV", "multiprocess_dir", "use_multiprocess"]

#: The variable prometheus-client reads (at import) to choose multiprocess mode.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Request durations: from a cache hit on a small image to a large upload on a slow link.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
#: Image jobs (decode, inspect, render): tens of milliseconds to the decode timeout.
DECODE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
#: Waiting for a lease someone else holds: milliseconds normally, ``--lock-wait`` at worst.
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
#: A call to another service (a webhook receiver, the hook): milliseconds to its timeout.
ATTEMPT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
#: An event's way to its receiver: sub-second normally, up to --webhook-retry-for (a day).
LAG_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 86400)


def multiprocess_dir(scratch: Path) -> Path:
    """Where the workers' metric files live: under the data directory's scratch space."""
    return scratch / "metrics"


def use_multiprocess(directory: Path) -> None:
    """Make worker processes started after this call share their metrics through files in
    *directory*, emptied first (files of a previous run would be summed in)."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(directory)


# --- HTTP (recorded by http/middleware.py) -------------------------------------------------

BUILD_INFO = Gauge(
    "pixdrop_build_info",
    "Always 1; the version of pixdrop serving.",
    ["version"],
    multiprocess_mode="max",
)
BUILD_INFO.labels(__version__).set(1)

HTTP_REQUESTS = Counter(
    "pixdrop_http_requests",
    "HTTP requests answered, by route template, method and status (499: client went away).",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "pixdrop_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response, by route template and method.",
    ["route", "method"],
    buckets=DURATION_BUCKETS,
)
HTTP_RECEIVED = Counter(
    "pixdrop_http_received_bytes",
    "Request body bytes received, by route template.",
    ["route"],
)
HTTP_SENT = Counter(
    "pixdrop_http_sent_bytes",
    "Response body bytes sent, by route template.",
    ["route"],
)
HTTP_IN_FLIGHT = Gauge(
    "pixdrop_http_requests_in_flight",
    "Requests being served now.",
    multiprocess_mode="livesum",
)

# --- uploads and images (services) ---------------------------------------------------------

UPLOADS_OPENED = Counter(
    "pixdrop_uploads_opened",
    "Uploads opened (native chunks, tus, IETF draft); a whole image sent with POST "
    "/v1/images opens none.",
)
UPLOADS_COMPLETED = Counter(
    "pixdrop_uploads_completed",
    "Uploads whose bytes became a stored image, every way in (one request included).",
)
UPLOADS_REFUSED = Counter(
    "pixdrop_uploads_refused",
    "Uploads whose bytes were refused at completion (not an acceptable image, or not the "
    "announced sha256), by the problem's reason.",
    ["reason"],
)
UPLOADS_EXPIRED = Counter(
    "pixdrop_uploads_expired",
    "Expired or orphaned uploads removed by the sweeper.",
)
IMAGES_STORED = Counter(
    "pixdrop_images_stored",
    "Image records created; blob=new when its bytes were stored, shared when identical "
    "bytes were already (deduplicated).",
    ["blob"],
)
IMAGES_DELETED = Counter("pixdrop_images_deleted", "Images deleted with their delete token.")

# --- image decoding (imaging/pool.py) ------------------------------------------------------

DECODE_SECONDS = Histogram(
    "pixdrop_decode_seconds",
    "Time an image job (inspect, render, strip_gps) ran in a decoder process.",
    ["job"],
    buckets=DECODE_BUCKETS,
)
DECODE_QUEUE = Gauge(
    "pixdrop_decode_queue_length",
    "Image jobs waiting for a free decoder process.",
    multiprocess_mode="livesum",
)
DECODE_RUNNING = Gauge(
    "pixdrop_decode_running",
    "Image jobs running in a decoder process now.",
    multiprocess_mode="livesum",
)
DECODE_FAILURES = Counter(
    "pixdrop_decode_failures",
    "Image jobs whose decoder process was killed (timeout) or died (crashed).",
    ["job", "reason"],
)

# --- leases (services/locks.py) -------------------------------------------------------------

LOCK_WAIT = Histogram(
    "pixdrop_lock_wait_seconds",
    "Time to take a lease that another request may hold (most take none): kind=blob "
    "(storing or deleting the same bytes), render (a variant made once) or writer (taking "
    "over a resumable upload from an older request).",
    ["kind"],
    buckets=WAIT_BUCKETS,
)
LOCK_GIVEUPS = Counter(
    "pixdrop_lock_giveups",
    "Waits for a lease that ran out of patience (answered 409 or 423).",
    ["kind"],
)

# --- sweeper (http/app.py) ------------------------------------------------------------------

SWEEPS = Counter(
    "pixdrop_sweeps",
    "Sweeps of expired uploads run by this process (it held the sweeper lease), by outcome "
    "(ok, failed).",
    ["outcome"],
)

# --- webhooks (webhooks/events.py, webhooks/sender.py) -------------------------------------

WEBHOOK_EVENTS = Counter(
    "pixdrop_webhook_events",
    "Deliveries written to the outbox, one per event and endpoint that wants it, by event "
    "type; written in the transaction of the change they report.",
    ["type"],
)
WEBHOOK_DELIVERIES = Counter(
    "pixdrop_webhook_deliveries",
    "Delivery attempts settled, by outcome: delivered (a 2xx), retried (anything else, tried "
    "again later) or failed (anything else, and past --webhook-retry-for: given up).",
    ["outcome"],
)
WEBHOOK_ATTEMPT_SECONDS = Histogram(
    "pixdrop_webhook_attempt_seconds",
    "Time a delivery attempt took: from sending the request to the receiver's answer, its "
    "failure, or --webhook-timeout.",
    buckets=ATTEMPT_BUCKETS,
)
WEBHOOK_LAG_SECONDS = Histogram(
    "pixdrop_webhook_delivery_lag_seconds",
    "Time from an event's writing (or its resend) to its delivery, retries included.",
    buckets=LAG_BUCKETS,
)
WEBHOOK_IN_FLIGHT = Gauge(
    "pixdrop_webhook_deliveries_in_flight",
    "Delivery attempts waiting for their receiver now (--webhook-concurrency at most).",
    multiprocess_mode="livesum",
)
#: Not a count of this process's doings but a fact of the shared database, read by every
#: process's sender (one COUNT each --webhook-refresh seconds, with the endpoint list): the
#: processes report the same number, so the most recent report is the answer, never their
#: sum. Every node reports it too: aggregate nodes with max(), not sum().
WEBHOOK_BACKLOG = Gauge(
    "pixdrop_webhook_backlog",
    "Deliveries pending in the outbox (not yet delivered nor given up), every node's; read "
    "from the database every --webhook-refresh seconds.",
    multiprocess_mode="mostrecent",
)

# --- the pre-create hook (webhooks/hook.py) -------------------------------------------------

HOOK_CALLS = Counter(
    "pixdrop_hook_calls",
    "Pre-create hook calls, by outcome: allowed, refused, failed-open (no decision, upload "
    "let in) or failed-closed (no decision, answered 503).",
    ["outcome"],
)
HOOK_SECONDS = Histogram(
    "pixdrop_hook_duration_seconds",
    "Time the pre-create hook took to answer, or to fail (at most --hook-timeout).",
    buckets=ATTEMPT_BUCKETS,
)

# Every outcome is exported from the start, at 0, so that rate() and increase() see the first.
for _outcome in ("delivered", "retried", "failed"):
    WEBHOOK_DELIVERIES.labels(_outcome)
for _outcome in ("allowed", "refused", "failed-open", "failed-closed"):
    HOOK_CALLS.labels(_outcome)
