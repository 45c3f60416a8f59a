"""Seeding the run log from LoRA .safetensors files (kohya ss_* metadata, or tensor shapes alone)."""
import json
import struct
from dataclasses import fields
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from advisor.runlog.importing import import_path
from advisor.runlog.kohya import HYPERPARAMETER_MAP, SafetensorsError, import_file, read_safetensors_header, read_safetensors_metadata, record_from_kohya, tensor_facts
from advisor.runlog.store import RunLog
from advisor.runlog.cli import runs_cli
from trainer.config import TrainConfig

# What kohya's train_network.py writes for an SD1.5 LoRA trained without a dataset config
# (values are strings, as in real files).
SD15_META = {
    "ss_session_id": "1234567",
    "ss_training_started_at": "1700000000.5",
    "ss_training_finished_at": "1700003600.5",
    "ss_output_name": "my_dog",
    "ss_learning_rate": "0.0001",
    "ss_unet_lr": "None",
    "ss_text_encoder_lr": "5e-05",
    "ss_num_train_images": "300",
    "ss_num_reg_images": "0",
    "ss_num_epochs": "10",
    "ss_max_train_steps": "1500",
    "ss_steps": "1500",
    "ss_gradient_accumulation_steps": "1",
    "ss_gradient_checkpointing": "True",
    "ss_lr_scheduler": "cosine",
    "ss_lr_warmup_steps": "0",
    "ss_network_module": "networks.lora",
    "ss_network_dim": "32",
    "ss_network_alpha": "16.0",
    "ss_network_dropout": "None",
    "ss_mixed_precision": "fp16",
    "ss_v2": "False",
    "ss_base_model_version": "sd_v1",
    "ss_clip_skip": "2",
    "ss_seed": "42",
    "ss_optimizer": "bitsandbytes.optim.adamw.AdamW8bit(weight_decay=0.01)",
    "ss_max_grad_norm": "1.0",
    "ss_noise_offset": "None",
    "ss_min_snr_gamma": "5.0",
    "ss_cache_latents": "True",
    "ss_batch_size_per_device": "2",
    "ss_resolution": "(512, 512)",
    "ss_flip_aug": "False",
    "ss_dataset_dirs": json.dumps({"30_mydog": {"n_repeats": 30, "img_count": 10}}),
    "modelspec.sai_model_spec": "1.0.0",
    "modelspec.architecture": "stable-diffusion-v1/lora",
    "modelspec.title": "my_dog",
    "modelspec.thumbnail": "data:image/png;base64," + "A" * 5000,
}


def lora_tensors(rank=4, context=768, te=True, alpha=None, prefix="lora_unet_down_blocks_0_attentions_0_"
                 "transformer_blocks_0_attn2_to_k", dtype=torch.float32):
    """A tiny kohya-style LoRA state dict: one UNet module (+ one text-encoder module)."""
    t = {f"{prefix}.lora_down.weight": torch.zeros(rank, context, dtype=dtype),
         f"{prefix}.lora_up.weight": torch.zeros(320, rank, dtype=dtype)}
    if alpha is not None:
        t[f"{prefix}.alpha"] = torch.tensor(alpha, dtype=dtype)
    if te:
        t["lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight"] = torch.zeros(rank, 768, dtype=dtype)
        t["lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight"] = torch.zeros(3072, rank, dtype=dtype)
    return t


def write_lora(path: Path, metadata=None, **kw) -> Path:
    save_file(lora_tensors(**kw), str(path), metadata=metadata)
    return path


# --- reading the header -------------------------------------------------------------------
def test_metadata_is_read_without_torch_exactly_as_written(tmp_path):
    path = write_lora(tmp_path / "a.safetensors", SD15_META)
    assert read_safetensors_metadata(path) == SD15_META
    header = read_safetensors_header(path)
    assert header.tensors["lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight"]["shape"] == [4, 768]
    assert read_safetensors_metadata(write_lora(tmp_path / "b.safetensors")) == {}


@pytest.mark.parametrize("content,why", [
    (b"", "too short"),
    (b"\x01\x02\x03", "too short"),
    (struct.pack("<Q", 10**12) + b"{}", "does not fit"),
    (struct.pack("<Q", 10) + b"not json!!" + b"\x00" * 8, "not JSON"),
    (struct.pack("<Q", 4) + b"[12]", "not a JSON object"),
    (struct.pack("<Q", 40) + b'{"w": {"dtype": "F32", "shape": "x"}}    ', "malformed"),
    (b"PK\x03\x04 a zip file pretending" + b"\x00" * 64, "does not fit"),
])
def test_broken_files_raise_an_error_naming_the_file(tmp_path, content, why):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(content)
    with pytest.raises(SafetensorsError, match=why) as info:
        read_safetensors_header(path)
    assert "broken.safetensors" in str(info.value)


# --- ss_* -> our names ------------------------------------------------------------------------
def test_kohya_sd15_metadata_maps_to_trainconfig_names(tmp_path):
    path = write_lora(tmp_path / "my_dog.safetensors", SD15_META)
    record = record_from_kohya(path, read_safetensors_metadata(path))
    assert (record.source, record.method, record.base_model, record.status) == ("kohya", "lora", "sd15", "completed")
    assert record.name == "my_dog"
    hp = record.hyperparameters
    assert hp["learning_rate"] == 1e-4 and hp["text_encoder_lr"] == 5e-5
    assert (hp["rank"], hp["lora_alpha"], hp["max_train_steps"], hp["train_batch_size"]) == (32, 16.0, 1500, 2)
    assert (hp["resolution"], hp["mixed_precision"], hp["seed"], hp["lr_scheduler"]) == (512, "fp16", 42, "cosine")
    assert hp["prior_preservation"] is False and hp["use_8bit_adam"] is True
    assert hp["snr_gamma"] == 5.0 and hp["gradient_checkpointing"] is True and hp["clip_skip"] == 2
    assert "noise_offset" not in hp and "network_dropout" not in hp  # "None" means unset
    assert hp["num_train_images"] == 300
    assert record.profile["n_images"] == 10 and record.profile["base_model"] == "sd15"
    assert record.started_at == 1700000000.5 and record.duration_s == 3600.0 and record.steps_done == 1500
    assert record.output_path == str(path.resolve())
    assert "modelspec.thumbnail" not in record.config["metadata"]
    assert record.config["metadata"]["ss_network_dim"] == "32"
    assert record.note is None
    # every hyperparameter we produce under a TrainConfig name is a valid value for it
    config_fields = {f.name for f in fields(TrainConfig)}
    TrainConfig(**{k: v for k, v in hp.items() if k in config_fields and k != "lr_scheduler"})


def test_only_the_declared_kohya_knobs_fall_outside_trainconfig():
    config_fields = {f.name for f in fields(TrainConfig)}
    ours = {name for _, name, _ in HYPERPARAMETER_MAP}
    assert ours - config_fields == {"num_train_images", "num_epochs", "optimizer", "network_module",
                                    "network_dropout", "clip_skip", "caption_dropout_rate", "loss_type"}


@pytest.mark.parametrize("changes,expect", [
    ({"ss_base_model_version": "sdxl_base_v1-0", "ss_resolution": "(1024, 1024)"},
     {"base_model": "sdxl", "resolution": 1024}),
    ({"ss_base_model_version": "sd_v2_v", "ss_v2": "True"}, {"base_model": "sd21", "v_parameterization": True}),
    ({"ss_base_model_version": "flux1"}, {"base_model": "flux1"}),
    ({"ss_base_model_version": "", "modelspec.architecture": "stable-diffusion-xl-v1-base/lora"},
     {"base_model": "sdxl"}),
    ({"ss_unet_lr": "0.0003"}, {"learning_rate": 3e-4}),
    ({"ss_text_encoder_lr": "[2e-05, 1e-05]"}, {"text_encoder_lr": 2e-5}),
    ({"ss_num_reg_images": "200", "ss_prior_loss_weight": "1.0"},
     {"method": "dreambooth_lora", "prior_preservation": True, "num_class_images": 200, "prior_loss_weight": 1.0}),
    ({"ss_steps": "600"}, {"status": "intermediate", "steps_done": 600}),
    ({"modelspec.architecture": "stable-diffusion-v1/textual-inversion"}, {"method": "textual_inversion"}),
])
def test_kohya_variants(tmp_path, changes, expect):
    meta = {**SD15_META, **changes}
    record = record_from_kohya(tmp_path / "x.safetensors", meta)
    for key, value in expect.items():
        got = getattr(record, key) if key in ("base_model", "method", "status", "steps_done") \
            else record.hyperparameters[key]
        assert got == value, key
    if record.method == "textual_inversion":
        assert "rank" not in record.hyperparameters


def test_text_encoder_lr_zero_means_frozen(tmp_path):
    record = record_from_kohya(tmp_path / "x.safetensors", {**SD15_META, "ss_text_encoder_lr": "0"})
    assert "text_encoder_lr" not in record.hyperparameters
    assert record.hyperparameters["train_text_encoder"] is False


def test_files_exported_by_the_lab_carry_the_exact_config(tmp_path):
    cfg = TrainConfig(method="dreambooth_lora", base_model="stabilityai/stable-diffusion-2-1-base", rank=12,
                      learning_rate=3e-4, prior_preservation=True, class_prompt="a photo of a dog",
                      num_class_images=50, output_dir="runs/x")
    meta = {**SD15_META, "ss_num_reg_images": "0", "finetune_lab_method": "dreambooth_lora",
            "finetune_lab_config": json.dumps(cfg.to_dict(), sort_keys=True)}
    record = record_from_kohya(tmp_path / "x.safetensors", meta)
    assert record.method == "dreambooth_lora" and record.base_model == "stabilityai/stable-diffusion-2-1-base"
    hp = record.hyperparameters
    assert (hp["rank"], hp["learning_rate"], hp["prior_preservation"], hp["num_class_images"]) == (12, 3e-4, True, 50)
    assert hp["optimizer"].endswith("AdamW8bit(weight_decay=0.01)")  # kohya-only knobs stay


def test_non_square_resolution_is_noted(tmp_path):
    record = record_from_kohya(tmp_path / "x.safetensors", {**SD15_META, "ss_resolution": "(768, 512)"})
    assert record.hyperparameters["resolution"] == 768
    assert "768x512 is not square" in record.note


def test_unreadable_values_are_noted_not_fatal(tmp_path):
    record = record_from_kohya(tmp_path / "x.safetensors", {**SD15_META, "ss_network_dim": "thirty-two"})
    assert "rank" not in record.hyperparameters
    assert "ss_network_dim='thirty-two'" in record.note


def test_dataset_config_description_is_used(tmp_path):
    meta = {k: v for k, v in SD15_META.items()
            if k not in ("ss_batch_size_per_device", "ss_resolution", "ss_dataset_dirs", "ss_num_reg_images")}
    meta["ss_datasets"] = json.dumps([{"is_dreambooth": True, "batch_size_per_device": 4, "num_train_images": 80,
                                       "num_reg_images": 40, "resolution": [768, 768],
                                       "subsets": [{"img_count": 8, "num_repeats": 10, "is_reg": False},
                                                   {"img_count": 40, "num_repeats": 1, "is_reg": True}]}])
    record = record_from_kohya(tmp_path / "x.safetensors", meta)
    hp = record.hyperparameters
    assert (hp["train_batch_size"], hp["resolution"], hp["num_class_images"]) == (4, 768, 40)
    assert record.method == "dreambooth_lora" and record.profile["n_images"] == 8


# --- files without metadata -----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_file_without_metadata_is_read_from_tensor_shapes(tmp_path, dtype):
    path = write_lora(tmp_path / "converted.safetensors", rank=8, alpha=4.0, dtype=dtype)
    record = import_file(path)
    assert record.method == "lora" and record.base_model == "sd15"
    assert record.hyperparameters == {"rank": 8, "lora_alpha": 4.0, "train_text_encoder": True}
    assert "no kohya training metadata" in record.note


@pytest.mark.parametrize("context,family", [(768, "sd15"), (1024, "sd21"), (2048, "sdxl")])
def test_model_family_from_cross_attention_width(tmp_path, context, family):
    path = write_lora(tmp_path / "x.safetensors", context=context, te=False)
    facts = tensor_facts(read_safetensors_header(path))
    assert facts["base_model"] == family and facts["train_text_encoder"] is False


def test_sdxl_kohya_names_and_textual_inversion_embeddings(tmp_path):
    sdxl = tmp_path / "sdxl.safetensors"
    save_file({"lora_unet_input_blocks_4_1_proj_in.lora_down.weight": torch.zeros(16, 640),
               "lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": torch.zeros(16, 1280)}, str(sdxl))
    assert tensor_facts(read_safetensors_header(sdxl))["base_model"] == "sdxl"
    ti = tmp_path / "ti.safetensors"
    save_file({"emb_params": torch.zeros(3, 768)}, str(ti))
    record = import_file(ti)
    assert record.method == "textual_inversion" and record.base_model == "sd15"
    assert record.hyperparameters == {"num_vectors": 3}


def test_modelspec_alone_says_lora(tmp_path):
    record = record_from_kohya(tmp_path / "x.safetensors", {"modelspec.architecture": "stable-diffusion-xl-v1-base/lora",
                                                          "modelspec.hash_sha256": "0xabc"})
    assert (record.method, record.base_model) == ("lora", "sdxl")


def test_file_with_nothing_recognisable_still_imports(tmp_path):
    path = tmp_path / "mystery.safetensors"
    save_file({"some.weight": torch.zeros(2, 2)}, str(path))
    record = import_file(path)
    assert record.method is None and record.hyperparameters == {} and record.name == "mystery"
    assert "only what the file name says" in record.note


# --- run ids and the folder import ---------------------------------------------------------------
def test_run_id_is_stable_and_distinguishes_files(tmp_path):
    a = write_lora(tmp_path / "a.safetensors", SD15_META)
    again = import_file(a).run_id
    assert again == import_file(a).run_id and again.startswith("kohya-")
    epoch = write_lora(tmp_path / "a-000004.safetensors", {**SD15_META, "ss_steps": "600"})
    assert import_file(epoch).run_id != again
    # without identifying metadata, the bytes decide
    plain1 = write_lora(tmp_path / "p1.safetensors", rank=4)
    plain2 = tmp_path / "p2.safetensors"
    t = lora_tensors(rank=4)
    t[next(iter(t))] = torch.ones(4, 768)
    save_file(t, str(plain2))
    assert import_file(plain1).run_id != import_file(plain2).run_id
    assert import_file(plain1).run_id == import_file(plain1).run_id


def test_folder_of_loras_seeds_the_log_idempotently(tmp_path):
    folder = tmp_path / "loras"
    (folder / "older").mkdir(parents=True)
    write_lora(folder / "my_dog.safetensors", SD15_META)
    write_lora(folder / "older" / "style.safetensors",
               {**SD15_META, "ss_session_id": "999", "ss_base_model_version": "sdxl_base_v1-0"})
    (folder / "broken.safetensors").write_bytes(b"\x00" * 3)
    (folder / "preview.png").write_bytes(b"\x89PNG not a model")
    with RunLog(tmp_path / "log.sqlite") as log:
        report = import_path(log, folder)
        assert report.kind == "kohya" and len(report.imported) == 2
        assert [where for where, _ in report.skipped] == ["broken.safetensors"]
        assert "too short" in report.skipped[0][1]
        dog = next(r for r in log.list_runs() if r["name"] == "my_dog")
        log.rate(dog["id"], 4, 2, 5, note="too stiff")
        again = import_path(log, folder)
        assert sorted(again.imported) == sorted(report.imported)
        assert len(log) == 2
        assert log.get(dog["id"]).rating == {"accuracy": 4, "flexibility": 2, "preservation": 5,
                                             "note": "too stiff"}
        assert {r["base_model"] for r in log.list_runs()} == {"sd15", "sdxl"}
        # a single file works too
        assert import_path(log, folder / "my_dog.safetensors").imported == [dog["id"]]


def test_loras_inside_run_folders_are_not_imported_as_kohya(tmp_path):
    runs = tmp_path / "runs"
    run_dir = runs / "our-run"
    (run_dir / "output").mkdir(parents=True)
    TrainConfig(output_dir=str(run_dir)).save(run_dir / "config.json")
    write_lora(run_dir / "output" / "pytorch_lora_weights.safetensors")
    write_lora(runs / "loose.safetensors", SD15_META)
    with RunLog(tmp_path / "log.sqlite") as log:
        report = import_path(log, runs)
        assert report.kind == "folder"
        sources = sorted((r["source"], r["name"]) for r in log.list_runs())
    assert sources == [("kohya", "loose"), ("run_folder", "our-run")]


def test_cli_imports_a_lora_folder(tmp_path, capsys):
    folder = tmp_path / "loras"
    folder.mkdir()
    write_lora(folder / "one.safetensors", SD15_META)
    (folder / "two.safetensors").write_text("not really")
    db = str(tmp_path / "log.sqlite")
    assert runs_cli(["import", str(folder), "--db", db]) == 0
    captured = capsys.readouterr()
    assert "imported 1 run(s)" in captured.out
    assert "two.safetensors" in captured.err
    assert runs_cli(["list", "--json", "--db", db]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["hyperparameters"]["rank"] == 32 and listed[0]["method"] == "lora"
    # a folder holding only broken files: nothing imported, exit 1
    (folder / "one.safetensors").unlink()
    assert runs_cli(["import", str(folder), "--db", db]) == 1


def test_a_folder_with_one_hostile_file_imports_the_others(tmp_path):
    """A learning rate no run can have refuses that file, with why; a dataset field nested 5,000
    deep is ignored (it used to raise RecursionError and stop the folder); the rest is imported."""
    folder = tmp_path / "loras"
    folder.mkdir()
    write_lora(folder / "good.safetensors", SD15_META)
    write_lora(folder / "absurd.safetensors", {**SD15_META, "ss_learning_rate": "1e308"})
    deep = ('{"__metadata__": {"ss_datasets": "' + "[" * 5000 + '"}}').encode()
    (folder / "deep.safetensors").write_bytes(struct.pack("<Q", len(deep)) + deep)
    with RunLog(tmp_path / "log.sqlite") as log:
        report = import_path(log, folder)
    assert len(report.imported) == 2   # good and deep
    why = dict(report.skipped)
    assert set(why) == {"absurd.safetensors"} and "outside (0, 1]" in why["absurd.safetensors"]
