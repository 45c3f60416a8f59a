"""`python -m trainer ...`: make the tiny model, or train one run from a config file.

    python -m trainer make-tiny-model OUT_DIR [--arch sd15|sdxl]
    python -m trainer train --config CONFIG.json|.toml [--resume latest|CHECKPOINT] [key=value ...]
    python -m trainer evaluate RUN_DIR [--encoders clip=PATH_OR_NAME,dino=PATH_OR_NAME] [--num-images N] [--steps N]

Also runs under `accelerate launch -m trainer train ...`. Bad input ends with one line on
stderr ("error: ...") and a non-zero exit, never a traceback. Exit codes:
0 completed, or stopped by SIGINT/SIGTERM after saving a checkpoint (events say which);
1 training failed (traceback in <run>/error.log); 2 bad input (arguments, config, data, model).
"""
from __future__ import annotations

import argparse
import os
import sys

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints usage + error; we promise one line
        print(f"error: {message} (see: python -m trainer {self.prog.split()[-1]} --help)", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="trainer", description="Fine-tune Stable Diffusion: LoRA, DreamBooth, "
                     "DreamBooth-LoRA, textual inversion, full fine-tune.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    tiny = sub.add_parser("make-tiny-model", help="write a tiny random SD pipeline (tests, demos; no download)")
    tiny.add_argument("out_dir", help="new or empty folder")
    tiny.add_argument("--arch", default="sd15", choices=["sd15", "sdxl"])
    train = sub.add_parser("train", help="train one run from a config file")
    train.add_argument("--config", required=True, help="TrainConfig as .json or .toml")
    train.add_argument("--resume", default=None, help="'latest' or a checkpoint folder")
    train.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. rank=16")
    evaluate = sub.add_parser("evaluate", help="score a finished run; writes RUN_DIR/metrics.json and eval/")
    evaluate.add_argument("run_dir", help="a completed run folder")
    evaluate.add_argument("--encoders", default="", help="clip=NAME_OR_PATH,dino=NAME_OR_PATH ('none' turns one off)")
    evaluate.add_argument("--num-images", type=int, default=None, help="seeds per prompt (default 2)")
    evaluate.add_argument("--steps", type=int, default=None, help="denoising steps (default 25; 10 at <= 128 px)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "make-tiny-model":
        return _make_tiny(args)
    if args.command == "evaluate":
        return _evaluate(args)
    return _train(args)


def _make_tiny(args) -> int:
    from .tiny import make_tiny_model

    try:
        out = make_tiny_model(args.out_dir, arch=args.arch)
    except (ValueError, OSError) as e:
        return _fail(e, EXIT_BAD_INPUT)
    print(out)
    return EXIT_OK


def _train(args) -> int:
    from .config import ConfigError, TrainConfig

    try:
        config = TrainConfig.load(args.config).with_overrides(args.overrides)
    except ConfigError as e:
        return _fail(e, EXIT_BAD_INPUT)
    from .data import DataError
    from .loop import train
    from .models import ModelError

    try:
        status = train(config, resume=args.resume, progress=not args.no_progress)
    except (ConfigError, DataError, ModelError) as e:
        return _fail(e, EXIT_BAD_INPUT)
    except Exception as e:  # recorded in the run folder; the terminal gets one line
        return _fail(e, EXIT_FAILED, hint=f" (traceback in {config.output_dir}/error.log)")
    except KeyboardInterrupt as e:
        return _fail(e, EXIT_FAILED)
    print(f"{status}: {config.output_dir}", file=sys.stderr)
    if status == "completed" and config.evaluate_after_training and os.environ.get("RANK", "0") == "0":
        _say_scores(config.output_dir)
    return EXIT_OK


def _say_scores(run_dir: str) -> None:
    """One line on the terminal from the `eval` event `train` wrote after scoring the run."""
    from .events import last_event, read_events

    scored = last_event(read_events(run_dir), "eval") or {}
    if "error" in scored or not isinstance(scored.get("metrics"), dict):
        print(f"warning: evaluation failed: {scored.get('error', 'no eval event')}", file=sys.stderr)
        return
    print("scored: " + ", ".join(f"{f} {s}" for f, s in scored["metrics"].items()), file=sys.stderr)


def _evaluate(args) -> int:
    from .encoders import parse_encoder_specs
    from .evaluate import DEFAULT_NUM_IMAGES, evaluate_run
    from .metrics import METRICS_FILE

    try:
        specs = parse_encoder_specs(args.encoders)
        metrics = evaluate_run(args.run_dir, clip=specs.get("clip"), dino=specs.get("dino"),
                               num_images=DEFAULT_NUM_IMAGES if args.num_images is None else args.num_images,
                               steps=args.steps)
    except ValueError as e:  # EvalError, bad --encoders, a broken config or data folder
        return _fail(e, EXIT_BAD_INPUT)
    except Exception as e:
        return _fail(e, EXIT_FAILED)
    scores = ", ".join(f"{f} {metrics[f]['score']}" for f in ("accuracy", "flexibility", "preservation"))
    print(f"{scores}: {args.run_dir.rstrip('/')}/{METRICS_FILE}")
    return EXIT_OK


def _fail(error: BaseException, code: int, hint: str = "") -> int:
    from .events import error_line

    print(f"error: {error_line(error)}{hint}", file=sys.stderr)
    return code
