"""What the lab and runs pages show, as plain data: the app maps these dicts onto components.

Each function reads the run folder, the job queue or the run log and returns plain values
(str, lists of (path, caption), pandas frames), so they are testable without a browser.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from advisor.profile import Profile
from advisor.runlog.connection import RunLogError
from advisor.recommendation.recommend import Recommendation
from trainer.config import ConfigError, TrainConfig
from trainer.metrics import nothing_changed, stand_in_factors
from trainer.vocabulary import FACTORS
from trainer.safe_json import loads as json_loads
from trainer.shapes import experiment as shapes
from trainer.shapes.demo_model import DEMO_RESOLUTION
from trainer.tiny import DEMO_MODEL

from . import results, views
from .jobs import JobQueue, JobStatus, is_builtin_tiny
from .ownership import owned_run_ids, record_imports, run_owner
from .paths import server_path, settings_paths
from .policy import limit_problem, path_problem

logger = logging.getLogger(__name__)

DEMO_DATASET = "demo-star"   # <owner>/datasets/demo-star/: renders of the star the demo model never saw


@dataclass
class LabState:
    """What one browser's lab remembers between events (the app keeps it in a gr.State)."""
    recommendation: Recommendation | None = None  # what "Train this recommendation" opened
    profile: Profile | None = None                # what the user had told the advisor (saved with the run)
    resolution: int | None = None                 # the settings' training size, for the dataset report
    data_dir: str = ""                            # the dataset folder chosen for this browser
    job_id: str | None = None                     # this browser's training job
    shown: tuple[str, str] | None = None          # (job id, state) whose results the page shows
    checkpoints_shown: str = ""                   # checkpoint_view.stamp of what the checkpoint view shows


# --------------------------------------------------------------------------- config
def lab_config(train_config: dict[str, Any], *, demo: bool, data_dir: str = "") -> dict[str, Any]:
    """The editable config the lab starts from: the recommendation's `train_config`, or, for a
    demonstration on a machine without a CUDA GPU, the same method on the shapes demo model
    (trainer.shapes: 64 px, its own recipe for the method, 600 steps of 4 images, fp32). Each
    checkpoint is scored after the run (`score_checkpoints="after"`), so the page can say which one
    to keep."""
    cfg = dict(train_config)
    if data_dir:
        cfg["data_dir"] = data_dir
    if cfg.get("score_checkpoints", "off") == "off":
        # which checkpoint is best: each is scored after the run, so every one is kept to export
        cfg.update(score_checkpoints="after", checkpoints_total_limit=0)
    if not demo:
        return cfg
    method = cfg.get("method", "lora")
    recipe = shapes.METHOD_DEFAULTS.get(method, {})
    changes = {"base_model": DEMO_MODEL, "resolution": DEMO_RESOLUTION,
               # the plan's steps are for its own model; the demo model's recipe is its own
               "max_train_steps": shapes.RECIPE_STEPS,
               "train_batch_size": shapes.RECIPE_BATCH, "gradient_accumulation_steps": 1, "mixed_precision": "no",
               "use_8bit_adam": False, "gradient_checkpointing": False, "validation_inference_steps": 20,
               "num_class_images": min(int(cfg.get("num_class_images", 0)), 8), "num_validation_images": 1,
               # the demo model's own recipe: a rank-16 LoRA on attention and convolutions draws 4 stars
               # in 12 (at 150 steps 3, blobs to the eye), the plan's rank 4 none
               **{k: recipe[k] for k in ("learning_rate", "rank", "conv_lora") if k in recipe},
               **({"lora_alpha": None} if "rank" in recipe else {})}
    if Path(str(cfg.get("data_dir") or "")).name == DEMO_DATASET:   # the star renders: their prompts
        changes.update(shapes.demo_prompts(method))
    changes["validation_steps"] = changes["max_train_steps"] // 2
    changes["checkpointing_steps"] = max(1, changes["max_train_steps"] // 4)   # four scored points
    changes["lr_warmup_steps"] = min(int(cfg.get("lr_warmup_steps", 0)), changes["max_train_steps"] // 4)
    cfg.update(changes)
    return cfg


def config_text(cfg: dict[str, Any]) -> str:
    return json.dumps(cfg, indent=2, sort_keys=True)


def check_config_text(text: str) -> tuple[TrainConfig | None, str]:
    """(config, "") when the edited JSON is a valid TrainConfig, else (None, one-line reason)."""
    try:
        data = json_loads(text or "")
    except json.JSONDecodeError as e:
        return None, f"The settings are not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})."
    try:
        cfg = TrainConfig.from_dict(data)
    except (ConfigError, TypeError) as e:
        return None, f"Invalid setting: {e}"
    problem = limit_problem(cfg)
    return (None, f"Invalid setting: {problem}") if problem else (cfg, "")


def config_message(cfg: TrainConfig | None, error: str) -> str:
    if cfg is None:
        return f"**{error}**"
    note = ""
    if cfg.base_model == DEMO_MODEL:
        note = (" Base model: the **shapes demo model**, small and pretrained here on a world of shapes; it has "
                "never seen a star (try the demo dataset).")
    elif is_builtin_tiny(cfg.base_model):
        note = " Base model: the built-in tiny model, a **demonstration** (random weights: the images are noise)."
    data = " Choose a dataset first." if not cfg.data_dir else ""
    scoring = {"after": " Each checkpoint is scored after the run, to show which one to keep.",
               "during": " Each checkpoint is scored as it is saved" + (
                   f"; training stops early after {cfg.early_stop_patience} checkpoints without a gain in accuracy "
                   "while preservation falls." if cfg.early_stop_patience else ".")}.get(cfg.score_checkpoints, "")
    return (f"Settings are valid: {cfg.method}, {cfg.max_train_steps} steps at {cfg.resolution} px."
            f"{scoring}{note}{data}")


# --------------------------------------------------------------------------- the lab on its own
def base_model_choices(demo: bool) -> list[tuple[str, str]]:
    """(label, key) for the lab's base-model picker; the shapes demo model first on a demo."""
    from trainer.vocabulary import BASE_MODELS

    builtin = [("Shapes demo model (CPU demonstration)", DEMO_MODEL)] if demo else []
    return builtin + [(b.title, b.key) for b in BASE_MODELS.values()]


def method_choices() -> list[tuple[str, str]]:
    from trainer.vocabulary import METHOD_FACTS

    return [(m.title, m.key) for m in METHOD_FACTS.values()]


def picked_settings(base_model: Any, method: Any, *, demo: bool, data_dir: str = "",
                    vram_gb: float | None = None) -> dict[str, Any]:
    """Settings for a base model and method picked by hand, without the interview: the advisor's
    plan for the plainest request on this machine's card (`vram_gb`; None: assumed). When the
    advisor would not train that method there, the message says why and the settings are its
    choice instead. {"text": settings JSON, "message": one line, "profile": the request}."""
    from advisor.recommendation.recommend import recommend
    from trainer.vocabulary import BASE_MODELS, METHOD_FACTS

    if method not in METHOD_FACTS:
        return {"text": None, "message": f"**Pick a method** (one of {', '.join(METHOD_FACTS)}).", "profile": None}
    key = base_model if base_model in BASE_MODELS else None
    builtin = base_model in (DEMO_MODEL, "tiny")
    if base_model not in BASE_MODELS and not builtin:
        return {"text": None, "message": "**Pick a base model.**", "profile": None}
    profile = Profile(base_model=key, preferred_method=method, vram_gb=vram_gb)
    rec = recommend(profile)
    cfg = lab_config(rec.train_config.to_dict(), demo=demo or builtin, data_dir=data_dir)
    if base_model == "tiny":   # asked for by name (tests, the API): the random tiny model, not the demo one
        cfg["base_model"] = "tiny"
    text = config_text(cfg)
    message = config_message(*check_config_text(text))
    if rec.method != method:
        refused = next((a for a in rec.alternatives if a.get("method") == method), {})
        why = refused.get("why_not") or "it does not fit this request"
        message = (f"**The advisor would not train {METHOD_FACTS[method].phrase} here:** {why} These settings are for "
                   f"{METHOD_FACTS[rec.method].phrase} instead; set \"method\" to train yours anyway. " + message)
    return {"text": text, "message": message, "profile": profile}


def demo_dataset(own: str | Path, text: str) -> dict[str, Any]:
    """"Use the demo dataset": renders of the star (the concept the shapes demo model never saw),
    with captions, in the owner's datasets folder; the settings (when there are any) get the star's
    prompts. {"data_dir": the folder, "text": settings or None, "message": one line}."""
    folder = Path(own) / "datasets" / DEMO_DATASET
    settings = None
    try:
        settings = json_loads(text) if (text or "").strip() else None
    except json.JSONDecodeError:
        pass
    method = settings.get("method", "lora") if isinstance(settings, dict) else "lora"
    word = shapes.trigger_word(method, shapes.SUBJECT)
    if folder.exists():
        import shutil

        shutil.rmtree(folder)   # rewritten, so its captions name the current method's trigger word
    shapes.write_concept_data(folder, shapes.SUBJECT, n_images=8, word=word)
    message = ("Demo dataset: 8 renders of a **star**, which the shapes demo model has never seen, each with "
               "its caption.")
    if not isinstance(settings, dict):
        return {"data_dir": str(folder), "text": None, "message": message + " Fill in settings next."}
    settings.update(shapes.demo_prompts(method))   # the folder itself goes in as the app shows it (my-uploads/...)
    return {"data_dir": str(folder), "text": config_text(settings),
            "message": message + " The settings now use its prompts."}


# --------------------------------------------------------------------------- live view
# --------------------------------------------------------------------------- the buttons
def train_this(recommendation: Recommendation, profile: Profile | None, *, demo: bool,
               lab: LabState | None = None) -> dict[str, Any]:
    """"Train this recommendation": {"lab": the lab's state (its dataset and job kept), "text":
    the settings box (every setting editable), "message": what checking them says}."""
    lab = lab or LabState()
    cfg = lab_config(recommendation.train_config.to_dict(), demo=demo, data_dir=lab.data_dir)
    text = config_text(cfg)
    opened = replace(lab, recommendation=recommendation, profile=profile, resolution=cfg.get("resolution"))
    return {"lab": opened, "text": text, "message": config_message(*check_config_text(text))}


def start_training(queue: JobQueue, text: str, *, session_id: str, profile: Profile | None = None,
                   own: str | Path | None = None) -> tuple[str | None, str]:
    """"Start training": (job id, message), or (None, why it did not start). With `own` (the
    user's upload folder, as the app passes it) the settings' folders are checked against it and
    the allowed data roots (lab.policy)."""
    if not (text or "").strip():
        return None, ("**Not started.** No settings yet: pick a base model and a method and press Fill in "
                      "settings, or train a recommendation from the Advisor tab.")
    if own is not None:   # the settings name the user's own folder as my-uploads/...: the server's path here
        text = settings_paths(text, own, server_path)
    cfg, error = check_config_text(text)
    if cfg is None:
        return None, f"**Not started.** {error}"
    if not cfg.data_dir:
        return None, "**Not started.** Choose a dataset first (upload images or a zip, or give a folder)."
    problem = path_problem(cfg, own) if own is not None else None
    if problem:
        return None, f"**Not started.** {problem}"
    try:
        job_id = queue.submit(cfg, session_id=session_id, profile=profile)
    except ValueError as e:
        return None, f"**Not started.** {e}"
    queue.pump()
    status = queue.status(job_id) if hasattr(queue, "status") else None
    if status is not None and status.state == "queued" and status.place:
        return job_id, f"Submitted; waiting in the queue at place {status.place}: it starts when a training slot is free."
    return job_id, "Submitted; the run is starting."


def run_ended(run_dir: str | Path, runlog: Any = None) -> dict[str, Any]:
    """What the page does once when a run ends: put it in the run log (so the advisor's next
    answer already knows it, crash included), then `finished_view`. A log that cannot be
    written is a warning, never a reason to hide the results."""
    try:
        results.record_run(run_dir, runlog=runlog)
    except Exception as e:
        logger.warning("run %s not recorded in the run log: %s", Path(run_dir).name, e)
    return finished_view(run_dir)


def runs_view(runlog: Any, runs_dir: str | Path, query: str = "", owner: str | None = None) -> tuple[Any, Any, Any]:
    """The Runs tab: the runs folder synced into the log (an open RunLog or its path), then
    (table, mean score per method, accuracy against preservation); with `owner`, only their runs."""
    with results.open_runlog(runlog) as log:
        log.sync(runs_dir)
        runs = log.list_runs()
    if owner is not None:
        mine = owned_run_ids(runs_dir, [r.get("id") for r in runs], owner)
        runs = [r for r in runs if r.get("id") in mine]
    frame = runs_frame(runs, query)
    return frame, method_scores_frame(frame), tradeoff_frame(frame)


def job_view(queue: JobQueue, status: JobStatus | None) -> dict[str, Any]:
    """Everything the training panel shows for one job (or the empty panel)."""
    if status is None:
        return {"status": "_No training yet. Choose a dataset, check the settings, then start._",
                "loss": _empty_loss(), "samples": [], "log": "",
                "finished": False, "run_dir": None, "job_id": None, "active": False}
    run_dir = Path(status.run_dir) if status.run_dir else None
    if run_dir is None or not run_dir.is_dir():
        return {**job_view(queue, None), "status": status.message}
    prog = views.progress(run_dir)
    # while it trains, the run's own line (step, loss, time left, GPU memory) says more than the queue's
    training = status.state == "running" and prog["status"] == "running" and not status.stopping
    head = prog["message"] if training else (status.message or prog["message"])
    if head == status.state:   # "completed · completed": the run's own line says more
        head = prog["message"]
    if status.state == "queued" and status.place:
        head = f"Waiting in the queue: place {status.place}. {status.message}"
    bar = progress_html(prog["fraction"], status.state)
    demo = " · _demonstration on a small built-in model_" if status.demo else ""
    return {"status": f"{bar}\n\n**{status.state}** · {head}{demo}",
            "loss": views.loss_frame(run_dir), "samples": views.samples(run_dir),
            "log": views.log_tail(run_dir, n=40), "finished": status.state in ("completed", "stopped", "failed"),
            "run_dir": str(run_dir), "job_id": status.job_id, "active": status.active}


def _empty_loss():
    import pandas as pd
    return pd.DataFrame({"step": pd.Series(dtype="int64"), "loss": pd.Series(dtype="float64"),
                         "smoothed": pd.Series(dtype="float64")})


def progress_html(fraction: float, state: str) -> str:
    pct = max(0.0, min(1.0, float(fraction or 0))) * 100
    color = {"failed": "#c0392b", "stopped": "#d68910"}.get(state, "#2e86c1")
    return (f'<div class="fta-progress" role="progressbar" aria-valuenow="{pct:.0f}" aria-valuemin="0" '
            f'aria-valuemax="100"><div style="width:{pct:.1f}%;background:{color}"></div></div> {pct:.0f}%')


def finished_view(run_dir: str | Path) -> dict[str, Any]:
    """Base vs fine-tuned images, the three scores, downloads: once a run has ended.
    Scores come from metrics.json; the run is evaluated here when it has none yet."""
    run_dir = Path(run_dir)
    out: dict[str, Any] = {"compare": [], "scores": None, "scores_md": "", "downloads": []}
    notes = []
    try:
        out["compare"] = results.compare_images(run_dir)
    except Exception as e:  # no outputs (failed early), or a broken output: say so, show the rest
        notes.append(f"No comparison images: {_line(e)}")
    scored = results.scores(run_dir)
    if scored["scores"] is None and (run_dir / "output").is_dir():
        scored = results.evaluate(run_dir)
    out["scores"] = results.scores_chart_frame(scored)
    out["scores_md"] = scores_markdown(scored)
    out["downloads"] = results.downloads(run_dir)
    if notes:
        out["scores_md"] += "\n\n" + "\n".join(f"- {n}" for n in notes)
    return out


def scores_markdown(scored: dict[str, Any]) -> str:
    """The scores in words: plainly a stand-in where CLIP/DINO were missing, and "nothing
    changed" (not a good preservation) when the fine-tuned model draws what the base drew."""
    lines = [scored.get("message", "")]
    metrics = scored.get("metrics") or {}
    unchanged = nothing_changed(metrics)
    if unchanged:
        lines.append("**Nothing changed:** the fine-tuned model draws the same images as the base model at the same "
                     "seeds, so training did not take. Preservation 5/5 here means nothing, not a success: raise the "
                     "learning rate or the steps, and check that the trigger word is in your prompts.")
    stand_ins = stand_in_factors(metrics)
    if stand_ins:
        why = _encoder_reason(metrics.get("encoders"))
        lines.append(f"**Stand-ins:** {', '.join(stand_ins)} {'was' if len(stand_ins) == 1 else 'were'} scored "
                     f"without CLIP and DINO{why}: weight-free colour and structure similarity, which shows how much "
                     "the images changed, not whether they show your subject. Trust the images and your own rating "
                     "more than these numbers.")
    lines = ["\n\n".join(line for line in lines if line)]   # the sentences as paragraphs, then the list
    for factor in FACTORS:
        entry = metrics.get(factor)
        if isinstance(entry, dict):
            raw = ", ".join(f"{k} {_figure(v)}" for k, v in entry.items()
                            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "score")
            score = ("nothing changed" if factor == "preservation" and unchanged
                     else f"{entry.get('score', '—')}/5" + (" (stand-in)" if factor in stand_ins else ""))
            lines.append(f"- **{factor}** {score}" + (f" ({raw})" if raw else "")
                         + (f" — {entry['basis']}" if entry.get("basis") else ""))
    return "\n".join(lines)


def _figure(v: int | float) -> str:
    """A count as a count ("6"), a measurement to three decimals ("0.912")."""
    return str(v) if isinstance(v, int) else f"{v:.3f}"


def _encoder_reason(notes: Any) -> str:
    """" (not downloaded: ...)" from metrics.json's encoder notes, short; "" when none says why."""
    if not isinstance(notes, dict):
        return ""
    for note in notes.values():
        if isinstance(note, str) and note.startswith("none: "):
            why = note.removeprefix("none: ")
            return f" ({why if len(why) <= 300 else why[:300].rsplit(' ', 1)[0] + ' …'})"
    return ""


def _line(e: BaseException) -> str:
    return " ".join(str(e).split())[:300] or type(e).__name__


# --------------------------------------------------------------------------- owner checks
def owned_job(queue: JobQueue, job_id: str | None, owner: str) -> JobStatus | None:
    """The job's status when `owner` submitted it, else None (someone else's job is no job)."""
    if not job_id or not owner:
        return None
    status = queue.status(job_id)
    return status if status.session_id == owner else None


def current_job(queue: JobQueue, job_id: str | None, owner: str) -> JobStatus | None:
    """What the training panel follows: the page's job when it is the owner's, else the owner's newest."""
    return owned_job(queue, job_id, owner) or queue.latest_for(owner)


def stop_job(queue: JobQueue, job_id: str | None, owner: str) -> str:
    """"Stop": only the owner's own job."""
    if owned_job(queue, job_id, owner) is None:
        return "No training to stop."
    message = queue.stop(job_id, wait=False).message   # "stopping: saving a checkpoint"
    return message[:1].upper() + message[1:] + "."


def resume_job(queue: JobQueue, job_id: str | None, owner: str) -> tuple[bool, str]:
    """"Resume": (resumed?, message); only the owner's own job."""
    if owned_job(queue, job_id, owner) is None:
        return False, "No run to resume."
    try:
        status = queue.resume(job_id)
    except ValueError as e:
        return False, f"**Cannot resume.** {e}"
    return True, f"Resuming from the latest checkpoint: {status.message}"


def rate_job(queue: JobQueue, job_id: str | None, owner: str, ratings: tuple[Any, Any, Any], note: str,
             runlog: Any) -> str:
    """"Save my rating" under a run: only the owner's own run."""
    status = owned_job(queue, job_id, owner)
    if status is None or not status.run_dir:
        return "No finished run to rate yet."
    try:
        results.save_rating(status.run_dir, *(int(r) for r in ratings), note or "", runlog=runlog)
    except (ValueError, KeyError, RunLogError) as e:   # RunLogError: a read-only, full or broken log
        return f"**Not saved.** {e}"
    return f"Saved your rating of run `{job_id}`."


def rate_logged(runlog: Any, runs_dir: str | Path, run_id: str, owner: str, ratings: tuple[Any, Any, Any],
                note: str) -> str:
    """The Runs tab's "Save rating": only a run of the owner's (trained or imported by them)."""
    run_id = (run_id or "").strip()
    if run_owner(runs_dir, run_id) != owner:
        return f"**Not saved.** You have no run `{run_id}`." if run_id else "**Not saved.** Give a run id."
    try:
        with results.open_runlog(runlog) as log:
            log.rate(run_id, *(int(r) for r in ratings), (note or "").strip() or None)
    except (ValueError, KeyError, RunLogError) as e:
        return f"**Not saved.** {e}"
    return f"Saved the rating of `{run_id}`."


def import_runs(runlog: Any, runs_dir: str | Path, paths: list[str], owner: str, scratch: str | Path) -> str:
    """Import CSVs, LoRA files or folders for `owner`: read into a scratch log first, then only the
    runs nobody else owns go into the shared log, owned by `owner` from then on."""
    from advisor.runlog.importing import import_path
    from advisor.runlog.store import RunLog

    lines = []
    Path(scratch).unlink(missing_ok=True)
    with RunLog(scratch) as staged:
        for p in paths:
            try:
                lines.append(f"- {import_path(staged, Path(p)).summary()}")
            except ValueError as e:
                lines.append(f"- **Not imported.** {e}")
        records = staged.records()
    try:
        with results.open_runlog(runlog) as log:
            known = {r.run_id for r in log.records()}
            # a run someone else owns, or one already logged without an owner, is never overwritten
            theirs = [r.run_id for r in records if run_owner(runs_dir, r.run_id) not in (None, owner)
                      or (r.run_id in known and run_owner(runs_dir, r.run_id) is None)]
            mine = [r for r in records if r.run_id not in theirs]
            log.upsert_many(mine)
    except RunLogError as e:
        Path(scratch).unlink(missing_ok=True)
        return f"**Not imported.** {e}"
    record_imports(runs_dir, [r.run_id for r in mine], owner)
    Path(scratch).unlink(missing_ok=True)
    if theirs:
        lines.append(f"- {len(theirs)} run(s) not imported: their ids belong to runs already in the log "
                     "that are not yours")
    return "\n".join(lines)


def export_runs(runlog: Any, runs_dir: str | Path, owner: str, path: str | Path) -> Path:
    """The owner's runs as CSV at `path` (the owner's own folder)."""
    from advisor.runlog.csvio import write_csv

    with results.open_runlog(runlog) as log:
        records = log.records()
    mine = owned_run_ids(runs_dir, [r.run_id for r in records], owner)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_csv(path, [r for r in records if r.run_id in mine])
    return path


# --------------------------------------------------------------------------- runs page
RUN_COLUMNS = ["id", "status", "method", "base_model", "learning_rate", "max_train_steps", "kept_step", "rank",
               "minutes", "peak_vram_gb", "accuracy", "flexibility", "preservation", "rating", "note"]
# What the Runs table calls each column: people's words, not field names.
RUN_HEADERS = {"id": "Run", "status": "Status", "method": "Method", "base_model": "Base model",
               "learning_rate": "Learning rate", "max_train_steps": "Steps", "kept_step": "Kept checkpoint",
               "rank": "Rank", "minutes": "Minutes", "peak_vram_gb": "Peak GPU GB", "accuracy": "Accuracy",
               "flexibility": "Flexibility", "preservation": "Preservation", "rating": "Your rating", "note": "Note"}
assert list(RUN_HEADERS) == RUN_COLUMNS


def runs_frame(runs: list[dict[str, Any]], query: str = ""):
    """The run log as a flat table, filtered by a case-insensitive substring of any cell."""
    import pandas as pd
    rows = []
    for r in runs:
        hp = r.get("hyperparameters") or {}
        scores = r.get("scores") or {}
        rating = r.get("rating") or {}
        rated = [rating.get(f) for f in FACTORS if rating.get(f) is not None]
        rows.append({"id": r.get("id"), "status": r.get("status"), "method": r.get("method"),
                     "base_model": r.get("base_model"), "learning_rate": hp.get("learning_rate"),
                     "max_train_steps": hp.get("max_train_steps"), "kept_step": r.get("kept_step"),
                     "rank": hp.get("rank"),
                     "minutes": _minutes(r.get("duration_s")), "peak_vram_gb": r.get("peak_vram_gb"),
                     "accuracy": scores.get("accuracy"), "flexibility": scores.get("flexibility"),
                     "preservation": scores.get("preservation"),
                     "rating": "/".join(str(x) for x in rated) if rated else "",
                     "note": rating.get("note") or ""})
    frame = pd.DataFrame(rows, columns=RUN_COLUMNS)
    query = (query or "").strip().lower()
    if query and not frame.empty:
        mask = frame.astype(str).apply(lambda col: col.str.lower().str.contains(query, regex=False)).any(axis=1)
        frame = frame[mask]
    return frame.reset_index(drop=True)


def runs_table(frame):
    """The Runs table as shown: headers in words, steps and counts as whole numbers (no "1.000000")."""
    import pandas as pd

    shown = frame.copy()
    for col in ("max_train_steps", "kept_step", "rank"):
        shown[col] = pd.array(pd.to_numeric(shown[col], errors="coerce").round(), dtype="Int64")
    return shown.rename(columns=RUN_HEADERS)


def _minutes(seconds: Any) -> float | None:
    ok = isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and seconds >= 0
    return round(seconds / 60, 1) if ok else None


def method_scores_frame(frame):
    """Mean automatic score per method and factor (long format, for a grouped bar chart)."""
    import pandas as pd
    if frame.empty:
        return pd.DataFrame({"method": [], "factor": [], "score": [], "bar": []})
    long = frame.melt(id_vars=["method"], value_vars=list(FACTORS), var_name="factor", value_name="score")
    long = long.dropna(subset=["score", "method"])
    out = long.groupby(["method", "factor"], as_index=False)["score"].mean()
    # one bar per (method, factor): a bar chart stacks bars that share an x value
    out["bar"] = out["method"] + " · " + out["factor"]
    return out


def tradeoff_frame(frame):
    """accuracy against preservation, one point per scored run."""
    cols = ["id", "method", "accuracy", "preservation"]
    return frame[cols].dropna(subset=["accuracy", "preservation"]).reset_index(drop=True)
