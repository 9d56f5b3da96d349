"""The upload page in ``--auth keys`` mode, in a real browser (see tests/e2e/test_web.py):
it asks for a key once, keeps it in the browser's storage, uploads with it, forgets it."""

from __future__ import annotations

import contextlib

import httpx
import pytest

from tests.auth.conftest import Keys, bearer
from tests.e2e.test_web import ROCKET, browser, choose, item

with contextlib.suppress(ImportError):  # the browser fixture reports it
    from playwright.sync_api import Browser, expect

__all__ = ["browser"]


@pytest.fixture
def backend() -> str:
    """The page only speaks HTTP; the API's access control runs on every backend elsewhere."""
    return "sqlite"


def test_the_page_asks_for_a_key_once_uploads_with_it_and_forgets_it(
    keys: Keys, browser: Browser
) -> None:
    secret = keys.make("upload", "read", "delete")
    context = browser.new_context()
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("filechooser", lambda chooser: None)
        page.goto(keys.server.url + "/")
        form = page.locator("#key-form")
        expect(form).to_be_visible()
        page.get_by_label("This server needs an API key").fill(secret)
        page.get_by_role("button", name="Use this key").click()
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        expect(form).to_be_hidden()

        page.reload()  # kept in the browser: not asked again
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        choose(page, ROCKET)
        expect(item(page, "rocket.jpg")).to_have_attribute("data-state", "done")
        mine = httpx.get(keys.server.url + "/v1/images", headers=bearer(secret)).json()
        assert [image["filename"] for image in mine["images"]] == ["rocket.jpg"]

        page.get_by_role("button", name="Forget API key").click()
        expect(form).to_be_visible()
        assert page.evaluate("() => localStorage.getItem('pixdrop.apiKey')") is None
    finally:
        context.close()
    assert not errors, errors
