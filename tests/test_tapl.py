"""TAPL (prompt learner over received CLIP tokens) on a tiny open_clip model built from a config."""
import semantic  # noqa: F401  (torchvision shim before open_clip)
import pytest
import torch
import torch.nn.functional as F

from semantic.clip_tokens import load_open_clip
from semantic.semclip import SemCLIPConfig, train_tapl
from semantic.tapl import TAPL, CLIPTextTower, TaskPerformer, tapl_loss, zeroshot_classifier
from semantic.tiny import TINY_OPEN_CLIP_CFG, save_tiny_open_clip

TINY_CLIP_CFG = TINY_OPEN_CLIP_CFG
CLASSES = ["cat", "dog", "golden retriever", "tabby cat", "sports car", "airliner"]


def save_tiny_clip(path, seed=0):
    """A random tiny open_clip CLIP saved as a ``local-dir:`` folder (config + safetensors)."""
    return save_tiny_open_clip(path, seed)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    path = save_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))
    model, preprocess, tokenizer = load_open_clip(f"local-dir:{path}")
    return model, tokenizer


def performer(model, tokenizer, zero_init=True):
    tower = CLIPTextTower(model)
    tapl = TAPL(token_dim=32, ctx_dim=tower.width, n_ctx=4, zero_init_meta=zero_init)
    tapl.init_context(tower, tokenizer, "a photo of a")
    return TaskPerformer(tapl, tower, tokenizer, logit_scale=float(model.logit_scale.exp()), text_chunk=7)


def test_text_tower_replicates_encode_text(tiny_clip):
    import open_clip

    model, tokenizer = tiny_clip
    ids = tokenizer(["a photo of a cat.", "sports car", "x"])
    torch.testing.assert_close(CLIPTextTower(model).encode_ids(ids), model.encode_text(ids))
    custom = open_clip.CustomTextCLIP(**TINY_CLIP_CFG)
    torch.testing.assert_close(CLIPTextTower(custom).encode_ids(ids), custom.encode_text(ids))
    with pytest.raises(TypeError, match="open_clip"):
        CLIPTextTower(torch.nn.Linear(2, 2))


def test_untrained_tapl_equals_plain_zero_shot_classifier(tiny_clip):
    model, tokenizer = tiny_clip
    perf = performer(model, tokenizer)
    tokens = torch.randn(5, 32)
    ids = tokenizer([f"a photo of a {c}." for c in CLASSES])
    w = F.normalize(model.encode_text(ids), dim=-1)  # open_clip's own path
    expected = model.logit_scale.exp() * F.normalize(tokens, dim=-1) @ w.T
    torch.testing.assert_close(perf(tokens, CLASSES), expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(zeroshot_classifier(perf.tower, tokenizer, CLASSES), w, rtol=1e-5, atol=1e-5)


def test_prompts_depend_on_the_received_token_and_batching_matches_a_loop(tiny_clip):
    model, tokenizer = tiny_clip
    perf = performer(model, tokenizer, zero_init=False)
    tokens = torch.randn(3, 32)
    pi = perf.tapl.conditional_vector(tokens)
    torch.testing.assert_close(perf.tapl(tokens), perf.tapl.ctx[None] + pi[:, None])
    feats = perf.text_features(tokens, CLASSES)  # [B, G, D], batched over B*G prompts in chunks of 7
    assert feats.shape == (3, len(CLASSES), 32)
    assert (feats[0] - feats[1]).abs().max() > 1e-4  # different tokens -> different class prompts
    # independent per-image computation: substitute the context embeddings into "a photo of a {c}."
    ids = tokenizer([f"a photo of a {c}." for c in CLASSES])
    for b in range(3):
        emb = model.token_embedding(ids).clone()
        emb[:, 1:5] = perf.tapl(tokens[b:b + 1])[0]
        x = emb + model.positional_embedding
        x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask))
        ref = x[torch.arange(len(CLASSES)), ids.argmax(-1)] @ model.text_projection
        torch.testing.assert_close(feats[b], F.normalize(ref, dim=-1), rtol=1e-4, atol=1e-5)


def test_tapl_training_lowers_loss(tiny_clip):
    model, tokenizer = tiny_clip
    g = torch.Generator().manual_seed(0)
    protos = torch.randn(len(CLASSES), 32, generator=g)
    labels = torch.arange(48) % len(CLASSES)
    tokens = protos[labels] + 0.3 * torch.randn(48, 32, generator=g)
    cfg = SemCLIPConfig(token_dim=32, channel_uses=8, tapl_batch_size=16, tapl_steps=40, tapl_lr=2e-2,
                        tapl_classes_per_step=4, text_chunk=64)
    tapl, hist = train_tapl(tokens, labels, CLASSES, None, model, tokenizer, cfg, progress=False)
    assert sum(hist[-8:]) / 8 < 0.6 * sum(hist[:8]) / 8, hist
    init_ctx = model.token_embedding(tokenizer(["a photo of a"])[0, 1:5])
    assert (tapl.ctx - init_ctx).abs().max() > 1e-3  # the context vectors moved
    assert not any(p.requires_grad for p in model.parameters())  # CLIP stays frozen


def test_tapl_checkpoint_round_trip_and_errors(tiny_clip, tmp_path):
    model, tokenizer = tiny_clip
    perf = performer(model, tokenizer, zero_init=False)
    perf.tapl.save_pretrained(str(tmp_path / "tapl"))
    loaded = TAPL.from_pretrained(str(tmp_path / "tapl"), low_cpu_mem_usage=False)
    tokens = torch.randn(2, 32)
    torch.testing.assert_close(loaded(tokens), perf.tapl(tokens))
    with pytest.raises(ValueError, match="n_ctx"):
        TAPL(token_dim=32, ctx_dim=32, n_ctx=3).init_context(perf.tower, tokenizer, "a photo of a")
    with pytest.raises(ValueError, match="labels"):
        tapl_loss(torch.randn(2, 3), torch.tensor([0]))


def test_tapl_loss_both_directions_by_hand():
    """Eq. 5 in both directions: the text-to-image term by hand, classes of the batch only, several positives."""
    import math

    from semantic.tapl import tapl_loss

    lg = torch.tensor([[2.0, 0.0, 5.0], [0.0, 1.0, 5.0], [1.0, 0.0, 5.0]])  # class 2 absent from the batch
    y = torch.tensor([0, 1, 0])
    e = math.exp
    i2t = -(math.log(e(2) / (e(2) + 1 + e(5))) + math.log(e(1) / (1 + e(1) + e(5)))
            + math.log(e(1) / (e(1) + 1 + e(5)))) / 3
    t2i = -(math.log((e(2) + e(1)) / (e(2) + 1 + e(1))) + math.log(e(1) / (1 + e(1) + 1))) / 2
    assert float(tapl_loss(lg, y)) == pytest.approx(i2t, rel=1e-6)
    assert float(tapl_loss(lg, y, "i2t")) == pytest.approx(i2t, rel=1e-6)
    assert float(tapl_loss(lg, y, "both")) == pytest.approx(0.5 * (i2t + t2i), rel=1e-6)
    with pytest.raises(ValueError, match="direction"):
        tapl_loss(lg, y, "t2i")
    with pytest.raises(ValueError, match="tapl_loss"):
        SemCLIPConfig(tapl_loss="sym")


def test_train_tapl_uses_the_configured_direction(tiny_clip, monkeypatch):
    import semantic.semclip as ss

    model, tokenizer = tiny_clip
    seen = []
    orig = ss.tapl_loss
    monkeypatch.setattr(ss, "tapl_loss", lambda lg, y, d="i2t": seen.append(d) or orig(lg, y, d))
    tokens, labels = torch.randn(8, 32), torch.arange(8) % len(CLASSES)
    cfg = SemCLIPConfig(token_dim=32, channel_uses=8, tapl_batch_size=4, tapl_steps=2, tapl_classes_per_step=4,
                        text_chunk=64, tapl_loss="both")
    train_tapl(tokens, labels, CLASSES, None, model, tokenizer, cfg, progress=False)
    assert seen == ["both", "both"]
