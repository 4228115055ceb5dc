"""Feature sources: registry, tensor files, the embedded MiniLM source and bad inputs."""
import json

import numpy as np
import pytest
import torch

import semantic  # noqa: F401  (CPU shim first)
from experiments.core.sources import (FEATURE_FILE_SUFFIXES, SOURCES, FeatureSource, load_feature_file, load_source,
                                 register_source)


def test_gaussian_source_is_seeded_and_shaped():
    a = load_source("gaussian", n_items=20, dim=5, seed=3)
    b = load_source("gaussian", n_items=20, dim=5, seed=3)
    c = load_source("gaussian", n_items=20, dim=5, seed=4)
    assert a.features.shape == (20, 5) and a.items is None and not a.has_text
    assert torch.equal(a.features, b.features) and not torch.equal(a.features, c.features)
    assert load_source("gaussian", max_items=7, n_items=20, dim=5, seed=3).features.equal(a.features[:7])
    # i.i.d. N(0,1): sample moments of 20k values
    big = load_source("gaussian", n_items=2000, dim=10).features
    assert abs(big.mean().item()) < 0.03 and abs(big.var().item() - 1) < 0.05


@pytest.fixture
def feats():
    return torch.randn(6, 4, 2)  # [n, ...] is flattened per example


def test_npy_pt_safetensors_round_trip(tmp_path, feats):
    from safetensors.torch import save_file

    flat = feats.reshape(6, 8)
    np.save(tmp_path / "f.npy", feats.numpy())
    torch.save(feats, tmp_path / "t.pt")
    items = [f"sentence {i}." for i in range(6)]
    torch.save({"features": feats, "items": items}, tmp_path / "d.pt")
    save_file({"features": feats.contiguous(), "other": torch.zeros(3)}, str(tmp_path / "f.safetensors"))
    save_file({"emb": feats.contiguous()}, str(tmp_path / "one.safetensors"))
    for name in ("f.npy", "t.pt", "d.pt", "f.safetensors", "one.safetensors"):
        src = load_source(str(tmp_path / name))
        assert torch.allclose(src.features, flat), name
        assert src.info["shape"] == [6, 4, 2]
    assert load_source(str(tmp_path / "d.pt")).items == items
    assert load_source(str(tmp_path / "f.npy"), max_items=3).features.shape == (3, 8)
    # items from a side file, aligned with the rows
    (tmp_path / "items.txt").write_text("\n".join(items) + "\n")
    assert load_source(str(tmp_path / "f.npy"), items_path=tmp_path / "items.txt").items == items
    (tmp_path / "items.json").write_text(json.dumps(items))
    assert load_source(str(tmp_path / "f.npy"), items_path=tmp_path / "items.json").items == items
    # explicit key
    save_file({"a": feats.contiguous(), "b": feats.contiguous() * 2}, str(tmp_path / "two.safetensors"))
    assert torch.allclose(load_feature_file(tmp_path / "two.safetensors", key="b").features, 2 * flat)


def test_bad_inputs_raise_clear_errors(tmp_path, feats):
    from safetensors.torch import save_file

    with pytest.raises(ValueError, match="unknown source 'nope'.*pydoc-minilm"):
        load_source("nope")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_source(str(tmp_path / "missing.npy"))
    (tmp_path / "x.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match="unsupported feature file"):
        load_source(str(tmp_path / "x.csv"))
    np.save(tmp_path / "vec.npy", np.zeros(5, dtype=np.float32))
    with pytest.raises(ValueError, match=r"\[n_items, d\]"):
        load_source(str(tmp_path / "vec.npy"))
    bad = np.ones((4, 3), dtype=np.float32)
    bad[1, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(ValueError, match="NaN"):
        load_source(str(tmp_path / "nan.npy"))
    np.save(tmp_path / "c.npy", np.ones((4, 3), dtype=np.complex64))
    with pytest.raises(TypeError, match="real"):
        load_source(str(tmp_path / "c.npy"))
    np.save(tmp_path / "one.npy", np.ones((1, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="n_items >= 2"):
        load_source(str(tmp_path / "one.npy"))
    save_file({"a": feats.contiguous(), "b": feats.clone()}, str(tmp_path / "two.safetensors"))
    with pytest.raises(ValueError, match="name the one to use"):
        load_source(str(tmp_path / "two.safetensors"))
    with pytest.raises(KeyError, match="no entry 'zz'"):
        load_source(str(tmp_path / "two.safetensors"), key="zz")
    np.save(tmp_path / "ok.npy", feats.numpy())
    (tmp_path / "short.txt").write_text("a\nb\n")
    with pytest.raises(ValueError, match="2 items but 6 feature rows"):
        load_source(str(tmp_path / "ok.npy"), items_path=tmp_path / "short.txt")
    with pytest.raises(ValueError, match="max_items"):
        load_source("gaussian", max_items=1)
    with pytest.raises(TypeError):
        load_source(3)


def test_register_source():
    @register_source("test-two-points")
    def _two(max_items=None, **_):
        return FeatureSource("test-two-points", torch.tensor([[1.0, 0.0], [0.0, 1.0]]))

    try:
        assert load_source("test-two-points").dim == 2
    finally:
        SOURCES.pop("test-two-points")
    assert ".safetensors" in FEATURE_FILE_SUFFIXES


def test_pydoc_minilm_source_matches_its_encoder():
    from semantic.sentences import load_pydoc_corpus

    src = load_source("pydoc-minilm", max_items=8)
    assert src.items == load_pydoc_corpus(max_sentences=8)
    assert src.features.shape == (8, 384) and src.has_text
    assert torch.allclose(src.features.norm(dim=1), torch.ones(8), atol=1e-4)  # MiniLM output is unit norm
    again = src.encoder(src.items[:3])
    assert torch.nn.functional.cosine_similarity(again, src.features[:3]).min() > 0.999
    d = src.describe()
    assert d["n_items"] == 8 and d["dim"] == 384 and len(d["feature_hash"]) == 16


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_corrupt_feature_file_is_a_clear_value_error(tmp_path, suffix, capsys):
    from experiments.cli import main

    path = tmp_path / f"bad{suffix}"
    path.write_bytes(b"not a tensor file")
    with pytest.raises(ValueError, match="bad"):
        load_source(str(path))
    assert main(["compare", "--source", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "semcom compare: error:" in capsys.readouterr().err
