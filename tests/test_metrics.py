"""Metrics against known values: BLEU by hand, BERTScore with the packaged MiniLM, LPIPS, CLIP score."""
import math
import warnings

import pytest
import torch

import semantic  # noqa: F401  (torchvision shim first)
from semantic import metrics as M
from semantic.sentences import minilm_model_dir



# ----------------------------------------------------------------------------- statistics
def test_summarize_mean_and_t_interval():
    r = M.summarize([1.0, 2.0, 3.0, 6.0], "x", {"k": 1})
    mean = 3.0
    sd = math.sqrt(((1 - 3) ** 2 + (2 - 3) ** 2 + 0 + (6 - 3) ** 2) / 3)
    t975_df3 = 3.182446305284263  # Student t quantile, 3 degrees of freedom
    assert r.mean == pytest.approx(mean)
    assert r.ci_low == pytest.approx(mean - t975_df3 * sd / 2)
    assert r.ci_high == pytest.approx(mean + t975_df3 * sd / 2)
    assert r.ci_low <= r.mean <= r.ci_high and r.n == 4 and r.details == {"k": 1}
    one = M.summarize([5.0], "y")
    assert one.mean == 5.0 and math.isnan(one.ci_low) and math.isnan(one.ci_high)
    with pytest.raises(ValueError, match="at least one"):
        M.summarize([], "z")


# ----------------------------------------------------------------------------- BLEU
def test_bleu_identical_is_100():
    sents = ["the cat sat on the mat .", "a quick brown fox jumps over the lazy dog ."]
    r = M.bleu(sents, sents)
    for key in ("bleu4", "bleu1"):
        assert r[key].values == pytest.approx([100.0, 100.0])
        assert r[key].details["corpus"] == pytest.approx(100.0)


def test_bleu1_hand_computed():
    # hyp 4 words, 3 match; ref 5 words -> precision 3/4, brevity penalty exp(1 - 5/4)
    r = M.bleu(["a b c d"], ["a b c e f"], orders=(1,))["bleu1"]
    assert r.values[0] == pytest.approx(100 * 0.75 * math.exp(1 - 5 / 4))
    # corpus BLEU-1 over two pairs: clipped matches (3 + 2) / hyp words (4 + 2), BP from total lengths
    hyps, refs = ["a b c d", "x y"], ["a b c e f", "x y"]
    c = M.bleu(hyps, refs, orders=(1,))["bleu1"].details["corpus"]
    p1 = (3 + 2) / (4 + 2)
    bp = math.exp(1 - (5 + 2) / (4 + 2))
    assert c == pytest.approx(100 * p1 * bp)
    # clipping: a repeated word counts at most as often as in the reference
    r = M.bleu(["the the the the"], ["the cat sat down"], orders=(1,))["bleu1"]
    assert r.values[0] == pytest.approx(25.0)


def test_bleu4_corpus_matches_sacrebleu_and_sentence_level_differs():
    import sacrebleu

    hyps = ["the cat is on the mat .", "there is a dog in the park today ."]
    refs = ["the cat sat on the mat .", "a dog is in the park ."]
    r = M.bleu(hyps, refs)["bleu4"]
    assert r.details["corpus"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    for h, ref, v in zip(hyps, refs, r.values):
        assert v == pytest.approx(sacrebleu.sentence_bleu(h, [ref]).score)
    assert 0 < r.mean < 100 and r.ci_low <= r.mean <= r.ci_high


def test_bleu_bad_input():
    with pytest.raises(ValueError, match="same length"):
        M.bleu(["a"], ["a", "b"])
    with pytest.raises(TypeError):
        M.bleu("a b", "a b")


# ----------------------------------------------------------------------------- BERTScore
@pytest.fixture(scope="module")
def minilm_scorer():
    return M.BERTScore(minilm_model_dir(), num_layers=6, batch_size=8)


def test_bertscore_minilm_identical_is_one(minilm_scorer):
    sents = ["the cat sat on the mat .", "channel coding protects the bits ."]
    r = minilm_scorer(sents, sents)
    for key in ("precision", "recall", "f1"):
        assert r[key].values == pytest.approx([1.0, 1.0], abs=1e-5)
    assert r["f1"].details["model"] == str(minilm_model_dir())
    assert r["f1"].details["num_layers"] == 6 and r["f1"].details["standard"] is False


def test_bertscore_orders_similarity(minilm_scorer):
    refs = ["the cat sat on the mat .", "the cat sat on the mat ."]
    cands = ["the cat sat on a mat .", "stock prices fell sharply in tokyo"]
    f1 = minilm_scorer(cands, refs)["f1"]
    assert 1.0 > f1.values[0] > f1.values[1]
    assert f1.ci_low <= f1.mean <= f1.ci_high


def test_bertscore_empty_strings(minilm_scorer):
    r = minilm_scorer(["", "a cat sits .", "  "], ["a dog runs .", "a cat sits .", ""])["f1"]
    assert r.values == pytest.approx([0.0, 1.0, 1.0], abs=1e-5)
    assert r.details["n_empty"] == 2


def test_bertscore_idf_weights_are_used():
    # idf=True must reach bert-score: same F1 as bert-score's own scorer with idf on the references
    import bert_score

    cands = ["a cat sits on the mat .", "the dog runs in the park .", "a red car ."]
    refs = ["the cat is on the mat .", "a dog is running in a park .", "the blue car is parked ."]
    ours = M.BERTScore(minilm_model_dir(), num_layers=6, batch_size=8, idf=True)(cands, refs)["f1"]
    ref_scorer = bert_score.BERTScorer(model_type=str(minilm_model_dir()), num_layers=6, batch_size=8,
                                       idf=True, idf_sents=refs, nthreads=0)
    _, _, f_idf = ref_scorer.score(cands, refs)
    plain = M.BERTScore(minilm_model_dir(), num_layers=6, batch_size=8)(cands, refs)["f1"]
    assert ours.details["idf"] is True
    assert ours.values == pytest.approx(f_idf.tolist(), abs=1e-5)
    assert max(abs(a - b) for a, b in zip(ours.values, plain.values)) > 1e-4


def test_bertscore_idf_forks_no_process(monkeypatch):
    """The IDF weights are counted in this process: bert-score's default forks a multiprocessing pool, which
    deadlocked the test suite (a forked worker waiting on a lock held by a thread that does not exist in it)."""
    import bert_score.utils

    def no_pool(*a, **k):
        raise AssertionError("bert-score started a multiprocessing pool")

    monkeypatch.setattr(bert_score.utils, "Pool", no_pool)
    cands = ["a cat sits on the mat .", "the dog runs in the park .", "a red car ."]
    refs = ["the cat is on the mat .", "a dog is running in a park .", "the blue car is parked ."]
    r = M.BERTScore(minilm_model_dir(), num_layers=6, batch_size=8, idf=True)(cands, refs)
    assert all(0.3 < f < 1.0 for f in r["f1"].values)


def test_bertscore_local_dir_needs_num_layers():
    with pytest.raises(ValueError, match="num_layers"):
        M.BERTScore(minilm_model_dir())


def test_bertscore_hub_id_from_local_cache(monkeypatch, tmp_path):
    """A model id is loaded from the Hugging Face cache layout, without network."""
    src = minilm_model_dir()
    repo = tmp_path / "models--local--minilm"
    snap = repo / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file():
            (snap / f.name).symlink_to(f)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ValueError, match="num_layers"):
        M.BERTScore("local/minilm")  # no default layer known for this id
    bs = M.BERTScore("local/minilm", num_layers=6)
    r = bs(["a cat sits on the mat ."], ["a cat sits on the mat ."])["f1"]
    assert r.values == pytest.approx([1.0], abs=1e-5)
    assert r.details["model"] == "local/minilm" and r.details["source"] == str(snap)


def test_bertscore_standard_model_offline_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache
    with pytest.raises(FileNotFoundError, match="roberta-large") as err:
        M.BERTScore()
    assert "huggingface-cli download roberta-large" in str(err.value)
    assert str(tmp_path) in str(err.value)


# ----------------------------------------------------------------------------- LPIPS
@pytest.fixture(scope="module")
def random_lpips(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))  # no AlexNet weights there
        with pytest.warns(UserWarning, match="RANDOM backbone"):
            return M.LPIPS(allow_random_backbone=True)


def test_lpips_identical_is_zero(random_lpips):
    x = torch.rand(3, 3, 64, 64)
    r = random_lpips(x, x.clone())
    assert r.values == pytest.approx([0.0, 0.0, 0.0], abs=1e-7)
    assert r.details["backbone"] == "random" and r.details["net"] == "alex"


def test_lpips_monotone_in_noise(random_lpips):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, 64, 64, generator=g)
    noise = torch.randn(x.shape, generator=g)
    d = [torch.tensor(random_lpips(x, (x + s * noise).clamp(0, 1)).values) for s in (0.02, 0.05, 0.1, 0.2, 0.4)]
    for a, b in zip(d, d[1:]):
        assert (b > a).all()
    # batching does not change the numbers
    random_lpips.batch_size, bs = 1, random_lpips.batch_size
    try:
        one_by_one = random_lpips(x, (x + 0.1 * noise).clamp(0, 1)).values
    finally:
        random_lpips.batch_size = bs
    assert one_by_one == pytest.approx(d[2].tolist(), rel=1e-5, abs=1e-7)


def test_lpips_missing_backbone_error(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="alexnet-owt-7be5be79.pth") as err:
        M.LPIPS()
    assert str(tmp_path) in str(err.value)
    with pytest.raises(FileNotFoundError, match="backbone_path"):
        M.LPIPS(backbone_path=tmp_path / "nope.pth")


def test_lpips_loads_backbone_file(tmp_path):
    import torchvision

    alex = torchvision.models.alexnet(weights=None)
    sd = alex.state_dict()
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(sd, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no random-backbone warning, no download
        m = M.LPIPS(backbone_path=path)
    assert m.details["backbone"] == "imagenet" and m.details["backbone_path"] == str(path)
    trunk = m.net.net
    for idx, sl in ((0, 1), (3, 2), (6, 3), (8, 4), (10, 5)):
        conv = getattr(trunk, f"slice{sl}")._modules[str(idx)]
        assert torch.equal(conv.weight, sd[f"features.{idx}.weight"])
        assert torch.equal(conv.bias, sd[f"features.{idx}.bias"])
    x = torch.rand(2, 3, 64, 64)
    assert m(x, x).values == pytest.approx([0.0, 0.0], abs=1e-7)


def test_lpips_input_checks(random_lpips):
    with pytest.raises(ValueError, match="same shape"):
        random_lpips(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="value_range"):
        random_lpips(torch.rand(1, 3, 32, 32) * 2, torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="3, H, W"):
        random_lpips(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32))


# ----------------------------------------------------------------------------- CLIP score
TINY_CLIP = dict(embed_dim=16,
                 vision_cfg=dict(image_size=32, layers=1, width=32, patch_size=8, head_width=16),
                 text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=2, layers=1))


def test_clip_score_matches_direct_cosine():
    import open_clip
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    cs = M.ClipScore(model_cfg=TINY_CLIP, pretrained=None, batch_size=3)
    g = torch.Generator().manual_seed(3)
    images = torch.rand(8, 3, 32, 32, generator=g)  # already at the model size: only normalised
    caps = ["a photo of a cat", "a red car", "two dogs", "a bowl of soup", "the sea at night", "a tree",
            "a man riding a horse", "an empty room"]
    r = cs(images, caps)
    mean = torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        fi = cs.model.encode_image((images - mean) / std)
        ft = cs.model.encode_text(open_clip.tokenizer.SimpleTokenizer(context_length=16)(caps))
    cos = (fi * ft).sum(-1) / (fi.norm(dim=-1) * ft.norm(dim=-1))
    expected = 100 * cos.clamp(min=0)
    assert r.values == pytest.approx(expected.tolist(), abs=1e-4)
    assert (cos > 0).all()
    # flipping the text projection flips every cosine: all scores clip to 0
    with torch.no_grad():
        cs.model.text_projection.neg_()
    flipped = cs(images, caps)
    assert flipped.values == pytest.approx([0.0] * 8, abs=1e-6)
    assert r.ci_low <= r.mean <= r.ci_high and r.n == 8
    assert r.details["model"] == "custom"


def test_clip_score_resizes_and_accepts_pil():
    from PIL import Image

    cs = M.ClipScore(model_cfg=TINY_CLIP, pretrained=None)
    img = torch.rand(1, 3, 48, 40)
    x = cs.preprocess(img)
    assert x.shape == (1, 3, 32, 32)
    arr = (torch.rand(40, 48, 3) * 255).to(torch.uint8).numpy()
    pil = Image.fromarray(arr)
    a = cs([pil], ["a cat"]).values[0]
    b = cs(torch.from_numpy(arr).permute(2, 0, 1).float().div(255).unsqueeze(0), ["a cat"]).values[0]
    assert a == pytest.approx(b, abs=1e-4)


def test_clip_score_weights_round_trip(tmp_path):
    import open_clip

    model = open_clip.CLIP(**TINY_CLIP)
    path = tmp_path / "tiny_clip.pt"
    torch.save(model.state_dict(), path)
    cs = M.ClipScore(model_cfg=TINY_CLIP, pretrained=str(path))
    for k, v in model.state_dict().items():
        assert torch.equal(cs.model.state_dict()[k], v)


def test_clip_score_missing_weights_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache
    with pytest.raises(FileNotFoundError, match="ViT-B-32") as err:
        M.ClipScore("ViT-B-32", "openai", cache_dir=tmp_path)
    assert "timm/vit_base_patch32_clip_224.openai" in str(err.value)
    with pytest.raises(ValueError, match="pretrained=None"):
        M.ClipScore("ViT-B-32", None)
    with pytest.raises(ValueError, match="same length"):
        M.ClipScore(model_cfg=TINY_CLIP, pretrained=None)(torch.rand(2, 3, 32, 32), ["a"])


def test_clip_score_named_architecture_with_weights_file(tmp_path):
    """The real-model path (architecture name + weights file) with a tiny registered architecture."""
    import json

    import open_clip

    cfg_file = tmp_path / "SemcomTinyCLIP.json"
    cfg_file.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(cfg_file)
    model = open_clip.CLIP(**TINY_CLIP)
    weights = tmp_path / "open_clip_model.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    images, caps = torch.rand(3, 3, 32, 32), ["a cat", "a dog", "a car"]
    direct = M.ClipScore(model_cfg=TINY_CLIP, pretrained=str(weights))(images, caps)
    for pre in (str(weights), str(tmp_path)):  # a file, or a folder holding it
        named = M.ClipScore("SemcomTinyCLIP", pre)
        assert named.details["model"] == "SemcomTinyCLIP"
        assert named(images, caps).values == pytest.approx(direct.values, abs=1e-4)


# ----------------------------------------------------------------------------- PSNR / SSIM / MS-SSIM
def _ssim_reference(x, y, c1=1e-4, c2=9e-4):
    """Independent SSIM (Wang et al. 2004): 11-px Gaussian window, sigma 1.5, 'valid' filtering with SciPy,
    the mean over channels and positions of the SSIM map."""
    import numpy as np
    from scipy.signal import convolve2d

    t = np.arange(11) - 5.0
    g = np.exp(-t ** 2 / (2 * 1.5 ** 2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    vals = []
    for a, b in zip(x.double().numpy(), y.double().numpy()):
        f = lambda z: convolve2d(z, w, mode="valid")  # noqa: E731
        mu_a, mu_b = f(a), f(b)
        va, vb, cov = f(a * a) - mu_a ** 2, f(b * b) - mu_b ** 2, f(a * b) - mu_a * mu_b
        vals.append(((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (va + vb + c2)))
    return float(np.mean(vals))


def test_image_quality_against_closed_forms_and_an_independent_ssim():
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(2, 3, 176, 176, generator=g)
    img = (ref + 0.05 * torch.randn(ref.shape, generator=g)).clamp(0, 1)
    r = M.image_quality(img, ref)
    mse = ((img - ref) ** 2).double().mean(dim=(1, 2, 3))
    assert r["psnr"].values == pytest.approx((10 * torch.log10(1 / mse)).tolist(), rel=1e-5)
    for i in range(2):
        assert r["ssim"].values[i] == pytest.approx(_ssim_reference(img[i], ref[i]), abs=2e-4)
    assert 0 < r["ms_ssim"].values[0] < 1
    # constant images a, b: every contrast-structure term is 1, luminance (2ab + C1) / (a^2 + b^2 + C1);
    # MS-SSIM keeps the luminance of the coarsest scale only, with exponent 0.1333
    a, b = 0.6, 0.5
    lum = (2 * a * b + 1e-4) / (a * a + b * b + 1e-4)
    c = M.image_quality(torch.full((1, 3, 176, 176), a), torch.full((1, 3, 176, 176), b))
    assert c["psnr"].mean == pytest.approx(10 * math.log10(1 / (a - b) ** 2), rel=1e-5)
    assert c["ssim"].mean == pytest.approx(lum, rel=1e-5)
    assert c["ms_ssim"].mean == pytest.approx(lum ** 0.1333, rel=1e-5)
    # better images score better
    worse = M.image_quality((ref + 0.2 * torch.randn(ref.shape, generator=g)).clamp(0, 1), ref)
    for m in M.IMAGE_QUALITY_METRICS:
        assert worse[m].mean < r[m].mean


def test_image_quality_input_checks():
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(ValueError, match="161"):
        M.image_quality(x, x)
    assert set(M.image_quality(x, x, metrics=("psnr", "ssim"))) == {"psnr", "ssim"}
    with pytest.raises(ValueError, match="same shape"):
        M.image_quality(x, torch.rand(1, 3, 16, 16), metrics=("psnr",))
    with pytest.raises(ValueError, match="subset"):
        M.image_quality(x, x, metrics=("fid",))
