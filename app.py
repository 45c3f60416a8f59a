"""The fine-tune advisor and lab: Gradio wiring only.

The handlers below are adapters of a few lines around `advisor.chat` (the interview and the
recommendation) and `advisor.render` (Markdown views). Nothing here imports torch: the chat
is served at once, and the embedding model for knowledge questions loads in the background.
"""
from __future__ import annotations

import os
import threading

import gradio as gr

from advisor import chat
from advisor.render import profile_markdown, recommendation_markdown

TITLE = "Fine-tune advisor & lab for Stable Diffusion"
INTRO = ("Describe what you want to fine-tune and what hardware you have. The advisor asks what it still "
         "needs, then recommends a method, settings and a dataset plan that fit your GPU, with the sources.")
CSS = """
#known-panel table {font-size: 0.85em}
#rec-card {max-height: 640px; overflow-y: auto}
"""


# --------------------------------------------------------------------------- adapters
def _chat_messages(session: chat.ChatSession, options: list[dict[str, str]]) -> list[gr.ChatMessage]:
    """The transcript as Chatbot messages; the newest assistant message carries the quick replies."""
    msgs = [gr.ChatMessage(role=m["role"], content=m["content"]) for m in session.messages]
    if msgs and msgs[-1].role == "assistant" and options:
        msgs[-1].options = [{"value": o["value"], "label": o.get("label", o["value"])} for o in options]
    return msgs


def _views(session: chat.ChatSession, reply) -> tuple:
    state = session.interview
    return (session, _chat_messages(session, reply.options),
            profile_markdown(state.profile.to_dict(), state.sources),
            recommendation_markdown(session.recommendation),
            gr.Button(interactive=False, value=_train_label(session)))


def _train_label(session: chat.ChatSession) -> str:
    if session.recommendation is None:
        return "Train this recommendation (after the recommendation)"
    return "Train this recommendation (the lab arrives in the next release)"


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


def search_status() -> str:
    r = chat.knowledge_retriever()
    if r.backend == "sentence-transformers":
        return "Semantic search: all-MiniLM-L6-v2 (local)."
    return r.note


# --------------------------------------------------------------------------- layout
def build_demo() -> gr.Blocks:
    with gr.Blocks(title=TITLE) as demo:
        session = gr.State(None)
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        with gr.Tabs():
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
            with gr.Tab("Knowledge", id="knowledge"):
                status = gr.Markdown()
                query = gr.Textbox(label="Ask the knowledge base", placeholder="what is prior preservation?",
                                   submit_btn="Search", elem_id="kb-query")
                results = gr.Markdown(elem_id="kb-results")

        views = [session, chatbot, known, card, train]
        demo.load(start_chat, outputs=views, api_name="start")
        box.submit(send_message, [session, box], [*views, box], api_name="send")
        chatbot.option_select(pick_option, [session], views, api_name="option")
        query.submit(search_knowledge, query, results, api_name="search")
        status_tab = demo.load(lambda: "_Loading search…_", outputs=status, api_visibility="private")
        status_tab.then(search_status, outputs=status, api_visibility="private")
    return demo


def _warm_up_search() -> None:
    """Load the embedding model in the background so the first question is quick."""
    threading.Thread(target=chat.knowledge_retriever, name="warm-search", daemon=True).start()


def main() -> None:
    demo = build_demo()
    _warm_up_search()
    auth = os.environ.get("FTA_AUTH")  # "user:password" turns on a login
    demo.queue(default_concurrency_limit=8).launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        auth=tuple(auth.split(":", 1)) if auth and ":" in auth else None,
        css=CSS,
    )


if __name__ == "__main__":
    main()
