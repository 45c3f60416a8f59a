"""benchmarks/train_throughput.py --families-only prints one row per model family: its tiny
model's ms/step and peak memory, and the advisor's estimate row for the real model."""
import subprocess
import sys

import pytest

from helpers import ROOT
from trainer.vocabulary import FAMILY_NAMES


@pytest.mark.slow
def test_the_benchmark_prints_a_row_per_family(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_throughput.py"), "--families-only",
                          "--steps", "2", "--warmup", "1", "--threads", "1", "--work-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=900, check=True).stdout
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    assert set(FAMILY_NAMES) <= set(rows)
    for family in FAMILY_NAMES:
        cells = [c.strip() for c in rows[family].split("|")[1:-1]]
        assert float(cells[2]) > 0 and "GiB" in cells[4], rows[family]   # ms/step, peak memory
    assert "SDXL at 1024 px" in rows["sdxl"] and "SD 3.5 Large at 1024 px" in rows["sd3"]
    assert "Flux.1 dev at 1024 px" in rows["flux"] and "int8 base" in rows["flux"] and "RTX 4090" in rows["flux"]
