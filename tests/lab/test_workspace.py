"""lab.workspace: what a user's page holds between loads, read back bounded whatever the file holds;
and the lab on its own: settings for a base model and method picked by hand."""
import json

import pytest

from lab import page
from lab.workspace import MAX_MESSAGE_CHARS, MAX_MESSAGES, WORKSPACE_FILE, load_workspace, update_workspace


def test_the_workspace_round_trips_field_by_field(tmp_path):
    assert load_workspace(tmp_path / "nobody").messages == []
    update_workspace(tmp_path, messages=["20 photos of my dog", "accuracy 4"])
    update_workspace(tmp_path, settings='{"method": "lora"}', data_dir=str(tmp_path / "dataset"))
    ws = load_workspace(tmp_path)
    assert ws.messages == ["20 photos of my dog", "accuracy 4"] and ws.settings == '{"method": "lora"}'
    assert ws.data_dir == str(tmp_path / "dataset") and ws.profile is None
    with pytest.raises(TypeError, match="unknown workspace field"):
        update_workspace(tmp_path, password="x")


@pytest.mark.parametrize("content", ["{broken", "[1, 2]", "null", "[" * 100_000,
                                     json.dumps({"messages": "not a list", "settings": 5, "profile": [1]}),
                                     json.dumps({"messages": [1, None, {"a": 1}], "data_dir": ["x"]})])
def test_a_broken_or_hostile_workspace_reads_as_empty(tmp_path, content):
    (tmp_path / WORKSPACE_FILE).write_text(content)
    ws = load_workspace(tmp_path)
    assert ws.messages == [] and ws.settings == "" and ws.data_dir == "" and ws.profile is None


def test_the_workspace_is_bounded(tmp_path):
    many = [f"message {i}" for i in range(MAX_MESSAGES + 50)] + ["x" * (MAX_MESSAGE_CHARS + 10)]
    ws = update_workspace(tmp_path, messages=many)
    assert len(ws.messages) == MAX_MESSAGES and len(ws.messages[-1]) == MAX_MESSAGE_CHARS
    (tmp_path / WORKSPACE_FILE).write_text(json.dumps({"settings": "y" * 3_000_000}))
    assert load_workspace(tmp_path).settings == ""          # a file past the size limit is not read


def test_the_lab_without_the_advisor_gets_settings_for_a_picked_pair():
    lora = page.picked_settings("sd15", "lora", demo=False, vram_gb=12)
    cfg, error = page.check_config_text(lora["text"])
    assert error == "" and cfg.method == "lora" and cfg.base_model.endswith("stable-diffusion-v1-5")
    assert cfg.score_checkpoints == "after" and lora["profile"].preferred_method == "lora"
    demo = page.picked_settings("shapes-demo", "textual_inversion", demo=True)
    cfg, error = page.check_config_text(demo["text"])
    assert error == "" and cfg.base_model == "shapes-demo" and cfg.method == "textual_inversion" and cfg.resolution == 64
    tiny = page.picked_settings("tiny", "lora", demo=True)   # the random tiny model, when named
    assert page.check_config_text(tiny["text"])[0].base_model == "tiny"
    refused = page.picked_settings("sd15", "full_finetune", demo=False, vram_gb=24)
    assert refused["message"].startswith("**The advisor would not train a full fine-tune here:**")
    assert 'set "method" to train yours anyway' in refused["message"]
    assert page.picked_settings("flux", "lora", demo=False)["text"] is None
    assert page.picked_settings("sd15", "magic", demo=False)["message"].startswith("**Pick a method**")


def test_starting_without_settings_says_what_to_do(tmp_path):
    job, message = page.start_training(None, "", session_id="user:ana")
    assert job is None and "No settings yet: pick a base model and a method" in message
    assert "not valid JSON" not in message
