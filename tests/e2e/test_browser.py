"""The app in a real browser (Debian's Chromium driven by Playwright): type a goal, click a
quick-reply option, see the recommendation card. Screenshots go to test-artifacts/."""
import pytest

from browser_support import ARTIFACTS, browser_page, running_app

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    with running_app(tmp_path_factory.mktemp("app"), FTA_CACHE_DIR=str(tmp_path_factory.mktemp("cache"))) as url:
        yield url


@pytest.fixture
def page(app_url):
    with browser_page(app_url) as pg:
        yield pg


def test_goal_option_recommendation(page):
    from playwright.sync_api import expect
    box = page.locator("#chat-input textarea")
    expect(box).to_be_visible(timeout=60_000)
    # the greeting arrives with its quick replies
    expect(page.locator("#chatbot").get_by_role("button", name="Not sure").first).to_be_visible(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "advisor-0-start.png"), full_page=True)

    box.fill("30 pictures of my cat, 12GB card")
    box.press("Enter")
    known = page.locator("#known-panel")
    expect(known).to_contain_text("30", timeout=30_000)
    # the advisor now asks about accuracy; answer by clicking an option instead of typing
    option = page.locator("#chatbot").get_by_role("button", name="4: must look like it")
    expect(option).to_be_visible(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "advisor-1-question.png"), full_page=True)
    option.click()

    card = page.locator("#rec-card")
    expect(card.locator("h3")).to_be_visible(timeout=30_000)
    expect(card).to_contain_text("Settings")
    expect(card).to_contain_text("Sources")
    expect(known).to_contain_text("assumed")
    expect(page.locator("#train-button")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "advisor-2-recommendation.png"), full_page=True)


def test_question_answered_with_sources(page):
    from playwright.sync_api import expect
    box = page.locator("#chat-input textarea")
    expect(box).to_be_visible(timeout=60_000)
    box.fill("what is prior preservation?")
    box.press("Enter")
    bot = page.locator("#chatbot")
    expect(bot).to_contain_text("Sources", timeout=90_000)
    expect(bot).to_contain_text("Prior preservation")
    page.screenshot(path=str(ARTIFACTS / "advisor-3-question-answered.png"), full_page=True)
