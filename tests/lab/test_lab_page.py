"""lab.page: the plain data behind the lab and runs pages."""
import json

from lab import page
from trainer.config import TrainConfig
from trainer.shapes import experiment as shapes


def test_demo_config_is_valid_and_says_so():
    rec_cfg = TrainConfig(base_model="stable-diffusion-v1-5/stable-diffusion-v1-5", method="dreambooth",
                          prior_preservation=True, class_prompt="a photo of a dog", num_class_images=200,
                          max_train_steps=800, mixed_precision="fp16", use_8bit_adam=True).to_dict()
    demo = page.lab_config(rec_cfg, demo=True, data_dir="/data/dog")
    cfg, err = page.check_config_text(page.config_text(demo))
    assert err == "" and cfg.base_model == "shapes-demo" and cfg.data_dir == "/data/dog"
    assert cfg.max_train_steps == shapes.RECIPE_STEPS and not cfg.use_8bit_adam and cfg.num_class_images <= 8
    assert cfg.learning_rate == 1e-4 and cfg.train_batch_size == shapes.RECIPE_BATCH   # the demo model's own recipe
    assert cfg.instance_prompt == "a photo of sks dog"   # the user's own data keeps its prompts
    assert "shapes demo model" in page.config_message(cfg, "")
    assert cfg.score_checkpoints == "after" and cfg.checkpointing_steps == cfg.max_train_steps // 4
    real = page.lab_config(rec_cfg, demo=False)
    # only checkpoint scoring is added, in the editable settings: every checkpoint kept to export
    assert {k: v for k, v in real.items() if real[k] != rec_cfg[k]} == {"score_checkpoints": "after",
                                                                          "checkpoints_total_limit": 0}
    assert "Each checkpoint is scored after the run" in page.config_message(TrainConfig.from_dict(real), "")
    lora = page.lab_config({**rec_cfg, "method": "lora", "prior_preservation": False, "rank": 4, "lora_alpha": 4.0},
                           demo=True)
    # the demo LoRA: the demo model's recipe (rank 16, alpha = rank, convolutions too)
    assert lora["conv_lora"] and lora["learning_rate"] == 1e-3 and lora["rank"] == 16 and lora["lora_alpha"] is None
    assert page.check_config_text(page.config_text(lora))[1] == ""
    assert not cfg.conv_lora
    off = page.lab_config({**rec_cfg, "score_checkpoints": "during", "checkpoints_total_limit": 0}, demo=False)
    assert off["score_checkpoints"] == "during"   # a choice already made stands


def test_the_demo_dataset_is_the_star_with_its_captions_and_prompts(tmp_path):
    from trainer.data import scan_dataset

    picked = page.picked_settings("shapes-demo", "lora", demo=True)
    made = page.demo_dataset(tmp_path / "own", picked["text"])
    folder = tmp_path / "own" / "datasets" / page.DEMO_DATASET
    assert made["data_dir"] == str(folder) and "star" in made["message"]
    report = scan_dataset(folder)
    assert len(report.images) == 8 and report.captions == 8
    assert all("star" in it.caption for it in report.images)
    cfg = json.loads(made["text"])
    assert cfg["instance_prompt"] == "a star" and all("star" in p for p in cfg["validation_prompts"])
    # textual inversion learns a new token: the captions are rewritten with it
    ti = page.demo_dataset(tmp_path / "own", page.picked_settings("shapes-demo", "textual_inversion", demo=True)["text"])
    assert all("<star>" in it.caption for it in scan_dataset(ti["data_dir"]).images)
    assert json.loads(ti["text"])["placeholder_token"] == "<star>"
    # no settings yet: the dataset alone, and the demo config picks its prompts up from the folder
    alone = page.demo_dataset(tmp_path / "other", "")
    assert alone["text"] is None and "Fill in settings" in alone["message"]
    assert page.lab_config({"method": "lora"}, demo=True, data_dir=alone["data_dir"])["instance_prompt"] == "a star"


def test_bad_settings_text_gives_one_line_reasons():
    cfg, err = page.check_config_text("{oops")
    assert cfg is None and "not valid JSON" in err
    cfg, err = page.check_config_text(json.dumps({"method": "lora", "rank": 0}))
    assert cfg is None and "rank" in err
    cfg, err = page.check_config_text(json.dumps({"nonsense": 1}))
    assert cfg is None and "nonsense" in err


def test_runs_frame_filter_and_plots():
    runs = [{"id": "a", "status": "completed", "method": "lora", "base_model": "sd15",
             "hyperparameters": {"learning_rate": 1e-4, "max_train_steps": 500, "rank": 4},
             "scores": {"accuracy": 3.0, "flexibility": 4.0, "preservation": 4.5},
             "rating": {"accuracy": 4, "flexibility": 3, "preservation": 5, "note": "nice"},
             "duration_s": 754.0, "peak_vram_gb": 5.31},
            {"id": "b", "status": "failed", "method": "dreambooth", "base_model": "sdxl",
             "hyperparameters": {}, "scores": {}, "rating": {}}]
    frame = page.runs_frame(runs)
    assert list(frame["id"]) == ["a", "b"] and frame.loc[0, "rating"] == "4/3/5"
    assert (frame.loc[0, "minutes"], frame.loc[0, "peak_vram_gb"]) == (12.6, 5.31)
    assert frame[["minutes", "peak_vram_gb"]].iloc[1].isna().all()  # not measured: empty, not 0
    assert list(page.runs_frame(runs, "SDXL")["id"]) == ["b"]
    bars = page.method_scores_frame(frame)
    assert set(bars["bar"]) == {"lora · accuracy", "lora · flexibility", "lora · preservation"}
    assert list(page.tradeoff_frame(frame)["id"]) == ["a"]
    assert page.method_scores_frame(page.runs_frame([])).empty
    runs[0]["kept_step"] = 300
    shown = page.runs_table(page.runs_frame(runs))
    assert list(shown.columns)[:7] == ["Run", "Status", "Method", "Base model", "Learning rate", "Steps",
                                       "Kept checkpoint"]
    assert "_" not in "".join(shown.columns)                       # headers in words, not field names
    assert str(shown.loc[0, "Steps"]) == "500" and str(shown.loc[0, "Kept checkpoint"]) == "300"
    assert str(shown.loc[0, "Rank"]) == "4" and shown.loc[1, ["Steps", "Rank"]].isna().all()


def test_progress_html_is_bounded():
    assert 'aria-valuenow="100"' in page.progress_html(3.0, "completed")
    assert 'aria-valuenow="0"' in page.progress_html(None, "queued")


def test_the_buttons_as_plain_functions(tmp_path):
    """'Train this recommendation', 'Start training' and the Runs tab, without gradio."""
    from advisor.profile import Profile
    from advisor.recommendation.recommend import recommend
    from advisor.runlog.store import RunLog
    from advisor.runlog.records import RunRecord

    rec = recommend(Profile(subject_type="animal", class_noun="dog", n_images=5, vram_gb=24))
    said = Profile(subject_type="animal")
    opened = page.train_this(rec, said, demo=True, lab=page.LabState(data_dir="/data/dog", job_id="earlier"))
    cfg = json.loads(opened["text"])
    assert cfg["base_model"] == "shapes-demo" and cfg["method"] == rec.method  # the demo box swaps the model
    assert cfg["data_dir"] == "/data/dog"  # the dataset chosen before stays chosen
    lab = opened["lab"]
    assert lab.recommendation is rec and lab.profile is said and lab.resolution == cfg["resolution"]
    assert lab.job_id == "earlier"  # and so does this browser's job
    assert opened["message"].startswith("Settings are valid")

    class Queue:  # what start_training asks of the job queue
        def __init__(self):
            self.submitted, self.pumped = [], 0

        def submit(self, config, *, session_id, profile=None):
            if config.max_train_steps > 1000:
                raise ValueError("refused by the queue")
            self.submitted.append((config, session_id, profile))
            return "job-1"

        def pump(self):
            self.pumped += 1

    q = Queue()
    assert page.start_training(q, "{", session_id="s")[0] is None
    job, why = page.start_training(q, json.dumps({**cfg, "data_dir": ""}), session_id="s")
    assert job is None and "Choose a dataset first" in why
    with_data = json.dumps({**cfg, "data_dir": str(tmp_path)})
    assert page.start_training(q, json.dumps({**cfg, "data_dir": str(tmp_path), "max_train_steps": 5000}),
                               session_id="s") == (None, "**Not started.** refused by the queue")
    job, message = page.start_training(q, with_data, session_id="s", profile=said)
    assert job == "job-1" and q.pumped == 1 and q.submitted[0][1:] == ("s", said)

    with RunLog(tmp_path / "log.sqlite") as log:
        log.upsert_run(RunRecord(run_id="r1", method="lora", base_model="sd15", status="completed"))
    frame, bars, tradeoff = page.runs_view(tmp_path / "log.sqlite", tmp_path / "no-runs-folder", "lora")
    assert list(frame["id"]) == ["r1"] and bars.empty and tradeoff.empty


def test_settings_nested_too_deep_get_a_one_line_message():
    cfg, err = page.check_config_text("[" * 100_000 + "]" * 100_000)
    assert cfg is None and err.startswith("The settings are not valid JSON: nested more than 64 levels deep")


def _events(run_dir, *rows):
    from trainer.events import emit

    run_dir.mkdir(parents=True, exist_ok=True)
    for kind, step, fields in rows:
        emit(run_dir, kind, step, **fields)
    return run_dir


def test_after_the_last_step_the_page_says_the_run_is_being_scored(tmp_path):
    """The trainer's process lives on after its last step to score the run; the page used to show
    'step 40/40' for a minute or two as if frozen."""
    from lab.jobs import _message

    run = _events(tmp_path / "run", ("start", 0, {"max_train_steps": 40}), ("step", 40, {"loss": 0.1}))
    assert _message("running", run, False, False) == "training, step 40/40"
    _events(run, ("status", 40, {"phase": "saving", "message": "saving outputs"}))
    assert _message("running", run, False, False) == "training done; saving the outputs"
    _events(run, ("end", 40, {"status": "completed"}))
    assert _message("running", run, False, False).startswith("training done; scoring the run now")
    _events(run, ("status", 40, {"phase": "scoring_checkpoints", "message": "scoring checkpoint 2 of 4 (step 20)"}))
    assert _message("running", run, False, False).startswith("training done; scoring checkpoint 2 of 4 (step 20)")
    _events(run, ("start", 40, {"max_train_steps": 60}))   # resumed: a new attempt trains again
    assert _message("running", run, False, False) == "training, step 40/60"


def test_a_finished_run_is_not_said_twice_and_stopping_is_said_once(tmp_path):
    from lab.jobs import JobStatus

    run = _events(tmp_path / "run", ("start", 0, {"max_train_steps": 4}), ("step", 4, {"loss": 0.1}),
                  ("end", 4, {"status": "completed"}))
    view = page.job_view(None, JobStatus(job_id="j", state="completed", message="completed", run_dir=str(run)))
    assert "completed** · completed:" in view["status"] and "· completed\n" not in view["status"]

    class Queue:
        def stop(self, job_id, wait):
            return JobStatus(job_id=job_id, state="running", message="stopping: saving a checkpoint")

    import lab.page as lab_page
    owned = lab_page.owned_job
    lab_page.owned_job = lambda queue, job_id, owner: True
    try:
        assert page.stop_job(Queue(), "j", "me") == "Stopping: saving a checkpoint."
    finally:
        lab_page.owned_job = owned


def _metrics(method: str, unchanged: bool) -> dict:
    entry = lambda score, **raw: {"score": score, "method": method, "basis": "b", **raw}  # noqa: E731
    return {"accuracy": entry(2.1, n_generated=6, n_train=3, dino=0.41235),
            "flexibility": entry(3.0, n_prompts=4),
            "preservation": {**entry(5.0, ssim_base_vs_tuned=1.0), "unchanged": unchanged},
            "encoders": {"clip": "none: openai/clip-vit-base-patch32 could not be loaded (not in the cache)",
                         "dino": "none: turned off"}}


def test_scores_say_plainly_when_they_are_stand_ins_and_when_nothing_changed():
    text = page.scores_markdown({"message": "m", "metrics": _metrics("weight-free proxy", unchanged=True)})
    assert "**Nothing changed:**" in text and "- **preservation** nothing changed" in text
    assert "5.0/5" not in text.split("- **preservation**")[1]       # not shown as a perfect score
    assert "**Stand-ins:** accuracy, flexibility, preservation were scored without CLIP and DINO" in text
    assert "(openai/clip-vit-base-patch32 could not be loaded (not in the cache))" in text
    assert "n_generated 6," in text and "6.000" not in text and "dino 0.412" in text   # counts are counts
    assert "- **accuracy** 2.1/5 (stand-in)" in text
    real = page.scores_markdown({"message": "m", "metrics": _metrics("clip_i+dino", unchanged=False)})
    assert "Stand-ins" not in real and "Nothing changed" not in real and "- **preservation** 5.0/5 (" in real
