"""The upload page at ``/`` in a real browser: Playwright driving Debian's Chromium, headless.

The servers here run the real app behind ``ChunkGate``, a small ASGI middleware that records
every request and can hold chunk PUTs open, as a slow network would. That makes "pause" and
"reload mid-upload" happen at a known point, and lets the tests count, on the server's side,
exactly which chunks the page sent.

Chromium is ``/usr/bin/chromium`` (``apt-get install chromium``; ``.ci/run`` does it). Without
it, or without the ``playwright`` package, these tests are skipped, except under ``CI=true``,
where they fail. Set ``WEB_SCREENSHOT=docs/screenshot.png`` to refresh the README's screenshot.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from PIL import Image as PILImage
from PIL import ImageOps
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pixdrop.config import Settings
from pixdrop.http.app import create_app
from tests.conftest import DATA, LiveServer, start_server
from tests.http.helpers import poll, sha256_hex

try:
    from playwright.sync_api import (
        Browser,
        FilePayload,
        Locator,
        Page,
        expect,
        sync_playwright,
    )
except ImportError:  # reported by the browser fixture
    sync_playwright = None  # type: ignore[assignment]

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
IN_CI = os.environ.get("CI", "").lower() == "true"
SCREENSHOT_ENV = "WEB_SCREENSHOT"
CHELSEA = DATA / "chelsea.png"  # 240512 bytes: 15 chunks of 16 KiB
ROCKET = DATA / "rocket.jpg"  # 112525 bytes: 7 chunks of 16 KiB
SMALL_CHUNKS = {"min_chunk_size": 16384, "default_chunk_size": 16384}
CHUNK_PUT = re.compile(r"/v1/uploads/(?P<id>[^/]+)/chunks/(?P<index>\d+)")


@pytest.fixture
def backend() -> str:
    """The page only speaks HTTP; tests/http runs the API on every metadata backend."""
    return "sqlite"


# --- the server, behind a gate ----------------------------------------------------------------


@dataclass
class Put:
    """One chunk PUT as the server saw it; ``status`` stays 0 if it was never answered."""

    upload_id: str
    index: int
    status: int = 0


@dataclass
class ChunkGate:
    """ASGI middleware: records every request and can hold chunk PUTs open.

    With ``hold_from = k``, PUTs of chunk ``k`` and above wait before reaching the app until
    ``release`` is set. The browser meanwhile sees a request in flight. With
    ``hold_answers_from = k``, those PUTs reach the app (the chunk is stored) and it is their
    answer that waits: the server holds bytes the browser has not heard about yet.
    """

    app: ASGIApp
    requests: list[tuple[str, str]] = field(default_factory=list)
    puts: list[Put] = field(default_factory=list)
    hold_from: int | None = None
    hold_answers_from: int | None = None
    release: threading.Event = field(default_factory=threading.Event)
    held: int = 0
    open_puts: int = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.requests.append((scope["method"], scope["path"]))
        match = CHUNK_PUT.fullmatch(scope["path"])
        if scope["method"] != "PUT" or match is None:
            await self.app(scope, receive, send)
            return
        put = Put(match["id"], int(match["index"]))
        self.puts.append(put)

        async def record(message: Message) -> None:
            if message["type"] == "http.response.start":
                put.status = message["status"]
                if self.hold_answers_from is not None and put.index >= self.hold_answers_from:
                    await self.wait(put)
            await send(message)

        self.open_puts += 1
        try:
            if self.hold_from is not None and put.index >= self.hold_from:
                await self.wait(put)
            await self.app(scope, receive, record)
        finally:
            self.open_puts -= 1

    async def wait(self, put: Put) -> None:
        self.held += 1
        try:
            while not self.release.is_set():
                await anyio.sleep(0.02)
        finally:
            self.held -= 1

    def stored(self, upload_id: str) -> list[int]:
        """Chunk indices the server acknowledged for *upload_id*."""
        return sorted(
            p.index for p in self.puts if p.upload_id == upload_id and 200 <= p.status < 300
        )

    def upload_ids(self) -> list[str]:
        return list(dict.fromkeys(p.upload_id for p in self.puts))

    def count(self, method: str, pattern: str) -> int:
        return sum(1 for m, path in self.requests if m == method and re.fullmatch(pattern, path))


@dataclass
class Gated:
    live: LiveServer
    gate: ChunkGate

    @property
    def url(self) -> str:
        return self.live.url

    def upload_named(self, filename: str) -> dict[str, Any]:
        """The server's upload object for the chunked upload of *filename*."""
        for upload_id in self.gate.upload_ids():
            body: dict[str, Any] = httpx.get(f"{self.url}/v1/uploads/{upload_id}").json()
            if body.get("filename") == filename:
                return body
        raise AssertionError(f"no chunked upload of {filename} reached the server")

    def stored_bytes(self, upload_id: str) -> int:
        """What ``GET /v1/uploads/{id}`` says the server holds, in bytes."""
        status = httpx.get(f"{self.url}/v1/uploads/{upload_id}").json()
        size, chunk = status["size"], status["chunk_size"]
        return sum(min(chunk, size - i * chunk) for i in status["received"])

    def settle(self) -> None:
        """Let held PUTs go on and wait until no chunk PUT is open any more."""
        self.gate.release.set()
        poll(lambda: self.gate.open_puts, lambda n: n == 0, timeout=10)
        assert self.gate.open_puts == 0


def serve_in_thread(settings: Settings) -> Gated:
    gate = ChunkGate(create_app(settings))
    return Gated(start_server(settings, gate), gate)


@pytest.fixture
def gated(tmp_path: Path, database_url: str) -> Iterator[Callable[..., Gated]]:
    """Start gated servers with settings overrides; each is stopped at the end of the test."""
    started: list[Gated] = []

    def start(**overrides: Any) -> Gated:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "database_url": database_url,
            "access_log": False,
        }
        values.update(overrides)
        started.append(serve_in_thread(Settings(**values)))
        return started[-1]

    yield start
    for server in started:
        server.gate.release.set()
        server.live.stop()


# --- the browser ------------------------------------------------------------------------------


def _missing(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} (required when CI=true)")
    pytest.skip(what)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if sync_playwright is None:
        _missing("the playwright package is not installed (pip install -e '.[test]')")
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is missing (apt-get install chromium)")
    expect.set_options(timeout=15_000)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[..., Page]]:
    """Open a server's page; script errors (a CSP violation, say) fail the test."""
    errors: list[str] = []
    contexts = []

    def open_(url: str, width: int = 1200, height: int = 800) -> Page:
        context = browser.new_context(viewport={"width": width, "height": height})
        context.grant_permissions(["clipboard-read", "clipboard-write"])
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda m: errors.append(m.text) if "Security" in m.text else None)
        # Intercept file dialogs from the start. Left to expect_file_chooser alone, a key
        # press made right after it began was seen to open a real (invisible) dialog.
        page.on("filechooser", lambda chooser: None)
        page.set_default_timeout(15_000)
        page.goto(url + "/")
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        return page

    yield open_
    for context in contexts:
        context.close()
    assert not errors, errors


def choose(page: Page, *files: Path | FilePayload) -> None:
    """Pick *files* in the file dialog that "Choose images…" opens."""
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Choose images…").click()
    chooser.value.set_files(list(files))


def item(page: Page, name: str) -> Locator:
    return page.locator("#queue li", has_text=name)


def bar(page: Page, name: str) -> tuple[int, int]:
    """The item's (stored, sending) bytes, as drawn (the page keeps them in data attributes)."""
    li = item(page, name)
    return int(li.get_attribute("data-stored") or 0), int(li.get_attribute("data-sending") or 0)


def record_bars(page: Page) -> None:
    """From now on, remember every stored-bytes figure any item shows (``window.barsSeen``)."""
    page.evaluate(
        """() => {
          window.barsSeen = [];
          new MutationObserver((changes) => {
            for (const change of changes) {
              const value = change.target.dataset?.stored;
              if (value !== undefined) window.barsSeen.push(Number(value));
            }
          }).observe(document.getElementById("queue"), {
            subtree: true, childList: true, attributes: true, attributeFilter: ["data-stored"],
          });
        }"""
    )


def bars_seen(page: Page) -> list[int]:
    return list(page.evaluate("() => window.barsSeen"))


def progressbar(page: Page, name: str) -> Locator:
    """The one progress bar assistive technology sees for *name* (the faint one is hidden)."""
    bars = item(page, name).get_by_role("progressbar")
    expect(bars).to_have_count(1)
    expect(bars).to_have_accessible_name(f"Upload of {name}")
    return bars


def aria_value(page: Page, name: str) -> float:
    """The value of *name*'s progress bar as Chromium tells assistive technology.

    Asked of the accessibility tree itself (CDP), which also shows that there is exactly one
    progress bar: the faint "sending" one is hidden from it.
    """
    cdp = page.context.new_cdp_session(page)
    try:
        root = cdp.send("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
        query = {"nodeId": root, "accessibleName": f"Upload of {name}", "role": "progressbar"}
        (node,) = cdp.send("Accessibility.queryAXTree", query)["nodes"]
        props = {p["name"]: p["value"]["value"] for p in node.get("properties", [])}
        assert (props["valuemin"], props["valuemax"]) == (0, 100)
        return float(node["value"]["value"])
    finally:
        cdp.detach()


def thumbnails_loaded(page: Page, count: int) -> None:
    images = page.locator("#gallery li img")
    expect(images).to_have_count(count)
    for i in range(count):
        loaded = poll(
            lambda i=i: images.nth(i).evaluate("img => img.complete && img.naturalWidth > 0"),
            bool,
            timeout=10,
        )
        assert loaded, images.nth(i).get_attribute("src")


def dusk_jpeg(directory: Path) -> Path:
    """A small generated picture, sent in one request."""
    ramp = PILImage.linear_gradient("L").resize((480, 320))
    path = directory / "dusk.jpg"
    ImageOps.colorize(ramp, "#312e81", "#f59e0b").save(path, format="JPEG", quality=90)
    return path


# --- tests ------------------------------------------------------------------------------------


def test_page_and_assets_have_strict_headers(gated: Callable[..., Gated]) -> None:
    base = gated().url
    page = httpx.get(base + "/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp
    assert "unsafe" not in csp
    assert "<script>" not in page.text  # no inline script: every script has a src
    head = httpx.head(base + "/")
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(page.content))
    assert head.headers["content-security-policy"] == csp
    assets = re.findall(r'(?:src|href)="(/web/[^"]+)"', page.text)
    modules = re.findall(r'from "\./([a-z]+\.js)"', httpx.get(base + "/web/app.js").text)
    assert modules
    for path in [*assets, *(f"/web/{m}" for m in modules)]:
        response = httpx.get(base + path)
        assert response.status_code == 200, path
        kind = {"js": "text/javascript", "css": "text/css", "svg": "image/svg+xml"}
        assert response.headers["content-type"].startswith(kind[path.rpartition(".")[2]])
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-security-policy"] == csp
        assert response.headers["cache-control"] == "no-cache"
        again = httpx.get(base + path, headers={"If-None-Match": response.headers["etag"]})
        assert again.status_code == 304
    for path in ("/web/index.html", "/web/nothing.js", "/web/..%2Fweb.py", "/web/"):
        assert httpx.get(base + path).status_code == 404, path
    assert "/web/{name}" not in httpx.get(base + "/openapi.json").text


def test_three_images_pause_resume_and_gallery(
    gated: Callable[..., Gated], open_page: Callable[..., Page], tmp_path: Path
) -> None:
    server = gated(**SMALL_CHUNKS)
    server.gate.hold_from = 2  # chunked uploads stall after their first two chunks
    page = open_page(server.url)
    choose(page, CHELSEA, ROCKET, dusk_jpeg(tmp_path))

    poll(lambda: len(server.gate.upload_ids()), lambda n: n == 2)
    chelsea = server.upload_named("chelsea.png")
    poll(lambda: server.gate.stored(chelsea["id"]), lambda s: s == [0, 1])
    assert server.gate.stored(chelsea["id"]) == [0, 1]
    page.get_by_role("button", name="Pause chelsea.png").click()
    expect(item(page, "chelsea.png")).to_have_attribute("data-state", "paused")
    expect(item(page, "chelsea.png")).to_contain_text("Paused at 13%, stored on the server")

    # Held PUTs go on: rocket's arrive; chelsea's were aborted by the pause and record nothing.
    server.settle()
    expect(item(page, "rocket.jpg")).to_have_attribute("data-state", "done")
    expect(item(page, "dusk.jpg")).to_have_attribute("data-state", "done")
    thumbnails_loaded(page, 2)
    missing = httpx.get(f"{server.url}/v1/uploads/{chelsea['id']}").json()["missing"]
    assert missing == list(range(2, 15))
    page.screenshot(path=tmp_path / "screenshot.png")
    if os.environ.get(SCREENSHOT_ENV):
        page.screenshot(path=os.environ[SCREENSHOT_ENV])

    before = len(server.gate.puts)
    page.get_by_role("button", name="Resume chelsea.png").click()
    expect(item(page, "chelsea.png")).to_have_attribute("data-state", "done")
    resent = sorted(p.index for p in server.gate.puts[before:])
    assert resent == missing  # only what the server lacked, each chunk once

    thumbnails_loaded(page, 3)
    for name in ("chelsea.png", "rocket.jpg", "dusk.jpg"):
        expect(page.get_by_role("img", name=name)).to_be_visible()
    image = httpx.get(server.url + "/v1/images/" + chelsea_image_id(page)).json()
    assert image["sha256"] == sha256_hex(CHELSEA.read_bytes())
    page.get_by_role("button", name="Copy link to chelsea.png").click()
    expect(page.locator("#announcer")).to_have_text("Link to chelsea.png copied.")
    assert page.evaluate("() => navigator.clipboard.readText()") == image["url"]


def chelsea_image_id(page: Page) -> str:
    href = page.get_by_role("link", name="chelsea.png").get_attribute("href") or ""
    return href.split("/")[-2]


def test_reload_mid_upload_sends_only_missing_chunks(
    gated: Callable[..., Gated], open_page: Callable[..., Page]
) -> None:
    server = gated(**SMALL_CHUNKS)
    server.gate.hold_from = 3
    page = open_page(server.url)
    choose(page, CHELSEA)
    poll(lambda: server.gate.held, lambda n: n == 3)  # chunks 0-2 stored, 3 more in flight
    (upload_id,) = server.gate.upload_ids()
    assert server.gate.stored(upload_id) == [0, 1, 2]

    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("#pending")).to_contain_text("chelsea.png")
    server.settle()  # the held PUTs lost their client: nothing of them is recorded
    first_visit = list(server.gate.puts)
    status = httpx.get(f"{server.url}/v1/uploads/{upload_id}").json()
    assert status["received"] == [0, 1, 2]

    choose(page, CHELSEA)
    expect(item(page, "chelsea.png")).to_have_attribute("data-state", "done")
    second_visit = server.gate.puts[len(first_visit) :]
    assert {p.upload_id for p in second_visit} == {upload_id}  # the same upload, resumed
    assert sorted(p.index for p in second_visit) == status["missing"] == list(range(3, 15))
    assert all(p.status == 201 for p in second_visit)
    assert len(first_visit) == 6  # 3 stored + 3 cut off by the reload
    expect(page.locator("#pending")).to_be_hidden()
    thumbnails_loaded(page, 1)


CHELSEA_SIZE = 240512
CHUNK = SMALL_CHUNKS["default_chunk_size"]


def test_bar_counts_what_the_server_stored_not_what_was_sent(
    gated: Callable[..., Gated], open_page: Callable[..., Page]
) -> None:
    """Issue 19: the bar showed bytes handed to the browser (40%) while the server held 20%."""
    server = gated(**SMALL_CHUNKS)
    server.gate.hold_from = 3  # chunks 0-2 are stored; 3-5 are sent but never reach the app
    page = open_page(server.url)
    record_bars(page)
    choose(page, CHELSEA)
    poll(lambda: server.gate.held, lambda n: n == 3)
    (upload_id,) = server.gate.upload_ids()
    on_server = server.stored_bytes(upload_id)
    assert on_server == 3 * CHUNK

    # The browser has handed the held chunks' bytes over: they show, faintly, as "sending".
    stored, sending = poll(lambda: bar(page, "chelsea.png"), lambda b: b[1] > 0)
    assert stored == on_server
    assert 0 < sending <= 3 * CHUNK
    assert max(bars_seen(page)) == on_server  # never more than the server held
    # ... and never as done: not in the percentage, the words or the accessible value.
    pct = on_server * 100 // CHELSEA_SIZE  # 20
    assert aria_value(page, "chelsea.png") == pct
    assert progressbar(page, "chelsea.png").evaluate("el => el.value") == pct
    sending_bar = item(page, "chelsea.png").locator(".item-sending")
    assert sending_bar.get_attribute("aria-hidden") == "true"
    assert sending_bar.evaluate("el => el.value") > pct
    expect(item(page, "chelsea.png").locator(".item-status")).to_have_text(
        re.compile(rf"^{pct}% stored\b")
    )

    # Paused at N% means N% is on the server: the sending part is gone, the rest is exact.
    page.get_by_role("button", name="Pause chelsea.png").click()
    expect(item(page, "chelsea.png")).to_have_attribute("data-state", "paused")
    expect(item(page, "chelsea.png").locator(".item-status")).to_have_text(
        f"Paused at {pct}%, stored on the server"
    )
    assert bar(page, "chelsea.png") == (server.stored_bytes(upload_id), 0)
    assert aria_value(page, "chelsea.png") == pct
    server.settle()  # the aborted PUTs go on to the app, which records nothing of them
    assert bar(page, "chelsea.png") == (server.stored_bytes(upload_id), 0)

    # After a reload the bar starts at what the server says it has (GET .../{id} received),
    # before any new chunk is acknowledged.
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    record_bars(page)
    server.gate.release.clear()
    server.gate.hold_from = 0
    choose(page, CHELSEA)
    poll(lambda: server.gate.held, lambda n: n == 3)  # chunks 3-5 again, held
    assert server.stored_bytes(upload_id) == on_server
    poll(lambda: bar(page, "chelsea.png"), lambda b: b[1] > 0)
    assert bar(page, "chelsea.png")[0] == on_server
    assert aria_value(page, "chelsea.png") == pct
    seen = bars_seen(page)
    assert set(seen) <= {0, on_server}, seen  # 0 only while asking the server
    assert seen[seen.index(on_server) :] == [on_server] * (len(seen) - seen.index(on_server))

    server.gate.release.set()
    expect(item(page, "chelsea.png")).to_have_attribute("data-state", "done")
    assert bar(page, "chelsea.png") == (CHELSEA_SIZE, 0)
    assert aria_value(page, "chelsea.png") == 100
    seen = bars_seen(page)
    assert seen == sorted(seen)  # only ever up
    assert server.gate.upload_ids() == [upload_id]


def test_pause_shows_what_the_server_holds_even_unanswered(
    gated: Callable[..., Gated], open_page: Callable[..., Page]
) -> None:
    """A chunk stored whose answer never arrived (pause, reload) counts once paused."""
    server = gated(**SMALL_CHUNKS)
    server.gate.hold_answers_from = 3  # chunks 3-5 are stored; their 201s wait
    page = open_page(server.url)
    record_bars(page)
    choose(page, CHELSEA)
    poll(lambda: server.gate.held, lambda n: n == 3)
    (upload_id,) = server.gate.upload_ids()
    assert server.gate.stored(upload_id) == [0, 1, 2, 3, 4, 5]
    on_server = server.stored_bytes(upload_id)
    assert on_server == 6 * CHUNK

    # The page counts what it heard back about: 3 chunks, less than the server has.
    poll(lambda: bar(page, "chelsea.png"), lambda b: b[0] == 3 * CHUNK)
    assert max(bars_seen(page)) == 3 * CHUNK

    # Pausing asks the server: the bar then shows exactly what it holds.
    page.get_by_role("button", name="Pause chelsea.png").click()
    expect(item(page, "chelsea.png")).to_have_attribute("data-state", "paused")
    pct = on_server * 100 // CHELSEA_SIZE  # 40
    expect(item(page, "chelsea.png").locator(".item-status")).to_have_text(
        f"Paused at {pct}%, stored on the server"
    )
    assert bar(page, "chelsea.png") == (on_server, 0)
    assert aria_value(page, "chelsea.png") == pct
    assert max(bars_seen(page)) == on_server

    server.settle()
    server.gate.hold_answers_from = None
    before = len(server.gate.puts)
    page.get_by_role("button", name="Resume chelsea.png").click()
    expect(item(page, "chelsea.png")).to_have_attribute("data-state", "done")
    assert sorted(p.index for p in server.gate.puts[before:]) == list(range(6, 15))
    seen = bars_seen(page)
    assert seen == sorted(seen)
    assert seen[-1] == CHELSEA_SIZE


def test_non_images_get_readable_errors_by_keyboard_on_a_phone(
    gated: Callable[..., Gated], open_page: Callable[..., Page]
) -> None:
    server = gated()
    page = open_page(server.url, width=390, height=844)
    text = b"shopping list: eggs, milk\n"
    files: list[FilePayload] = [
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": text},
        {"name": "holiday.png", "mimeType": "image/png", "buffer": text},
    ]
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Choose images…")).to_be_focused()
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    chooser.value.set_files(files)

    # The browser says notes.txt is text: refused before sending, with the published formats.
    expect(item(page, "notes.txt")).to_have_attribute("data-state", "failed")
    formats = httpx.get(server.url + "/v1/limits").json()["formats"]
    expect(item(page, "notes.txt").locator(".item-message")).to_have_text(
        re.compile(
            r"This file's type is text/plain, which the server does not accept; "
            rf"send an? {formats[0]}.* image\.",
            re.IGNORECASE,
        )
    )
    # holiday.png claims to be a PNG: the server looks at the bytes; its words are shown.
    expect(item(page, "holiday.png")).to_have_attribute("data-state", "failed")
    assert server.gate.count("POST", "/v1/images") == 1
    problem = httpx.post(server.url + "/v1/images", content=text).json()
    expect(item(page, "holiday.png").locator(".item-message")).to_have_text(problem["detail"])
    expect(page.locator("#announcer")).to_contain_text("holiday.png was not uploaded")
    expect(page.get_by_role("button", name="Retry holiday.png")).to_have_count(0)

    remove = page.get_by_role("button", name="Remove holiday.png")
    remove.focus()
    page.keyboard.press("Enter")
    expect(item(page, "holiday.png")).to_have_count(0)
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
