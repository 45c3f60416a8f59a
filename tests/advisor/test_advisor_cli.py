"""`python -m advisor ...`: the contract commands, and one-line errors on bad input."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
METHODS = {"lora", "dreambooth", "dreambooth_lora", "textual_inversion", "full_finetune"}


def run(args, stdin=None, env=None, cwd=None):
    e = dict(os.environ, FTA_EMBEDDER="none", **(env or {}))
    return subprocess.run([sys.executable, "-m", "advisor", *args], input=stdin, capture_output=True,
                          text=True, timeout=180, cwd=cwd or ROOT, env=e)


def test_recommend_json(tmp_path):
    p = tmp_path / "profile.json"
    p.write_text(json.dumps({"goal": "my face", "subject_type": "person", "n_images": 15, "accuracy": 5,
                             "flexibility": 3, "preservation": 4, "vram_gb": 16, "time_budget_min": 60,
                             "base_model": "sd15"}))
    out = run(["recommend", "--profile", str(p), "--json"])
    assert out.returncode == 0, out.stderr
    rec = json.loads(out.stdout)
    assert rec["method"] in METHODS
    for key in ("base_model", "hyperparameters", "estimates", "predicted", "reasons", "citations",
                "alternatives", "dataset_advice", "train_config"):
        assert key in rec
    assert rec["estimates"]["vram_gb"] <= 16
    assert rec["estimates"]["minutes"] <= 60


def test_recommend_human_readable(tmp_path):
    p = tmp_path / "profile.json"
    p.write_text(json.dumps({"subject_type": "style", "n_images": 200, "captions": True}))
    out = run(["recommend", "--profile", str(p)])
    assert out.returncode == 0 and "Method:" in out.stdout


@pytest.mark.parametrize("content, needle", [
    ("{not json", "not valid JSON"),
    ('{"vram_gb": -4}', "vram_gb"),
    ('{"subject_type": "spaceship"}', "subject_type"),
    ('["a list"]', "JSON object"),
    ('{"accuracy": 9}', "accuracy"),
])
def test_recommend_bad_profile_one_line_error(tmp_path, content, needle):
    p = tmp_path / "profile.json"
    p.write_text(content)
    out = run(["recommend", "--profile", str(p), "--json"])
    assert out.returncode != 0
    assert needle in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_recommend_missing_file(tmp_path):
    out = run(["recommend", "--profile", str(tmp_path / "nope.json"), "--json"])
    assert out.returncode != 0 and "does not exist" in out.stderr and "Traceback" not in out.stderr


def test_chat_json_contract():
    msgs = "30 pictures of my cat, 12GB card, I want it in all kinds of scenes\nactually I have 8GB\n"
    out = run(["chat", "--json"], stdin=msgs)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert set(data) >= {"profile", "recommendation", "transcript"}
    assert data["profile"]["vram_gb"] == 8 and data["profile"]["n_images"] == 30
    assert data["recommendation"]["estimates"]["vram_gb"] <= 8
    assert sum(m["role"] == "user" for m in data["transcript"]) == 2


def test_chat_with_junk_lines():
    out = run(["chat", "--json"], stdin="\n🙂🙂\n" + "z" * 10000 + "\n-3 images\n")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["recommendation"] is None and data["profile"]["n_images"] is None


def test_chat_empty_stdin():
    out = run(["chat", "--json"], stdin="")
    assert out.returncode == 0 and json.loads(out.stdout)["recommendation"] is None


def test_search():
    out = run(["search", "how many class images do I need?", "--json"])
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["backend"] == "tf-idf" and "class-images" in [h["card"] for h in data["hits"]]


def test_unknown_command_one_line():
    out = run(["frobnicate"])
    assert out.returncode == 2 and "Traceback" not in out.stderr


def test_runs_wired(tmp_path):
    out = run(["runs", "list", "--json"], env={"FTA_RUNLOG": str(tmp_path / "log.sqlite"),
                                               "FTA_RUNS_DIR": str(tmp_path / "runs")})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []
