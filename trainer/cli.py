"""`python -m trainer ...`: make the tiny model, or train one run from a config file.

    python -m trainer make-tiny-model OUT_DIR [--arch sd15|sdxl|sd3|flux|flux2|zimage|qwenimage]
    python -m trainer make-demo-model OUT_DIR
    python -m trainer make-real-architecture OUT_DIR --base flux1dev [--device cuda] [--dtype bf16] [--layers N]
    python -m trainer train --config CONFIG.json|.toml [--resume latest|CHECKPOINT] [key=value ...]
    python -m trainer evaluate RUN_DIR [--encoders clip=PATH_OR_NAME,dino=PATH_OR_NAME] [--num-images N] [--steps N]
    python -m trainer score-checkpoints RUN_DIR [--encoders ...] [--num-images N] [--steps N]
    python -m trainer export-checkpoint RUN_DIR [STEP] [--weights accuracy=3,flexibility=2,preservation=5]

Also runs under `accelerate launch -m trainer train ...`. Bad input ends with one line on
stderr ("error: ...") and a non-zero exit, never a traceback. Exit codes:
0 completed, or stopped by SIGINT/SIGTERM after saving a checkpoint (events say which);
1 training failed (traceback in <run>/error.log); 2 bad input (arguments, config, data, model).
"""
from __future__ import annotations

import argparse
import os
import sys

from .real_architectures import REAL_BASES
from .tiny import ARCHS as TINY_ARCHS

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints usage + error; we promise one line
        print(f"error: {message} (see: python -m trainer {self.prog.split()[-1]} --help)", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="trainer", description="Fine-tune SD 1.x/2.x, SDXL, SD 3.5 and Flux.1: LoRA, "
                     "DreamBooth, DreamBooth-LoRA, textual inversion, full fine-tune.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    tiny = sub.add_parser("make-tiny-model", help="write a tiny random pipeline (tests, demos; no download)")
    tiny.add_argument("out_dir", help="new or empty folder")
    tiny.add_argument("--arch", default="sd15", choices=TINY_ARCHS, help="the model family's layout")
    demo = sub.add_parser("make-demo-model", help="write the shapes demo model: small, pretrained, it draws "
                          "'a red circle on a blue background' (no download)")
    demo.add_argument("out_dir", help="new or empty folder")
    real = sub.add_parser("make-real-architecture", help="write a planned base model's released architecture with "
                          "random weights (the same memory and time as the real weights; no download)")
    real.add_argument("out_dir", help="new or empty folder")
    real.add_argument("--base", required=True, choices=list(REAL_BASES), help="the advisor's base model")
    real.add_argument("--device", default=None, help="where the weights are made (default: cuda when present)")
    real.add_argument("--dtype", default="bf16", choices=("bf16", "fp16", "fp32"), help="as saved (default bf16)")
    real.add_argument("--layers", type=int, default=None,
                      help="cut every stack of layers to N (a CPU-sized copy; not the real memory and time)")
    train = sub.add_parser("train", help="train one run from a config file")
    train.add_argument("--config", required=True, help="TrainConfig as .json or .toml")
    train.add_argument("--resume", default=None, help="'latest' or a checkpoint folder")
    train.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. rank=16")
    evaluate = sub.add_parser("evaluate", help="score a finished run; writes RUN_DIR/metrics.json and eval/")
    evaluate.add_argument("run_dir", help="a completed run folder")
    _scoring_options(evaluate)
    scores = sub.add_parser("score-checkpoints", help="score every checkpoint of a run on the three factors; "
                            "writes RUN_DIR/checkpoint_scores.json and eval/checkpoints/")
    scores.add_argument("run_dir", help="a run folder with checkpoints")
    _scoring_options(scores)
    export = sub.add_parser("export-checkpoint", help="export a checkpoint in the method's output formats and "
                            "record it as the one kept")
    export.add_argument("run_dir", help="a run folder with checkpoints")
    export.add_argument("step", nargs="?", type=int, default=None,
                        help="the checkpoint's step (default: the best by --weights, from its scores)")
    export.add_argument("--weights", default="", help="how much each factor matters, e.g. "
                        "accuracy=5,flexibility=3,preservation=1 (default: equal)")
    return parser


def _scoring_options(parser: argparse.ArgumentParser) -> None:
    """What `evaluate` and `score-checkpoints` share: the encoders, seeds and denoising steps."""
    parser.add_argument("--encoders", default="", help="clip=NAME_OR_PATH,dino=NAME_OR_PATH ('none' turns one off)")
    parser.add_argument("--num-images", type=int, default=None, help="seeds per prompt (default 2)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default 25; 10 at <= 128 px)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "make-tiny-model":
        return _make_tiny(args)
    if args.command == "make-demo-model":
        return _make_demo(args)
    if args.command == "make-real-architecture":
        return _make_real(args)
    if args.command == "evaluate":
        return _evaluate(args)
    if args.command == "score-checkpoints":
        return _score_checkpoints(args)
    if args.command == "export-checkpoint":
        return _export_checkpoint(args)
    return _train(args)


def _make_tiny(args) -> int:
    from .tiny import make_tiny_model

    try:
        out = make_tiny_model(args.out_dir, arch=args.arch)
    except (ValueError, OSError) as e:
        return _fail(e, EXIT_BAD_INPUT)
    print(out)
    return EXIT_OK


def _make_real(args) -> int:
    import torch

    from .real_architectures import make_real_architecture

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    try:
        out = make_real_architecture(args.out_dir, args.base, layers=args.layers, device=device, dtype=dtype)
    except (ValueError, OSError) as e:
        return _fail(e, EXIT_BAD_INPUT)
    print(out)
    return EXIT_OK


def _make_demo(args) -> int:
    from .shapes.demo_model import make_demo_model

    try:
        out = make_demo_model(args.out_dir)
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
    from .families.base import ModelError

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


def _score_checkpoints(args) -> int:
    from .checkpoint_eval import score_saved_checkpoints
    from .checkpoint_scores import CHECKPOINT_SCORES_FILE
    from .encoders import parse_encoder_specs

    try:
        specs = parse_encoder_specs(args.encoders)
        if args.num_images is not None and args.num_images < 1 or args.steps is not None and args.steps < 1:
            raise ValueError("--num-images and --steps must be integers >= 1")
        scored = score_saved_checkpoints(args.run_dir, clip=specs.get("clip"), dino=specs.get("dino"),
                                         num_images=args.num_images, steps=args.steps,
                                         status=lambda m: print(m, file=sys.stderr))
    except ValueError as e:  # EvalError, ConfigError, bad --encoders
        return _fail(e, EXIT_BAD_INPUT)
    except Exception as e:
        return _fail(e, EXIT_FAILED)
    for s in scored:
        print(f"step {s.step}: " + ", ".join(f"{f} {v}" for f, v in s.scores.items()))
    print(f"scores: {args.run_dir.rstrip('/')}/{CHECKPOINT_SCORES_FILE}")
    return EXIT_OK


def parse_weights(text: str) -> dict[str, float]:
    """"accuracy=5,preservation=1" -> {"accuracy": 5.0, "preservation": 1.0}; ValueError otherwise."""
    from .vocabulary import FACTORS

    weights: dict[str, float] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = item.partition("=")
        if name.strip() not in FACTORS:
            raise ValueError(f"--weights: {name.strip()!r} is not one of {', '.join(FACTORS)}")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--weights: {item!r} needs a number, e.g. {name.strip()}=3") from None
        if not 0 <= weights[name.strip()] <= 100:
            raise ValueError(f"--weights: {item!r} must be from 0 to 100")
    return weights


def _export_checkpoint(args) -> int:
    from .checkpoint_eval import export_checkpoint
    from .checkpoint_scores import choose_checkpoint, read_checkpoint_scores

    try:
        weights = parse_weights(args.weights)
        step = args.step
        if step is None:
            choice = choose_checkpoint(read_checkpoint_scores(args.run_dir)[0], weights)
            if choice is None:
                raise ValueError(f"'{args.run_dir}' has no checkpoint scores; give a STEP or run score-checkpoints")
            print(choice.reason, file=sys.stderr)
            step = choice.step
        kept = export_checkpoint(args.run_dir, step, weights)
    except ValueError as e:
        return _fail(e, EXIT_BAD_INPUT)
    except Exception as e:
        return _fail(e, EXIT_FAILED)
    for path in kept.outputs:
        print(f"{args.run_dir.rstrip('/')}/{path}")
    return EXIT_OK


def _fail(error: BaseException, code: int, hint: str = "") -> int:
    from .events import error_line

    print(f"error: {error_line(error)}{hint}", file=sys.stderr)
    return code
