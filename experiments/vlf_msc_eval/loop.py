"""The evaluation loop of ``semcom vlf-msc-eval``: every image encoded once (its VLF and the baselines' clean
caption), then one (system, SNR) point at a time -- sent batch by batch through the one shared channel, scored,
and written to ``items.csv`` and ``metrics.csv``."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from experiments.vlf_msc_eval.budget import _Baselines, _build_baselines, _deepsc_sentence
from experiments.vlf_msc_eval.outputs import _save_png
from experiments.vlf_msc_eval.scoring import _Scorers, _summary_row
from experiments.vlf_msc_eval.systems import LABELS, METRICS, MODALITY, _equalizer_of

__all__ = ["evaluate_points"]


def evaluate_points(args, ds, snrs: Sequence[float], systems: Sequence[str], todo, batches: List[List[int]],
                    out: Path, table, items, done_items) -> Tuple[int, dict]:
    """Compute the (system, SNR) points ``todo`` (``(SNR index, SNR, system)``) of the run ``args`` on the images
    ``ds`` (``batches``: their index lists): each point's items are appended to ``items`` (``items.csv``, except
    those in ``done_items``) and its summary row to ``table`` (``metrics.csv``). Returns the rows written and
    what the manifest records (channel-use ledger, metric models, budgets, equalisers).

    Examples
    --------
    Needs BLIP-2 and Stable Diffusion weights, so the example is not run by the test-suite
    (``tests/test_vlf_msc_eval.py`` runs ``semcom vlf-msc-eval`` on tiny random stand-ins):

    >>> written, extra = evaluate_points(args, ds, [0.0], ["vlf-msc"], [(0, 0.0, "vlf-msc")], [[0, 1]],
    ...                                  out, table, items, set())                         # doctest: +SKIP
    >>> written                                                                            # doctest: +SKIP
    1
    """
    from phy.channel.registry import make_channel
    from semantic.checkpoints import resolve_device
    from semantic.vlf_msc import VLFMSC

    channel = make_channel(args.channel, seed=args.seed)  # ONE channel object for every system
    device = resolve_device(args.device)
    need = {s for _, _, s in todo}
    system = VLFMSC.from_config(_vlf_config(args, sorted(need)), channel=channel)  # SD only if VLF-MSC runs
    ledger: Dict[str, Any] = {"vlf-msc": system.ledger((3, args.image_size, args.image_size))}
    scorers = _Scorers(args, str(device))
    print(f"{len(ds)} images x {len(snrs)} SNR points x {len(systems)} systems over {args.channel}; "
          f"{len(todo)} (system, SNR) points to compute")

    # -- transmitter side, once per image: VLFs, ground truth, the baselines' caption ---------------
    enc = _Encoded(ds, batches, system, out)
    enc.encode()
    base_caps: List[str] = []
    if need & {"ascii-hamming", "deepsc", "img2img-sc", "img2img-sc-bsc"}:
        base_caps = enc.clean_captions(args.baseline_caption)
    # the text reference (and CLIP-score caption): the clean BLIP-2 caption, or the dataset's CSV caption
    refs = enc.clean_captions("blip2") if args.reference == "blip2" else [it["caption"] for it in ds.items]

    # -- baselines ---------------------------------------------------------------------------------
    bl = _build_baselines(args, need, system, channel, device, base_caps)

    # -- one (SNR, system) point at a time -----------------------------------------------------------
    written = 0
    for _si, snr, s in todo:
        pt = _transmit_point(args, s, snr, enc, system, channel, bl, base_caps)
        per_item = _score_point(s, pt, enc, scorers, refs)
        _write_items(args, s, snr, pt, enc, refs, per_item, items, done_items, out)
        table.append(_summary_row(s, args.channel, snr, pt.uses, per_item, equalizer=_equalizer_of(s, args),
                                  reference=args.reference, budget=args.budget, repetition=bl.repetition.get(s, 1)))
        written += 1
        uses = pt.uses
        print(f"  {LABELS[s]} @ {snr:g} dB: " + ", ".join(f"{m}={sum(v) / len(v):.4g}" for m, v in per_item.items())
              + f", channel uses/image={sum(uses) / len(uses):.1f}")
        if s in ledger or s == "vlf-msc":
            continue
        ledger[s] = {"mean_channel_uses": sum(uses) / len(uses), "min": min(uses), "max": max(uses)}
    extra = bl.extra
    if args.text_projection:  # what W_proj was trained towards, beside the reference scored against
        from experiments.commands.train_text_projection import projection_reference

        extra["text_projection_reference"] = projection_reference(args.text_projection)
    extra.update(ledger=ledger, metric_models=scorers.details(), deepsc_truncated_captions=bl.truncated,
                 baseline_caption=args.baseline_caption, reference=args.reference,
                 equalizers={s: _equalizer_of(s, args) for s in systems})
    return written, extra


def _vlf_config(args, systems: Sequence[str]):
    from semantic.vlf_msc import VLFMSCConfig

    cache = args.vlf_cache if args.vlf_cache is not None else os.path.join(args.out, "vlf_cache")
    if isinstance(cache, str) and cache.lower() == "none":
        cache = None
    return VLFMSCConfig(
        blip2_checkpoint=args.blip2_checkpoint, sd_checkpoint=args.sd_checkpoint, image_decoder=args.image_decoder,
        text_projection=args.text_projection, text_mode=args.text_mode, channel=args.channel,
        equalizer=args.equalizer, channel_seed=args.seed,
        device=args.device, dtype=args.dtype, device_map=args.device_map, decode_text=True,
        decode_images="vlf-msc" in systems, num_inference_steps=args.steps, guidance_scale=args.guidance_scale,
        image_size=args.image_size, seed=args.seed, max_new_tokens=args.max_new_tokens, num_beams=args.num_beams,
        vlf_cache_dir=cache, allow_download=True if args.allow_download else None)


def _baseline_captioner(system, mode: str):
    """The decoder that writes a caption from the noiseless VLF: ``"blip2"`` BLIP-2's native captioning (its
    own ``language_projection``, whatever ``--text-projection`` is), ``"vlf-msc"`` VLF-MSC's text decoder."""
    return system.text_decoder if mode == "vlf-msc" else system.blip2_captioner()


@dataclass
class _Encoded:
    """The transmitter side, once per image: the input batches (``inputs``), their VLFs (``vlfs``), the image
    paths, and the captions of the noiseless VLFs (:meth:`clean_captions`)."""

    ds: Any
    batches: List[List[int]]
    system: Any
    out: Path
    inputs: Dict[int, Any] = field(default_factory=dict)
    vlfs: Dict[int, Any] = field(default_factory=dict)
    paths: List[str] = field(default_factory=list)
    cap_table: Any = None
    cached_caps: Dict[str, Dict[str, str]] = field(default_factory=dict)

    def encode(self) -> None:
        from semantic.images import collate_images, file_sha1

        self.paths = [it["path"] for it in self.ds.items]
        for bi, idx in enumerate(self.batches):
            batch = collate_images([self.ds[i] for i in idx])
            self.inputs[bi] = batch["image"]
            self.vlfs[bi] = self.system.encode(batch["image"], keys=[file_sha1(p) for p in batch["path"]])

    def clean_captions(self, mode: str) -> List[str]:
        """One caption per image from its noiseless VLF (``mode``: blip2 | vlf-msc), computed once and cached
        in ``OUT/baseline_captions.csv``."""
        from experiments.core.results import open_table

        if self.cap_table is None:
            self.cap_table = open_table(self.out / "baseline_captions.csv", ("image", "mode"), ("name", "caption"))
            for r in self.cap_table.rows():
                self.cached_caps.setdefault(r["mode"], {})[r["image"]] = r["caption"]
        cached = self.cached_caps.setdefault(mode, {})
        paths = self.paths
        captioner = None
        for bi, idx in enumerate(self.batches):
            if all(paths[i] in cached for i in idx):
                continue
            captioner = captioner or _baseline_captioner(self.system, mode)
            caps = captioner.generate(self.vlfs[bi])
            for k, i in enumerate(idx):
                if paths[i] in cached:  # keep a cached caption (never two rows per image)
                    continue
                self.cap_table.append({"image": paths[i], "mode": mode, "name": self.ds.name(i), "caption": caps[k]})
                cached[paths[i]] = caps[k]
        return [cached[p] for p in paths]


@dataclass
class _Point:
    """What one (system, SNR) point delivered, per image: the received caption (``None``: not a text system's),
    the caption sent, the generated image (image systems) and the channel uses."""

    captions: List[Optional[str]]
    sent: List[str]
    images: Dict[int, Any]
    uses: List[int]


def _transmit_point(args, s: str, snr: float, enc: _Encoded, system, channel, bl: _Baselines,
                    base_caps: List[str]) -> _Point:
    """Send every batch through ``s`` at ``snr``; the channel stream of each batch restarts at a seed fixed by
    (system, channel, SNR value, batch) (the batch size is a recorded setting)."""
    from phy.sim.points import point_seed
    from semantic.vlf_msc import link_equalizer

    n = len(enc.paths)
    pt = _Point([None] * n, [""] * n, {}, [0] * n)
    for bi, idx in enumerate(enc.batches):
        cseed = point_seed(args.seed, s, args.channel, float(snr), bi)
        if s == "vlf-msc":
            received = system.transmit(enc.vlfs[bi], snr_db=snr, seed=cseed)
            caps = system.decode_text(received)
            imgs = system.decode_image(received, seed=args.seed + bi)
            for k, i in enumerate(idx):
                pt.captions[i], pt.images[i], pt.uses[i] = caps[k], imgs[k], system.channel_uses()
        elif s == "ascii-hamming":
            sent = [base_caps[i] for i in idx]
            rx, u = bl.ascii_tx.transmit(sent, snr, seed=cseed)
            for k, i in enumerate(idx):
                pt.captions[i], pt.sent[i], pt.uses[i] = rx[k], sent[k], u[k]
        elif s == "deepsc":
            from baselines.deepsc import preprocess_sentence, tokenize

            deepsc = bl.deepsc
            sent = []
            for i in idx:
                bl.truncated += len(tokenize(preprocess_sentence(base_caps[i]))) > deepsc.max_words  # counted
                sent.append(_deepsc_sentence(base_caps[i], deepsc.max_words))
            channel.reset(cseed)
            rx = deepsc.transmit(sent, channel, float(snr), equalizer=link_equalizer(args.deepsc_equalizer, channel),
                                 repeat=bl.repetition["deepsc"])
            u = deepsc.channel_uses(sent, repeat=bl.repetition["deepsc"])
            for k, i in enumerate(idx):
                pt.captions[i], pt.sent[i], pt.uses[i] = rx[k], sent[k], u[k]
        else:
            sc = bl.img2img[s]
            key = (bi, sc.sample_latent)
            if key not in bl.lat_cache:
                bl.lat_cache[key] = sc.encode_latents(enc.inputs[bi], seed=args.seed + bi)
            sent = [base_caps[i] for i in idx]
            o = sc(enc.inputs[bi], sent, float(snr), channel_seed=cseed, seed=args.seed + bi,
                   latents=bl.lat_cache[key])
            for k, i in enumerate(idx):
                pt.captions[i], pt.sent[i], pt.images[i], pt.uses[i] = o.captions[k], sent[k], o.images[k], \
                    o.channel_uses[k]
    return pt


def _score_point(s: str, pt: _Point, enc: _Encoded, scorers: _Scorers, refs: List[str]) -> Dict[str, List[float]]:
    """Per-item metrics of the point: text vs ``refs``, images vs the inputs (and the CLIP score vs ``refs``)."""
    import torch

    per_item: Dict[str, List[float]] = {}
    if MODALITY[s] in ("text", "text+image"):
        per_item.update(scorers.text([c or "" for c in pt.captions], refs))
    if MODALITY[s] in ("image", "text+image"):
        gen = torch.stack([pt.images[i] for i in range(len(enc.paths))]).float().cpu()
        ref_imgs = torch.cat([enc.inputs[bi] for bi in range(len(enc.batches))]).float()
        per_item.update(scorers.image(gen, ref_imgs, refs))
    return per_item


def _write_items(args, s: str, snr: float, pt: _Point, enc: _Encoded, refs: List[str],
                 per_item: Dict[str, List[float]], items, done_items, out: Path) -> None:
    """The point's rows of ``items.csv`` (those not in ``done_items``) and its generated images."""
    from experiments.commands.vlf_msc import snr_dirname
    from experiments.core.results import format_value

    snr_key = format_value(float(snr))
    for i, p in enumerate(enc.paths):
        if (s, args.channel, snr_key, p) in done_items:
            continue
        rel = ""
        if i in pt.images:
            rel = os.path.join("images", s, snr_dirname(snr), f"{enc.ds.name(i)}.png")
            _save_png(pt.images[i], out / rel)
        items.append({"system": s, "channel": args.channel, "snr_db": snr, "image": p, "name": enc.ds.name(i),
                      "reference": refs[i], "sent_caption": pt.sent[i],
                      "caption": pt.captions[i] if pt.captions[i] is not None else "", "image_file": rel,
                      "channel_uses": pt.uses[i],
                      **{m: per_item[m][i] if m in per_item else None for m in METRICS}})
