"""The Gradio app through its API (gradio_client), the way Gradio tests itself."""
import pytest
from gradio_client import Client


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio")))
    mp.setenv("FTA_EMBEDDER", "none")
    import app
    from advisor import chat
    mp.setattr(chat, "_retriever", None)
    demo = app.build_demo()
    _, url, _ = demo.launch(prevent_thread_lock=True)
    clients = []

    def make():
        c = Client(url, verbose=False)
        clients.append(c)
        return c
    yield make
    for c in clients:
        c.close()
    demo.close()
    mp.undo()
    chat._retriever = None


def text_of(message):
    return " ".join(b.get("text", "") for b in message["content"] if isinstance(b, dict))


def test_greeting_asks_a_question_with_options(client):
    c = client()
    messages, known, card = c.predict(api_name="/start")
    assert messages[-1]["role"] == "assistant"
    assert messages[-1]["options"], "the first question offers quick replies"
    assert "not yet known" in known
    assert "No recommendation yet" in card


def test_one_message_fills_panel_and_recommends(client):
    c = client()
    c.predict(api_name="/start")
    messages, known, card, box = c.predict("30 pictures of my cat, 12GB card, I want it in all kinds of scenes",
                                           api_name="/send")
    assert box == ""
    assert "| Training images | 30 | stated |" in known
    assert "**assumed**" in known
    assert card.startswith("### ") and "Sources" in card and "GB" in card
    assert "My recommendation" in text_of(messages[-1])


def test_sessions_do_not_cross(client):
    a, b = client(), client()
    a.predict(api_name="/start")
    b.predict(api_name="/start")
    a.predict("20 photos of my dog, 24GB card, must look exactly like him", api_name="/send")
    _, known_b, _, _ = b.predict("my watercolor paintings as a style, 8GB", api_name="/send")
    assert "| GPU memory (GB) | 8 | stated |" in known_b
    assert "dog" not in known_b


def test_knowledge_search(client):
    c = client()
    out = c.predict("how big is a LoRA file?", api_name="/search")
    assert "TF-IDF" in out  # the fallback is said in the UI
    assert "output-size" in out


def test_auth_option():
    import app
    assert app.parse_auth(None) is None and app.parse_auth("") is None
    assert app.parse_auth("ana:s3:cret") == ("ana", "s3:cret")
    for bad in ("ana", ":pw", "ana:"):
        with pytest.raises(SystemExit, match="user:password"):
            app.parse_auth(bad)
