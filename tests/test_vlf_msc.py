"""VLF-MSC end to end with tiny BLIP-2 / OPT / CLIP-text / U-Net / VAE models built from configs.

The tiny checkpoints are written to a tmp folder in the real hub layouts and loaded through the same
code as the real ones (semantic.checkpoints -> from_pretrained).
"""
import csv
import json
import math

import pytest
import torch

import semantic  # noqa: F401
from tiny_models import (TINY_NUM_QUERIES, TINY_VLF_DIM, tiny_blip2_dir, tiny_image_dir,  # noqa: F401
                         tiny_sd_dir)

from phy.channel.flat import AWGN, Rayleigh
from semantic.checkpoints import CheckpointNotFoundError
from semantic.image_decoder import (ImageDecoderTrainConfig, ImageDecoderTrainer, VLFImageDecoder,
                                    VLFToCLIPProjection, clip_text_from_embeddings, load_optimizer_state,
                                    save_optimizer_state)
from semantic.images import ImageCaptionDataset, collate_images, load_image
from semantic.text_decoder import OPTTextDecoder, finetune_projection, finetune_projection_step
from semantic.vlf import VLFEncoder, load_blip2
from semantic.vlf_msc import VLFMSC, VLFMSCConfig

N, D = TINY_NUM_QUERIES, TINY_VLF_DIM
STEPS = 2  # DDIM steps in tests
SIZE = 16  # generated image side (the tiny VAE halves it: 8x8 latents)



@pytest.fixture(scope="module")
def system(tiny_blip2_dir, tiny_sd_dir):
    cfg = VLFMSCConfig(blip2_checkpoint=str(tiny_blip2_dir), sd_checkpoint=str(tiny_sd_dir), device="cpu",
                       num_inference_steps=STEPS, image_size=SIZE, max_new_tokens=4, channel="awgn")
    with pytest.warns(UserWarning, match="no trained image decoder"):
        return VLFMSC.from_config(cfg)


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(1)
    return torch.rand(3, 3, 40, 40, generator=g)


# ------------------------------------------------------------------------------------------------
# Transmitter
# ------------------------------------------------------------------------------------------------
def test_vlf_is_the_qformer_output(system, images):
    enc = system.encoder
    vlf = enc.encode(images)
    assert vlf.shape == (3, N, D) and vlf.dtype == torch.float32
    # independent computation: transformers' own BLIP-2 path (Q-Former output before the projection)
    blip2, _ = load_blip2(enc.checkpoint, device="cpu")
    ref = blip2.get_image_features(enc.preprocess(images)).qformer_outputs.last_hidden_state
    torch.testing.assert_close(vlf, ref.float(), rtol=1e-5, atol=1e-5)
    # different images -> different VLFs
    assert not torch.allclose(vlf[0], vlf[1])


def test_encoder_accepts_pil_and_rejects_bad_input(system, images):
    from PIL import Image

    enc = system.encoder
    pil = [Image.fromarray((im.permute(1, 2, 0).numpy() * 255).round().astype("uint8")) for im in images[:2]]
    v_pil = enc.encode(pil)
    v_t = enc.encode(torch.stack([load_image_from_pil(p) for p in pil]))
    torch.testing.assert_close(v_pil, v_t, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match=r"\[batch, 3, height, width\]"):
        enc.encode(torch.rand(2, 40, 40))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        enc.encode(torch.rand(1, 3, 40, 40) * 3)


def load_image_from_pil(im):
    import numpy as np

    return torch.from_numpy(np.array(im)).permute(2, 0, 1).float() / 255


def test_ledger(system):
    led = system.ledger()
    assert led["n_ch"] == N * D // 2 == system.channel_uses()
    assert led["bcr"] == pytest.approx((N * D / 2) / (3 * 256 * 256))
    assert led["vlf_shape"] == [N, D]
    # the real system: 32 x 768 -> 12288 uses, BCR 1/16 (complex) and 1/8 (real) of a 256x256 image
    from phy.utils.conventions import bandwidth_compression_ratio

    assert bandwidth_compression_ratio(32 * 768 // 2, (3, 256, 256)) == pytest.approx(1 / 16)


# ------------------------------------------------------------------------------------------------
# Channel
# ------------------------------------------------------------------------------------------------
def test_transmit_noise_matches_theory(system, images):
    vlf = system.encode(images)
    snr = 10.0
    rx = system.transmit(vlf, snr_db=snr, seed=3)
    assert rx.shape == vlf.shape
    # per-example power normalisation: error power per real / mean(v^2) = N0 = 10^(-snr/10)
    nmse = ((rx - vlf) ** 2).mean(dim=(1, 2)) / (vlf ** 2).mean(dim=(1, 2))
    assert torch.allclose(nmse, torch.full_like(nmse, 10 ** (-snr / 10)), rtol=0.25)
    torch.testing.assert_close(system.transmit(vlf, snr_db=snr, seed=3), rx)  # same seed, same noise
    assert not torch.equal(system.transmit(vlf, snr_db=snr, seed=4), rx)
    hi = system.transmit(vlf, snr_db=60.0, seed=3)
    assert ((hi - vlf) ** 2).mean() < 1e-5 * (vlf ** 2).mean()


def test_default_equalizer_is_mmse_and_keeps_rayleigh_nmse_below_one(system, images):
    """On per-symbol Rayleigh at 0 dB, the default config's received VLF has NMSE < 1 (ZF's
    is unbounded: E[1/|h|^2] is infinite) and matches MMSE's closed form E[N0 / (|h|^2 + N0)] =
    N0 e^N0 E1(N0) (0.596 at N0 = 1)."""
    from scipy.special import exp1

    assert VLFMSCConfig().equalizer == "mmse" and system.config.equalizer == "mmse"
    vlf = system.encode(images).repeat(32, 1, 1)  # 96 examples x 128 complex uses
    rx = system.transmit(vlf, channel=Rayleigh(seed=0), snr_db=0.0)
    nmse = float((((rx - vlf) ** 2).sum(dim=(1, 2)) / (vlf ** 2).sum(dim=(1, 2))).mean())
    n0 = 1.0
    assert nmse < 1.0
    assert nmse == pytest.approx(n0 * math.exp(n0) * float(exp1(n0)), rel=0.05)
    with pytest.raises(ValueError, match="equalizer"):
        VLFMSCConfig(equalizer="lmmse")


def test_transmit_rayleigh_override_and_errors(system, images):
    vlf = system.encode(images)
    out = system.transmit(vlf, channel=Rayleigh(seed=0), snr_db=5.0, return_output=True)
    assert out.channel_uses == N * D // 2 and out.x_hat.shape == vlf.shape
    awgn = system.transmit(vlf, channel=AWGN(seed=0), snr_db=5.0)
    assert not torch.allclose(out.x_hat, awgn)
    with pytest.raises(ValueError, match=r"\[batch, N, d\]"):
        system.transmit(vlf[0], snr_db=5.0)


# ------------------------------------------------------------------------------------------------
# Receivers share the received VLF, and the noise reaches them
# ------------------------------------------------------------------------------------------------
def test_same_received_vlf_feeds_both_decoders(system, images, monkeypatch):
    seen = {}
    orig_text, orig_img = system.text_decoder.soft_prompt, system.image_decoder.encode_condition

    def spy_text(received):
        seen["text"] = received
        return orig_text(received)

    def spy_img(received, labels=None):
        seen["image"] = received
        return orig_img(received, labels)

    monkeypatch.setattr(system.text_decoder, "soft_prompt", spy_text)
    monkeypatch.setattr(system.image_decoder, "encode_condition", spy_img)
    out = system(images, snr_db=0.0, channel_seed=1)
    assert seen["text"] is out.received and seen["image"] is out.received
    assert len(out.captions) == 3 and out.images.shape == (3, 3, SIZE, SIZE)
    assert 0.0 <= out.images.min() and out.images.max() <= 1.0
    assert out.channel_uses == N * D // 2
    assert not torch.allclose(out.received, out.vlf)


def _first_logits(dec: OPTTextDecoder, received):
    embeds, mask = dec.build_inputs(received)
    with torch.no_grad():
        return dec.language_model(inputs_embeds=embeds, attention_mask=mask).logits[:, -1]


def test_noise_reaches_text_decoder(system, images):
    vlf = system.encode(images)
    dec = system.text_decoder
    lo = system.transmit(vlf, snr_db=-5.0, seed=0)
    hi = system.transmit(vlf, snr_db=20.0, seed=0)
    l_lo, l_hi, l_clean = _first_logits(dec, lo), _first_logits(dec, hi), _first_logits(dec, vlf)
    # more noise -> the decoder's next-token distribution moves further from the clean one
    d_lo, d_hi = (l_lo - l_clean).abs().mean(), (l_hi - l_clean).abs().mean()
    assert d_hi > 0 and d_lo > d_hi
    torch.testing.assert_close(_first_logits(dec, system.transmit(vlf, snr_db=-5.0, seed=0)), l_lo)
    caps = dec.generate(lo, max_new_tokens=5, min_new_tokens=5)
    assert len(caps) == 3 and all(len(c) > 0 for c in caps)
    assert dec.generate(system.transmit(vlf, snr_db=-5.0, seed=0), max_new_tokens=5, min_new_tokens=5) == caps


def test_noise_reaches_image_decoder(system, images):
    vlf = system.encode(images)
    a = system.decode_image(system.transmit(vlf, snr_db=-5.0, seed=0), seed=7)
    b = system.decode_image(system.transmit(vlf, snr_db=-5.0, seed=0), seed=7)
    c = system.decode_image(system.transmit(vlf, snr_db=20.0, seed=0), seed=7)
    torch.testing.assert_close(a, b)  # same channel seed, same diffusion seed -> identical
    assert (a - c).abs().max() > 0    # the SNR changes the image
    # and the diffusion seed does too
    assert (system.decode_image(vlf, seed=7) - system.decode_image(vlf, seed=8)).abs().max() > 0


def test_sweep_encodes_once(system, images, monkeypatch):
    system._cache.clear()
    calls = []
    orig = system.encoder.forward
    monkeypatch.setattr(system.encoder, "forward", lambda pv: calls.append(pv.shape[0]) or orig(pv))
    outs = system.sweep(images[:2], [-5.0, 5.0])
    assert calls == [2]
    assert [o.snr_db for o in outs] == [-5.0, 5.0]
    assert not torch.allclose(outs[0].received, outs[1].received)
    torch.testing.assert_close(outs[0].vlf, outs[1].vlf)


def test_vlf_disk_cache(system, images, tmp_path, monkeypatch):
    cfg = VLFMSCConfig(vlf_cache_dir=str(tmp_path), decode_images=False)
    s1 = VLFMSC(system.encoder, system.text_decoder, None, "awgn", cfg)
    v1 = s1.encode(images, keys=["a", "b", "c"])
    assert len(list(tmp_path.glob("*.safetensors"))) == 3
    s2 = VLFMSC(system.encoder, system.text_decoder, None, "awgn", cfg)
    monkeypatch.setattr(system.encoder, "forward", lambda pv: pytest.fail("encoder ran despite the cache"))
    torch.testing.assert_close(s2.encode(images, keys=["a", "b", "c"]), v1)


# ------------------------------------------------------------------------------------------------
# Text decoder
# ------------------------------------------------------------------------------------------------
def test_text_modes_and_projection_init(system, tiny_blip2_dir, images):
    model, proc = load_blip2(tiny_blip2_dir, device="cpu")
    vlf = system.encode(images)
    pooled = OPTTextDecoder.from_blip2(model, proc.tokenizer, mode="pooled")
    native = OPTTextDecoder.from_blip2(model, proc, mode="blip2")
    H = model.config.text_config.hidden_size
    sp = pooled.soft_prompt(vlf)
    assert sp.shape == (3, 1, H) and native.soft_prompt(vlf).shape == (3, N, H)
    # W_proj starts as BLIP-2's trained language_projection, applied to the mean over the N queries
    with torch.no_grad():
        ref = model.language_projection(vlf.mean(dim=1, keepdim=True))
        ref_native = model.language_projection(vlf)
    torch.testing.assert_close(sp, ref)
    torch.testing.assert_close(native.soft_prompt(vlf), ref_native)
    embeds, mask = pooled.build_inputs(vlf)
    assert embeds.shape == (3, 2, H) and mask.sum().item() == 6  # soft prompt + BOS
    with pytest.raises(ValueError, match="mode"):
        OPTTextDecoder.from_blip2(model, proc.tokenizer, mode="mean")


def test_caption_loss_matches_manual_cross_entropy(system, images):
    dec = system.text_decoder
    vlf = system.encode(images[:2])
    caps = ["a dog", "the red house"]
    tok = dec.tokenizer
    with torch.no_grad():
        loss = dec.caption_loss(vlf, caps)
        # independent: one example at a time, no padding; predict caption tokens + EOS after [prompt, BOS]
        nll, count = 0.0, 0
        for i, c in enumerate(caps):
            target = torch.tensor(tok(c, add_special_tokens=False)["input_ids"] + [tok.eos_token_id])
            embeds, _ = dec.build_inputs(vlf[i:i + 1])
            full = torch.cat([embeds, dec.language_model.get_input_embeddings()(target)[None]], dim=1)
            logits = dec.language_model(inputs_embeds=full).logits[0]
            p = embeds.shape[1]
            logp = torch.log_softmax(logits[p - 1:p - 1 + len(target)].float(), dim=-1)
            nll -= logp[torch.arange(len(target)), target].sum().item()
            count += len(target)
    assert loss.item() == pytest.approx(nll / count, rel=1e-4)


def test_projection_finetune_lowers_lm_loss(system, tiny_blip2_dir, images):
    model, proc = load_blip2(tiny_blip2_dir, device="cpu")
    dec = OPTTextDecoder.from_blip2(model, proc.tokenizer)
    vlf = system.encode(images)
    caps = ["a red ball", "two cats", "a blue car"]
    with torch.no_grad():
        before = dec.caption_loss(vlf, caps).item()
    opt = torch.optim.Adam(dec.projection.parameters(), lr=5e-2)
    lm_before = [p.clone() for p in dec.language_model.parameters()]
    steps = [finetune_projection_step(dec, opt, vlf, caps) for _ in range(5)]
    assert steps[0] == pytest.approx(before, rel=1e-5)  # the returned loss is the one before the step
    with torch.no_grad():
        after = dec.caption_loss(vlf, caps).item()
    # a 1-layer random OPT can use one soft-prompt token only a little: the drop is small but real
    assert after < before - 0.02
    assert all(torch.equal(a, b) for a, b in zip(lm_before, dec.language_model.parameters()))  # OPT frozen
    # with channel noise, through the loop helper
    losses = finetune_projection(dec, [(vlf, caps)], steps=3, lr=1e-2, link=system.link, snr_range_db=(0, 10))
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    with pytest.raises(ValueError, match="both link and snr_db"):
        finetune_projection_step(dec, opt, vlf, caps, link=system.link)


def test_text_projection_roundtrip(system, tiny_blip2_dir, tmp_path, images):
    model, proc = load_blip2(tiny_blip2_dir, device="cpu")
    dec = OPTTextDecoder.from_blip2(model, proc.tokenizer)
    with torch.no_grad():
        dec.projection.linear.weight.add_(0.5)
    dec.save_projection(tmp_path / "wproj")
    assert (tmp_path / "wproj" / "config.json").is_file()
    assert list((tmp_path / "wproj").glob("*.safetensors"))
    dec2 = OPTTextDecoder.from_blip2(model, proc.tokenizer, projection=tmp_path / "wproj")
    torch.testing.assert_close(dec2.projection.linear.weight, dec.projection.linear.weight)
    vlf = system.encode(images)
    torch.testing.assert_close(dec2.soft_prompt(vlf), dec.soft_prompt(vlf))
    with pytest.raises(ValueError, match="trained for mode"):
        OPTTextDecoder.from_blip2(model, proc.tokenizer, mode="blip2", projection=tmp_path / "wproj")


# ------------------------------------------------------------------------------------------------
# Image decoder
# ------------------------------------------------------------------------------------------------
def test_clip_text_from_embeddings_matches_clip(system):
    te = system.image_decoder.text_encoder
    ids = torch.randint(0, te.config.vocab_size, (2, 11))
    with torch.no_grad():
        ref = te(ids).last_hidden_state
        got = clip_text_from_embeddings(te, te.get_input_embeddings()(ids))
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


def test_condition_sequence_layout(system, images):
    dec = system.image_decoder
    vlf = system.encode(images[:2])
    emb = dec.text_encoder.get_input_embeddings()
    seq = dec.condition_embeddings(vlf, labels=["dog", None])
    L = dec.max_length
    assert seq.shape == (2, L, emb.embedding_dim)
    lab = dec.tokenizer("dog", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        proj = dec.projection(vlf)
        torch.testing.assert_close(seq[0, 0], emb.weight[dec.bos_token_id])
        torch.testing.assert_close(seq[0, 1:1 + len(lab)], emb.weight[lab])
        torch.testing.assert_close(seq[0, 1 + len(lab):1 + len(lab) + N], proj[0])
        torch.testing.assert_close(seq[0, 1 + len(lab) + N], emb.weight[dec.eos_token_id])
        torch.testing.assert_close(seq[1, 1:1 + N], proj[1])          # no label: VLF right after BOS
        torch.testing.assert_close(seq[1, -1], emb.weight[dec.pad_token_id])
    with pytest.raises(ValueError, match="exceeds"):
        dec.condition_embeddings(vlf[:1], labels=["a very long subject label " * 6])
    with pytest.raises(ValueError, match=r"shape \[batch, 8, 32\]"):
        dec.projection(torch.randn(1, N + 1, D))


def test_sampler_defaults():
    cfg = VLFMSCConfig()
    assert cfg.num_inference_steps == 50 and cfg.blip2_checkpoint == "Salesforce/blip2-opt-6.7b"
    assert cfg.text_mode == "pooled" and cfg.channel == "awgn"
    with pytest.raises(ValueError, match="text_mode"):
        VLFMSCConfig(text_mode="avg")


def test_loaded_scheduler_is_ddim_without_clipping(system):
    from diffusers import DDIMScheduler

    sched = system.image_decoder.scheduler
    assert isinstance(sched, DDIMScheduler) and sched.config.clip_sample is False


def test_guidance_changes_images(system, images):
    vlf = system.encode(images[:1])
    a = system.image_decoder.generate(vlf, seed=0, guidance_scale=1.0)
    b = system.image_decoder.generate(vlf, seed=0, guidance_scale=5.0)
    assert a.shape == b.shape == (1, 3, SIZE, SIZE) and (a - b).abs().max() > 0


def _fresh_decoder(sd_dir, decoder=None):
    return VLFImageDecoder.from_pretrained(sd_dir, decoder, vlf_dim=D, num_queries=N, device="cpu",
                                           num_inference_steps=STEPS, height=SIZE, width=SIZE)


def test_training_step_lowers_diffusion_loss(tiny_sd_dir, system, images):
    dec = _fresh_decoder(tiny_sd_dir)
    tr = ImageDecoderTrainer(dec, ImageDecoderTrainConfig(lr=1e-3, projection_lr=1e-2, grad_accum=2))
    x = images[:2, :, :SIZE, :SIZE]
    vlf = system.encode(images[:2])
    t = torch.tensor([30, 90])
    noise = torch.randn(2, 4, SIZE // 2, SIZE // 2, generator=torch.Generator().manual_seed(0))

    def fixed_loss():
        with torch.no_grad():
            return dec.diffusion_loss(x, vlf, tr.noise_scheduler, labels=["cat", "dog"], timesteps=t,
                                      noise=noise).item()

    before = fixed_loss()
    for _ in range(6):
        tr.step(x, vlf, labels=["cat", "dog"], timesteps=t, noise=noise)
    assert tr.global_step == 3 and tr.micro_step == 6  # gradient accumulation over 2 micro-batches
    assert fixed_loss() < 0.9 * before
    # the default timestep range is the paper's [0, 100]
    assert (tr.config.t_min, tr.config.t_max) == (0, 100)


def test_timesteps_drawn_from_range(tiny_sd_dir, system, images, monkeypatch):
    dec = _fresh_decoder(tiny_sd_dir)
    tr = ImageDecoderTrainer(dec, ImageDecoderTrainConfig(t_min=10, t_max=20))
    seen = []
    orig = tr.noise_scheduler.add_noise
    monkeypatch.setattr(tr.noise_scheduler, "add_noise", lambda z, n, t: seen.append(t.clone()) or orig(z, n, t))
    vlf = system.encode(images[:2])
    for _ in range(5):
        tr.step(images[:2, :, :SIZE, :SIZE], vlf)
    allt = torch.cat(seen)
    assert allt.min() >= 10 and allt.max() <= 20
    with pytest.raises(ValueError, match="t_min"):
        ImageDecoderTrainConfig(t_min=50, t_max=10)
    with pytest.raises(ValueError, match="mixed_precision"):
        ImageDecoderTrainConfig(mixed_precision="fp8")


def test_bf16_autocast_step_on_cpu(tiny_sd_dir, system, images):
    dec = _fresh_decoder(tiny_sd_dir)
    tr = ImageDecoderTrainer(dec, ImageDecoderTrainConfig(mixed_precision="bf16", train_unet=False))
    loss = tr.step(images[:1, :, :SIZE, :SIZE], system.encode(images[:1]))
    assert math.isfinite(loss) and tr.global_step == 1
    assert dec.projection.linear.weight.dtype == torch.float32


def test_checkpoint_roundtrip_and_resume(tiny_sd_dir, system, images, tmp_path):
    x = images[:2, :, :SIZE, :SIZE]
    vlf = system.encode(images[:2])
    t = torch.tensor([5, 60])
    noise = torch.randn(2, 4, SIZE // 2, SIZE // 2, generator=torch.Generator().manual_seed(1))
    cfg = ImageDecoderTrainConfig(lr=1e-3, projection_lr=1e-2)
    dec = _fresh_decoder(tiny_sd_dir)
    tr = ImageDecoderTrainer(dec, cfg)
    for _ in range(2):
        tr.step(x, vlf, timesteps=t, noise=noise)
    ck = tr.save(tmp_path / "checkpoint-0000002")
    assert (ck / "projection" / "config.json").is_file() and (ck / "unet" / "config.json").is_file()
    assert json.loads((ck / "trainer_state.json").read_text())["global_step"] == 2
    assert not (tmp_path / "checkpoint-0000002.tmp").exists()

    # inference loading of the trained folder
    loaded = _fresh_decoder(tiny_sd_dir, ck)
    torch.testing.assert_close(loaded.projection.linear.weight, dec.projection.linear.weight)
    for a, b in zip(loaded.unet.parameters(), dec.unet.parameters()):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(loaded.generate(vlf, seed=0), dec.generate(vlf, seed=0))

    # resume: step counter + optimizer state, and the next step equals the uninterrupted run's
    dec2 = _fresh_decoder(tiny_sd_dir)
    tr2 = ImageDecoderTrainer.resume(dec2, ck)
    assert tr2.global_step == 2 and tr2.micro_step == 2
    s1, s2 = tr.optimizer.state_dict(), tr2.optimizer.state_dict()
    for pid in s1["state"]:
        for k, v in s1["state"][pid].items():
            torch.testing.assert_close(s2["state"][pid][k], v)
    tr.step(x, vlf, timesteps=t, noise=noise)
    tr2.step(x, vlf, timesteps=t, noise=noise)
    torch.testing.assert_close(dec2.projection.linear.weight, dec.projection.linear.weight)
    # a saved projection alone is a valid --image-decoder folder too
    only = VLFToCLIPProjection.from_pretrained(ck / "projection")
    torch.testing.assert_close(only.linear.weight, loaded.projection.linear.weight)


def test_optimizer_state_roundtrip(tmp_path):
    p = torch.nn.Parameter(torch.randn(3))
    opt = torch.optim.AdamW([p], lr=0.1)
    p.grad = torch.ones(3)
    opt.step()
    save_optimizer_state(opt, tmp_path)
    q = torch.nn.Parameter(p.detach().clone())
    opt2 = torch.optim.AdamW([q], lr=0.5)
    load_optimizer_state(opt2, tmp_path)
    assert opt2.param_groups[0]["lr"] == 0.1
    torch.testing.assert_close(opt2.state[q]["exp_avg"], opt.state[p]["exp_avg"])


def test_half_precision_pipeline(tiny_blip2_dir, tiny_sd_dir, images):
    """The GPU default (float16 weights; Q-Former and W_proj kept in float32) also runs on CPU."""
    cfg = VLFMSCConfig(blip2_checkpoint=str(tiny_blip2_dir), sd_checkpoint=str(tiny_sd_dir), device="cpu",
                       dtype="float16", num_inference_steps=STEPS, image_size=SIZE, max_new_tokens=3,
                       guidance_scale=2.0)
    with pytest.warns(UserWarning, match="no trained image decoder"):
        s = VLFMSC.from_config(cfg)
    assert next(s.encoder.vision_model.parameters()).dtype == torch.float16
    assert s.encoder.query_tokens.dtype == torch.float32 and s.image_decoder.unet.dtype == torch.float16
    out = s(images[:2], snr_db=5.0)
    assert out.vlf.dtype == out.received.dtype == torch.float32
    assert out.images.dtype == torch.float32 and torch.isfinite(out.images).all() and len(out.captions) == 2


# ------------------------------------------------------------------------------------------------
# Offline errors
# ------------------------------------------------------------------------------------------------
def test_missing_weights_fail_with_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(CheckpointNotFoundError) as e:
        VLFMSC.from_config(VLFMSCConfig(device="cpu"))
    assert "Salesforce/blip2-opt-6.7b" in str(e.value) and "huggingface-cli download" in str(e.value)
    with pytest.raises(CheckpointNotFoundError) as e:
        VLFImageDecoder.from_pretrained(vlf_dim=D, num_queries=N, device="cpu")
    assert "stable-diffusion-v1-5/stable-diffusion-v1-5" in str(e.value) and "--sd-checkpoint" in str(e.value)
    with pytest.raises(CheckpointNotFoundError, match="blip2-opt-2.7b"):
        VLFEncoder.from_pretrained("Salesforce/blip2-opt-2.7b")


def test_cli_missing_weights_exit_code(tiny_image_dir, tmp_path, monkeypatch, capsys):
    from experiments.cli import main

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    rc = main(["vlf-msc", "--images", str(tiny_image_dir), "--out", str(tmp_path / "o"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and "Salesforce/blip2-opt-6.7b" in err and "--blip2-checkpoint DIR" in err
    rc = main(["train-image-decoder", "--images", str(tiny_image_dir), "--out", str(tmp_path / "t"),
               "--device", "cpu", "--blip2-checkpoint", str(tmp_path / "nope")])
    assert rc == 2 and "does not exist" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# Dataset
# ------------------------------------------------------------------------------------------------
def test_image_dataset(tiny_image_dir, tmp_path):
    ds = ImageCaptionDataset(tiny_image_dir, tiny_image_dir / "captions.csv", size=256)
    assert len(ds) == 3
    item = ds[1]
    assert item["image"].shape == (3, 256, 256) and 0 <= item["image"].min() and item["image"].max() <= 1
    assert item["caption"] == "a photo of thing 1" and item["label"] == "thing 1" and item["name"] == "img1"
    batch = collate_images([ds[0], ds[2]])
    assert batch["image"].shape == (2, 3, 256, 256) and batch["label"] == ["thing 0", "thing 2"]
    assert len(ImageCaptionDataset(tiny_image_dir)) == 3  # no CSV: every image file
    # several captions per image, image ids without extension (Open Images style)
    (tmp_path / "c.csv").write_text("ImageID,caption\nimg0,first\nimg0,second\nimg2,third\n")
    u = ImageCaptionDataset(tiny_image_dir, tmp_path / "c.csv", unique=True)
    assert len(u) == 2 and u[0]["captions"] == ["first", "second"] and u[0]["caption"] == "first"
    assert len(ImageCaptionDataset(tiny_image_dir, tmp_path / "c.csv")) == 3
    (tmp_path / "bad.csv").write_text("image,caption\nmissing.png,x\n")
    with pytest.raises(FileNotFoundError, match="missing.png"):
        ImageCaptionDataset(tiny_image_dir, tmp_path / "bad.csv")
    (tmp_path / "nocol.csv").write_text("foo,caption\na,b\n")
    with pytest.raises(ValueError, match="image column"):
        ImageCaptionDataset(tiny_image_dir, tmp_path / "nocol.csv")
    # resize shorter side + centre crop: a 40x80 image keeps its centre
    from PIL import Image

    arr = torch.zeros(40, 80, 3, dtype=torch.uint8)
    arr[:, 20:60] = 255
    Image.fromarray(arr.numpy()).save(tmp_path / "wide.png")
    img = load_image(tmp_path / "wide.png", 20)
    assert img.shape == (3, 20, 20) and img[:, :, 2:18].min() > 0.9


# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------
def test_cli_train_then_vlf_msc(tiny_blip2_dir, tiny_sd_dir, tiny_image_dir, tmp_path):
    from experiments.cli import main

    train_out = tmp_path / "train"
    rc = main(["train-image-decoder", "--images", str(tiny_image_dir), "--captions",
               str(tiny_image_dir / "captions.csv"), "--blip2-checkpoint", str(tiny_blip2_dir),
               "--sd-checkpoint", str(tiny_sd_dir), "--out", str(train_out), "--steps", "2", "--batch-size", "2",
               "--image-size", str(SIZE), "--device", "cpu", "--save-every", "1", "--train-snr-db", "0:10"])
    assert rc == 0
    ck = train_out / "checkpoint-0000002"
    assert (ck / "projection" / "config.json").is_file()
    assert [r["step"] for r in csv.DictReader(open(train_out / "train_log.csv"))] == ["1", "2"]

    out = tmp_path / "run"
    argv = ["vlf-msc", "--images", str(tiny_image_dir), "--captions", str(tiny_image_dir / "captions.csv"),
            "--channel", "rayleigh", "--snr-db=-5:5:5", "--out", str(out), "--blip2-checkpoint",
            str(tiny_blip2_dir), "--sd-checkpoint", str(tiny_sd_dir), "--image-decoder", str(ck),
            "--device", "cpu", "--steps", str(STEPS), "--image-size", str(SIZE), "--input-size", "40",
            "--batch-size", "2", "--max-new-tokens", "3"]
    assert main(argv) == 0
    rows = list(csv.DictReader(open(out / "captions.csv")))
    assert len(rows) == 3 * 3
    assert {r["snr_db"] for r in rows} == {"-5.0", "0.0", "5.0"} and {r["channel"] for r in rows} == {"rayleigh"}
    assert all(r["n_ch"] == str(N * D // 2) for r in rows)
    assert rows[0]["reference"] == "a photo of thing 0"
    for r in rows:
        assert (out / r["image_file"]).is_file()
    assert (out / "grid.png").stat().st_size > 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "finished" and man["ledger"]["n_ch"] == N * D // 2
    # same SNR, different images -> different files; rerun resumes without new rows
    assert main(argv) == 0
    assert len(list(csv.DictReader(open(out / "captions.csv")))) == 9
    # another channel into the same folder: refused, not silently "resumed" from the rayleigh rows
    other = argv.copy()
    other[other.index("--channel") + 1] = "awgn"
    assert main(other) == 2
    assert {r["channel"] for r in csv.DictReader(open(out / "captions.csv"))} == {"rayleigh"}
    # the equaliser (default mmse) is recorded per row, and another one into the same folder is refused
    assert {r["equalizer"] for r in csv.DictReader(open(out / "captions.csv"))} == {"mmse"}
    assert main(argv + ["--equalizer", "zf"]) == 2
    assert json.loads((train_out / "checkpoint-0000002" / "trainer_state.json").read_text())[
        "extra"]["run"]["--equalizer"] == "mmse"
    assert main(argv[:-2] + ["--snr-db", "bogus"]) == 2
    # another seed or equalizer (not the default mmse) would mix two settings' images in one folder:
    # refused, nothing written
    before = (out / "captions.csv").read_bytes()
    for opt, value in (("--seed", "1"), ("--equalizer", "zf")):
        assert main(argv + [opt, value, "--snr-db=10"]) == 2
    # the settings travel with the rows: without their record the folder is not resumed
    (out / "captions.settings.json").unlink()
    assert main(argv) == 2
    assert (out / "captions.csv").read_bytes() == before and not (out / "images" / "snr_10dB").exists()

    # a row depends on (seed, image, SNR) only: another batch size and SNR list give the same 5 dB rows
    def five_db(folder):
        rows = {r["image"]: r for r in csv.DictReader(open(folder / "captions.csv")) if r["snr_db"] == "5.0"}
        return {k: (r["caption"], (folder / r["image_file"]).read_bytes()) for k, r in rows.items()}

    def rerun(folder, *extra):
        a = argv.copy()
        a[a.index("--out") + 1] = str(folder)
        a[a.index("--batch-size") + 1] = "3"
        a[a.index("--snr-db=-5:5:5")] = "--snr-db=5"
        assert main(a + list(extra)) == 0
        return five_db(folder)

    assert rerun(tmp_path / "rebatched") == five_db(out)
    other_seed = rerun(tmp_path / "seed1", "--seed", "1")
    assert all(other_seed[k][1] != v[1] for k, v in five_db(out).items())  # the check is not vacuous


def test_untrained_projection_is_seeded_from_config(system, tiny_blip2_dir, tiny_sd_dir):
    """Without a trained image decoder the VLF -> CLIP projection is drawn from ``config.seed``, not the
    global stream: the same seed gives the same weights whatever the global RNG state, another seed others."""
    def projection(seed, global_seed):
        torch.manual_seed(global_seed)
        cfg = VLFMSCConfig(blip2_checkpoint=str(tiny_blip2_dir), sd_checkpoint=str(tiny_sd_dir), device="cpu",
                           decode_text=False, num_inference_steps=STEPS, image_size=SIZE, seed=seed)
        with pytest.warns(UserWarning, match="no trained image decoder"):
            return VLFMSC.from_config(cfg).image_decoder.projection.state_dict()

    a, b, c = projection(0, 1), projection(0, 2), projection(1, 1)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    assert all(torch.equal(a[k], v) for k, v in system.image_decoder.projection.state_dict().items())  # seed 0


def test_grid_draws_captions_with_dollar_signs_as_text(tmp_path):
    """A received caption is arbitrary text: '$...$' must not be parsed as matplotlib math."""
    from experiments.commands.vlf_msc import write_grid

    rows = [{"image": "a.png", "snr_db": "5.0", "caption": r"costs $\frac{ and $5", "reference": r"$\bad{",
             "image_file": ""}]
    path = write_grid(rows, [5.0], str(tmp_path), str(tmp_path / "grid.png"), 1, 32)
    assert path and (tmp_path / "grid.png").stat().st_size > 0
