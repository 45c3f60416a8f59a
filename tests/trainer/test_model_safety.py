"""Model files load as safetensors; pickle weights (.bin) need an explicit opt-in."""
import pytest

from helpers import build_tiny_model


def _pickle_only(folder):
    import torch
    from safetensors.torch import load_file
    st = folder / "unet" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(str(st)), folder / "unet" / "diffusion_pytorch_model.bin")
    st.unlink()


def test_pickle_weights_refused_unless_opted_in(tmp_path, monkeypatch):
    from trainer.families.base import PICKLE_ENV
    from trainer.models import load_components
    folder = build_tiny_model(tmp_path / "model")
    _pickle_only(folder)
    monkeypatch.delenv(PICKLE_ENV, raising=False)
    with pytest.raises(Exception, match="safetensors"):
        load_components(folder)
    monkeypatch.setenv(PICKLE_ENV, "1")
    assert load_components(folder).denoiser is not None
