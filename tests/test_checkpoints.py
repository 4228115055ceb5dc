"""semantic.checkpoints: local folders, the HF cache (no network), one clear offline error."""
from pathlib import Path

import os

import pytest
import torch

from semantic.checkpoints import (CheckpointNotFoundError, downloads_allowed, hub_cache_dir, is_hub_id,
                                  resolve_checkpoint, resolve_device, resolve_dtype, resolve_file)


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """An empty HF cache; the hub switched off, no download opt-in."""
    cache = tmp_path / "hf"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("SEMCOM_ALLOW_DOWNLOAD", raising=False)
    return cache


def fake_cached_repo(cache: Path, repo_id: str, files: dict, commit: str = "a" * 40) -> Path:
    """Write the hub cache layout (refs/main -> snapshots/<commit>/...) for ``repo_id``."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / commit
    for name, text in files.items():
        (snap / name).parent.mkdir(parents=True, exist_ok=True)
        (snap / name).write_text(text)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snap


def test_local_folder_is_returned(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert resolve_checkpoint(tmp_path, required_files=["config.json"]) == tmp_path
    assert resolve_checkpoint(str(tmp_path)) == tmp_path


def test_local_folder_missing_required_file_names_it(tmp_path):
    with pytest.raises(CheckpointNotFoundError) as e:
        resolve_checkpoint(tmp_path, what="Stable Diffusion 1.5", required_files=["unet/config.json"],
                           option="--sd-checkpoint")
    msg = str(e.value)
    assert "unet/config.json" in msg and "Stable Diffusion 1.5" in msg and "--sd-checkpoint" in msg


def test_missing_hub_checkpoint_offline_error(empty_cache):
    with pytest.raises(CheckpointNotFoundError) as e:
        resolve_checkpoint("Salesforce/blip2-opt-6.7b", what="BLIP-2", option="--blip2-checkpoint")
    msg = str(e.value)
    assert e.value.checkpoint == "Salesforce/blip2-opt-6.7b"
    assert "'Salesforce/blip2-opt-6.7b' (BLIP-2)" in msg
    assert "huggingface-cli download Salesforce/blip2-opt-6.7b" in msg
    assert "--blip2-checkpoint DIR" in msg and "HF_HOME" in msg
    assert str(empty_cache) in msg
    assert isinstance(e.value, FileNotFoundError)


def test_missing_without_offline_flag_fails_at_once(tmp_path, monkeypatch):
    """Downloads are opt-in, so even without HF_HUB_OFFLINE nothing touches the network."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.delenv("SEMCOM_ALLOW_DOWNLOAD", raising=False)
    with pytest.raises(CheckpointNotFoundError, match="downloads are off") as info:
        resolve_checkpoint("stable-diffusion-v1-5/stable-diffusion-v1-5")
    assert "--allow-download" in str(info.value)  # what a CLI user types (the message said allow_download=True)


def test_no_progress_switches_off_hugging_face_bars():
    """``--no-progress``: transformers' "Loading weights" bar (and hub bars) are off while the command
    runs, and the previous state comes back after it."""
    import transformers  # noqa: F401
    from huggingface_hub.utils import are_progress_bars_disabled
    from transformers.utils import logging as tf_logging

    from experiments.cli import progress_bars_off

    assert tf_logging.is_progress_bar_enabled() and not are_progress_bars_disabled()
    with progress_bars_off():
        assert not tf_logging.is_progress_bar_enabled() and are_progress_bars_disabled()
        assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    assert tf_logging.is_progress_bar_enabled() and not are_progress_bars_disabled()
    with progress_bars_off(False):
        assert tf_logging.is_progress_bar_enabled()


def test_hub_id_found_in_cache(empty_cache):
    snap = fake_cached_repo(empty_cache, "owner/model", {"config.json": "{}", "unet/config.json": "{}"})
    path = resolve_checkpoint("owner/model", required_files=["unet/config.json"])
    assert path.resolve() == snap.resolve()
    assert (path / "unet" / "config.json").is_file()


def test_hub_id_in_cache_but_incomplete(empty_cache):
    fake_cached_repo(empty_cache, "owner/model", {"config.json": "{}"})
    with pytest.raises(CheckpointNotFoundError, match="vae/config.json"):
        resolve_checkpoint("owner/model", required_files=["vae/config.json"])


def test_nonexistent_local_path_message(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(CheckpointNotFoundError) as e:
        resolve_checkpoint(str(missing), option="--image-decoder")
    assert "does not exist" in str(e.value) and "--image-decoder" in str(e.value)


def test_resolve_file(tmp_path, empty_cache):
    (tmp_path / "w.safetensors").write_text("x")
    assert resolve_file(tmp_path, "w.safetensors") == tmp_path / "w.safetensors"
    assert resolve_file(tmp_path / "w.safetensors", "ignored") == tmp_path / "w.safetensors"
    snap = fake_cached_repo(empty_cache, "timm/vit-b-32", {"open_clip_model.safetensors": "x"})
    got = resolve_file("timm/vit-b-32", "open_clip_model.safetensors")
    assert got.resolve() == (snap / "open_clip_model.safetensors").resolve()
    with pytest.raises(CheckpointNotFoundError) as e:
        resolve_file("laion/CLIP-ViT-B-32", "open_clip_model.safetensors", what="open_clip ViT-B/32")
    msg = str(e.value)
    assert "laion/CLIP-ViT-B-32" in msg and "--include open_clip_model.safetensors" in msg


def test_downloads_allowed(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.delenv("SEMCOM_ALLOW_DOWNLOAD", raising=False)
    assert downloads_allowed() is False
    assert downloads_allowed(True) is True
    monkeypatch.setenv("SEMCOM_ALLOW_DOWNLOAD", "1")
    assert downloads_allowed() is True
    assert downloads_allowed(False) is False
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert downloads_allowed(True) is False


def test_hub_cache_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    assert hub_cache_dir() == tmp_path / "hub"
    assert hub_cache_dir(tmp_path / "c") == tmp_path / "c"


@pytest.mark.parametrize("name,expected", [
    ("Salesforce/blip2-opt-2.7b", True), ("a/b", True), ("./a/b", False), ("/abs/a", False),
    ("a/b/c", False), ("single", False), ("~/x", False), ("", False), ("a/..", False)])
def test_is_hub_id(name, expected):
    assert is_hub_id(name) is expected


def test_bad_argument_types():
    with pytest.raises(TypeError, match="name_or_path"):
        resolve_checkpoint(123)
    with pytest.raises(TypeError, match="filename"):
        resolve_file("a/b", "")


def test_resolve_dtype_and_device():
    assert resolve_dtype("fp16") is torch.float16
    assert resolve_dtype("bfloat16") is torch.bfloat16
    assert resolve_dtype(torch.float64) is torch.float64
    assert resolve_dtype("auto", "cpu") is torch.float32
    assert resolve_dtype(None, "cuda") is torch.float16
    with pytest.raises(ValueError, match="dtype"):
        resolve_dtype("int8")
    with pytest.raises(ValueError, match="floating"):
        resolve_dtype(torch.int32)
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(TypeError, match="device"):
        resolve_device(3)
    if not torch.cuda.is_available():  # never a silent CPU run for an accelerator that is not there
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
