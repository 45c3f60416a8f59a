"""The fine-tune advisor and lab: Gradio wiring only.

Tabs: Advisor (chat, what I know so far, the recommendation card), Lab (dataset, editable
settings, live training, results and rating), Runs (the run log), Knowledge (search and
read the cards). Handlers are adapters of a few lines around plain functions in `advisor`,
`lab` and `trainer`. Nothing here imports torch: the chat is served at once; training runs
in a subprocess the page follows through the run folder.
"""
from __future__ import annotations

import os
import threading
from dataclasses import replace
from pathlib import Path

import gradio as gr

from advisor import chat
from advisor.knowledge.cards import cards_by_id
from advisor.profile import Profile
from advisor.recommendation.render import profile_markdown, recommendation_markdown
from advisor.runlog.connection import RunLogError
from advisor.runlog.paths import default_db_path, default_runs_dir
from lab import page, uploads
from lab.jobs import JobQueue
from lab.identity import Identity, LoginGuard, identify, load_secret, read_auth_file
from lab.ownership import owner_dir
from lab import admin, checkpoint_view
from lab.page import LabState
from lab.workspace import load_workspace, update_workspace
from lab.paths import (client_path, default_secret_path, default_uploads_root, redact, server_path,
                       settings_paths)
from lab.serving import servable, servable_items
from lab.uploads import THUMBS_DIR, UPLOAD_FILE_TYPES, clear_datasets, dataset_from_folder, upload_to_dataset
from lab.datasets import dataset_report, report_markdown
from trainer.safe_json import loads as json_loads

TITLE = "Fine-tune advisor & lab for Stable Diffusion"
INTRO = ("Describe what you want to fine-tune and what hardware you have. The advisor asks what it still "
         "needs, then recommends a method, settings and a dataset plan that fit your GPU, with the sources. "
         "One click takes the recommendation to the lab to train it.")
CSS = """
#known-panel table {font-size: 0.85em}
#rec-card {max-height: 640px; overflow-y: auto}
.fta-progress {display:inline-block; width:70%; height:14px; background:#e5e8e8; border-radius:7px; overflow:hidden; vertical-align:middle}
.fta-progress > div {height:100%}
"""
_queue: JobQueue | None = None
_queue_lock = threading.Lock()


def job_queue() -> JobQueue:
    global _queue
    with _queue_lock:
        if _queue is None:
            _queue = JobQueue(default_runs_dir())
        return _queue


def has_cuda() -> bool:
    """Whether a CUDA GPU is here, without importing torch in the app process."""
    gpus = Path("/proc/driver/nvidia/gpus")
    return os.environ.get("CUDA_VISIBLE_DEVICES", "") != "-1" and gpus.is_dir() and any(gpus.iterdir())


# =========================================================================== Advisor
def _chat_messages(session: chat.ChatSession, options: list[dict[str, str]]) -> list[gr.ChatMessage]:
    """The transcript as Chatbot messages; the newest assistant message carries the quick replies."""
    msgs = [gr.ChatMessage(role=m["role"], content=m["content"]) for m in session.messages]
    if msgs and msgs[-1].role == "assistant" and options:
        msgs[-1].options = [{"value": o["value"], "label": o.get("label", o["value"])} for o in options]
    return msgs


def _views(session: chat.ChatSession, reply) -> tuple:
    state = session.interview
    ready = session.recommendation is not None
    return (session, _chat_messages(session, reply.options),
            profile_markdown(state.profile.to_dict(), state.sources),
            recommendation_markdown(session.recommendation.to_dict() if ready else None),
            gr.Button(interactive=ready, value="Train this recommendation" if ready
                      else "Train this recommendation (after the recommendation)"))


def start_chat():
    session, reply = chat.new_session()
    return _views(session, reply)


def send_message(session: chat.ChatSession | None, message: str):
    if session is None:
        session, _ = chat.new_session()
    session, reply = chat.send(session, message)
    return (*_views(session, reply), "")


def pick_option(session: chat.ChatSession | None, evt: gr.SelectData):
    return send_message(session, str(evt.value))[:-1]


def _own(ident) -> Path:
    """The signed-in owner's own folder: uploads, datasets, workspace, exports."""
    return owner_dir(default_uploads_root(), ident.owner)


def _workspace_dir(token: str | None, request: gr.Request | None) -> Path | None:
    """The owner's folder that holds their workspace (lab.workspace); None without an identity."""
    ident = who(token, request)
    return _own(ident) if ident else None


def remember_chat(session: chat.ChatSession | None, token: str, request: gr.Request) -> None:
    """After each turn: the user's own messages, so a reload or a second tab replays the chat."""
    folder = _workspace_dir(token, request)
    if folder is not None and session is not None:
        update_workspace(folder, messages=[m["content"] for m in session.messages if m["role"] == "user"])


def restore_chat(token: str, session: chat.ChatSession | None, request: gr.Request):
    """Page load, after the greeting: this owner's chat replayed, when they have one."""
    folder = _workspace_dir(token, request)
    messages = load_workspace(folder).messages if folder is not None else []
    if not messages:
        return (gr.skip(),) * 5
    session, reply = chat.new_session()
    for message in messages:
        session, reply = chat.send(session, message)
    return _views(session, reply)


def to_lab(session: chat.ChatSession | None, lab: LabState, demo: bool, token: str, request: gr.Request):
    """'Train this recommendation': the lab opens with its train_config, every setting editable."""
    if session is None or session.recommendation is None:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    profile = chat.stated_profile(session.interview)
    opened = page.train_this(session.recommendation, profile, demo=demo, lab=lab)
    folder = _workspace_dir(token, request)
    text = _for_client(opened["text"], folder)
    if folder is not None:
        update_workspace(folder, settings=text, profile=profile.to_dict())
    return opened["lab"], text, opened["message"], gr.Tabs(selected="lab")


def _for_client(text: str, own: Path | None) -> str:
    """Settings as the browser shows them: the user's own folder named my-uploads/... (lab.paths)."""
    return settings_paths(text, own, client_path) if own is not None else text


# =========================================================================== Lab
NO_ID = "**This page has no valid id yet: reload it.**"
DEFAULT_PICK = ("sd15", "lora")   # the lab's own picker before anything is chosen: the plainest, best-documented pair
_secret: bytes | None = None


def who(token: str | None, request: gr.Request | None, *, issue: bool = False) -> Identity | None:
    """The event's owner, checked on the server: the login's user name, else this browser's signed id."""
    global _secret
    if _secret is None:
        _secret = load_secret(default_secret_path())
    return identify(_secret, token, getattr(request, "username", None), issue=issue)


def load_lab(token: str | None, lab: LabState, request: gr.Request):
    """Page load: check (or issue) this browser's signed id, kept in its local storage, and
    reattach to its job."""
    ident = who(token, request, issue=True)
    status = job_queue().latest_for(ident.owner)
    return ident.token, replace(lab, job_id=status.job_id if status else None, shown=None)


def machine_vram_gb() -> float | None:
    """The first CUDA GPU's memory in GB, from nvidia-smi (the app process imports no torch)."""
    import subprocess

    if not has_cuda():
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10).stdout.split()
        return round(float(out[0]) / 1024, 1) if out else None
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def restore_lab(token: str, lab: LabState, demo: bool, request: gr.Request):
    """Page load, after the id: this owner's settings, dataset and profile come back; a first
    visit gets settings for the picker's defaults, so the lab works without the advisor."""
    folder = _workspace_dir(token, request)
    if folder is None:
        return (gr.skip(),) * 8
    ws = load_workspace(folder)
    profile = None
    if ws.profile:
        try:
            profile = Profile.from_dict(ws.profile)
        except Exception:
            profile = None
    text = ws.settings
    if not text.strip():
        picked = page.picked_settings(ws.base_model or DEFAULT_PICK[0], ws.method or DEFAULT_PICK[1], demo=demo,
                                      vram_gb=machine_vram_gb())
        text = picked["text"] or ""
    text = _for_client(text, folder)
    lab = replace(lab, profile=profile, resolution=_resolution(text))
    report, thumbs, data_dir = "", [], gr.skip()
    if ws.data_dir:
        try:   # checked again like a folder typed in: the owner's own, or inside the data roots
            dataset = dataset_from_folder(ws.data_dir, own=folder)
        except ValueError:
            dataset = None
        if dataset is not None:
            lab, report, thumbs, data_dir = _dataset(dataset, folder, lab, "Your dataset, as you left it.")
    picks = {"base_model": dict(page.base_model_choices(demo)).values(), "method": dict(page.method_choices()).values()}
    base = ws.base_model if ws.base_model in picks["base_model"] else gr.skip()
    method = ws.method if ws.method in picks["method"] else gr.skip()
    return lab, text, check_settings(text), report, thumbs, data_dir, base, method


def _resolution(text: str) -> int | None:
    cfg, _ = page.check_config_text(text)
    return cfg.resolution if cfg is not None else None


def pick_settings(base_model: str, method: str, demo: bool, token: str, lab: LabState, request: gr.Request):
    """"Fill in settings": the lab without the advisor."""
    picked = page.picked_settings(base_model, method, demo=demo, data_dir=lab.data_dir, vram_gb=machine_vram_gb())
    if picked["text"] is None:
        return lab, gr.skip(), picked["message"]
    folder = _workspace_dir(token, request)
    text = _for_client(picked["text"], folder)
    if folder is not None:
        update_workspace(folder, settings=text, base_model=base_model, method=method,
                         profile=picked["profile"].to_dict())
    lab = replace(lab, recommendation=None, profile=picked["profile"], resolution=_resolution(text))
    return lab, text, picked["message"]


def remember_settings(text: str, token: str, request: gr.Request) -> None:
    folder = _workspace_dir(token, request)
    if folder is not None and isinstance(text, str):
        update_workspace(folder, settings=text)


def upload_dataset(files, token: str, add: bool, lab: LabState, request: gr.Request):
    """An upload starts a new dataset of this owner, or with `add` goes into the current one."""
    ident = who(token, request)
    if ident is None:
        return lab, NO_ID, [], gr.skip()
    own = _own(ident)
    paths = [f if isinstance(f, str) else f.name for f in (files or [])]
    folder, summary = upload_to_dataset(paths, own, current=lab.data_dir, add=bool(add), runs_dir=default_runs_dir())
    if folder is None:
        update_workspace(own, data_dir="")
        return replace(lab, data_dir=""), summary, [], ""
    return _dataset(folder, own, lab, summary)


def clear_dataset(token: str, lab: LabState, request: gr.Request):
    """"Clear dataset": this owner's uploads go (those no run trained on), the report and the box empty."""
    ident = who(token, request)
    if ident is None:
        return lab, NO_ID, gr.skip(), gr.skip(), gr.skip()
    own = _own(ident)
    message = clear_datasets(own, default_runs_dir())
    update_workspace(own, data_dir="")
    return replace(lab, data_dir=""), message, [], "", None


def use_folder(folder: str, token: str, lab: LabState, request: gr.Request):
    ident = who(token, request)
    if ident is None:
        return lab, NO_ID, [], gr.skip()
    folder = folder if isinstance(folder, str) else ""
    own = _own(ident)
    try:
        path = dataset_from_folder(server_path(folder, own), own=own)   # my-uploads/... is the owner's own
    except ValueError as e:   # said in the user's own words for their folder: no server path
        return lab, f"**{str(e).replace(server_path(folder, own), folder)}**", [], gr.skip()
    return _dataset(path, own, lab, f"Using {client_path(path, own)}.")


def use_demo_dataset(text: str, token: str, lab: LabState, request: gr.Request):
    """"Use the demo dataset": the star renders into this owner's datasets; the settings get its
    prompts and its folder. The folder box is filled after (`show_data_dir`): its change event
    rewrites the settings' data_dir from the settings as they are then, so it must see the new ones."""
    ident = who(token, request)
    if ident is None:
        return lab, NO_ID, [], gr.skip(), ""
    own = _own(ident)
    made = page.demo_dataset(own, text)
    lab, markdown, thumbs, shown = _dataset(Path(made["data_dir"]), own, lab, made["message"])
    return lab, markdown, thumbs, made["text"] if made["text"] is not None else gr.skip(), shown


def show_data_dir(shown: str):
    return shown or gr.skip()


def _dataset(path: Path, session_dir: Path, lab: LabState, summary: str):
    lab = replace(lab, data_dir=str(path))
    update_workspace(session_dir, data_dir=str(path))
    resolution = lab.resolution or (lab.recommendation.train_config.resolution if lab.recommendation else None)
    report = dataset_report(path, resolution=resolution, goal_profile=lab.profile, recommendation=lab.recommendation,
                            thumbs_dir=session_dir / THUMBS_DIR)
    shown = client_path(path, session_dir)   # the user's own folder as my-uploads/..., not the server's path
    markdown = f"{summary}\n\n{report_markdown(report)}".replace(str(path), shown)
    return lab, markdown, servable_items(report.get("thumbnails", [])), shown


def set_data_dir(text: str, data_dir: str):
    """Put the chosen dataset folder into the settings JSON (when it parses)."""
    import json
    try:
        cfg = json_loads(text)
    except (json.JSONDecodeError, TypeError):
        return gr.skip(), gr.skip()
    if not isinstance(cfg, dict):
        return gr.skip(), gr.skip()
    cfg["data_dir"] = data_dir
    text = page.config_text(cfg)
    return text, page.config_message(*page.check_config_text(text))


def check_settings(text: str) -> str:
    return page.config_message(*page.check_config_text(text))


def demo_toggle(demo: bool, lab: LabState, text: str, token: str, request: gr.Request):
    if lab.recommendation is None:
        return gr.skip(), gr.skip(), gr.skip()
    cfg = page.lab_config(lab.recommendation.train_config.to_dict(), demo=demo, data_dir=lab.data_dir)
    text = _for_client(page.config_text(cfg), _workspace_dir(token, request))
    return replace(lab, resolution=cfg.get("resolution")), text, check_settings(text)


def start_training(text: str, token: str, lab: LabState, request: gr.Request):
    ident = who(token, request)
    if ident is None:
        return lab, NO_ID
    job_id, message = page.start_training(job_queue(), text, session_id=ident.owner, profile=lab.profile,
                                          own=_own(ident))
    if job_id is None:
        return lab, message
    return replace(lab, job_id=job_id, shown=None), message


def stop_training(token: str, lab: LabState, request: gr.Request) -> str:
    ident = who(token, request)
    return NO_ID if ident is None else page.stop_job(job_queue(), lab.job_id, ident.owner)


def resume_training(token: str, lab: LabState, request: gr.Request):
    ident = who(token, request)
    if ident is None:
        return lab, NO_ID
    resumed, message = page.resume_job(job_queue(), lab.job_id, ident.owner)
    return (replace(lab, shown=None) if resumed else lab), message


def refresh_lab(token: str, lab: LabState, request: gr.Request):
    """Timer tick: the live view of this owner's job; results once, when it has ended."""
    queue = job_queue()
    queue.pump()
    ident = who(token, request)
    status = page.current_job(queue, lab.job_id, ident.owner) if ident else None
    view = page.job_view(queue, status)
    results = (gr.skip(),) * 4
    if view["finished"] and lab.shown != (view["job_id"], status.state):
        done = page.run_ended(view["run_dir"], runlog=default_db_path())
        results = (servable_items(done["compare"]), done["scores"], done["scores_md"],
                   servable_items(done["downloads"]))
        lab = replace(lab, job_id=view["job_id"], shown=(view["job_id"], status.state))
    checkpoints = (gr.skip(),) * 5
    changed = view["run_dir"] and checkpoint_view.stamp(view["run_dir"]) != lab.checkpoints_shown
    shown = checkpoint_view.checkpoint_view(view["run_dir"], lab.profile) if changed else None   # only on news
    if shown is not None:
        checkpoints = (_plot(shown["frame"]), view["loss"], shown["markdown"], servable_items(shown["grids"]),
                       gr.Dropdown(choices=_step_choices(shown), value=shown["best"]))
        lab = replace(lab, checkpoints_shown=shown["stamp"])
    own = _own(ident) if ident else None
    return (lab, redact(view["status"], own), view["loss"], servable_items(view["samples"]), redact(view["log"], own),
            *results, *checkpoints)


def _plot(frame):
    """A plot's value: None for no rows. (Gradio 6 fixes a colour-split plot's series on the first
    frame it gets; an empty first frame left the scores plot without lines for good.)"""
    return None if frame is None or frame.empty else frame


def _step_choices(shown: dict) -> list[tuple[str, int]]:
    return [(f"step {s}" + (" (best for you)" if s == shown["best"] else ""), s) for s in shown["steps"]]


def export_checkpoint(step, token: str, lab: LabState, request: gr.Request):
    """"Export this checkpoint": the owner's current run only; the step is checked on the server."""
    ident = who(token, request)
    status = page.current_job(job_queue(), lab.job_id, ident.owner) if ident else None
    if status is None or not status.run_dir:
        return "**Not exported.** No run of yours to export from.", None, gr.skip()
    message, files = checkpoint_view.export_kept(status.run_dir, step, lab.profile, runlog=default_db_path())
    shown = checkpoint_view.checkpoint_view(status.run_dir, lab.profile)
    return message, servable_items(files) or None, shown["markdown"]


def rate_run(token: str, lab: LabState, accuracy: float, flexibility: float, preservation: float, note: str,
             request: gr.Request) -> str:
    ident = who(token, request)
    if ident is None:
        return NO_ID
    return page.rate_job(job_queue(), lab.job_id, ident.owner, (accuracy, flexibility, preservation), note,
                         runlog=default_db_path())


# =========================================================================== Runs
def list_runs(query: str, token: str, request: gr.Request):
    """The Runs tab, when it opens and on Refresh: the owner's runs, the plots, and the run picker."""
    ident = who(token, request)
    try:
        frame, bars, tradeoff = page.runs_view(default_db_path(), default_runs_dir(), query,
                                               owner=ident.owner if ident else "")
    except RunLogError as e:   # a read-only, full or broken log: one line, not a traceback
        raise gr.Error(str(e)) from None
    ids = [str(i) for i in frame["id"]]
    return page.runs_table(frame), _plot(bars), _plot(tradeoff), gr.Dropdown(choices=ids, value=ids[0] if ids else None)


def rate_logged(token: str, run_id: str, accuracy: float, flexibility: float, preservation: float, note: str,
                request: gr.Request) -> str:
    ident = who(token, request)
    if ident is None:
        return NO_ID
    return page.rate_logged(default_db_path(), default_runs_dir(), run_id, ident.owner,
                            (accuracy, flexibility, preservation), note)


def import_runs(files, folder: str, token: str, request: gr.Request) -> str:
    ident = who(token, request)
    if ident is None:
        return NO_ID
    paths = [f if isinstance(f, str) else f.name for f in (files or [])]
    if folder and folder.strip():
        try:
            paths.append(str(dataset_from_folder(folder.strip())))
        except ValueError as e:
            return f"**Not imported.** {e}"
    if not paths:
        return "Choose a CSV file, LoRA .safetensors files, or a folder on the server."
    own = _own(ident)
    return page.import_runs(default_db_path(), default_runs_dir(), paths, ident.owner, own / ".import.sqlite")


def export_runs(token: str, request: gr.Request) -> str | None:
    ident = who(token, request)
    if ident is None:
        return None
    own = _own(ident)
    try:
        path = page.export_runs(default_db_path(), default_runs_dir(), ident.owner, own / "runlog-export.csv")
    except RunLogError as e:
        raise gr.Error(str(e)) from None
    return servable(path)


# =========================================================================== Admin
def admin_view(token: str, request: gr.Request):
    """The Admin tab, shown only to a login named in FTA_ADMIN: every job, each owner's disk use."""
    ident = who(token, request)
    if ident is None or not admin.is_admin(ident.owner):
        return gr.Tab(visible=False), "", None, None
    seen = admin.overview(job_queue(), default_uploads_root())
    return gr.Tab(visible=True), seen["markdown"], seen["jobs"], seen["usage"]


def admin_stop(job_id: str, token: str, request: gr.Request) -> str:
    ident = who(token, request)
    if ident is None or not admin.is_admin(ident.owner):
        return "**Not allowed.** Only the machine's admins (FTA_ADMIN) stop other people's runs."
    return admin.stop_any(job_queue(), job_id)


# =========================================================================== Knowledge
def search_knowledge(query: str) -> str:
    query = (query or "").strip()
    if not query:
        return "_Type a question, e.g. 'how many images do I need?'_"
    retriever = chat.knowledge_retriever()
    hits = retriever.search(query, k=5)
    lines = [] if retriever.backend == "sentence-transformers" else [f"_{retriever.note}_\n"]
    if not hits:
        lines.append("Nothing found; try other words.")
    for h in hits:
        lines.append(f"### {h.title}\n{h.snippet}\n\n<sub>card `{h.card_id}` · score {h.score:.2f} · "
                     f"sources: {'; '.join(h.sources)}</sub>\n")
    return "\n".join(lines)


def read_card(card_id: str) -> str:
    card = cards_by_id().get(card_id or "")
    if card is None:
        return "_Pick a card._"
    sources = "\n".join(f"- {s}" for s in card.sources)
    return f"## {card.title}\n\n{card.body}\n\n**Sources**\n\n{sources}\n\n<sub>tags: {', '.join(card.tags)}</sub>"


def search_status() -> str:
    r = chat.knowledge_retriever()
    if r.backend == "sentence-transformers":
        return "Semantic search: all-MiniLM-L6-v2 (local)."
    return r.note


# =========================================================================== layout
def build_demo() -> gr.Blocks:
    demo_mode = not has_cuda()
    with gr.Blocks(title=TITLE) as demo:
        session = gr.State(None)
        lab = gr.State(LabState())
        cid = gr.BrowserState(None, storage_key="fta-client-id")
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        with gr.Tabs() as tabs:
            with gr.Tab("Advisor", id="advisor"):
                with gr.Row():
                    with gr.Column(scale=3):
                        chatbot = gr.Chatbot(label="Advisor", height=560, elem_id="chatbot",
                                             buttons=["copy"], layout="bubble")
                        box = gr.Textbox(placeholder="e.g. 30 photos of my dog, RTX 3060, I want him in all kinds of scenes",
                                         show_label=False, submit_btn="Send", elem_id="chat-input", max_length=10_000)
                    with gr.Column(scale=2):
                        with gr.Accordion("What I know so far", open=True):
                            known = gr.Markdown(elem_id="known-panel")
                        with gr.Group():
                            card = gr.Markdown(elem_id="rec-card")
                            train = gr.Button("Train this recommendation", interactive=False,
                                              variant="primary", elem_id="train-button")
            with gr.Tab("Lab", id="lab"):
                if demo_mode:
                    gr.Markdown("**No CUDA GPU here:** the lab trains the **shapes demo model** as a demonstration: "
                                "Stable Diffusion's architecture, small, pretrained here on a world of coloured shapes. "
                                "It has never seen a star: use the demo dataset below and watch the star appear in the "
                                "samples. A real base model needs a CUDA GPU: run the app on a GPU machine, or on a "
                                "Space with dedicated GPU hardware.")
                with gr.Row():
                    with gr.Column():
                        gr.Markdown("### 1. Dataset")
                        files = gr.File(file_count="multiple", file_types=UPLOAD_FILE_TYPES, elem_id="upload",
                                        label="Upload images (jpg, png, webp) with their .txt captions, or a zip")
                        with gr.Row():
                            add_files = gr.Checkbox(False, label="Add to the current dataset (else an upload "
                                                    "starts a new one)", elem_id="add-to-dataset")
                            clear = gr.Button("Clear dataset", size="sm", elem_id="clear-dataset")
                        folder = gr.Textbox(label="…or a folder on the server", submit_btn="Use folder",
                                            elem_id="data-folder")
                        demo_data = gr.Button("…or the demo dataset: a star, which the shapes demo model has never seen",
                                              size="sm", elem_id="demo-dataset")
                        report = gr.Markdown(elem_id="dataset-report")
                        thumbs = gr.Gallery(label="Dataset", columns=8, height=180, elem_id="thumbs")
                        data_dir = gr.Textbox(visible=False)
                        demo_shown = gr.State("")   # the demo dataset's folder, for data_dir after the settings
                    with gr.Column():
                        gr.Markdown("### 2. Settings")
                        with gr.Row():
                            base_pick = gr.Dropdown(page.base_model_choices(demo_mode), value=DEFAULT_PICK[0],
                                                    label="Base model", elem_id="base-pick", scale=2)
                            method_pick = gr.Dropdown(page.method_choices(), value=DEFAULT_PICK[1], label="Method",
                                                      elem_id="method-pick", scale=2)
                            fill = gr.Button("Fill in settings", elem_id="fill-settings", scale=1)
                        use_demo = gr.Checkbox(value=demo_mode, label="Use the shapes demo model (CPU demonstration)",
                                               elem_id="use-demo")
                        settings = gr.Code(language="json", label="Training settings (editable)", lines=16,
                                           elem_id="settings")
                        settings_msg = gr.Markdown(elem_id="settings-msg")
                        with gr.Row():
                            start = gr.Button("Start training", variant="primary", elem_id="start")
                            stop = gr.Button("Stop (saves a checkpoint)", elem_id="stop")
                            resume = gr.Button("Resume", elem_id="resume")
                        action_msg = gr.Markdown(elem_id="action-msg")
                gr.Markdown("### 3. Training")
                status = gr.Markdown(elem_id="train-status")
                with gr.Row():
                    loss = gr.LinePlot(x="step", y="loss", title="Loss", height=260, elem_id="loss-plot", x_axis_format="d")
                    samples = gr.Gallery(label="Samples (newest first)", columns=4, height=260, elem_id="samples")
                log = gr.Textbox(label="Log", lines=8, max_lines=8, autoscroll=True, elem_id="train-log")
                gr.Markdown("### 4. Results")
                with gr.Row():
                    compare = gr.Gallery(label="Base vs fine-tuned, same seeds", columns=4, height=260,
                                         elem_id="compare")
                    with gr.Column():
                        scores = gr.BarPlot(x="factor", y="score", y_lim=[0, 5], title="Scores (1-5)", height=220, y_axis_format=".1f",
                                            elem_id="scores-plot")
                        scores_md = gr.Markdown(elem_id="scores-md")
                outputs = gr.File(label="Downloads", file_count="multiple", interactive=False, elem_id="downloads")
                with gr.Row():
                    r_acc = gr.Slider(1, 5, value=3, step=1, label="Your accuracy rating")
                    r_flex = gr.Slider(1, 5, value=3, step=1, label="Your flexibility rating")
                    r_pres = gr.Slider(1, 5, value=3, step=1, label="Your preservation rating")
                r_note = gr.Textbox(label="Note (what worked, what didn't)")
                r_save = gr.Button("Save my rating", elem_id="save-rating")
                r_msg = gr.Markdown(elem_id="rating-msg")
                gr.Markdown("### 5. Which checkpoint to keep")
                with gr.Row():
                    ck_plot = gr.LinePlot(x="step", y="score", color="factor", y_lim=[1, 5], height=260,
                                          x_axis_format="d", y_axis_format=".1f",
                                          title="Scores along the run (1-5), same prompts and seeds",
                                          elem_id="checkpoint-plot")
                    ck_loss = gr.LinePlot(x="step", y="loss", title="Loss", height=260, elem_id="checkpoint-loss",
                                          x_axis_format="d")
                ck_md = gr.Markdown(elem_id="checkpoint-choice")
                ck_grids = gr.Gallery(label="Each checkpoint's images (base model first)", columns=3, height=320,
                                      elem_id="checkpoint-grids")
                with gr.Row():
                    ck_step = gr.Dropdown(label="Checkpoint", choices=[], elem_id="checkpoint-step", scale=2)
                    ck_export = gr.Button("Export this checkpoint", elem_id="checkpoint-export", scale=1)
                ck_msg = gr.Markdown(elem_id="checkpoint-msg")
                ck_files = gr.File(label="Exported files", file_count="multiple", interactive=False,
                                   elem_id="checkpoint-files")
                timer = gr.Timer(2.0)
            with gr.Tab("Runs", id="runs") as runs_tab:
                with gr.Row():
                    runs_query = gr.Textbox(label="Filter", placeholder="lora, completed, sdxl…", scale=4)
                    runs_refresh = gr.Button("Refresh", scale=1, elem_id="runs-refresh")
                runs_table = gr.Dataframe(interactive=False, elem_id="runs-table", show_search="search")
                with gr.Row():
                    by_method = gr.BarPlot(x="bar", y="score", color="factor", title="Mean score per method",
                                           x_title="method · factor", y_lim=[0, 5], height=260, y_axis_format=".1f")
                    tradeoff = gr.ScatterPlot(x="preservation", y="accuracy", color="method",
                                              title="Accuracy against preservation", height=260,
                                              x_axis_format=".1f", y_axis_format=".1f")
                with gr.Accordion("Rate a run", open=False):
                    # any value may come from a client: rate_logged checks the owner on the server
                    rl_id = gr.Dropdown(label="Run", choices=[], elem_id="rate-run-id", allow_custom_value=True)
                    with gr.Row():
                        rl_acc = gr.Slider(1, 5, value=3, step=1, label="Accuracy")
                        rl_flex = gr.Slider(1, 5, value=3, step=1, label="Flexibility")
                        rl_pres = gr.Slider(1, 5, value=3, step=1, label="Preservation")
                    rl_note = gr.Textbox(label="Note")
                    rl_save = gr.Button("Save rating")
                    rl_msg = gr.Markdown()
                with gr.Accordion("Import and export", open=False):
                    im_files = gr.File(file_count="multiple", file_types=[".csv", ".safetensors"],
                                       label="A CSV export or LoRA .safetensors files (kohya settings are read)")
                    im_folder = gr.Textbox(label="…or a runs folder / folder of LoRA files on the server")
                    im_go = gr.Button("Import")
                    im_msg = gr.Markdown()
                    ex_go = gr.Button("Export the run log as CSV")
                    ex_file = gr.File(label="CSV", interactive=False)
            with gr.Tab("Admin", id="admin", visible=False) as admin_tab:
                admin_md = gr.Markdown(elem_id="admin-summary")
                admin_refresh = gr.Button("Refresh", elem_id="admin-refresh")
                admin_jobs = gr.Dataframe(interactive=False, label="Every run", elem_id="admin-jobs")
                admin_usage = gr.Dataframe(interactive=False, label="Per person", elem_id="admin-usage")
                with gr.Row():
                    admin_job = gr.Textbox(label="Job to stop", elem_id="admin-job", scale=3)
                    admin_stop_button = gr.Button("Stop this job", elem_id="admin-stop", scale=1)
                admin_msg = gr.Markdown(elem_id="admin-msg")
            with gr.Tab("Knowledge", id="knowledge"):
                kb_status = gr.Markdown()
                query = gr.Textbox(label="Ask the knowledge base", placeholder="what is prior preservation?",
                                   submit_btn="Search", elem_id="kb-query")
                results = gr.Markdown(elem_id="kb-results")
                card_pick = gr.Dropdown(choices=sorted(cards_by_id()), label="Read a card", elem_id="kb-card")
                card_view = gr.Markdown(elem_id="kb-card-view")

        # Advisor
        views = [session, chatbot, known, card, train]
        demo.load(start_chat, outputs=views, api_name="start").then(
            restore_chat, [cid, session], views, api_visibility="private")   # a reload: the chat comes back
        box.submit(send_message, [session, box], [*views, box], api_name="send").then(
            remember_chat, [session, cid], None, api_visibility="private")
        chatbot.option_select(pick_option, [session], views, api_name="option").then(
            remember_chat, [session, cid], None, api_visibility="private")
        train.click(to_lab, [session, lab, use_demo, cid], [lab, settings, settings_msg, tabs], api_name="to_lab")
        # Lab
        demo.load(load_lab, [cid, lab], [cid, lab], api_name="hello").then(
            restore_lab, [cid, lab, use_demo], [lab, settings, settings_msg, report, thumbs, data_dir, base_pick,
                                                 method_pick],
            api_visibility="private")
        fill.click(pick_settings, [base_pick, method_pick, use_demo, cid, lab], [lab, settings, settings_msg],
                   api_name="pick_settings")
        settings.change(remember_settings, [settings, cid], None, api_visibility="private")
        files.upload(upload_dataset, [files, cid, add_files, lab], [lab, report, thumbs, data_dir], api_name="upload")
        clear.click(clear_dataset, [cid, lab], [lab, report, thumbs, data_dir, files], api_name="clear_dataset")
        folder.submit(use_folder, [folder, cid, lab], [lab, report, thumbs, data_dir], api_name="use_folder")
        demo_data.click(use_demo_dataset, [settings, cid, lab], [lab, report, thumbs, settings, demo_shown],
                        api_name="demo_dataset").then(show_data_dir, demo_shown, data_dir, api_visibility="private")
        data_dir.change(set_data_dir, [settings, data_dir], [settings, settings_msg], api_visibility="private")
        settings.change(check_settings, settings, settings_msg, api_name="check_settings")
        use_demo.change(demo_toggle, [use_demo, lab, settings, cid], [lab, settings, settings_msg], api_visibility="private")
        start.click(start_training, [settings, cid, lab], [lab, action_msg], api_name="start_training")
        start.click(lambda: "", None, r_msg, api_visibility="private")   # the last run's rating note goes
        stop.click(stop_training, [cid, lab], action_msg, api_name="stop_training")
        resume.click(resume_training, [cid, lab], [lab, action_msg], api_name="resume_training")
        resume.click(lambda: "", None, r_msg, api_visibility="private")
        timer.tick(refresh_lab, [cid, lab], [lab, status, loss, samples, log, compare, scores, scores_md, outputs,
                                             ck_plot, ck_loss, ck_md, ck_grids, ck_step], api_visibility="private")
        ck_export.click(export_checkpoint, [ck_step, cid, lab], [ck_msg, ck_files, ck_md], api_name="export_checkpoint")
        r_save.click(rate_run, [cid, lab, r_acc, r_flex, r_pres, r_note], r_msg, api_name="rate")
        # Runs
        runs_tab_outputs = [runs_table, by_method, tradeoff, rl_id]
        runs_tab.select(list_runs, [runs_query, cid], runs_tab_outputs, api_visibility="private")
        runs_refresh.click(list_runs, [runs_query, cid], runs_tab_outputs, api_name="runs")
        runs_query.submit(list_runs, [runs_query, cid], runs_tab_outputs, api_visibility="private")
        rl_save.click(rate_logged, [cid, rl_id, rl_acc, rl_flex, rl_pres, rl_note], rl_msg, api_name="rate_logged")
        im_go.click(import_runs, [im_files, im_folder, cid], im_msg, api_name="import_runs")
        ex_go.click(export_runs, cid, ex_file, api_name="export_runs")
        # Admin (the handlers check the login on the server; the tab's visibility is only a convenience)
        admin_outputs = [admin_tab, admin_md, admin_jobs, admin_usage]
        demo.load(admin_view, [cid], admin_outputs, api_name="admin")
        admin_refresh.click(admin_view, [cid], admin_outputs, api_visibility="private")
        admin_stop_button.click(admin_stop, [admin_job, cid], admin_msg, api_name="admin_stop")
        # Knowledge
        query.submit(search_knowledge, query, results, api_name="search")
        card_pick.change(read_card, card_pick, card_view, api_name="read_card")
        demo.load(search_status, outputs=kb_status, api_visibility="private")
    return demo


def _warm_up_search() -> None:
    """Load the embedding model in the background so the first question is quick."""
    threading.Thread(target=chat.knowledge_retriever, name="warm-search", daemon=True).start()


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """'user:password' -> (user, password); None/empty -> no login. Anything else is an error."""
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise SystemExit("error: --auth / FTA_AUTH must be 'user:password' (both non-empty)")
    return user, password


def logins(auth: str | None, auth_file: str | None) -> list[tuple[str, str]] | None:
    """Every login from --auth and --auth-file together; None when neither is given."""
    users = [parse_auth(auth)] if auth else []
    if auth_file:
        try:
            users += read_auth_file(auth_file)
        except ValueError as e:
            raise SystemExit(f"error: {e}") from None
    return users or None


def launch_options(auth: list[tuple[str, str]] | None) -> dict:
    """What `launch` gets besides the address (the security tests launch with the same). No
    allowed_paths: run and upload files reach a browser only as what an owner-checked handler
    returns (lab.serving), never by naming their path."""
    return {"auth": LoginGuard(auth) if auth else None, "css": CSS,
            "max_file_size": f"{uploads.MAX_UPLOAD_MB}mb"}  # Gradio refuses a bigger file before storing it


def main(argv: list[str] | None = None) -> None:
    import argparse
    ap = argparse.ArgumentParser(description=TITLE)
    ap.add_argument("--auth", default=os.environ.get("FTA_AUTH"), metavar="USER:PASSWORD",
                    help="require a login (also $FTA_AUTH)")
    ap.add_argument("--auth-file", default=os.environ.get("FTA_AUTH_FILE"), metavar="PATH",
                    help="logins of several users, one 'user:password' a line (also $FTA_AUTH_FILE)")
    args = ap.parse_args(argv)
    auth = logins(args.auth, args.auth_file)
    demo = build_demo()
    _warm_up_search()
    job_queue().start()
    demo.queue(default_concurrency_limit=8).launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                                                    **launch_options(auth))


if __name__ == "__main__":
    main()
