"""Tiny SD 3.5 and Flux.1 pipelines built offline from configs: they save as diffusers folders,
load back with diffusers' own classes, and draw what the prompt says through every text
encoder, T5 included (training them: test_families.py)."""
import numpy as np
import pytest

from trainer.cli import EXIT_BAD_INPUT, main
from trainer.tiny import make_tiny_model, make_tiny_t5_tokenizer


def _draw(pipe, prompt, **kw):
    import torch

    image = pipe(prompt=prompt, num_inference_steps=2, height=64, width=64, max_sequence_length=32,
                 generator=torch.Generator().manual_seed(0), **kw).images[0]
    return np.asarray(image, dtype=np.float32)


def test_the_t5_tokenizer_is_learned_here_and_ends_every_prompt_with_eos():
    tok = make_tiny_t5_tokenizer()
    a, b = tok("a photo of a dog").input_ids, tok("a watercolor painting of a zebra").input_ids
    assert a[-1] == b[-1] == tok.eos_token_id == 1 and tok.pad_token_id == 0
    assert a != b and tok.unk_token_id not in a
    assert len(tok("word " * 100, truncation=True).input_ids) == 32


@pytest.mark.parametrize("arch, pipeline", [("sd3", "StableDiffusion3Pipeline"), ("flux", "FluxPipeline"),
                                            ("flux2", "Flux2KleinPipeline"), ("zimage", "ZImagePipeline"),
                                            ("qwenimage", "QwenImagePipeline")])
def test_cli_writes_a_pipeline_that_loads_back_and_follows_the_prompt(arch, pipeline, tmp_path, capsys):
    from diffusers import DiffusionPipeline

    out = tmp_path / arch
    assert main(["make-tiny-model", str(out), "--arch", arch]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    pipe = DiffusionPipeline.from_pretrained(out, local_files_only=True, use_safetensors=True)
    assert type(pipe).__name__ == pipeline
    dog, again, cat = _draw(pipe, "a photo of a dog"), _draw(pipe, "a photo of a dog"), _draw(pipe, "a red car on the road")
    assert dog.shape == (64, 64, 3) and np.array_equal(dog, again)
    assert np.abs(dog - cat).mean() > 0.5          # the prompt reaches the image
    assert main(["make-tiny-model", str(out), "--arch", arch]) == EXIT_BAD_INPUT    # never over a model


def test_an_unknown_arch_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="pick one of"):
        make_tiny_model(tmp_path / "x", "hidream")
    assert not (tmp_path / "x").exists()


def test_the_tiny_qwen_tokenizer_has_the_chat_template_klein_encodes_through():
    from trainer.tiny import make_tiny_qwen_tokenizer

    tok = make_tiny_qwen_tokenizer()
    text = tok.apply_chat_template([{"role": "user", "content": "a photo of a dog"}], tokenize=False,
                                   add_generation_prompt=True)
    assert text == "<|im_start|>user\na photo of a dog<|im_end|>\n<|im_start|>assistant\n"
    ids = tok(text).input_ids
    assert ids[0] == tok.convert_tokens_to_ids("<|im_start|>") and tok.decode(ids) == text
    assert tok("a photo of a dog").input_ids != tok("a watercolor painting of a zebra").input_ids
