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


@pytest.mark.slow
def test_the_real_architecture_path_runs_on_a_one_layer_copy(tmp_path):
    """--real on a GPU builds, trains and removes each released architecture; --layers 1 runs the same
    path on the CPU: a row with the measured step rate and the advisor's estimate for those settings."""
    import importlib.util

    from advisor.recommendation.costs import memory_gb

    spec = importlib.util.spec_from_file_location("train_throughput", ROOT / "benchmarks" / "train_throughput.py")
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench   # its dataclasses look their module up there
    spec.loader.exec_module(bench)

    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_throughput.py"), "--real", "--layers", "1",
                          "--bases", "zimage", "--steps", "1", "--warmup", "1", "--threads", "1",
                          "--work-dir", str(tmp_path)], capture_output=True, text=True, timeout=900, check=True).stdout
    row = next(line for line in out.splitlines() if line.startswith("| zimage "))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[1] == "64" and "RSS" in cells[3] and float(cells[6]) > 0, row
    assert cells[4] == f"{memory_gb('lora', 'zimage', {'resolution': 64, **bench.REAL_OPTIONS})[0]:.1f} GB"
    assert not (tmp_path / "models" / "zimage-real").exists()   # removed after its row
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_throughput.py"), "--real"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "needs a CUDA GPU" in bad.stderr
