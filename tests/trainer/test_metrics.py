"""trainer.metrics: metrics.json's one reader (tolerant, with a note for everything it drops),
its writer (atomic, refuses what the reader would drop), and no torch on its import path."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import ROOT
from trainer.metrics import METRICS_FILE, factor_scores, read_metrics, write_metrics

WRITTEN = {"accuracy": {"score": 3.4, "dino": 0.61, "scores": {"dino": 3.4}, "basis": "..."},
           "flexibility": {"score": 4.0, "clip_t": 0.3}, "preservation": {"score": 2.5},
           "seeds": [0, 1], "grids": {"subject": "eval/subject.png"}}


def test_what_the_writer_writes_reads_back_whole(tmp_path):
    path = write_metrics(tmp_path, WRITTEN)
    assert path == tmp_path / METRICS_FILE and json.loads(path.read_text()) == WRITTEN
    assert not list(tmp_path.glob(f".{METRICS_FILE}.*"))  # the temporary file was renamed, not left
    read = read_metrics(tmp_path)
    assert read.scores == {"accuracy": 3.4, "flexibility": 4.0, "preservation": 2.5}
    assert list(read.scores) == ["accuracy", "flexibility", "preservation"]
    assert read.raw == WRITTEN and read.notes == () and read.problem is None and not read.missing


@pytest.mark.parametrize("broken, says", [
    ({**WRITTEN, "preservation": {"score": 7}}, "preservation score 7 is not a number from 1 to 5"),
    ({**WRITTEN, "accuracy": {"dino": 0.6}}, "none for accuracy"),
    ({**WRITTEN, "flexibility": None}, "none for flexibility"),
])
def test_the_writer_refuses_what_the_reader_would_drop(tmp_path, broken, says):
    with pytest.raises(ValueError, match=says):
        write_metrics(tmp_path, broken)
    assert not (tmp_path / METRICS_FILE).exists()


def test_a_missing_file_is_unscored_not_broken(tmp_path):
    read = read_metrics(tmp_path)
    assert read.missing and read.scores == {} and read.raw is None
    assert read.problem == "no metrics.json: the run has not been scored"


@pytest.mark.parametrize("text, says", [
    ("{broken", "metrics.json is not valid JSON (Expecting property name enclosed in double quotes at line 1)"),
    ("[1, 2]", "metrics.json is not a JSON object"),
    ('"just text"', "metrics.json is not a JSON object"),
    (b"\xff\xfe not utf-8", "metrics.json cannot be read ("),
])
def test_a_broken_file_is_one_line_never_an_exception(tmp_path, text, says):
    path = tmp_path / METRICS_FILE
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    read = read_metrics(tmp_path)
    assert not read.missing and read.scores == {} and read.raw is None
    assert read.problem.startswith(says) and "\n" not in read.problem


def test_bad_scores_are_dropped_with_a_note_and_the_rest_kept(tmp_path):
    (tmp_path / METRICS_FILE).write_text(
        '{"accuracy": {"score": 0.5}, "flexibility": {"score": "high"}, "preservation": {"score": NaN}, "seeds": [0]}')
    read = read_metrics(tmp_path)
    assert read.scores == {} and read.raw["seeds"] == [0]
    assert read.notes == ("metrics.json accuracy score 0.5 is not a number from 1 to 5; ignored",
                          "metrics.json flexibility score 'high' is not a number from 1 to 5; ignored",
                          "metrics.json preservation score nan is not a number from 1 to 5; ignored")
    assert read.problem == "; ".join(read.notes)


def test_factor_scores_take_bare_numbers_and_skip_unscored_factors():
    scores, notes = factor_scores({"accuracy": 2, "flexibility": None, "preservation": {"score": 5}})
    assert scores == {"accuracy": 2.0, "preservation": 5.0} and notes == []
    scores, notes = factor_scores({"accuracy": True, "flexibility": {"score": 1}, "other": 9})
    assert scores == {"flexibility": 1.0} and notes == ["metrics.json accuracy score True is not a number from 1 "
                                                        "to 5; ignored"]
    assert factor_scores(None) == ({}, []) and factor_scores([3, 4]) == ({}, [])


def test_the_reader_imports_no_torch():
    code = "import sys, trainer.metrics; print(sorted(m for m in ('torch', 'numpy', 'diffusers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
