"""The chat page in a real headless Chromium, against the session's live server.

Needs ``/usr/bin/chromium`` (``apt-get install -y chromium``; the CI script installs it) and
pip's ``playwright``; never ``playwright install``. Screenshots go to ``artifacts/``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.live_server import API_KEY, LONDON, PANDA_ZH

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
ARTIFACTS = REPO / "artifacts"
ANSWER_TIMEOUT_MS = 240_000

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing; install it with: apt-get update && apt-get install -y chromium")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="pip install playwright (never run 'playwright install')"
    )
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser, api_server):  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-US")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(api_server.url + "/")
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def ask(page, question: str) -> None:
    page.fill("#question", question)
    page.keyboard.press("Enter")


def test_page_asks_for_the_key_when_the_server_needs_one(page):
    page.wait_for_selector("#status[data-state='ready']", timeout=30_000)
    ask(page, LONDON)
    failed = page.wait_for_selector(".msg.assistant.failed", timeout=30_000)
    assert "API key" in failed.inner_text()
    assert page.eval_on_selector("#key-box", "box => box.open")


def test_ask_stream_click_citation_and_screenshot(page):
    page.click("#key-box summary") if not page.eval_on_selector("#key-box", "b => b.open") else None
    page.fill("#api-key", API_KEY)
    page.click("#key-form button[type='submit']")
    assert page.evaluate("localStorage.getItem('rag-api-key')") == API_KEY

    ask(page, LONDON)
    assert page.inner_text(".msg.user .bubble") == LONDON
    # The short answer arrives in one piece and settles with its sources (a written answer
    # streams token by token: test_api's streaming test).
    page.wait_for_selector(".msg.assistant .timings", timeout=ANSWER_TIMEOUT_MS)
    answer_text = page.inner_text(".msg.assistant .answer")
    assert answer_text.strip() and "Searching" not in answer_text
    assert page.locator(".msg.assistant").count() == 1
    assert not page.locator(".msg.assistant.failed").count(), answer_text

    # What a person checks: the short answer is London's limit (not Paris's, in the same sentence),
    # the sentence it comes from is under it, and the source panel marks those words.
    assert "240 pounds" in answer_text and "210" not in answer_text and "euros" not in answer_text, answer_text
    assert "240 pounds in London" in page.inner_text(".msg.assistant .evidence")
    cites = page.locator(".msg.assistant .answer .cite")
    assert cites.count() >= 1, f"no clickable [n] marker in: {answer_text!r}"
    cites.first.click()
    panel = page.locator("#passage")
    panel.wait_for(state="visible")
    assert "travel-policy.md" in page.inner_text("#passage-meta")
    assert "Quillfeather" in page.inner_text("#passage-meta")  # the section the passage sits in
    assert "London" in page.inner_text("#passage-text")
    assert page.inner_text("#passage-text mark.answer-span") == "240 pounds"
    assert "travel-policy.md" in page.inner_text(".msg.assistant .sources")

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat_page.png"), full_page=True)

    # A Chinese question in a new conversation: the source list and passage show Chinese text.
    page.click("#new-chat")
    assert page.locator(".msg").count() == 0
    ask(page, PANDA_ZH)
    page.wait_for_selector(".msg.assistant .timings", timeout=ANSWER_TIMEOUT_MS)
    assert not page.locator(".msg.assistant.failed").count(), page.inner_text(".msg.assistant")
    answer_zh = page.inner_text(".msg.assistant .answer")
    assert "七点半" in answer_zh and "五点" not in answer_zh, answer_zh
    page.locator(".msg.assistant .source-link").first.click()
    assert "熊猫基地.md" in page.inner_text("#passage-meta")
    assert "七点半" in page.inner_text("#passage-text mark.answer-span")
    page.screenshot(path=str(ARTIFACTS / "chat_page_zh.png"), full_page=True)


def test_quote_mode_answers_with_the_document_sentence(page):
    page.evaluate(f"localStorage.setItem('rag-api-key', '{API_KEY}')")
    page.reload()
    page.wait_for_selector("#status[data-state='ready']", timeout=30_000)
    # The page starts in the server's mode (the short answer); the person's choice is kept.
    assert page.input_value("#answer-mode") == "read"
    page.select_option("#answer-mode", "quote")
    ask(page, LONDON)
    page.wait_for_selector(".msg.assistant .timings", timeout=ANSWER_TIMEOUT_MS)
    answer_text = page.inner_text(".msg.assistant .answer")
    assert "240 pounds in London and 210 euros in Paris" in answer_text, answer_text
    page.locator(".msg.assistant .answer .cite").first.click()
    assert "travel-policy.md" in page.inner_text("#passage-meta")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat_page_quote.png"), full_page=True)
    page.reload()
    assert page.input_value("#answer-mode") == "quote"


def test_a_multi_hop_answer_shows_its_steps_collapsed_under_it(page):
    page.evaluate(f"localStorage.setItem('rag-api-key', '{API_KEY}')")
    page.reload()
    page.wait_for_selector("#status[data-state='ready']", timeout=30_000)
    ask(page, "What are the nightly hotel limits in London and Paris respectively?")
    page.wait_for_selector(".msg.assistant .timings", timeout=ANSWER_TIMEOUT_MS)
    answer_text = page.inner_text(".msg.assistant .answer")
    # Each city with its own limit, in the order asked.
    assert answer_text.startswith("London: 240 pounds") and "Paris: 210 euros" in answer_text, answer_text
    steps = page.locator(".msg.assistant details.reasoning")
    assert steps.count() == 1 and not steps.evaluate("d => d.open")  # collapsed until opened
    page.click(".msg.assistant details.reasoning summary")
    items = page.locator(".msg.assistant details.reasoning .steps li")
    assert items.count() == 2
    assert "London" in items.nth(0).inner_text() and "240 pounds" in items.nth(0).inner_text()
    assert "Paris" in items.nth(1).inner_text() and "210 euros" in items.nth(1).inner_text()
    items.nth(1).locator(".cite").click()
    assert "travel-policy.md" in page.inner_text("#passage-meta")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat_page_steps.png"), full_page=True)
