"""What the run log says about GPU memory: runs that held more than their estimate, or ran out.

The memory model (advisor.recommendation.costs) is calibrated on published measurements to
about 10%; a user's own setup (driver, attention kernels, other programs on the card) can need
more. Two kinds of logged run say so:

- a run with a measured peak (`peak_vram_gb`, trainer.memory: what PyTorch's allocator held)
  above its estimate: it needed `peak / estimate` times the estimate;
- a run that failed out of GPU memory (the trainer's out_of_memory flag) on a card of V GB: it
  needed more than V; it counts
  as needing V plus the estimator's calibration margin (costs.MARGIN, 10%), so the
  plan that crashed no longer passes the check that its estimate fits the card.

The factor is the largest of those ratios, between 1 and `MAX_FACTOR`, and it only ever
raises estimates: a too-low estimate costs a crashed run, a too-high one a smaller plan.
Runs that held less than estimated leave the table alone (the estimate includes the CUDA
context and a margin that `max_memory_reserved` does not count). The recommendation fits to
the card with this factor (costs.TimedGpu.memory_factor) and says which run set it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..recommendation import costs
from .estimators import as_positive, cost_hyperparameters, identify, run_gpu, run_records

MAX_FACTOR = 2.0       # beyond this the log more likely holds a mistake than a setup (assumed)


@dataclass(frozen=True)
class MemoryEvidence:
    """The factor the log sets on memory estimates, and the run that set it."""
    factor: float
    run_id: str
    kind: str              # "measured" | "out_of_memory"
    estimated_gb: float
    needed_gb: float       # the measured peak, or the card's memory + MARGIN for a run that ran out
    n_runs: int            # runs with memory evidence (measured or ran out)
    card_gb: float | None = None  # the card a run ran out of memory on

    @property
    def sentence(self) -> str:
        if self.kind == "out_of_memory":
            what = (f"Your run '{self.run_id}' ran out of memory on a {self.card_gb:g} GB card where the estimate "
                    f"was {self.estimated_gb:.1f} GB")
        else:
            what = (f"Your run '{self.run_id}' held {self.needed_gb:.1f} GB of GPU memory where the estimate was "
                    f"{self.estimated_gb:.1f} GB")
        return (f"{what}, so memory estimates are raised {self.factor:.2f}x and plans fitted to your card with "
                "that (your run log).")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "sentence": self.sentence}


def load_memory(log):
    """One row per logged run with memory evidence: run_id, method, base_model, kind,
    estimated_gb (advisor.costs.memory_gb for its logged settings), needed_gb, ratio.
    `attrs["dropped"]` lists (run_id, why) for runs with evidence that could not be used."""
    import pandas as pd

    rows, dropped = [], []
    for record in run_records(log):
        peak = as_positive(record.peak_vram_gb)
        ran_out = record.status == "failed" and record.out_of_memory is True
        if peak is None and not ran_out:
            continue  # nothing said about memory (CPU runs, imports, other failures)
        run_id, method, base, why = identify(record)
        if why:
            dropped.append((run_id, why))
            continue
        try:
            estimated = costs.memory_gb(method, base, cost_hyperparameters(record))[0]
        except (ValueError, TypeError, KeyError) as e:
            dropped.append((run_id, f"unreadable settings ({e})"))
            continue
        card = None
        if ran_out:
            profile = dict(record.profile or {})
            card = as_positive(profile.get("vram_gb")) or run_gpu(profile).vram_gb
            needed, kind = card * costs.MARGIN, "out_of_memory"
        else:
            needed, kind = peak, "measured"
        rows.append({"run_id": run_id, "method": method, "base_model": base, "kind": kind,
                     "estimated_gb": estimated, "needed_gb": needed, "card_gb": card, "ratio": needed / estimated})
    meta = pd.DataFrame(rows, columns=["run_id", "method", "base_model", "kind", "estimated_gb", "needed_gb",
                                       "card_gb", "ratio"])
    meta.attrs["dropped"] = dropped
    return meta


def memory_factor(meta) -> MemoryEvidence | None:
    """The factor the rows of `load_memory` set, or None when no run needed more than estimated."""
    import pandas as pd

    if meta is None or not len(meta):
        return None
    top = meta.loc[meta["ratio"].idxmax()]
    if not top["ratio"] > 1.0:
        return None
    return MemoryEvidence(factor=round(min(float(top["ratio"]), MAX_FACTOR), 2), run_id=str(top["run_id"]),
                          kind=str(top["kind"]), estimated_gb=round(float(top["estimated_gb"]), 2),
                          needed_gb=round(float(top["needed_gb"]), 2), n_runs=len(meta),
                          card_gb=None if pd.isna(top["card_gb"]) else float(top["card_gb"]))
