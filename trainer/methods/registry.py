"""The registry of fine-tuning methods (peft's in miniature) and the interface each one implements.

A method decides which weights train and how they are saved and loaded back; the training
loop (trainer.loop) calls the hooks below and never branches on the method's name. Hooks, in
the order the loop calls them:

- `check_prompts(prompts)`   before any model loads: reject data the method cannot use
- `setup(components)`        make the right weights trainable; return optimizer param groups
- `place(components, device)` after the modules moved to the device (EMA copies, saved rows)
- `training_prompt(prompt)`  the text actually encoded for a training image
- `after_step(components)`   after every optimizer step
- `checkpoint_objects()`     extra state (with state_dict/load_state_dict) saved in checkpoints
- `inference_weights(components)` a context in which the modules hold the weights to sample/save
- `save(components, out_dir, info)` write the outputs; return their paths
- `load_for_inference(pipe, out_dir, config)` (classmethod) put the outputs into a base pipeline

The methods themselves live one file each beside this one; importing `trainer.methods` (which
any import of this module does first) registers them all.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterable

from ..config import TrainConfig
from ..vocabulary import METHOD_FACTS

METHODS: dict[str, type["Method"]] = {}


def register(name: str):
    """Class decorator: add a Method subclass to METHODS under `name` (once)."""
    def add(cls):
        if name in METHODS:
            raise KeyError(f"method {name!r} registered twice")
        cls.name = name
        cls.uses_captions = METHOD_FACTS[name].uses_captions  # the vocabulary says, once
        METHODS[name] = cls
        return cls
    return add


class Method:
    """Base class: the defaults are the common case (nothing extra to do)."""

    name = ""
    uses_captions = True     # set by register from trainer.vocabulary: False = every image trains with instance_prompt
    needs_base_for_output = False  # True: the output is loaded on top of the base model

    def __init__(self, config: TrainConfig):
        self.config = config

    def trains_text_encoder(self) -> bool:
        """Whether any text-encoder weight trains (then text embeddings cannot be cached)."""
        return self.config.train_text_encoder

    def parts_trained_whole(self, family) -> tuple[str, ...]:
        """The pipeline parts whose own weights train (the denoiser of a method that trains all its
        weights; the text encoders when they train at all): they load as saved, the frozen rest
        straight in the training dtype (Family.load)."""
        from ..families.base import text_encoder_names

        parts = (family.denoiser,) if METHOD_FACTS[self.name].trains_all_weights else ()
        return parts + (tuple(text_encoder_names(family.text_encoder_count)) if self.trains_text_encoder() else ())

    def check_prompts(self, prompts: list[str]) -> None:
        pass

    def setup(self, components) -> list[dict[str, Any]]:
        raise NotImplementedError

    def place(self, components, device) -> None:
        pass

    def training_prompt(self, prompt: str) -> str:
        return prompt

    def after_step(self, components) -> None:
        pass

    def checkpoint_objects(self) -> list[Any]:
        return []

    def inference_weights(self, components):
        return contextlib.nullcontext()

    def save(self, components, out_dir: Path, info: dict[str, Any]) -> list[Path]:
        raise NotImplementedError

    @classmethod
    def load_for_inference(cls, pipe, out_dir: Path, config: TrainConfig):
        raise NotImplementedError


def get_method(config: TrainConfig) -> Method:
    return METHODS[config.method](config)


def load_trained_pipeline(run_dir: str | Path, torch_dtype=None, quantize: str = "no"):
    """A pipeline with a finished run's outputs applied (from its config.json and output/).

    `torch_dtype` loads the base weights in that dtype (None: as saved), `quantize` the base's
    denoiser (trainer.models.sampling_quantize; outputs that are whole pipelines load as saved);
    place the result with `trainer.models.place_pipeline`, which casts whatever the outputs brought
    in another dtype.
    """
    from ..models import load_pipeline, resolve_base_model

    run_dir = Path(run_dir)
    config = TrainConfig.load(run_dir / "config.json")
    cls = METHODS[config.method]
    out_dir = run_dir / "output"
    if not out_dir.is_dir():
        raise FileNotFoundError(f"run '{run_dir}' has no output/ folder (did it complete?)")
    if cls.needs_base_for_output:
        pipe = load_pipeline(resolve_base_model(config.base_model), torch_dtype=torch_dtype, quantize=quantize)
        return cls.load_for_inference(pipe, out_dir, config)
    return cls.load_for_inference(None, out_dir, config)


def set_up_method(method: Method, components, device, dtype, on_cpu: Iterable[str] = ()
                  ) -> tuple[list[dict[str, Any]], list[str]]:
    """The method's weights made trainable and every module moved to `device` (those named in
    `on_cpu` to the CPU): frozen weights in `dtype`, trained ones in fp32 (SDXL's VAE stays fp32
    under fp16: it overflows, and diffusers' scripts keep it in fp32 too). Returns (optimizer param
    groups, names of the trained modules).
    Training and checkpoint scoring both set a model up this way, so a checkpoint loads into
    exactly the weights it was saved from."""
    import torch

    from ..training_utils import cast_weights

    groups = method.setup(components)
    modules = components.modules()
    fp32 = ["vae"] if components.family.vae_fp32_under_fp16 and dtype == torch.float16 else []
    cast_weights({n: m for n, m in modules.items() if n not in on_cpu}, device, dtype, fp32_modules=fp32)
    cast_weights({n: m for n, m in modules.items() if n in on_cpu}, "cpu", dtype, fp32_modules=fp32)
    trained = [n for n, m in modules.items() if any(p.requires_grad for p in m.parameters())]
    method.place(components, device)
    return groups, trained


def trainable_parameters(module) -> list[Any]:
    return [p for p in module.parameters() if p.requires_grad]
