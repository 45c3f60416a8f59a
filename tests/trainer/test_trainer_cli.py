"""`python -m trainer`: each bad input ends in one line on stderr and a non-zero exit, never a
traceback; a good config trains."""
from __future__ import annotations

import json

import pytest

from helpers import make_images, run_cli
from trainer.cli import EXIT_BAD_INPUT, main
from trainer.events import read_events


def _write_config(path, **values):
    path.write_text(json.dumps(values))
    return str(path)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ") and "Traceback" not in err[0]
    return err[0]


@pytest.fixture
def good(tiny_sd15, images, tmp_path):
    """Valid config values for a 1-step run; each test breaks one thing."""
    return dict(base_model=str(tiny_sd15), data_dir=str(images), output_dir=str(tmp_path / "run"),
                resolution=64, max_train_steps=1, checkpointing_steps=0)


def _bad_data(tmp_path, case: str) -> str:
    folder = tmp_path / case
    if case == "missing":
        return str(folder)
    if case == "file":
        folder.write_text("not a folder")
        return str(folder)
    folder.mkdir()
    if case == "empty":
        (folder / "notes.txt").write_text("hello")
    elif case == "corrupt":
        make_images(folder, 2)
        (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    elif case == "zero_bytes":
        make_images(folder, 1)
        (folder / "empty.png").write_bytes(b"")
    return str(folder)


@pytest.mark.parametrize("case, expected", [
    ("missing", "does not exist"),
    ("file", "is a file, not a folder"),
    ("empty", "no images"),
    ("corrupt", "broken.jpg"),
    ("zero_bytes", "empty.png: the file is empty"),
])
def test_bad_data_is_one_line_before_any_model_loads(case, expected, good, tmp_path, capsys):
    cfg = _write_config(tmp_path / "c.json", **{**good, "data_dir": _bad_data(tmp_path, case)})
    assert main(["train", "--config", cfg, "--no-progress"]) == EXIT_BAD_INPUT
    assert expected in _one_line_error(capsys)
    events = read_events(good["output_dir"])
    assert events[-1]["status"] == "failed" and expected in events[-1]["error"]
    assert not any(e.get("phase") == "loading_model" for e in events)


def test_skip_bad_images_trains_on_the_rest(good, tmp_path, capsys):
    cfg = _write_config(tmp_path / "c.json", **{**good, "data_dir": _bad_data(tmp_path, "corrupt")},
                        skip_bad_images=True)
    assert main(["train", "--config", cfg, "--no-progress"]) == 0
    events = read_events(good["output_dir"])
    assert any("skipped 1 unreadable image(s): broken.jpg" in e.get("message", "") for e in events)
    assert events[-1]["status"] == "completed"


@pytest.mark.parametrize("change, expected", [
    ({"base_model": "/no/such/model"}, "neither a local diffusers folder"),
    ({"base_model": "someorg/not-cached-model"}, "is not in the local cache and the hub is offline"),
    ({"mixed_precision": "fp16"}, "mixed_precision='fp16' needs a CUDA GPU"),
    ({"use_8bit_adam": True}, "use_8bit_adam=True needs a CUDA GPU"),
    ({"method": "textual_inversion"}, "lack placeholder_token '<sks>'"),
    ({"rank": 0}, "rank=0; must be an integer >= 1"),
    ({"learning_rate": "fast"}, "learning_rate='fast' has type str"),
    ({"steps": 10}, "unknown config key(s) ['steps']"),
])
def test_bad_config_is_one_line(change, expected, good, tmp_path, capsys):
    cfg = _write_config(tmp_path / "c.json", **{**good, **change})
    assert main(["train", "--config", cfg, "--no-progress"]) == EXIT_BAD_INPUT
    assert expected in _one_line_error(capsys)


def test_folder_without_model_index(good, tmp_path, capsys):
    (tmp_path / "notamodel").mkdir()
    cfg = _write_config(tmp_path / "c.json", **{**good, "base_model": str(tmp_path / "notamodel")})
    assert main(["train", "--config", cfg]) == EXIT_BAD_INPUT
    assert "without model_index.json" in _one_line_error(capsys)


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # argparse's own errors exit from inside parse_args
        return e.code


@pytest.mark.parametrize("argv, expected", [
    (["train", "--config", "/no/such.json"], "config file '/no/such.json' does not exist"),
    (["train"], "the following arguments are required: --config"),
    (["fly", "x"], "invalid choice: 'fly'"),
    ([], "the following arguments are required: command"),
])
def test_bad_arguments(argv, expected, capsys):
    assert _exit_code(argv) == EXIT_BAD_INPUT
    assert expected in _one_line_error(capsys)


def test_bad_json_and_bad_overrides(good, tmp_path, capsys):
    (tmp_path / "bad.json").write_text("{ not json")
    assert main(["train", "--config", str(tmp_path / "bad.json")]) == EXIT_BAD_INPUT
    assert "is not valid JSON" in _one_line_error(capsys)
    cfg = _write_config(tmp_path / "c.json", **good)
    assert main(["train", "--config", cfg, "rnk=4"]) == EXIT_BAD_INPUT
    assert "unknown config key 'rnk'" in _one_line_error(capsys)
    assert main(["train", "--config", cfg, "rank"]) == EXIT_BAD_INPUT
    assert "is not key=value" in _one_line_error(capsys)


def test_overrides_and_toml_config_train(good, tmp_path, capsys):
    lines = [f'{k} = {json.dumps(v)}' for k, v in good.items()]
    (tmp_path / "c.toml").write_text("\n".join(lines) + "\n")
    assert main(["train", "--config", str(tmp_path / "c.toml"), "--no-progress", "max_train_steps=2", "rank=2"]) == 0
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["max_train_steps"] == 2 and saved["rank"] == 2
    assert [e["step"] for e in read_events(tmp_path / "run") if e["kind"] == "step"] == [1, 2]
    assert "completed" in capsys.readouterr().err


def test_make_tiny_model(tmp_path, capsys):
    assert main(["make-tiny-model", str(tmp_path / "m")]) == 0
    assert (tmp_path / "m" / "model_index.json").is_file()
    assert capsys.readouterr().out.strip() == str(tmp_path / "m")
    assert main(["make-tiny-model", str(tmp_path / "m")]) == EXIT_BAD_INPUT
    assert "is not empty" in _one_line_error(capsys)


@pytest.mark.slow
def test_subprocess_bad_input_has_no_traceback(good, tmp_path):
    cfg = _write_config(tmp_path / "c.json", **{**good, "data_dir": str(tmp_path / "nowhere")})
    out = run_cli("train", "--config", cfg)
    assert out.returncode == EXIT_BAD_INPUT
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("error: data_dir")
    out = run_cli("make-tiny-model", str(tmp_path / "m"), "--arch", "hidream")
    assert out.returncode == EXIT_BAD_INPUT and "invalid choice: 'hidream'" in out.stderr


@pytest.mark.slow  # trains, then scores with the tiny encoders: ~15 s
def test_evaluate_after_training_scores_the_run(good, tmp_path, capsys, monkeypatch):
    import trainer.evaluate

    calls = []
    real = trainer.evaluate.evaluate_run

    def counted(run_dir, **kw):
        calls.append(run_dir)
        return real(run_dir, **kw)
    monkeypatch.setattr(trainer.evaluate, "evaluate_run", counted)
    cfg = _write_config(tmp_path / "c.json", **{**good, "max_train_steps": 2, "validation_inference_steps": 2,
                                                 "evaluate_after_training": True})
    assert main(["train", "--config", cfg, "--no-progress"]) == 0
    assert len(calls) == 1  # train() scores; the CLI only reports
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert all(1 <= metrics[f]["score"] <= 5 for f in ("accuracy", "flexibility", "preservation"))
    said = f"scored: accuracy {metrics['accuracy']['score']}, flexibility {metrics['flexibility']['score']}"
    assert said in capsys.readouterr().err
    kinds = [e["kind"] for e in read_events(tmp_path / "run")]
    assert kinds.index("end") < kinds.index("eval") and kinds.count("eval") == 1


def test_evaluation_failure_leaves_the_run_completed(good, tmp_path, capsys, monkeypatch):
    import trainer.evaluate

    def broken(run_dir, **kw):
        raise RuntimeError("encoder exploded")
    monkeypatch.setattr(trainer.evaluate, "evaluate_run", broken)
    cfg = _write_config(tmp_path / "c.json", **{**good, "evaluate_after_training": True})
    assert main(["train", "--config", cfg, "--no-progress"]) == 0
    events = read_events(tmp_path / "run")
    assert [e for e in events if e["kind"] == "end"][-1]["status"] == "completed"
    assert events[-1]["kind"] == "eval" and "encoder exploded" in events[-1]["error"]
    assert "warning: evaluation failed: RuntimeError: encoder exploded" in capsys.readouterr().err
