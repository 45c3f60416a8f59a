"""The fine-tune advisor and lab: Gradio wiring only.

Tabs: Advisor (chat, what I know so far, the recommendation card), Lab (dataset, editable
settings, live training, results and rating), Runs (the run log), Knowledge (search and
read the cards). Handlers are adapters of a few lines around plain functions in `advisor`,
`lab` and `trainer`. Nothing here imports torch: the chat is served at once; training runs
in a subprocess the page follows through the run folder.
"""
from __future__ import annotations

import os
import secrets
import threading
from dataclasses import replace
from pathlib import Path

import gradio as gr

from advisor import chat
from advisor.knowledge.cards import cards_by_id
from advisor.recommendation.render import profile_markdown, recommendation_markdown
from advisor.runlog.importing import import_path
from advisor.runlog.store import RunLog
from advisor.runlog.paths import default_db_path, default_runs_dir
from lab import page
from lab.jobs import JobQueue
from lab.page import LabState
from lab.paths import default_uploads_root
from lab.uploads import dataset_from_folder, ingest_uploads, new_session_dir
from lab.datasets import dataset_report, report_markdown
from lab.results import save_rating

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


def to_lab(session: chat.ChatSession | None, lab: LabState, demo: bool):
    """'Train this recommendation': the lab opens with its train_config, every setting editable."""
    if session is None or session.recommendation is None:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    opened = page.train_this(session.recommendation, chat.stated_profile(session.interview), demo=demo, lab=lab)
    return opened["lab"], opened["text"], opened["message"], gr.Tabs(selected="lab")


# =========================================================================== Lab
def client_id(cid: str | None) -> str:
    return cid if cid else secrets.token_hex(12)


def load_lab(cid: str | None, lab: LabState):
    """Page load: give this browser an id (kept in its local storage) and reattach to its job."""
    cid = client_id(cid)
    status = job_queue().latest_for(cid)
    return cid, replace(lab, job_id=status.job_id if status else None, shown=None)


def upload_dataset(files, cid: str, lab: LabState):
    session_dir = new_session_dir(default_uploads_root(), client_id(cid))
    dest = session_dir / "dataset"
    report = ingest_uploads([f if isinstance(f, str) else f.name for f in (files or [])], dest)
    return _dataset(dest, session_dir, lab, report.summary())


def use_folder(folder: str, cid: str, lab: LabState):
    try:
        path = dataset_from_folder(folder)
    except ValueError as e:
        return lab, f"**{e}**", [], gr.skip()
    return _dataset(path, new_session_dir(default_uploads_root(), client_id(cid)), lab, f"Using {path}.")


def _dataset(path: Path, session_dir: Path, lab: LabState, summary: str):
    lab = replace(lab, data_dir=str(path))
    resolution = lab.resolution or (lab.recommendation.train_config.resolution if lab.recommendation else None)
    report = dataset_report(path, resolution=resolution, goal_profile=lab.profile, recommendation=lab.recommendation,
                            thumbs_dir=session_dir / "thumbs")
    return lab, f"{summary}\n\n{report_markdown(report)}", report.get("thumbnails", []), str(path)


def set_data_dir(text: str, data_dir: str):
    """Put the chosen dataset folder into the settings JSON (when it parses)."""
    import json
    try:
        cfg = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return gr.skip(), gr.skip()
    if not isinstance(cfg, dict):
        return gr.skip(), gr.skip()
    cfg["data_dir"] = data_dir
    text = page.config_text(cfg)
    return text, page.config_message(*page.check_config_text(text))


def check_settings(text: str) -> str:
    return page.config_message(*page.check_config_text(text))


def demo_toggle(demo: bool, lab: LabState, text: str):
    if lab.recommendation is None:
        return gr.skip(), gr.skip(), gr.skip()
    cfg = page.lab_config(lab.recommendation.train_config.to_dict(), demo=demo, data_dir=lab.data_dir)
    text = page.config_text(cfg)
    return replace(lab, resolution=cfg.get("resolution")), text, check_settings(text)


def start_training(text: str, cid: str, lab: LabState):
    job_id, message = page.start_training(job_queue(), text, session_id=client_id(cid), profile=lab.profile)
    if job_id is None:
        return lab, message
    return replace(lab, job_id=job_id, shown=None), message


def stop_training(lab: LabState) -> str:
    job_id = lab.job_id
    if not job_id:
        return "No training to stop."
    status = job_queue().stop(job_id, wait=False)
    return f"Stopping: {status.message}"


def resume_training(lab: LabState):
    job_id = lab.job_id
    if not job_id:
        return lab, "No run to resume."
    try:
        status = job_queue().resume(job_id)
    except ValueError as e:
        return lab, f"**Cannot resume.** {e}"
    return replace(lab, shown=None), f"Resuming from the latest checkpoint: {status.message}"


def refresh_lab(cid: str, lab: LabState):
    """Timer tick: the live view of this browser's job; results once, when it has ended."""
    queue = job_queue()
    queue.pump()
    job_id = lab.job_id
    status = queue.status(job_id) if job_id else queue.latest_for(client_id(cid))
    view = page.job_view(queue, status)
    results = (gr.skip(),) * 4
    if view["finished"] and lab.shown != (view["job_id"], status.state):
        done = page.run_ended(view["run_dir"], runlog=default_db_path())
        results = (done["compare"], done["scores"], done["scores_md"], done["downloads"])
        lab = replace(lab, job_id=view["job_id"], shown=(view["job_id"], status.state))
    return (lab, view["status"], view["loss"], view["samples"], view["log"], *results)


def rate_run(lab: LabState, accuracy: float, flexibility: float, preservation: float, note: str) -> str:
    job_id = lab.job_id
    status = job_queue().status(job_id) if job_id else None
    if status is None or not status.run_dir:
        return "No finished run to rate yet."
    try:
        save_rating(status.run_dir, int(accuracy), int(flexibility), int(preservation), note or "",
                    runlog=RunLog(default_db_path()))
    except (ValueError, KeyError) as e:
        return f"**Not saved.** {e}"
    return f"Saved your rating of run `{job_id}` to the run log ({default_db_path()})."


# =========================================================================== Runs
def list_runs(query: str):
    return page.runs_view(default_db_path(), default_runs_dir(), query)


def rate_logged(run_id: str, accuracy: float, flexibility: float, preservation: float, note: str) -> str:
    try:
        with RunLog(default_db_path()) as log:
            log.rate(run_id.strip(), int(accuracy), int(flexibility), int(preservation), note or None)
    except (ValueError, KeyError) as e:
        return f"**Not saved.** {e}"
    return f"Saved the rating of `{run_id.strip()}`."


def import_runs(files, folder: str) -> str:
    paths = [f if isinstance(f, str) else f.name for f in (files or [])]
    if folder and folder.strip():
        try:
            paths.append(str(dataset_from_folder(folder.strip())))
        except ValueError as e:
            return f"**Not imported.** {e}"
    if not paths:
        return "Choose a CSV file, LoRA .safetensors files, or a folder on the server."
    lines = []
    with RunLog(default_db_path()) as log:
        for p in paths:
            lines.append(f"- {import_path(log, p).summary()}")
    return "\n".join(lines)


def export_runs() -> str:
    path = default_runs_dir() / "runlog-export.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with RunLog(default_db_path()) as log:
        log.export_csv(path)
    return str(path)


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
                    gr.Markdown("**No CUDA GPU here:** the lab trains the built-in tiny model as a demonstration "
                                "(random weights, so images are noise). A real base model needs a CUDA GPU: run the "
                                "app on a GPU machine, or on a Space with dedicated GPU hardware.")
                with gr.Row():
                    with gr.Column():
                        gr.Markdown("### 1. Dataset")
                        files = gr.File(file_count="multiple", file_types=["image", ".zip"],
                                        label="Upload images (jpg, png, webp) or a zip", elem_id="upload")
                        folder = gr.Textbox(label="…or a folder on the server", submit_btn="Use folder",
                                            elem_id="data-folder")
                        report = gr.Markdown(elem_id="dataset-report")
                        thumbs = gr.Gallery(label="Dataset", columns=8, height=180, elem_id="thumbs")
                        data_dir = gr.Textbox(visible=False)
                    with gr.Column():
                        gr.Markdown("### 2. Settings")
                        use_demo = gr.Checkbox(value=demo_mode, label="Use the built-in tiny model (CPU demonstration)",
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
                    loss = gr.LinePlot(x="step", y="loss", title="Loss", height=260, elem_id="loss-plot")
                    samples = gr.Gallery(label="Samples (newest first)", columns=4, height=260, elem_id="samples")
                log = gr.Textbox(label="Log", lines=8, max_lines=8, autoscroll=True, elem_id="train-log")
                gr.Markdown("### 4. Results")
                with gr.Row():
                    compare = gr.Gallery(label="Base vs fine-tuned, same seeds", columns=4, height=260,
                                         elem_id="compare")
                    with gr.Column():
                        scores = gr.BarPlot(x="factor", y="score", y_lim=[0, 5], title="Scores (1-5)", height=220,
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
                timer = gr.Timer(2.0)
            with gr.Tab("Runs", id="runs"):
                with gr.Row():
                    runs_query = gr.Textbox(label="Filter", placeholder="lora, completed, sdxl…", scale=4)
                    runs_refresh = gr.Button("Refresh", scale=1, elem_id="runs-refresh")
                runs_table = gr.Dataframe(interactive=False, elem_id="runs-table", show_search="search")
                with gr.Row():
                    by_method = gr.BarPlot(x="bar", y="score", color="factor", title="Mean score per method",
                                           x_title="method · factor", y_lim=[0, 5], height=260)
                    tradeoff = gr.ScatterPlot(x="preservation", y="accuracy", color="method",
                                              title="Accuracy against preservation", height=260)
                with gr.Accordion("Rate a run", open=False):
                    rl_id = gr.Textbox(label="Run id")
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
            with gr.Tab("Knowledge", id="knowledge"):
                kb_status = gr.Markdown()
                query = gr.Textbox(label="Ask the knowledge base", placeholder="what is prior preservation?",
                                   submit_btn="Search", elem_id="kb-query")
                results = gr.Markdown(elem_id="kb-results")
                card_pick = gr.Dropdown(choices=sorted(cards_by_id()), label="Read a card", elem_id="kb-card")
                card_view = gr.Markdown(elem_id="kb-card-view")

        # Advisor
        views = [session, chatbot, known, card, train]
        demo.load(start_chat, outputs=views, api_name="start")
        box.submit(send_message, [session, box], [*views, box], api_name="send")
        chatbot.option_select(pick_option, [session], views, api_name="option")
        train.click(to_lab, [session, lab, use_demo], [lab, settings, settings_msg, tabs], api_name="to_lab")
        # Lab
        demo.load(load_lab, [cid, lab], [cid, lab], api_visibility="private")
        files.upload(upload_dataset, [files, cid, lab], [lab, report, thumbs, data_dir], api_name="upload")
        folder.submit(use_folder, [folder, cid, lab], [lab, report, thumbs, data_dir], api_name="use_folder")
        data_dir.change(set_data_dir, [settings, data_dir], [settings, settings_msg], api_visibility="private")
        settings.change(check_settings, settings, settings_msg, api_name="check_settings")
        use_demo.change(demo_toggle, [use_demo, lab, settings], [lab, settings, settings_msg], api_visibility="private")
        start.click(start_training, [settings, cid, lab], [lab, action_msg], api_name="start_training")
        stop.click(stop_training, lab, action_msg, api_name="stop_training")
        resume.click(resume_training, lab, [lab, action_msg], api_name="resume_training")
        timer.tick(refresh_lab, [cid, lab], [lab, status, loss, samples, log, compare, scores, scores_md, outputs],
                   api_visibility="private")
        r_save.click(rate_run, [lab, r_acc, r_flex, r_pres, r_note], r_msg, api_name="rate")
        # Runs
        runs_tab_outputs = [runs_table, by_method, tradeoff]
        runs_refresh.click(list_runs, runs_query, runs_tab_outputs, api_name="runs")
        runs_query.submit(list_runs, runs_query, runs_tab_outputs, api_visibility="private")
        rl_save.click(rate_logged, [rl_id, rl_acc, rl_flex, rl_pres, rl_note], rl_msg, api_name="rate_logged")
        im_go.click(import_runs, [im_files, im_folder], im_msg, api_name="import_runs")
        ex_go.click(export_runs, None, ex_file, api_name="export_runs")
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


def main(argv: list[str] | None = None) -> None:
    import argparse
    ap = argparse.ArgumentParser(description=TITLE)
    ap.add_argument("--auth", default=os.environ.get("FTA_AUTH"), metavar="USER:PASSWORD",
                    help="require a login (also $FTA_AUTH)")
    args = ap.parse_args(argv)
    auth = parse_auth(args.auth)
    demo = build_demo()
    _warm_up_search()
    job_queue().start()
    demo.queue(default_concurrency_limit=8).launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        auth=auth,
        allowed_paths=[str(default_runs_dir().resolve()), str(default_uploads_root().resolve())],
        css=CSS,
    )


if __name__ == "__main__":
    main()
