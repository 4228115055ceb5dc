"""The baselines of ``semcom vlf-msc-eval`` built at their channel-use budget: the paper's (``--budget paper``)
or at most VLF-MSC's channel uses (``--budget matched``: :func:`matched_latent_bits`,
:func:`matched_repetition`), and the inputs that would make their numbers meaningless (:class:`EvalRefused`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

__all__ = ["EvalRefused", "matched_latent_bits", "matched_repetition"]


def matched_latent_bits(max_uses: Callable[[int], int], target: int, max_bits: int = 16) -> Optional[int]:
    """The largest latent quantiser resolution ``b`` in ``1..max_bits`` whose most expensive image costs at
    most ``target`` channel uses (``max_uses(b)``, non-decreasing in ``b``); None if not even 1 bit fits.

    Example
    -------
    >>> matched_latent_bits(lambda b: 1024 * b + 40, 12288)  # 11 bits: 11304 uses; 12 bits: 12328
    11
    """
    best = None
    for b in range(1, int(max_bits) + 1):
        if max_uses(b) > target:
            break
        best = b
    return best


def matched_repetition(max_uses: Callable[[int], int], target: int) -> Optional[int]:
    """The largest repetition factor ``r >= 1`` whose most expensive item costs at most ``target`` channel uses
    (``max_uses(r)``, non-decreasing in ``r`` and at most ``r * max_uses(1)``, as for a frame sent ``r`` times);
    None if not even one copy fits; 1 if nothing is sent at all.

    Example
    -------
    >>> matched_repetition(lambda r: -(-r * 357 // 4), 12288)  # ceil(r * 357 / 4): 137 -> 12228, 138 -> 12317
    137
    """
    one = max_uses(1)
    if one > target:
        return None
    if one <= 0:  # nothing is sent (every caption empty): repeating it changes nothing
        return 1
    r = max(1, int(target) // max(1, one))  # max_uses(r) <= r * max_uses(1) <= target
    while max_uses(r) > target and r > 1:   # guards a ledger that is not sub-linear
        r -= 1
    while max_uses(r + 1) <= target:
        r += 1
    return r


class EvalRefused(ValueError):
    """An input that would make a system's numbers meaningless (the message says which and why).

    Examples
    --------
    >>> issubclass(EvalRefused, ValueError)
    True
    """


def _deepsc_sentence(caption: str, max_words: int) -> str:
    """The words DeepSC sends for ``caption``: normalised, tokenised, cut to the model's ``max_words``."""
    from baselines.deepsc import preprocess_sentence, tokenize

    return " ".join(tokenize(preprocess_sentence(caption))[:max_words])


@dataclass
class _Baselines:
    """The baselines one run needs, built at their budget: the ASCII transmitter, DeepSC, the Img2Img-SC variants
    by system name; the repetition of the text baselines' frames (``--budget matched``); what the manifest
    records of them (``extra``); DeepSC's truncated captions (counted while sending) and the Img2Img-SC latents
    per (batch, posterior sampled)."""

    ascii_tx: Any = None
    deepsc: Any = None
    img2img: Dict[str, Any] = field(default_factory=dict)
    repetition: Dict[str, int] = field(default_factory=dict)
    extra: Dict[str, Any] = field(default_factory=dict)
    truncated: int = 0
    lat_cache: Dict[Tuple[int, bool], Any] = field(default_factory=dict)


def _build_baselines(args, need: Sequence[str], system, channel, device, base_caps: List[str]) -> _Baselines:
    """The baselines among ``need``, sharing ``channel``; ``target`` is VLF-MSC's channel uses per image (what
    ``--budget matched`` gives everyone)."""
    bl = _Baselines()
    target = system.channel_uses()
    if "ascii-hamming" in need:
        _ascii_baseline(bl, args, channel, device, base_caps, target)
    if "deepsc" in need:
        _deepsc_baseline(bl, args, channel, device, base_caps, target)
    if set(need) & {"img2img-sc", "img2img-sc-bsc"}:
        _img2img_baselines(bl, args, need, system, channel, base_caps, target)
    return bl


def _refuse_unfit(s: str, what: str, uses_one: int, target: int) -> None:
    raise EvalRefused(f"--budget matched: {s} cannot fit VLF-MSC's {target} channel uses per image even with "
                      f"{what} ({uses_one} uses); use --budget paper")


def _ascii_baseline(bl: _Baselines, args, channel, device, base_caps: List[str], target: int) -> None:
    """ASCII + Hamming(7,4) + 16-QAM, every codeword sent ``r`` times under ``--budget matched``."""
    from baselines.ascii_hamming import AsciiHamming, AsciiHammingConfig

    def ascii_build(r: int) -> "AsciiHamming":
        return AsciiHamming(channel, AsciiHammingConfig(code=args.ascii_code, modulation=args.ascii_modulation,
                                                        repeat=r), device=device)

    r = 1
    if args.budget == "matched":
        r = matched_repetition(lambda k: max(ascii_build(k).channel_uses(base_caps), default=0), target)
        if r is None:
            _refuse_unfit("ascii-hamming", "one copy of each codeword", max(ascii_build(1).channel_uses(base_caps)),
                          target)
    bl.ascii_tx = ascii_build(r)
    bl.repetition["ascii-hamming"] = r
    if args.budget == "matched":
        bl.extra.setdefault("budget", {})["ascii-hamming"] = {
            "repetition": r, "target_channel_uses": target,
            "max_channel_uses": max(bl.ascii_tx.channel_uses(base_caps), default=0),
            "method": "every Hamming codeword sent r times, the r LLRs of each code bit summed before decoding "
                      "(phy.fec.codes.Repetition)"}


def _deepsc_baseline(bl: _Baselines, args, channel, device, base_caps: List[str], target: int) -> None:
    """DeepSC from ``--deepsc-checkpoint`` (refused below ``--deepsc-min-coverage`` of the captions' tokens),
    every channel symbol sent ``r`` times under ``--budget matched``."""
    from baselines.deepsc import DeepSC, vocabulary_coverage
    from semantic.checkpoints import resolve_checkpoint
    from semantic.vlf_msc import link_equalizer

    link_equalizer(args.deepsc_equalizer, channel)  # an identity receiver on fading: refused before loading

    path = resolve_checkpoint(args.deepsc_checkpoint, what="DeepSC", required_files=("config.json",),
                              option="--deepsc-checkpoint")
    deepsc = bl.deepsc = DeepSC.from_pretrained(str(path)).to(device).eval()
    share = vocabulary_coverage(deepsc.vocab, base_caps)
    bl.extra["deepsc_vocabulary_coverage"] = share
    if share < args.deepsc_min_coverage:
        raise EvalRefused(
            f"the DeepSC checkpoint {str(path)!r} covers {100 * share:.1f} % of the baselines' caption tokens "
            f"(< --deepsc-min-coverage {100 * args.deepsc_min_coverage:g} %): the other words would be sent as "
            "<unk>. Train DeepSC on the BLIP-2 captions of the training images (`semcom blip2-captions`, then "
            "`semcom train-deepsc`; `semcom reproduce vlf-msc-fig3` does both), or lower --deepsc-min-coverage")
    r = 1
    if args.budget == "matched":
        sent_all = [_deepsc_sentence(c, deepsc.max_words) for c in base_caps]
        r = matched_repetition(lambda k: max(deepsc.channel_uses(sent_all, repeat=k), default=0), target)
        if r is None:
            _refuse_unfit("deepsc", "one copy of each symbol", max(deepsc.channel_uses(sent_all)), target)
        bl.extra.setdefault("budget", {})["deepsc"] = {
            "repetition": r, "target_channel_uses": target,
            "max_channel_uses": max(deepsc.channel_uses(sent_all, repeat=r), default=0),
            "method": "every channel symbol sent r times, maximum-ratio combined with perfect CSI before the "
                      "equaliser: an r-fold SNR gain (the trained model unchanged; retraining DeepSC at the "
                      "larger width would be the stronger matched baseline, not done)"}
    bl.repetition["deepsc"] = r


def _img2img_baselines(bl: _Baselines, args, need: Sequence[str], system, channel, base_caps: List[str],
                       target: int) -> None:
    """Img2Img-SC (bit-true) and its BSC variant on VLF-MSC's Stable Diffusion parts when they are the base
    model's (else loaded), the latent quantised to ``--img2img-bits`` or, under ``--budget matched``, to the
    finest resolution that fits."""
    from baselines.img2img_sc import Img2ImgSC, Img2ImgSCConfig, load_sd_components

    dec = system.image_decoder
    trained = Path(args.image_decoder) if args.image_decoder else None
    shared = dec is not None and dec.tokenizer is not None and not (
        trained is not None and ((trained / "unet").is_dir() or (trained / "text_encoder").is_dir()))
    parts = (dict(vae=dec.vae, unet=dec.unet, text_encoder=dec.text_encoder, tokenizer=dec.tokenizer,
                  scheduler=dec.scheduler) if shared else
             load_sd_components(args.sd_checkpoint, device=args.device, dtype=args.dtype,
                                allow_download=True if args.allow_download else None))
    for s, mode in (("img2img-sc", "bit-true"), ("img2img-sc-bsc", args.img2img_bsc_mode)):
        if s in need:
            def build(bits, mode=mode):
                cfg = Img2ImgSCConfig(sd_checkpoint=args.sd_checkpoint, mode=mode, latent_bits=bits,
                                      modulation=args.img2img_modulation,
                                      code=args.img2img_code if mode == "bit-true" else "none",
                                      strength=args.img2img_strength, guidance_scale=args.img2img_guidance,
                                      num_inference_steps=args.img2img_steps, image_size=args.image_size,
                                      seed=args.seed)
                return Img2ImgSC(**parts, channel=channel, config=cfg)

            bits = args.img2img_bits
            if args.budget == "matched":
                bits = matched_latent_bits(lambda b: max(build(b).channel_uses(base_caps)), target)
                if bits is None:
                    raise EvalRefused(
                        f"--budget matched: {s} cannot fit VLF-MSC's {target} channel uses per image even with "
                        f"1-bit latents ({max(build(1).channel_uses(base_caps))} uses); use --budget paper")
                bl.extra.setdefault("budget", {})[s] = {"latent_bits": bits, "target_channel_uses": target,
                                                        "max_channel_uses": max(build(bits).channel_uses(base_caps))}
            bl.img2img[s] = build(bits)
