"""TrainConfig: round trip, overrides, and one clear error per bad value."""
import json

import pytest

from trainer.config import ConfigError, TrainConfig


def test_defaults_round_trip_json(tmp_path):
    cfg = TrainConfig(validation_prompts=["a sks dog on the beach"])
    path = cfg.save(tmp_path / "config.json")
    assert TrainConfig.load(path) == cfg


def test_toml_load(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('method = "dreambooth"\nlearning_rate = 5e-6\nmax_train_steps = 800\n'
                 'prior_preservation = true\nclass_prompt = "a photo of a dog"\n')
    cfg = TrainConfig.load(p)
    assert cfg.method == "dreambooth" and cfg.learning_rate == 5e-6 and cfg.prior_preservation


def test_int_learning_rate_accepted_as_float():
    assert TrainConfig(learning_rate=1).learning_rate == 1.0


def test_overrides_parse_literals():
    cfg = TrainConfig().with_overrides(["rank=16", "learning_rate=5e-5", "method=dreambooth_lora",
                                        "validation_prompts=['a', 'b']"])
    assert (cfg.rank, cfg.learning_rate, cfg.method, cfg.validation_prompts) == (16, 5e-5, "dreambooth_lora", ["a", "b"])


@pytest.mark.parametrize("kwargs, field", [
    ({"method": "hypernetwork"}, "method"),
    ({"mixed_precision": "fp8"}, "mixed_precision"),
    ({"lr_scheduler": "warm"}, "lr_scheduler"),
    ({"crop": "smart"}, "crop"),
    ({"base_model": "  "}, "base_model"),
    ({"output_dir": ""}, "output_dir"),
    ({"max_train_steps": 0}, "max_train_steps"),
    ({"train_batch_size": -1}, "train_batch_size"),
    ({"gradient_accumulation_steps": 0}, "gradient_accumulation_steps"),
    ({"rank": 0}, "rank"),
    ({"learning_rate": 0.0}, "learning_rate"),
    ({"learning_rate": 3.0}, "learning_rate"),
    ({"learning_rate": float("nan")}, "learning_rate"),
    ({"resolution": 500}, "resolution"),
    ({"max_grad_norm": -1.0}, "max_grad_norm"),
    ({"snr_gamma": 0.0}, "snr_gamma"),
    ({"validation_steps": -5}, "validation_steps"),
    ({"prior_preservation": True, "method": "lora", "class_prompt": "a dog"}, "prior_preservation"),
    ({"prior_preservation": True, "method": "dreambooth"}, "class_prompt"),
    ({"method": "textual_inversion", "placeholder_token": "two words"}, "placeholder_token"),
    ({"method": "textual_inversion", "train_text_encoder": True}, "train_text_encoder"),
    ({"use_ema": True, "method": "lora"}, "use_ema"),
    ({"cache_latents": True, "random_flip": True}, "cache_latents"),
    ({"max_train_steps": "800"}, "max_train_steps"),
    ({"gradient_checkpointing": "yes"}, "gradient_checkpointing"),
    ({"validation_prompts": "a dog"}, "validation_prompts"),
    ({"rank": 4.5}, "rank"),
    ({"seed": None}, "seed"),
])
def test_each_bad_value_names_its_field(kwargs, field):
    with pytest.raises(ConfigError) as e:
        TrainConfig(**kwargs)
    assert field in str(e.value)
    assert "\n" not in str(e.value)


def test_unknown_key_rejected(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"method": "lora", "learning_rat": 1e-4}))
    with pytest.raises(ConfigError, match="learning_rat"):
        TrainConfig.load(p)


def test_malformed_and_missing_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        TrainConfig.load(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        TrainConfig.load(tmp_path / "nope.json")
    arr = tmp_path / "arr.json"
    arr.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="object"):
        TrainConfig.load(arr)


def test_bad_override():
    with pytest.raises(ConfigError, match="key=value"):
        TrainConfig().with_overrides(["rank"])
    with pytest.raises(ConfigError, match="unknown config key"):
        TrainConfig().with_overrides(["ranks=4"])
