"""The web page in a real browser (issue 11): headless Chromium (Debian's ``chromium``,
driven by Playwright through ``executable_path``) against the real app served by uvicorn
with the real models, FAISS and SQLite. Each state is saved as a screenshot under
test-artifacts/screenshots/ (listed at the end of the run)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from api.app import create_app
from api.auth import create_api_key
from core.settings import LimitsSettings
from tests.api.conftest import api_settings
from tests.api.live import EXAMPLES, QUESTION, serve

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
ANSWER_S = 600_000  # ms a real answer may take on a busy 2-core machine
PHONE = {"width": 390, "height": 844}
saved: list[str] = []  # this run's screenshots, listed at the end (tests/e2e/conftest.py)


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("no chromium binary (apt-get install chromium): the page is not driven")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    app = create_app(api_settings(tmp_path_factory.mktemp("browser")))
    with serve(app) as url:
        yield url


@contextmanager
def opened(browser: Any, url: str) -> Iterator[Any]:
    """The page at ``url`` in a fresh browser context; fails on any script error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(url + "/")
    pg.wait_for_load_state("networkidle")
    yield pg
    context.close()
    assert not errors, errors


@pytest.fixture
def page(browser: Any, server: str) -> Iterator[Any]:
    with opened(browser, server) as pg:
        yield pg


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    saved.append(f"{name}.png")


def fits(page: Any) -> bool:
    """Nothing wider than the screen: no horizontal scroll."""
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def ask(page: Any, question: str, n: int) -> Any:
    """Type ``question``, press Enter, wait for turn ``n`` to end; returns the turn."""
    page.fill("#question", question)
    page.press("#question", "Enter")
    page.locator(f"#turn-{n}[data-done='1']").wait_for(timeout=ANSWER_S)
    return page.locator(f"#turn-{n}")


def test_no_documents_yet_enter_asks_and_errors_are_words(page: Any) -> None:
    # an empty server: the default collection is no error
    page.wait_for_selector("#docs li")
    assert page.inner_text("#docs") == "no documents yet: upload some"
    shot(page, "01-empty")
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/v1/chat" in r.url else None)
    page.fill("#question", "When does the ferry leave?")
    page.press("#question", "Shift+Enter")  # a new line, no question
    assert page.input_value("#question") == "When does the ferry leave?\n" and not requests
    page.press("#question", "Enter")
    page.locator("#turn-1[data-done='1']").wait_for(timeout=60_000)
    turn = page.locator("#turn-1")
    assert len(requests) == 1
    assert turn.locator(".error").inner_text() == "collection 'default' does not exist"
    shot(page, "02-error-in-words")
    page.set_viewport_size(PHONE)
    assert fits(page)
    shot(page, "03-phone-empty")
    # a new collection: selected, empty, made by its first upload
    page.fill("#new-collection", "handbook")
    page.click("#create-collection")
    page.wait_for_selector("#collection option[value='handbook']", state="attached")
    assert page.input_value("#collection") == "handbook"
    assert page.inner_text("#docs") == "no documents yet: upload some"
    assert "handbook" in page.inner_text("#collection-msg")


def test_a_refusal_for_load_says_when_to_try_again(
    browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = api_settings(tmp_path_factory.mktemp("limited"))
    # two requests a minute: the page's own start-up spends them
    settings = settings.model_copy(update={"limits": LimitsSettings(requests_per_minute=2)})
    with serve(create_app(settings)) as url, opened(browser, url) as page:
        turn = ask(page, "When does the ferry leave?", 1)
        error = turn.locator(".error").inner_text()
        assert error.startswith("Too many requests (429): more than 2 requests in a minute")
        assert re.search(r"Try again in \d+ s\.$", error), error
        shot(page, "11-rate-limited")


def test_a_server_that_needs_a_key_says_so_and_takes_one(
    browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    app = create_app(api_settings(tmp_path_factory.mktemp("keyed"), auth_required=True))
    with serve(app) as url, opened(browser, url) as page:
        page.wait_for_selector("#auth-msg:not([hidden])")
        assert page.inner_text("#auth-msg").startswith("Not authorized: ")
        assert page.inner_text("#auth-msg").endswith("Enter your API key at the top right.")
        shot(page, "12-api-key-needed")
        page.fill("#api-key", create_api_key(app.state.platform.engine, "web").secret)
        page.click("#api-key-save")
        page.wait_for_selector("#auth-msg", state="hidden")
        page.wait_for_selector("#docs li.muted")
        assert page.inner_text("#docs") == "no documents yet: upload some"


@pytest.mark.slow
def test_upload_ask_cite_feedback_follow_up_abstain(page: Any) -> None:
    # two files: one the platform reads, one it refuses, each with its own progress row
    page.set_input_files(
        "#files",
        [
            {
                "name": "retrieval.md",
                "mimeType": "text/markdown",
                "buffer": (EXAMPLES / "retrieval.md").read_bytes(),
            },
            {"name": "broken.exe", "mimeType": "application/octet-stream", "buffer": b"MZ\x90"},
        ],
    )
    page.click("#upload")
    page.wait_for_selector("#upload-summary[data-status='done']", timeout=ANSWER_S)
    assert "done: ingested" in page.inner_text("#upfile-0")
    assert page.get_attribute("#upfile-1", "class") == "upfile failed"
    assert "broken.exe" in page.inner_text("#upfile-1") and "failed:" in page.inner_text(
        "#upfile-1"
    )
    assert page.locator("#upload-bar").evaluate("e => e.style.width") == "100%"
    page.wait_for_selector("#docs li button[data-source='retrieval.md']")
    shot(page, "04-uploaded")

    # a streamed answer with citations
    turn = ask(page, QUESTION, 1)
    assert not turn.locator(".error").count(), turn.inner_text()
    assert turn.get_attribute("data-abstained") == ""
    assert int(turn.locator(".a").get_attribute("data-tokens")) > 1  # pieces as they came
    assert turn.locator(".sources li").count() >= 1
    shot(page, "05-answer")

    # a citation opens its passage with the supporting span marked
    turn.locator(".a button.cite-link, .sources button").first.click()
    page.wait_for_selector("#source-text mark")
    assert "retrieval.md" in page.inner_text("#source-meta")
    mark = page.inner_text("#source-text mark")
    assert mark and mark in page.inner_text("#source-text")
    shot(page, "06-source-passage")

    # thumbs up
    turn.locator("button[data-rating='up']").click()
    turn.locator(".fb-msg.done").wait_for()
    assert turn.locator(".fb-msg").inner_text().startswith("Thanks: feedback recorded")
    shot(page, "07-feedback")

    # a follow-up in the same conversation
    first = page.evaluate("conversationId")
    follow = ask(page, "What value of k does it use?", 2)
    assert not follow.locator(".error").count(), follow.inner_text()
    assert first and page.evaluate("conversationId") == first
    # it was searched as a question that stands alone
    assert "reciprocal rank fusion" in follow.locator(".q .rewritten").inner_text().lower()
    shot(page, "08-follow-up")

    # a question the documents do not answer: an abstention, not an error
    no = ask(page, "What is the capital of Mongolia?", 3)
    assert no.get_attribute("data-abstained") == "1", no.inner_text()
    assert no.locator(".abstention strong").inner_text() == "The documents do not answer this."
    assert not no.locator(".error").count()
    shot(page, "09-abstention")

    # the conversation again from the list of past ones
    page.click("#new-conversation")
    assert page.inner_text("#thread") == ""
    page.select_option("#past", first)
    page.locator("#thread .turn").nth(2).wait_for()
    assert page.locator("#thread .turn .q").first.inner_text() == QUESTION
    assert page.evaluate("conversationId") == first

    # a phone: one column, nothing wider than the screen
    page.set_viewport_size(PHONE)
    assert fits(page)
    shot(page, "10-phone-conversation")

    # deleting a document asks first
    dialogs: list[str] = []
    delete = page.locator("#docs button[data-source='retrieval.md']")
    page.once("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    delete.click()
    assert dialogs == ['Delete retrieval.md from the collection "default"? This cannot be undone.']
    assert delete.count() == 1
    page.once("dialog", lambda d: d.accept())
    delete.click()
    page.wait_for_selector("#docs li.muted")
    assert page.inner_text("#docs") == "no documents yet"
