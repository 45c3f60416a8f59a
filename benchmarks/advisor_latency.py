"""How fast the advisor answers: a chat turn against the time of one sentence embedding.

    python benchmarks/advisor_latency.py [--turns 200]

Prints, as a Markdown table: the median and p95 of a chat turn after warm-up (interview
parse + recommendation when ready), of a knowledge question (retrieval), and of one
embedding of the same message with all-MiniLM-L6-v2 (the floor a semantic chat turn cannot
beat); the ratio turn / embedding (target: at most 2x, issue 11); and the time from starting
`python app.py` to its first page served. No asserts: it reports.
"""
from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

MESSAGES = [
    "30 pictures of my cat, 12GB card, I want it in all kinds of scenes",
    "actually I have 8GB",
    "must look exactly like her, but I don't care if it forgets landscapes",
    "I have an RTX 4090 and two hours, SDXL please",
    "my watercolor paintings as a style, 200 captioned images",
    "accuracy 5, preservation 2",
]
QUESTIONS = ["what is prior preservation?", "how many images do I need?", "will it fit on 8GB?"]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def time_turns(n: int) -> list[float]:
    from advisor import chat

    def no_questions(q):
        return "", []
    session, _ = chat.new_session()
    for m in MESSAGES:  # warm-up: imports, rule tables, first recommendation
        session, _ = chat.send(session, m, answer_question=no_questions)
    times = []
    for i in range(n):
        session, _ = chat.new_session()
        msg = MESSAGES[i % len(MESSAGES)]
        session, _ = chat.send(session, MESSAGES[0], answer_question=no_questions)
        t = time.perf_counter()
        chat.send(session, msg, answer_question=no_questions)
        times.append(time.perf_counter() - t)
    return times


def time_questions(n: int) -> tuple[list[float], str]:
    from advisor import chat
    retriever = chat.knowledge_retriever()
    chat.answer_from_knowledge(QUESTIONS[0])
    times = []
    for i in range(n):
        t = time.perf_counter()
        chat.answer_from_knowledge(QUESTIONS[i % len(QUESTIONS)])
        times.append(time.perf_counter() - t)
    return times, retriever.backend


def time_embedding(n: int) -> list[float] | None:
    from advisor.knowledge.retrieval import load_embedder
    embedder, reason = load_embedder()
    if embedder is None:
        print(f"(no embedding model: {reason})")
        return None
    embedder.encode([MESSAGES[0]])
    times = []
    for i in range(n):
        t = time.perf_counter()
        embedder.encode([MESSAGES[i % len(MESSAGES)]])
        times.append(time.perf_counter() - t)
    return times


def time_app_start() -> float:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port))
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - t < 180:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).read()
                return time.perf_counter() - t
            except OSError:
                time.sleep(0.05)
        return float("nan")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--turns", type=int, default=200)
    ap.add_argument("--no-app", action="store_true", help="skip the app start-up measurement")
    args = ap.parse_args()

    turns = time_turns(args.turns)
    questions, backend = time_questions(max(20, args.turns // 5))
    emb = time_embedding(args.turns)
    ms = lambda x: f"{x * 1000:.2f}"  # noqa: E731
    print(f"\nAdvisor latency on {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPU cores, Python {platform.python_version()}\n")
    print("| what | median ms | p95 ms | n |")
    print("|---|---|---|---|")
    print(f"| chat turn (interview + recommendation) | {ms(statistics.median(turns))} | {ms(pct(turns, .95))} | {len(turns)} |")
    print(f"| knowledge question ({backend}) | {ms(statistics.median(questions))} | {ms(pct(questions, .95))} | {len(questions)} |")
    if emb:
        print(f"| one embedding of the message (floor) | {ms(statistics.median(emb))} | {ms(pct(emb, .95))} | {len(emb)} |")
        ratio = statistics.median(turns) / statistics.median(emb)
        print(f"\nchat turn / one embedding (medians): {ratio:.2f}x (target: at most 2x)")
    if not args.no_app:
        print(f"app start to first page served: {time_app_start():.2f} s")


if __name__ == "__main__":
    main()
