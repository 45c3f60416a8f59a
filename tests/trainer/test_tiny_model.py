"""The built-in tiny model: builds offline, reloads through from_pretrained, generates, is deterministic."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from helpers import build_tiny_model
from trainer.tiny import (TINY_RESOLUTION, build_clip_vocab, ensure_tiny_model, learn_bpe_merges,
                          make_tiny_model, make_tiny_tokenizer, resolve_tiny)


def _weight_hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.safetensors"))}


def _generate(pipe, prompt: str = "a photo of sks dog", seed: int = 0) -> np.ndarray:
    import torch

    pipe.set_progress_bar_config(disable=True)
    return pipe(prompt, num_inference_steps=2, generator=torch.Generator().manual_seed(seed),
                output_type="np").images


@pytest.fixture(scope="module")
def sd15_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "sd15")


@pytest.fixture(scope="module")
def sd15_pipe(sd15_dir):
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline.from_pretrained(sd15_dir, local_files_only=True)


class TestTokenizer:
    def test_different_prompts_give_different_ids(self):
        tok = make_tiny_tokenizer()
        a = tok("a photo of sks dog").input_ids
        b = tok("a cat").input_ids
        assert a != b
        # every word of these prompts is a learned token: no byte soup, no <unk>
        assert tok.convert_ids_to_tokens(a)[1:-1] == ["a</w>", "photo</w>", "of</w>", "sks</w>", "dog</w>"]

    def test_unseen_text_falls_back_to_bytes_and_stays_distinct(self):
        tok = make_tiny_tokenizer()
        ids = {tuple(tok(p).input_ids) for p in ["zqx", "zqy", "日本", "ünï", "a  photo"]}
        assert len(ids) == 5
        assert tok("日本").input_ids[1:-1]  # non-ASCII is encoded, not dropped

    def test_specials_and_length(self):
        tok = make_tiny_tokenizer()
        assert len(tok) == 1000
        assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (998, 999, 999)
        ids = tok("a cat", padding="max_length", max_length=tok.model_max_length).input_ids
        assert tok.model_max_length == 77 and len(ids) == 77
        content = tok("a cat", add_special_tokens=False).input_ids
        assert ids[:len(content) + 2] == [998, *content, 999]
        assert set(ids[len(content) + 2:]) == {999}  # padded with <|endoftext|>, as SD 1.x expects
        assert make_tiny_tokenizer(pad_token="!").pad_token_id == 0

    def test_bpe_learner_merges_most_frequent_pair_first(self):
        merges = learn_bpe_merges("ab ab ab cd", 2)
        assert merges[0] == ("a", "b</w>")
        assert learn_bpe_merges("ab ab", 50) == [("a", "b</w>")]  # stops when nothing is left to merge
        vocab, merges = build_clip_vocab()
        assert len(vocab) == 514 + len(merges)
        assert sorted(vocab.values()) == list(range(len(vocab)))


class TestSD15:
    def test_folder_layout(self, sd15_dir):
        for sub in ("model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json",
                    "tokenizer", "scheduler/scheduler_config.json"):
            assert (sd15_dir / sub).exists(), sub
        assert len(_weight_hashes(sd15_dir)) == 3
        assert not list(sd15_dir.rglob("*.bin"))  # safetensors only

    def test_reload_and_generate(self, sd15_pipe):
        images = _generate(sd15_pipe)
        assert images.shape == (1, TINY_RESOLUTION, TINY_RESOLUTION, 3)
        assert np.isfinite(images).all() and images.std() > 0.01
        assert sd15_pipe.vae_scale_factor == 2 and sd15_pipe.unet.config.sample_size == 32

    def test_prompt_changes_image(self, sd15_pipe):
        assert np.abs(_generate(sd15_pipe, "a photo of sks dog") - _generate(sd15_pipe, "a cat")).mean() > 1e-3

    def test_text_encoder_pools_at_eos(self, sd15_pipe):
        import torch

        tok, te = sd15_pipe.tokenizer, sd15_pipe.text_encoder
        ids = tok(["a cat", "a photo of sks dog"], padding="max_length", max_length=77, return_tensors="pt").input_ids
        with torch.no_grad():
            out = te(ids)
        eos_pos = [row.tolist().index(tok.eos_token_id) for row in ids]
        for b, pos in enumerate(eos_pos):
            assert torch.allclose(out.pooler_output[b], out.last_hidden_state[b, pos])

    def test_lora_targets_exist_and_weights_change_images(self, sd15_dir):
        import torch
        from diffusers import StableDiffusionPipeline

        from peft import LoraConfig

        pipe = StableDiffusionPipeline.from_pretrained(sd15_dir, local_files_only=True)
        before = _generate(pipe)
        pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian",
                                         target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
        lora = [n for n, p in pipe.unet.named_parameters() if p.requires_grad and "lora_" in n]
        assert len(lora) == 2 * 4 * 2 * 4  # (A, B) x 4 targets x 2 attentions x 4 transformer blocks
        assert np.allclose(_generate(pipe), before)  # B starts at zero: a fresh adapter changes nothing
        with torch.no_grad():  # what a few training steps do: move lora_B off zero
            for n, p in pipe.unet.named_parameters():
                if "lora_B" in n:
                    p.add_(torch.randn_like(p) * 0.05)
        assert np.abs(_generate(pipe) - before).mean() > 1e-3

    def test_train_step_is_finite(self, sd15_dir):

        import torch
        import torch.nn.functional as F
        from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

        unet = UNet2DConditionModel.from_pretrained(sd15_dir, subfolder="unet", local_files_only=True)
        vae = AutoencoderKL.from_pretrained(sd15_dir, subfolder="vae", local_files_only=True)
        sched = DDPMScheduler.from_pretrained(sd15_dir, subfolder="scheduler", local_files_only=True)
        opt = torch.optim.AdamW(unet.parameters(), lr=1e-4)
        torch.manual_seed(0)
        pixels = torch.rand(1, 3, TINY_RESOLUTION, TINY_RESOLUTION) * 2 - 1
        cond = torch.randn(1, 77, unet.config.cross_attention_dim)
        for _ in range(3):
            with torch.no_grad():
                latents = vae.encode(pixels).latent_dist.sample() * vae.config.scaling_factor
            noise = torch.randn_like(latents)
            ts = torch.randint(0, sched.config.num_train_timesteps, (1,))
            loss = F.mse_loss(unet(sched.add_noise(latents, noise, ts), ts, cond).sample, noise)
            loss.backward()
            opt.step()
            opt.zero_grad()
            assert torch.isfinite(loss)
        assert latents.shape == (1, 4, TINY_RESOLUTION // 2, TINY_RESOLUTION // 2)


def test_same_seed_gives_identical_weight_files(tmp_path, sd15_dir):
    again = make_tiny_model(tmp_path / "again")
    assert _weight_hashes(again) == _weight_hashes(sd15_dir)


def test_building_leaves_global_rng_alone(tmp_path):
    import torch

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    make_tiny_model(tmp_path / "m")
    assert torch.equal(torch.rand(3), expected)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="arch='sd4'"):
        make_tiny_model(tmp_path / "x", arch="sd4")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        make_tiny_model(tmp_path / "full")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        make_tiny_model(tmp_path / "afile")


def test_ensure_tiny_model_builds_once_and_reuses(tmp_path, monkeypatch):
    first = ensure_tiny_model(tmp_path)
    assert first == tmp_path / "tiny-sd15" and (first / "model_index.json").is_file()
    stamp = (first / "unet" / "diffusion_pytorch_model.safetensors").stat().st_mtime_ns
    assert ensure_tiny_model(tmp_path) == first
    assert (first / "unet" / "diffusion_pytorch_model.safetensors").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == ["tiny-sd15"]  # no temp folders left behind
    # the env var picks the cache root; "tiny" resolves through it
    monkeypatch.setenv("FTA_CACHE_DIR", str(tmp_path))
    assert resolve_tiny("tiny") == first
    assert resolve_tiny("runwayml/stable-diffusion-v1-5") is None


def test_ensure_tiny_model_replaces_a_stale_or_partial_copy(tmp_path):
    partial = tmp_path / "tiny-sd15"
    partial.mkdir()
    (partial / "junk.bin").write_text("half-written")  # e.g. an interrupted older build
    fresh = ensure_tiny_model(tmp_path)
    assert not (fresh / "junk.bin").exists() and (fresh / "model_index.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-sd15"]


def test_sdxl_variant(tmp_path):
    import torch
    from diffusers import StableDiffusionXLPipeline

    folder = build_tiny_model(tmp_path / "xl", arch="sdxl")
    pipe = StableDiffusionXLPipeline.from_pretrained(folder, local_files_only=True)
    unet = pipe.unet.config
    assert unet.addition_embed_type == "text_time"
    assert unet.cross_attention_dim == pipe.text_encoder.config.hidden_size + pipe.text_encoder_2.config.hidden_size
    assert unet.projection_class_embeddings_input_dim == 6 * unet.addition_time_embed_dim + \
        pipe.text_encoder_2.config.projection_dim
    a = _generate(pipe, "a photo of sks dog")
    assert a.shape == (1, TINY_RESOLUTION, TINY_RESOLUTION, 3) and np.isfinite(a).all()
    assert np.abs(a - _generate(pipe, "a cat")).mean() > 1e-4
    assert pipe.tokenizer_2.pad_token == "!"
    # the two encoders are different networks, as in real SDXL
    w1 = pipe.text_encoder.get_input_embeddings().weight
    w2 = pipe.text_encoder_2.get_input_embeddings().weight
    assert not torch.equal(w1, w2)
    assert ensure_tiny_model(tmp_path / "cache", arch="sdxl").name == "tiny-sdxl"
