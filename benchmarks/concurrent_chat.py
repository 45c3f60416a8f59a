"""Many people chatting at once: 20 simultaneous sessions through gradio_client.

    python benchmarks/concurrent_chat.py [--sessions 20] [--turns 4]

Starts `python app.py` on a free local port, opens N clients (each its own Gradio session)
in N threads, and plays a different scripted conversation in each. Checks that no answer
crosses sessions (each session's "what I know so far" panel must show its own numbers and
never another session's marker) and prints the median and p95 turn time. No asserts: the
count of crossed answers is printed (it must be 0).
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def script(i: int) -> tuple[list[str], str]:
    """A conversation whose image count (100 + i) marks session i."""
    marker = str(100 + i)
    return ([f"{marker} photos of my dog, {8 + (i % 3) * 4}GB card",
             "accuracy 4",
             "what is prior preservation?",
             "I can try 3 times"], marker)


def run_session(url: str, i: int, turns: int, out: dict) -> None:
    from gradio_client import Client
    client = Client(url, verbose=False)
    messages, marker = script(i)
    times, crossed = [], 0
    client.predict(api_name="/start")
    for msg in messages[:turns]:
        t = time.perf_counter()
        _, known, _card, _ = client.predict(msg, api_name="/send")
        times.append(time.perf_counter() - t)
        if f"| Training images | {marker} |" not in known:
            crossed += 1
    client.close()
    out[i] = (times, crossed)


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--turns", type=int, default=4)
    args = ap.parse_args()
    port = free_port()
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        # one question first, so the embedding model's load is not inside the measured turns
        run_session(url, 999, 3, {})
        results: dict[int, tuple[list[float], int]] = {}
        threads = [threading.Thread(target=run_session, args=(url, i, args.turns, results))
                   for i in range(args.sessions)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    times = [x for ts, _ in results.values() for x in ts]
    crossed = sum(c for _, c in results.values())
    print(f"\nConcurrent chat: {args.sessions} sessions x {args.turns} turns against a local app "
          f"({os.cpu_count()} CPU cores)\n")
    print("| sessions finished | turns | crossed answers | median turn s | p95 turn s | wall s |")
    print("|---|---|---|---|---|---|")
    print(f"| {len(results)}/{args.sessions} | {len(times)} | {crossed} | {statistics.median(times):.3f} | "
          f"{pct(times, 0.95):.3f} | {wall:.1f} |")


if __name__ == "__main__":
    main()
