"""Four requests in the words people write, played in the browser as a user would: the message,
then "just tell me"; the card must show what an expert expects. The screenshots are the README's
(copy test-artifacts/request-*.png to docs/ when the card changes)."""
import pytest

from browser_support import ARTIFACTS, browser_page, running_app

pytestmark = pytest.mark.browser

REQUESTS = [
    # (file, message, what the chat and card must say)
    ("request-1-settings", "lora rank 64, alpha 32, lr 1e-4, 2000 steps. my car, 40 pics, 4090",
     ["You set rank 64", "You set steps 2000", "LoRA"]),
    ("request-2-flux", "a flux lora of myself on my 4090, 20 selfies",
     ["FLUX.1 [dev]", "int8", "Non-Commercial License", "RTX 4090"]),
    ("request-3-rent", "I want a full fine-tune of SDXL on 3000 captioned fashion photos, which gpu should i rent "
                       "for it?", ["You'll rent a card", "Full fine-tune", "bucket"]),
    ("request-4-zimage", "z-image lora of my dog on my rtx 3060 12gb, 15 photos",
     ["Z-Image", "int8", "RTX 3060", "1024"]),
]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    with running_app(tmp_path_factory.mktemp("app"), FTA_CACHE_DIR=str(tmp_path_factory.mktemp("cache"))) as url:
        yield url


@pytest.mark.parametrize("name, message, says", REQUESTS, ids=[r[0] for r in REQUESTS])
def test_a_request_in_forum_words_gets_the_plan_an_expert_expects(app_url, name, message, says):
    from playwright.sync_api import expect

    with browser_page(app_url) as page:
        box = page.locator("#chat-input textarea")
        expect(box).to_be_visible(timeout=60_000)
        expect(page.locator("#chatbot").get_by_role("button", name="Not sure").first).to_be_visible(timeout=30_000)
        box.fill(message)
        box.press("Enter")
        expect(page.locator("#chatbot")).to_contain_text("Got it", timeout=30_000)
        box.fill("just tell me")
        box.press("Enter")
        card = page.locator("#rec-card")
        expect(card.locator("h3")).to_be_visible(timeout=60_000)
        everything = page.locator("body")
        for phrase in says:
            expect(everything).to_contain_text(phrase, timeout=30_000)
        card.get_by_role("heading", name="Why").scroll_into_view_if_needed()   # the reasons, in view
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
