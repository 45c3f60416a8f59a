"""Which checkpoint to keep, as plain data: the three scores against steps, the sample grid of each
checkpoint, the best one for this user with one sentence of why, and exporting it.

The scores come from the run's checkpoint_scores.json (trainer.checkpoint_eval writes it during
or after the run); the choice weighs them by the user's own importance of each factor, from the
interview (advisor.learning.adapt.importance_weights), equal when there was no interview.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from advisor.learning.adapt import importance_weights
from advisor.profile import Profile
from trainer.checkpoint_scores import (CHECKPOINT_SCORES_FILE, KEPT_FILE, CheckpointScore, choose_checkpoint,
                                       read_checkpoint_scores, read_kept)
from trainer.checkpoints import checkpoint_dirs
from trainer.vocabulary import FACTORS

from . import results


def run_profile(run_dir: Path, profile: Profile | None) -> Profile | None:
    """The profile the page holds, else the one saved with the run (profile.json); None without."""
    if profile is not None:
        return profile
    try:
        return Profile.load(run_dir / "profile.json") if (run_dir / "profile.json").is_file() else None
    except Exception:   # a broken profile.json means equal weights, not a broken page
        return None


def _weights(profile: Profile | None) -> dict[str, float] | None:
    return importance_weights(profile) if profile is not None else None


def stamp(run_dir: str | Path) -> str:
    """Changes when the scores, the kept checkpoint or the checkpoints on disk change: the page
    redraws the view only then."""
    run_dir = Path(run_dir)
    parts = [run_dir.name]
    for name in (CHECKPOINT_SCORES_FILE, KEPT_FILE):
        p = run_dir / name
        if p.is_file():
            st = p.stat()
            parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
    parts.append(",".join(str(s) for s, _ in checkpoint_dirs(run_dir / "checkpoints")))
    return "|".join(parts)


def scores_frame(scores: list[CheckpointScore]):
    """DataFrame(step, score, factor): one line per factor on a plot against the step."""
    import pandas as pd

    rows = [(s.step, s.scores[f], f) for s in scores for f in FACTORS]
    return pd.DataFrame({"step": pd.Series([r[0] for r in rows], dtype="int64"),
                         "score": pd.Series([r[1] for r in rows], dtype="float64"),
                         "factor": pd.Series([r[2] for r in rows], dtype="object")})


def _caption(s: CheckpointScore) -> str:
    return f"step {s.step} · " + " · ".join(f"{f} {s.scores[f]:.1f}" for f in FACTORS)


def _stand_ins(info: dict[str, Any]) -> str:
    encoders = info.get("encoders") if isinstance(info.get("encoders"), dict) else {}
    missing = [k.upper() for k, v in encoders.items() if isinstance(v, str) and v.startswith("none")]
    if not missing:
        return ""
    return (f" Scored without {' and '.join(missing)}: weight-free stand-ins (colour and structure "
            "similarity), which track change, not likeness; compare the grids yourself.")


def checkpoint_view(run_dir: str | Path | None, profile: Profile | None) -> dict[str, Any]:
    """{"frame": scores against steps, "grids": [(path, caption)], "markdown": the choice and why,
    "steps": checkpoint steps on disk, "best": the chosen step or None, "stamp": see `stamp`}."""
    empty = {"frame": scores_frame([]), "grids": [], "markdown": "", "steps": [], "best": None, "stamp": ""}
    if run_dir is None or not Path(run_dir).is_dir():
        return empty
    run_dir = Path(run_dir)
    profile = run_profile(run_dir, profile)
    scores, info = read_checkpoint_scores(run_dir)
    on_disk = [s for s, _ in checkpoint_dirs(run_dir / "checkpoints")]
    grids = []
    base = info.get("base_grid")
    if isinstance(base, str) and results.inside(run_dir, base):
        grids.append((str(run_dir / base), "base model (before training), same prompts and seeds"))
    grids += [(str(run_dir / s.grid), _caption(s)) for s in scores if s.grid and results.inside(run_dir, s.grid)]
    choice = choose_checkpoint([s for s in scores if s.step in on_disk], _weights(profile))
    lines = []
    if choice is not None:
        whose = "your weights from the interview" if profile is not None else "equal weights (no interview)"
        lines.append(f"**Best for you: the checkpoint at step {choice.step}** (by {whose}). {choice.reason}"
                     + _stand_ins(info))
    elif on_disk:
        lines.append("The checkpoints are not scored yet; scores appear here as each one is scored.")
    kept = read_kept(run_dir)
    if kept is not None:
        lines.append(f"Kept: step {kept.step} of {kept.steps_done}, exported to `{kept.export_dir}`.")
    return {"frame": scores_frame(scores), "grids": grids, "markdown": "\n\n".join(lines), "steps": on_disk,
            "best": choice.step if choice else (on_disk[-1] if on_disk else None), "stamp": stamp(run_dir)}


def export_kept(run_dir: str | Path, step: Any, profile: Profile | None, runlog: Any = None) -> tuple[str, list[str]]:
    """Export checkpoint `step` (a client's value: checked here) in the method's output formats,
    record it as kept, and index the run again so the run log and the advisor know the kept step.
    Returns (message, files to download)."""
    from trainer.checkpoint_eval import export_checkpoint

    run_dir = Path(run_dir)
    profile = run_profile(run_dir, profile)
    try:
        step = int(step) if isinstance(step, (int, float, str)) and str(step).strip().isdigit() else step
    except ValueError:
        pass
    if isinstance(step, bool) or not isinstance(step, int):
        return f"**Not exported.** Pick a checkpoint step (got {str(step)[:40]!r}).", []
    try:
        kept = export_checkpoint(run_dir, step, _weights(profile))
    except Exception as e:
        from trainer.events import error_line

        return f"**Not exported.** {error_line(e)}", []
    try:
        results.record_run(run_dir, runlog=runlog)
    except Exception as e:  # the files are written; the log can catch up on its next sync
        return f"Exported step {kept.step}, but the run log was not updated: {e}", _files(run_dir, kept)
    return (f"Exported the checkpoint at step {kept.step} ({len(kept.outputs)} file"
            f"{'s' if len(kept.outputs) != 1 else ''}); the run log records it as the one you kept, and the "
            "advisor learns from it where runs like this one peak.", _files(run_dir, kept))


def _files(run_dir: Path, kept) -> list[str]:
    folder = run_dir / kept.export_dir
    return results.folder_downloads(folder, run_dir / "downloads" / f"{run_dir.name}-step{kept.step}-diffusers.zip",
                                    f"{run_dir.name}-step{kept.step}")
