"""SemCLIP's SNR-adaptive JSCC: shapes, power constraint, the contrastive loss, training, checkpoints."""
import math

import semantic  # noqa: F401
import pytest
import torch

from phy.channel.flat import AWGN, Rayleigh
from phy.link.analog import AnalogLink
from semantic.jscc import AFModule, JSCCCodec, JSCCEncoder, contrastive_jscc_loss, sample_snr_db
from semantic.semclip import SemCLIPConfig, feature_retrieval_topk, train_jscc, transmit_tokens


def small_codec(use_af=True, equalizer="mmse"):
    return JSCCCodec.build(token_dim=16, channel_uses=6, hidden_dim=32, use_af=use_af, equalizer=equalizer)


def test_shapes_and_per_example_power():
    codec = small_codec()
    tokens = torch.randn(5, 16) * torch.tensor([[0.01], [1.0], [100.0], [3.0], [0.5]])
    x = codec.encoder(tokens, torch.tensor([-10.0, 0.0, 5.0, 10.0, 20.0]))
    assert x.shape == (5, 6) and x.dtype == torch.complex64
    power = x.real.square().mean(-1) + x.imag.square().mean(-1)
    torch.testing.assert_close(power, torch.ones(5), rtol=1e-5, atol=1e-5)
    out = codec(tokens, AWGN(seed=0), snr_db=3.0)
    assert out.x_hat.shape == (5, 16) and out.channel_uses == 6
    torch.testing.assert_close(out.info["symbols"], codec.encoder(tokens, 3.0))


def test_encoder_ignores_token_scale_and_af_uses_snr():
    codec = small_codec()
    t = torch.randn(3, 16)
    torch.testing.assert_close(codec.encoder(t, 0.0), codec.encoder(7.0 * t, 0.0), rtol=1e-5, atol=1e-5)
    # with AF modules the code depends on the SNR; without them it must not
    assert not torch.allclose(codec.encoder(t, -10.0), codec.encoder(t, 10.0))
    plain = small_codec(use_af=False)
    torch.testing.assert_close(plain.encoder(t, -10.0), plain.encoder(t, 10.0))


def test_af_module_is_sigmoid_gate():
    af = AFModule(8, hidden=4)
    f = torch.randn(2, 8)
    snr = torch.tensor([[0.0], [10.0]])
    ctx = torch.cat([f, snr / 10.0], -1)
    expected = f * torch.sigmoid(af.mlp[2](torch.relu(af.mlp[0](ctx))))
    torch.testing.assert_close(af(f, snr), expected)


def test_noiseless_channel_is_deterministic_and_rayleigh_equalised():
    codec = small_codec()
    t = torch.randn(4, 16)
    a = codec(t, AWGN(seed=1), snr_db=math.inf).x_hat
    b = codec(t, AWGN(seed=2), snr_db=math.inf).x_hat
    torch.testing.assert_close(a, b)
    # on a noiseless Rayleigh channel ZF equalisation undoes h exactly
    zf = JSCCCodec(codec.encoder, codec.decoder, equalizer="zf")
    torch.testing.assert_close(zf(t, Rayleigh(seed=3), snr_db=math.inf).x_hat, a, rtol=1e-4, atol=1e-4)


def test_contrastive_loss_matches_hand_computation_3x3():
    sent = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    recv = torch.tensor([[2.0, 0.1], [-0.1, 1.0], [1.0, 0.8]])
    T = 0.5
    cos = [[sum(a * b for a, b in zip(s, r)) / (math.hypot(*s) * math.hypot(*r)) for r in recv.tolist()]
           for s in sent.tolist()]
    logits = [[c / T for c in row] for row in cos]

    def ce(rows):
        return sum(-rows[i][i] + math.log(sum(math.exp(v) for v in rows[i])) for i in range(3)) / 3

    cols = [[logits[j][i] for j in range(3)] for i in range(3)]
    expected = 0.5 * (ce(logits) + ce(cols))
    assert contrastive_jscc_loss(sent, recv, temperature=T).item() == pytest.approx(expected, rel=1e-6)
    # symmetric in its arguments, and zero-ish for perfect, well separated reconstructions
    assert contrastive_jscc_loss(recv, sent, T).item() == pytest.approx(expected, rel=1e-6)
    eye = torch.eye(3)
    assert contrastive_jscc_loss(eye, eye, 0.01).item() < 1e-10


def test_bad_inputs_raise():
    codec = small_codec()
    with pytest.raises(ValueError, match="tokens"):
        codec.encoder(torch.randn(2, 15), 0.0)
    with pytest.raises(TypeError, match="channel"):
        codec(torch.randn(2, 16), "awgn", 0.0)
    with pytest.raises(ValueError, match="temperature"):
        contrastive_jscc_loss(torch.randn(2, 3), torch.randn(2, 3), 0.0)
    with pytest.raises(ValueError, match="snr_range"):
        sample_snr_db(3, (5.0, -5.0))
    with pytest.raises(ValueError, match="token_dim"):
        JSCCEncoder(token_dim=0)
    with pytest.raises(ValueError, match="channel_uses"):  # 0 is an error, not "use the default N/2"
        JSCCCodec.build(token_dim=16, channel_uses=0, hidden_dim=32)


def test_training_lowers_loss_and_resumes_exactly(tmp_path):
    feats = torch.randn(64, 16)
    cfg = SemCLIPConfig(token_dim=16, channel_uses=6, hidden_dim=32, jscc_batch_size=32, jscc_steps=60,
                        checkpoint_every=25, snr_train_range=(0.0, 10.0), temperature=0.1, jscc_lr=5e-3)
    codec, hist = train_jscc(feats, cfg, out_dir=None, progress=False)
    assert sum(hist[-10:]) / 10 < 0.5 * sum(hist[:10]) / 10
    # interrupted at step 30, resumed: identical history and weights to the uninterrupted run
    train_jscc(feats, cfg, out_dir=tmp_path, progress=False, stop_at=30)
    assert not (tmp_path / "encoder").exists() and (tmp_path / "checkpoint" / "train_state.pt").is_file()
    codec2, hist2 = train_jscc(feats, cfg, out_dir=tmp_path, progress=False)
    assert hist2 == hist
    for a, b in zip(codec.state_dict().values(), codec2.state_dict().values()):
        torch.testing.assert_close(a, b)


class _Payload:
    """A pickle whose loading would write ``marker`` (what a planted ``train_state.pt`` could do)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _tiny_cfg(**kw):
    return SemCLIPConfig(token_dim=16, channel_uses=6, hidden_dim=32, jscc_batch_size=8, jscc_steps=4,
                         checkpoint_every=2, **kw)


def test_planted_pickle_in_checkpoint_does_not_run(tmp_path):
    """Resuming reads ``train_state.pt`` with ``weights_only=True``: a planted pickle payload is refused
    with a clear error naming the file, and its code never runs (no marker file)."""
    feats = torch.randn(16, 16)
    train_jscc(feats, _tiny_cfg(), out_dir=tmp_path / "run", progress=False, stop_at=2)
    state_file = tmp_path / "run" / "checkpoint" / "train_state.pt"
    state = torch.load(state_file, weights_only=True)
    marker = tmp_path / "pwned"
    torch.save({**state, "evil": _Payload(marker)}, state_file)
    with pytest.raises(ValueError, match="train_state.pt.*refused to unpickle"):
        train_jscc(feats, _tiny_cfg(), out_dir=tmp_path / "run", progress=False)
    assert not marker.exists()


@pytest.mark.parametrize("change", [dict(seed=1), dict(jscc_lr=1e-2), dict(channel="rayleigh"),
                                    dict(equalizer="zf"), dict(jscc_steps=6)])
def test_resume_with_other_settings_is_refused(tmp_path, change):
    """A checkpoint records the settings it was trained with; resuming under another seed, learning
    rate, channel, equalizer or step count is refused, naming the setting, and writes nothing."""
    feats = torch.randn(16, 16)
    train_jscc(feats, _tiny_cfg(), out_dir=tmp_path, progress=False, stop_at=2)
    config_before = (tmp_path / "semclip_config.json").read_bytes()
    state_before = (tmp_path / "checkpoint" / "train_state.pt").read_bytes()
    cfg = _tiny_cfg(**{k: v for k, v in change.items() if k != "jscc_steps"})
    if "jscc_steps" in change:
        cfg.jscc_steps = change["jscc_steps"]
    name = "steps" if "jscc_steps" in change else next(iter(change))
    with pytest.raises(ValueError, match=f"other settings .*{name}"):
        train_jscc(feats, cfg, out_dir=tmp_path, progress=False)
    assert (tmp_path / "semclip_config.json").read_bytes() == config_before
    assert (tmp_path / "checkpoint" / "train_state.pt").read_bytes() == state_before
    # the same settings resume
    _, hist = train_jscc(feats, _tiny_cfg(), out_dir=tmp_path, progress=False)
    assert len(hist) == 4


def test_checkpoint_without_settings_is_refused(tmp_path):
    feats = torch.randn(16, 16)
    train_jscc(feats, _tiny_cfg(), out_dir=tmp_path, progress=False, stop_at=2)
    state_file = tmp_path / "checkpoint" / "train_state.pt"
    state = torch.load(state_file, weights_only=True)
    del state["settings"]
    torch.save(state, state_file)
    with pytest.raises(ValueError, match="records no training settings"):
        train_jscc(feats, _tiny_cfg(), out_dir=tmp_path, progress=False)


def test_checkpoint_round_trip(tmp_path):
    codec = small_codec(equalizer="zf")
    codec.save_pretrained(tmp_path / "c")
    assert (tmp_path / "c" / "encoder" / "config.json").is_file()
    loaded = JSCCCodec.from_pretrained(tmp_path / "c")
    assert loaded.equalizer.method == "zf" and loaded.channel_uses == 6
    t = torch.randn(3, 16)
    torch.testing.assert_close(loaded(t, AWGN(seed=0), 5.0).x_hat, codec(t, AWGN(seed=0), 5.0).x_hat)
    with pytest.raises(FileNotFoundError):
        JSCCCodec.from_pretrained(tmp_path / "missing")


def test_feature_retrieval_topk():
    db = torch.eye(4)
    q = torch.tensor([[1.0, 0.1, 0, 0], [0, 0, 1.0, 0.9], [0, 0, 0.9, 1.0]])
    r = feature_retrieval_topk(q, db, targets=torch.tensor([0, 3, 3]), ks=(1, 2))
    assert r[1] == pytest.approx(2 / 3) and r[2] == pytest.approx(1.0)  # query 1 finds item 2 first


@pytest.mark.slow
def test_minilm_jscc_beats_analog_at_matched_channel_uses():
    """Fast version of benchmarks/bench_semclip_minilm.py on real MiniLM features (256 sentences).

    L = N/8 = 48 channel uses; transductive retrieval (the sentences are the database). The JSCC
    must beat the analog transmission of the first 2L = 96 dimensions at -10 and -5 dB.
    """
    from semantic.sentences import corpus_features, load_pydoc_corpus

    feats = corpus_features(load_pydoc_corpus(max_sentences=256)).float()
    n = feats.shape[0]
    cfg = SemCLIPConfig(token_dim=384, channel_uses=48, hidden_dim=256, jscc_batch_size=n, jscc_steps=250,
                        snr_train_range=(-12.0, 0.0), temperature=0.02, jscc_lr=3e-3)
    codec, _ = train_jscc(feats, cfg, progress=False)
    link = AnalogLink(AWGN(seed=5))
    for snr in (-10.0, -5.0):
        analog = sum(feature_retrieval_topk(link(feats[:, :96], snr_db=snr).x_hat, feats[:, :96])[1]
                     for _ in range(3)) / 3
        jscc = sum(feature_retrieval_topk(transmit_tokens(feats, codec, AWGN(seed=s), snr), feats)[1]
                   for s in range(3)) / 3
        assert jscc > analog + 0.02, (snr, jscc, analog)
