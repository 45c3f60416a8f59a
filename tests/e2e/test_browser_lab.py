"""The whole path in a real browser on the CPU demonstration: chat, recommendation, 'Train this
recommendation', upload, the demo dataset, train the shapes demo model, samples, scores, rating,
the Runs tab.
A screenshot of each stage goes to test-artifacts/."""
import pytest

from browser_support import ARTIFACTS, app_with_photos, browser_page

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def lab_app(tmp_path_factory):
    with app_with_photos(tmp_path_factory.mktemp("lab")) as served:
        yield served


def test_whole_path_on_the_demo_model(lab_app):
    from playwright.sync_api import expect
    url, images, tmp = lab_app
    shot = lambda page, name: page.screenshot(path=str(ARTIFACTS / f"lab-{name}.png"), full_page=True)  # noqa: E731
    with browser_page(url) as page:
        box = page.locator("#chat-input textarea")
        expect(box).to_be_visible(timeout=60_000)
        box.fill("I want a LoRA of my dog, 5 photos, 12GB card, recommend now")
        box.press("Enter")
        expect(page.locator("#rec-card h3")).to_be_visible(timeout=60_000)
        shot(page, "1-recommendation")

        train = page.locator("#train-button")
        expect(train).to_be_enabled(timeout=30_000)
        train.click()
        expect(page.locator("#settings-msg")).to_contain_text("Settings are valid", timeout=30_000)
        page.locator("#upload input[type=file]").set_input_files([str(p) for p in images])
        expect(page.locator("#dataset-report")).to_contain_text("5", timeout=60_000)
        expect(page.locator("#settings-msg")).not_to_contain_text("Choose a dataset", timeout=30_000)
        # the CPU demonstration's own data: the star the shapes demo model never saw, with its prompts
        page.locator("#demo-dataset").click()
        expect(page.locator("#dataset-report")).to_contain_text("star", timeout=60_000)
        expect(page.locator("#settings")).to_contain_text('"instance_prompt": "a star"', timeout=30_000)
        expect(page.locator("#settings")).to_contain_text("my-uploads/datasets/demo-star", timeout=30_000)
        expect(page.locator("#settings")).to_contain_text("shapes-demo")
        shot(page, "2-dataset")

        page.locator("#start").click()
        status = page.locator("#train-status")
        expect(status).to_contain_text("completed", timeout=300_000)
        expect(page.locator("#samples img").first).to_be_visible(timeout=60_000)
        # it trained on the star's own prompts (the dataset's folder update once put the recommendation's back)
        expect(page.locator("#samples")).to_contain_text("star", timeout=30_000)
        expect(page.locator("#settings")).to_contain_text('"instance_prompt": "a star"')
        shot(page, "3-trained")

        expect(page.locator("#scores-md")).to_contain_text("accuracy", timeout=300_000)
        expect(page.locator("#compare img").first).to_be_visible(timeout=60_000)
        expect(page.locator("#compare")).to_contain_text("star")
        expect(page.locator("#downloads")).to_contain_text("safetensors", timeout=60_000)
        shot(page, "4-results")

        # which checkpoint to keep: scores along the run, each checkpoint's images, the choice, export
        choice = page.locator("#checkpoint-choice")
        expect(choice).to_contain_text("Best for you: the checkpoint at step", timeout=300_000)
        expect(page.locator("#checkpoint-grids img").first).to_be_visible(timeout=60_000)
        expect(page.locator("#checkpoint-plot")).to_be_visible()
        page.locator("#checkpoint-choice").scroll_into_view_if_needed()
        page.locator("#checkpoint-export").click()
        expect(page.locator("#checkpoint-msg")).to_contain_text("Exported the checkpoint at step", timeout=120_000)
        expect(page.locator("#checkpoint-files")).to_contain_text("kohya", timeout=60_000)
        expect(choice).to_contain_text("Kept: step", timeout=30_000)
        page.locator("#checkpoint-plot").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "lab-checkpoints.png"), full_page=False)

        page.locator("#save-rating").click()
        expect(page.locator("#rating-msg")).to_contain_text("Saved your rating", timeout=30_000)

        page.get_by_role("tab", name="Runs").click()       # the table fills when the tab opens
        table = page.locator("#runs-table")
        expect(table).to_contain_text("completed", timeout=30_000)
        expect(table).to_contain_text("lora")
        expect(table).to_contain_text("3/3/3")
        shot(page, "5-runs")

        # a page reload reattaches to the same run
        page.reload()
        page.get_by_role("tab", name="Lab").click()
        expect(page.locator("#train-status")).to_contain_text("completed", timeout=60_000)
