"""Two people on one app at once, in a real browser: Ana uses the lab without the advisor (picker,
upload, start) and reloads mid-run; her chat, settings, dataset and job come back, in a second tab
too. Bo chats, opens the lab with his recommendation, and never sees anything of Ana's.
Screenshots of each stage go to test-artifacts/ (the README shows two of them)."""
import re

import pytest

from browser_support import ARTIFACTS, CHROMIUM, FLAGS, app_with_photos

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    with app_with_photos(tmp_path_factory.mktemp("two-users")) as (url, images, _):
        yield url, images


def test_two_users_a_reload_mid_run_and_the_lab_without_the_advisor(app_url):
    from playwright.sync_api import expect, sync_playwright

    url, images = app_url
    ARTIFACTS.mkdir(exist_ok=True)
    shot = lambda page, name: page.screenshot(path=str(ARTIFACTS / f"users-{name}.png"), full_page=True)  # noqa: E731
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        ana_ctx = browser.new_context(viewport={"width": 1400, "height": 1000})   # each its own browser storage
        bo_ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        ana, bo = ana_ctx.new_page(), bo_ctx.new_page()
        ana.goto(url)
        bo.goto(url)

        # Ana says one thing to the advisor, then uses the lab on her own. She types once the
        # greeting is there, as a person does: a message sent before the page's first chat event
        # has answered is replaced by that greeting (the page starts the chat on load)
        box = ana.locator("#chat-input textarea")
        expect(ana.locator("#chatbot")).to_contain_text("What should the model learn", timeout=60_000)
        box.fill("my 17 photos of a teapot")
        box.press("Enter")
        expect(ana.locator("#chatbot")).to_contain_text("17", timeout=60_000)
        ana.get_by_role("tab", name="Lab").click()
        ana.locator("#fill-settings").click()
        settings_msg = ana.locator("#settings-msg")
        expect(settings_msg).to_contain_text("Settings are valid: lora", timeout=30_000)
        ana.locator("#upload input[type=file]").set_input_files([str(p) for p in images])
        expect(ana.locator("#dataset-report")).to_contain_text("5", timeout=60_000)
        expect(settings_msg).not_to_contain_text("Choose a dataset", timeout=30_000)
        ana.locator("#start").click()
        status = ana.locator("#train-status")
        expect(status).to_contain_text("running ·", timeout=180_000)   # training, then scoring its checkpoints

        # meanwhile Bo chats and opens the lab with his own recommendation
        bo_box = bo.locator("#chat-input textarea")
        expect(bo.locator("#chatbot")).to_contain_text("What should the model learn", timeout=60_000)
        bo_box.fill("I want a LoRA of my cat, 7 photos, 8GB card, recommend now")
        bo_box.press("Enter")
        expect(bo.locator("#rec-card h3")).to_be_visible(timeout=60_000)
        bo.locator("#train-button").click()
        expect(bo.locator("#settings-msg")).to_contain_text("Settings are valid", timeout=30_000)
        expect(bo.locator("#train-status")).to_contain_text("No training yet", timeout=30_000)
        expect(bo.locator("#dataset-report")).not_to_contain_text("5 image")
        shot(bo, "bo-lab")

        # Ana reloads in the middle of her run: chat, settings, dataset and job come back
        ana.reload()
        expect(ana.locator("#chatbot")).to_contain_text("my 17 photos of a teapot", timeout=60_000)
        ana.get_by_role("tab", name="Lab").click()
        expect(ana.locator("#dataset-report")).to_contain_text("Your dataset, as you left it", timeout=60_000)
        expect(ana.locator("#settings-msg")).to_contain_text("Settings are valid: lora", timeout=30_000)
        expect(ana.locator("#train-status")).to_contain_text(re.compile("running|completed"), timeout=60_000)
        shot(ana, "ana-after-reload")

        # a second tab of Ana's finds the same
        second = ana_ctx.new_page()
        second.goto(url)
        expect(second.locator("#chatbot")).to_contain_text("my 17 photos of a teapot", timeout=60_000)
        second.get_by_role("tab", name="Lab").click()
        expect(second.locator("#dataset-report")).to_contain_text("Your dataset, as you left it", timeout=60_000)
        expect(second.locator("#train-status")).to_contain_text(re.compile("running|completed"), timeout=60_000)

        # Bo, reloading too, gets his own chat and settings back and nothing of Ana's
        bo.reload()
        expect(bo.locator("#chatbot")).to_contain_text("my cat", timeout=60_000)
        expect(bo.locator("#chatbot")).not_to_contain_text("teapot")
        bo.get_by_role("tab", name="Lab").click()
        expect(bo.locator("#train-status")).to_contain_text("No training yet", timeout=30_000)
        expect(bo.locator("#dataset-report")).not_to_contain_text("as you left it")

        expect(ana.locator("#train-status")).to_contain_text("completed", timeout=400_000)
        shot(ana, "ana-completed")
        browser.close()
