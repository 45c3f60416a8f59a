"""A soak: people chatting and uploading while a training runs, through the app's own API.

    python benchmarks/soak.py [--chatters 20] [--uploaders 3] [--turns 4] [--train-steps N] [--quick]

Starts `python app.py` on a free local port with every folder private to this run. One user
(its own signed id, from /hello) uploads a few generated pictures and starts a LoRA training of
the built-in tiny model (CPU) with /start_training. Once it has logged 20 steps, N chatters and
M uploaders start at once, each a separate gradio_client session with its own id:

- a chatter plays a scripted conversation whose first message carries its marker
  (`soak-c007`, and an image count 100 + i), then lists its runs (/runs: it has none);
- an uploader uploads, `--turns` times, a batch of 2 + i pictures named `soak-u001-...`, reads
  its dataset back (/use_folder on its own folder) and lists its runs after each upload;
- the trainer lists its runs every few seconds (its own run only, running then completed).

Every reply is checked after the soak against every other user's markers: chat markers, file
name prefixes, browser ids and the run's id. Printed: errors (exceptions, error messages, a
reply without the user's own data), crossed data (a reply holding another user's marker), the
median and p95 time per kind of turn, the training's steps before, during and after the soak
(read from its events.jsonl) and how it ended, the CPU seconds the app, the training, these
clients and the rest of the machine used during the soak (on a small machine the clients and
the server share the cores), and tracebacks in the app's log. No asserts: errors and crossed
data must both be 0.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# what the app says when it refuses: app.NO_ID, "**Not started.**" and kin, a refused upload
ERROR_PHRASES = ("no valid id", "**Not ", "- refused ", "Traceback (most recent call last)")
RUNS_EVERY_S = 3.0       # the trainer's /runs poll, about a page timer's pace
CONNECT_TIMEOUT_S = 60   # gradio_client's default (5 s) timed out fetching the config during the soak
END_WAIT_S = 600         # how long the run may take to finish after the soak
WARM_STEPS = 20          # training steps before the soak starts: its pace alone, for comparison


@dataclass
class User:
    """One simulated browser: what it is (its markers) and what happened to it."""
    name: str                                                   # "soak-c007", "soak-u001", "soak-t000"
    markers: set[str] = field(default_factory=set)              # strings only this user's replies may hold
    times: dict[str, list[float]] = field(default_factory=dict)  # kind of turn -> seconds
    replies: list[tuple[str, str]] = field(default_factory=list)  # (kind, the reply as JSON text)
    errors: list[str] = field(default_factory=list)

    def connect(self, url: str, tmp: Path):
        """A gradio_client session (what opening the page is: the config and the API description)."""
        from gradio_client import Client

        return self._timed("connect", lambda: Client(url, verbose=False, download_files=str(tmp / "downloads"),
                                                     httpx_kwargs={"timeout": CONNECT_TIMEOUT_S}), keep=False)

    def call(self, client, kind: str, *args, api_name: str):
        """One timed request; an exception is an error and gives None."""
        return self._timed(kind, lambda: client.predict(*args, api_name=api_name))

    def _timed(self, kind: str, fn, keep: bool = True):
        started = time.perf_counter()
        try:
            out = fn()
        except Exception as e:  # noqa: BLE001 - every failure is a figure here, not a crash
            self.failed(kind, e)
            return None
        self.times.setdefault(kind, []).append(time.perf_counter() - started)
        if keep:
            text = json.dumps(out, default=str)
            self.replies.append((kind, text))
            said = [p for p in ERROR_PHRASES if p in text]
            self.expect(not said, f"{kind}: the reply says {said[0]!r}: {text[:200]}" if said else "")
        return out

    def failed(self, kind: str, e: Exception) -> None:
        try:
            where = f" ({e.request.method} {e.request.url.path})"   # httpx errors name the request
        except (AttributeError, RuntimeError):
            where = ""
        self.errors.append(f"{self.name} {kind}: {type(e).__name__}{where}: {str(e)[:200]}")

    def expect(self, ok: bool, what: str) -> None:
        if not ok:
            self.errors.append(f"{self.name}: {what}")


# --------------------------------------------------------------------------- the app
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(tmp: Path) -> tuple[subprocess.Popen, str]:
    """`python app.py` with runs, uploads, run log, cache and secret under `tmp`; its URL once it answers."""
    port = free_port()
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False",
               GRADIO_TEMP_DIR=str(tmp / "gradio"), HF_HUB_OFFLINE="1", FTA_EVAL_DOWNLOAD="0",
               FTA_EMBEDDER="none", FTA_RUNLOG=str(tmp / "runlog.sqlite"), FTA_RUNS_DIR=str(tmp / "runs"),
               FTA_UPLOADS_DIR=str(tmp / "uploads"), FTA_CACHE_DIR=str(tmp / "cache"),
               FTA_DATA_ROOTS=str(tmp / "data"))
    log = open(tmp / "app.log", "w")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(480):
        try:
            urllib.request.urlopen(url, timeout=1)
            return proc, url
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.5)
    proc.kill()
    sys.exit(f"the app did not start; its log: {tmp / 'app.log'}")


def write_images(folder: Path, prefix: str, n: int, seed: int, size: int = 256) -> list[Path]:
    """n distinct pictures `<prefix>-00.png`...: coloured blocks over a gradient, one seed each."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        rng = np.random.default_rng(seed + k)
        blocks = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).resize((size, size), Image.NEAREST)
        path = folder / f"{prefix}-{k:02d}.png"
        blocks.save(path)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- the users
def hello(user: User, c) -> str | None:
    """This browser's signed id; its bare id becomes one of the user's markers."""
    token = user.call(c, "hello", None, api_name="/hello")
    if isinstance(token, str):
        user.markers.add(token.partition(".")[0])
    user.expect(isinstance(token, str), f"/hello gave no id ({token!r})")
    return token


def list_runs(user: User, c, token: str) -> list[list]:
    """The Runs tab's table rows (run id, status, ...): the user's own runs."""
    out = user.call(c, "runs listing", "", token, api_name="/runs")
    return out[0]["data"] if out else []


def chatter(url: str, tmp: Path, user: User, i: int, turns: int) -> None:
    """A scripted conversation; the panel 'what I know so far' must show this user's own numbers."""
    c = user.connect(url, tmp)
    if c is None:
        return
    token = hello(user, c)
    count = 100 + i
    messages = [f"{count} photos of my dog {user.name}, {8 + (i % 3) * 4}GB card", "accuracy 4",
                "what is prior preservation?", "I can try 3 times"]
    user.call(c, "chat start", api_name="/start")
    for msg in messages[:turns]:
        out = user.call(c, "chat turn", msg, api_name="/send")
        if out is None:
            continue
        messages_shown, known = out[0], out[1]
        user.expect(f"| Training images | {count} |" in known and user.name in known,
                    f"chat panel lacks its own image count {count} and name after {msg!r}")
        last = messages_shown[-1] if messages_shown else {}
        user.expect(last.get("role") == "assistant" and bool(last.get("content")),
                    f"no assistant reply to {msg!r}")
    if token:
        user.expect(list_runs(user, c, token) == [], "/runs lists runs this chatter never started")
    c.close()


def uploader(url: str, tmp: Path, user: User, i: int, turns: int) -> None:
    """`turns` uploads of 2 + i pictures each; after each, the report and its own folder read back."""
    from gradio_client import handle_file

    c = user.connect(url, tmp)
    token = hello(user, c) if c is not None else None
    if not token:
        return
    batch, total, folder = 2 + i, 0, None
    for turn in range(turns):
        photos = write_images(tmp / "pictures" / user.name / str(turn), f"{user.name}-{turn}", batch,
                              seed=10_000 * (i + 1) + 100 * turn)
        # the first upload starts a dataset; the later ones add to it ("Add to the current dataset")
        out = user.call(c, "upload", [handle_file(str(p)) for p in photos], token, turn > 0, api_name="/upload")
        total += batch
        if out is None:
            continue
        report, thumbs, data_dir = out
        folder = folder or data_dir
        user.expect(f"{batch} image(s) added" in report and f"**{total} image(s)**" in report,
                    f"upload {turn}: report does not say {batch} added, {total} in all: {report[:160]!r}")
        user.expect(data_dir == folder, f"upload {turn}: dataset folder moved from {folder} to {data_dir}")
        back = user.call(c, "dataset read-back", folder, token, api_name="/use_folder")
        if back is not None:
            user.expect(f"**{total} image(s)**" in back[0], f"read-back {turn}: not {total} images: {back[0][:160]!r}")
            captions = [t.get("caption") or "" for t in back[1] or []]
            user.expect(bool(captions) and all(cap.startswith(user.name) for cap in captions),
                        f"read-back {turn}: thumbnails not all its own: {captions[:4]}")
        user.expect(list_runs(user, c, token) == [], f"upload {turn}: /runs lists runs this uploader never started")
    c.close()


def as_thread(target, url: str, tmp: Path, user: User, *args) -> threading.Thread:
    """A user's thread; whatever escapes its turns is one more error, never a silent dead thread."""
    def body():
        try:
            target(url, tmp, user, *args)
        except Exception as e:  # noqa: BLE001
            user.failed("thread", e)
    return threading.Thread(target=body, name=user.name)


def start_training(url: str, tmp: Path, user: User, steps: int):
    """The trainer's browser: an id, 4 pictures, and a LoRA run on the tiny model; (client, token, run id)."""
    from gradio_client import handle_file

    c = user.connect(url, tmp)
    if c is None:
        sys.exit(f"the trainer could not connect: {user.errors}")
    token = hello(user, c)
    photos = write_images(tmp / "pictures" / user.name, user.name, 4, seed=7)
    out = user.call(c, "upload", [handle_file(str(p)) for p in photos], token, api_name="/upload")
    if out is None:
        sys.exit(f"the trainer's upload failed: {user.errors}")
    settings = {"base_model": "tiny", "method": "lora", "data_dir": out[2], "resolution": 64,
                "max_train_steps": steps, "validation_steps": 0, "checkpointing_steps": 0,
                "score_checkpoints": "off", "instance_prompt": "a photo of sks dog"}
    message = user.call(c, "start training", json.dumps(settings), token, api_name="/start_training")
    if not (message or "").startswith("Submitted"):
        sys.exit(f"the training did not start: {message!r} {user.errors}")
    rows = list_runs(user, c, token)
    if len(rows) != 1:
        sys.exit(f"the trainer's /runs shows {len(rows)} runs, not its one: {rows}")
    user.markers.add(rows[0][0])
    return c, token, rows[0][0]


def watch_runs(user: User, c, token: str, run_id: str, stop: threading.Event) -> None:
    """The trainer's page while the others soak: its runs, its own run only."""
    while not stop.wait(RUNS_EVERY_S):
        rows = list_runs(user, c, token)
        user.expect([r[0] for r in rows] == [run_id], f"/runs shows {[r[0] for r in rows]}, not only {run_id}")


# --------------------------------------------------------------------------- the training, from its events
def steps(run_dir: Path) -> tuple[list[tuple[float, int]], str | None]:
    """(time, step) of every step event, and the end status once the run has ended."""
    from trainer.events import read_events

    events = read_events(run_dir)
    ended = [e.get("status") for e in events if e.get("kind") == "end"]
    return [(e["t"], e["step"]) for e in events if e.get("kind") == "step"], (ended[-1] if ended else None)


def step_at(rows: list[tuple[float, int]], t: float) -> int:
    return max([s for ts, s in rows if ts <= t], default=0)


def sec_per_step(rows: list[tuple[float, int]], t0: float, t1: float) -> float | None:
    """Median seconds between consecutive step events inside [t0, t1]."""
    inside = [ts for ts, _ in rows if t0 <= ts <= t1]
    gaps = [b - a for a, b in zip(inside, inside[1:])]
    return statistics.median(gaps) if gaps else None


def wait_for(check, timeout: float, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    return None


# --------------------------------------------------------------------------- where the CPU went (Linux /proc)
def cpu_now(app_pid: int, trainer_pgid: int | None) -> dict[str, float]:
    """CPU seconds used so far by the app, the training (its process group), these clients, and the
    whole machine (busy time of every core), so a reader can see whom the cores served."""
    tick = os.sysconf("SC_CLK_TCK")
    used = {"app": 0.0, "training": 0.0, "clients": time.process_time(), "machine": 0.0}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds = (int(fields[11]) + int(fields[12])) / tick   # utime + stime
        if int(stat.parent.name) == app_pid:
            used["app"] += seconds
        elif trainer_pgid is not None and int(fields[2]) == trainer_pgid:
            used["training"] += seconds
    cpu = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    used["machine"] = (sum(cpu) - cpu[3] - cpu[4]) / tick     # all but idle and iowait
    return used


def trainer_pgid(run_dir: Path) -> int | None:
    """The training's launcher starts its own session: its pid is the group's id."""
    try:
        return int(json.loads((run_dir / "job.json").read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None


def stop_leftover(run_dir: Path) -> None:
    """A training the app's stop did not reach (the app's exit leaves it running): ended by its
    process group, only while its log has no end and its command line names this run."""
    pgid = trainer_pgid(run_dir)
    try:
        if pgid is None or steps(run_dir)[1] or str(run_dir) not in Path(f"/proc/{pgid}/cmdline").read_text():
            return
        os.killpg(pgid, signal.SIGTERM)
    except OSError:
        pass


# --------------------------------------------------------------------------- figures
def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def crossed(users: list[User]) -> list[str]:
    """Every reply of every user that holds a marker of another user."""
    found = []
    for user in users:
        foreign = {m: other.name for other in users if other is not user for m in other.markers}
        for kind, text in user.replies:
            for marker, owner in foreign.items():
                if marker in text:
                    found.append(f"{user.name} {kind} holds {owner}'s {marker!r}")
    return found


def app_tracebacks(log: Path) -> list[str]:
    text = log.read_text(errors="replace") if log.exists() else ""
    return [block.strip()[-400:] for block in re.split(r"(?=Traceback \(most recent call last\))", text)[1:]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chatters", type=int, default=20)
    ap.add_argument("--uploaders", type=int, default=3)
    ap.add_argument("--turns", type=int, default=4, help="chat turns per chatter, uploads per uploader")
    ap.add_argument("--train-steps", type=int, default=None,
                    help="the tiny run's length (default 800, --quick 300): enough to outlast the soak here")
    ap.add_argument("--quick", action="store_true", help="5 chatters, 2 uploaders, 2 turns (a smoke run)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (app log, runs, uploads)")
    args = ap.parse_args()
    if args.quick:
        args.chatters, args.uploaders, args.turns = 5, 2, 2
    train_steps = args.train_steps or (300 if args.quick else 800)

    tmp = Path(tempfile.mkdtemp(prefix="fta-soak-"))
    proc, url = start_app(tmp)
    trainer = User("soak-t000", {"soak-t000"})
    chatters = [User(f"soak-c{i:03d}", {f"soak-c{i:03d}"}) for i in range(args.chatters)]
    uploaders = [User(f"soak-u{i:03d}", {f"soak-u{i:03d}"}) for i in range(args.uploaders)]
    tc = None
    try:
        warm = User("warm-up")   # the knowledge search's first load stays out of the measured turns
        chatter(url, tmp, warm, 999, 3)
        tc, token, run_id = start_training(url, tmp, trainer, train_steps)
        run_dir = tmp / "runs" / run_id
        if not wait_for(lambda: step_at(steps(run_dir)[0], time.time()) >= WARM_STEPS, timeout=300):
            sys.exit(f"the training did not reach step {WARM_STEPS} within 300 s; see {run_dir}/train.log")

        stop = threading.Event()
        threads = [as_thread(chatter, url, tmp, u, i, args.turns) for i, u in enumerate(chatters)]
        threads += [as_thread(uploader, url, tmp, u, i, args.turns) for i, u in enumerate(uploaders)]
        watcher = threading.Thread(target=watch_runs, args=(trainer, tc, token, run_id, stop))
        pgid = trainer_pgid(run_dir)
        cpu_start = cpu_now(proc.pid, pgid)
        soak_start = time.time()
        watcher.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        soak_end = time.time()
        cpu_used = {k: v - cpu_start[k] for k, v in cpu_now(proc.pid, pgid).items()}
        stop.set()
        watcher.join()

        ended = wait_for(lambda: steps(run_dir)[1], timeout=END_WAIT_S, every=1.0)
        end_time = time.time()
        rows, _ = steps(run_dir)
        final = list_runs(trainer, tc, token)
        trainer.expect([r[:2] for r in final] == [[run_id, ended or "running"]],
                       f"after the run: /runs shows {[r[:2] for r in final]}")
        if not ended:
            tc.predict(token, api_name="/stop_training")
            wait_for(lambda: steps(run_dir)[1], timeout=60)
    finally:
        if tc is not None:
            tc.close()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        for job in (tmp / "runs").glob("*/job.json"):
            stop_leftover(job.parent)

    users = [trainer, *chatters, *uploaders]
    errors = [e for u in users for e in u.errors]
    crossings = crossed(users)
    tracebacks = app_tracebacks(tmp / "app.log")
    times: dict[str, list[float]] = {}
    for u in chatters + uploaders:
        for kind, ts in u.times.items():
            times.setdefault(kind, []).extend(ts)
    turns = times.get("chat turn", []) + times.get("upload", []) + times.get("dataset read-back", [])

    print(f"\nSoak: {args.chatters} chatters x {args.turns} turns and {args.uploaders} uploaders x {args.turns} "
          f"uploads while a tiny-model LoRA trains ({os.cpu_count()} CPU cores)\n")
    print(f"errors: {len(errors)}")
    print(f"crossed data: {len(crossings)}")
    if turns:
        print(f"turn time: median {statistics.median(turns):.3f} s, p95 {pct(turns, 0.95):.3f} s "
              f"(chat turns, uploads and read-backs)")
    done = len(times.get("chat turn", [])), len(times.get("upload", []))
    print(f"turns done: {done[0]} of {args.chatters * args.turns} chat turns, {done[1]} of "
          f"{args.uploaders * args.turns} uploads")
    wall = soak_end - soak_start
    others = cpu_used["machine"] - cpu_used["app"] - cpu_used["training"] - cpu_used["clients"]
    print(f"soak wall: {wall:.1f} s; CPU seconds in it: app {cpu_used['app']:.0f}, training "
          f"{cpu_used['training']:.0f}, these clients {cpu_used['clients']:.0f}, other work on the machine "
          f"{max(0.0, others):.0f} (of {wall * (os.cpu_count() or 1):.0f} available)\n")
    print("| kind | count | median s | p95 s | max s |")
    print("|---|---|---|---|---|")
    for kind in ("chat turn", "upload", "dataset read-back", "runs listing", "connect", "hello", "chat start"):
        ts = times.get(kind, [])
        if ts:
            print(f"| {kind} | {len(ts)} | {statistics.median(ts):.3f} | {pct(ts, 0.95):.3f} | {max(ts):.3f} |")
    at_start, at_end = step_at(rows, soak_start), step_at(rows, soak_end)
    before = sec_per_step(rows, 0, soak_start)
    during = sec_per_step(rows, soak_start, soak_end)
    after = sec_per_step(rows, soak_end, end_time)
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    print(f"\ntraining: {train_steps} steps asked; step {at_start} when the soak began, {at_end} when it ended "
          f"({at_end - at_start} steps during the soak); s/step median before {fmt(before)}, during {fmt(during)}, "
          f"after {fmt(after)}")
    last_t, last_step = rows[-1]
    kept_going = at_end > at_start and last_t >= soak_end
    print(f"training kept going through the soak: {'yes' if kept_going else 'no'}")
    if ended is None:
        print(f"training ended: no, still at step {last_step} {END_WAIT_S} s after the soak (stopped)")
    elif last_t >= soak_end:
        print(f"training ended: {ended} at step {last_step}, {last_t - soak_end:.0f} s after the soak")
    else:
        print(f"training ended: {ended} at step {last_step}, {soak_end - last_t:.0f} s BEFORE the soak ended "
              f"(more --train-steps)")
    print(f"tracebacks in the app log: {len(tracebacks)}")
    for line in (errors[:10] + crossings[:10] + tracebacks[:3]):
        print(f"  - {line}")
    if args.keep:
        print(f"\nkept: {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
