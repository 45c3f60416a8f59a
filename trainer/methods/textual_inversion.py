"""Textual inversion (Gal et al. 2022): new token(s) whose embedding is the only thing that
trains; the UNet and the rest of the text encoder stay frozen.

`num_vectors` > 1 adds `<tok>`, `<tok>_1`, ... (diffusers' multi-vector convention) and every
`<tok>` in a training prompt is expanded to all of them. The new rows start from
`initializer_token`'s embedding. The optimizer sees the whole embedding matrix (one tensor), so
after each step every other row is put back: weight decay must not drift the vocabulary.
On SDXL both text encoders get the token, as in diffusers' SDXL script.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import ConfigError
from .registry import Method, register


@register("textual_inversion")
class TextualInversion(Method):
    needs_base_for_output = True

    def __init__(self, config):
        super().__init__(config)
        self.token_ids: list[list[int]] = []   # per text encoder: ids of the new tokens
        self._originals: list[Any] = []        # per text encoder: embedding matrix before training

    def trains_text_encoder(self) -> bool:
        return True  # the embedding lives in the text encoder: its outputs change every step

    @property
    def tokens(self) -> list[str]:
        p = self.config.placeholder_token
        return [p] + [f"{p}_{i}" for i in range(1, self.config.num_vectors)]

    def check_prompts(self, prompts: list[str]) -> None:
        token = self.config.placeholder_token
        missing = [p for p in prompts if token not in p]
        if missing:
            raise ConfigError(f"textual_inversion: {len(missing)} of {len(prompts)} training prompts lack "
                              f"placeholder_token {token!r} (e.g. {missing[0]!r}); put {token!r} in "
                              "instance_prompt and in any captions")

    def setup(self, components) -> list[dict[str, Any]]:
        cfg = self.config
        params = []
        for tok, te in zip(components.tokenizers, components.text_encoders):
            init = tok.encode(cfg.initializer_token, add_special_tokens=False)
            if len(init) != 1:
                raise ConfigError(f"initializer_token={cfg.initializer_token!r} is {len(init)} tokens for this "
                                  "model's tokenizer; pick a word that is a single token (e.g. 'dog', 'person')")
            if tok.add_tokens(self.tokens) != len(self.tokens):
                raise ConfigError(f"placeholder_token={cfg.placeholder_token!r} is already a token of this model; "
                                  "pick a new one, e.g. '<my-thing>'")
            ids = tok.convert_tokens_to_ids(self.tokens)
            te.resize_token_embeddings(len(tok), mean_resizing=False)  # the new rows are set below
            weight = te.get_input_embeddings().weight
            with _no_grad():
                weight[ids] = weight[init[0]].clone()
            weight.requires_grad_(True)
            self.token_ids.append(ids)
            params.append(weight)
        return [{"params": params, "lr": cfg.learning_rate}]

    def place(self, components, device) -> None:
        self._originals = [te.get_input_embeddings().weight.detach().clone() for te in components.text_encoders]

    def training_prompt(self, prompt: str) -> str:
        return prompt.replace(self.config.placeholder_token, " ".join(self.tokens))

    def after_step(self, components) -> None:
        with _no_grad():
            for te, ids, original in zip(components.text_encoders, self.token_ids, self._originals):
                weight = te.get_input_embeddings().weight
                keep = _mask_except(weight.shape[0], ids, weight.device)
                weight[keep] = original[keep].to(weight.dtype)

    def learned_embeddings(self, components) -> list[Any]:
        return [te.get_input_embeddings().weight[ids].detach()
                for te, ids in zip(components.text_encoders, self.token_ids)]

    def save(self, components, out_dir: Path, info: dict[str, Any]) -> list[Path]:
        from ..export import save_textual_inversion

        return save_textual_inversion(out_dir, token=self.config.placeholder_token,
                                      embeddings=self.learned_embeddings(components))

    @classmethod
    def load_for_inference(cls, pipe, out_dir: Path, config):
        from safetensors.torch import load_file

        from ..export import TI_WEIGHTS

        path = out_dir / TI_WEIGHTS
        token = config.placeholder_token
        if getattr(pipe, "text_encoder_2", None) is None:
            pipe.load_textual_inversion(str(path), token=token)
            return pipe
        state = load_file(str(path))
        pipe.load_textual_inversion(state["clip_l"], token=token, text_encoder=pipe.text_encoder,
                                    tokenizer=pipe.tokenizer)
        pipe.load_textual_inversion(state["clip_g"], token=token, text_encoder=pipe.text_encoder_2,
                                    tokenizer=pipe.tokenizer_2)
        return pipe


def _no_grad():
    import torch

    return torch.no_grad()


def _mask_except(n: int, ids: list[int], device):
    import torch

    keep = torch.ones(n, dtype=torch.bool, device=device)
    keep[ids] = False
    return keep
