"""The metric models of ``semcom vlf-msc-eval`` (BLEU, BERTScore, LPIPS, CLIP score, PSNR/SSIM/MS-SSIM; loaded on
first use) and the summary row of one (system, SNR) point with its 95 % intervals."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Sequence

from experiments.vlf_msc_eval.systems import METRICS, MODALITY

__all__ = []


class _Scorers:
    """Metric models, loaded on first use."""

    def __init__(self, args, device: str):
        self.args = args
        self.device = device
        self._bs = self._lp = self._cs = None
        self.skipped: Dict[str, str] = {}

    def _norm(self, texts: Sequence[str]) -> List[str]:
        if self.args.raw_text:
            return list(texts)
        from baselines.deepsc import preprocess_sentence

        return [preprocess_sentence(t) for t in texts]

    def text(self, hyps: Sequence[str], refs: Sequence[str]):
        from semantic.metrics import BERTScore, bleu

        h, r = self._norm(hyps), self._norm(refs)
        res = bleu(h, r, orders=(1, 4))
        if self._bs is None:
            self._bs = BERTScore(self.args.bertscore_model, num_layers=self.args.bertscore_layers,
                                 device=self.device, allow_download=self.args.allow_download)
        # an empty candidate scores 0 (bert-score's own convention; its empty-string path fails with
        # transformers 5, so empty candidates are not passed to it)
        keep = [i for i, t in enumerate(h) if t.strip()]
        f1 = [0.0] * len(h)
        if keep:
            vals = self._bs([h[i] for i in keep], [r[i] for i in keep])["f1"].values
            for i, v in zip(keep, vals):
                f1[i] = float(v)
        return {"bleu1": [v / 100.0 for v in res["bleu1"].values],
                "bleu4": [v / 100.0 for v in res["bleu4"].values], "bertscore_f1": f1}

    def image(self, images, references, captions: Sequence[str]):
        import torch

        from semantic.metrics import IMAGE_QUALITY_METRICS, LPIPS, MS_SSIM_MIN_SIDE, ClipScore, image_quality

        if self._lp is None:
            self._lp = LPIPS(device=self.device, backbone_path=self.args.lpips_backbone,
                             allow_random_backbone=self.args.allow_random_lpips)
        if self._cs is None:
            cfg = None
            if self.args.clip_model_config:
                cfg = json.loads(Path(self.args.clip_model_config).read_text())
            pre = self.args.clip_pretrained
            pre = None if (cfg is not None and str(pre).lower() == "none") else pre
            self._cs = ClipScore(self.args.clip_model, pre, model_cfg=cfg, device=self.device)
        if tuple(images.shape[-2:]) != tuple(references.shape[-2:]):  # explicit: LPIPS at the input size
            images = torch.nn.functional.interpolate(images, size=tuple(references.shape[-2:]), mode="bicubic",
                                                     align_corners=False, antialias=True).clamp(0, 1)
        lp = self._lp(images.float().cpu(), references.float().cpu())
        cs = self._cs(images.float().cpu(), list(captions))
        out = {"lpips": list(lp.values), "clip_score": list(cs.values)}
        qual = [m for m in IMAGE_QUALITY_METRICS if m != "ms_ssim" or min(images.shape[-2:]) >= MS_SSIM_MIN_SIDE]
        self.skipped = {} if "ms_ssim" in qual else {
            "ms_ssim": f"not computed: images of {tuple(images.shape[-2:])} px, MS-SSIM needs sides >= "
                       f"{MS_SSIM_MIN_SIDE} px"}
        out.update({m: list(r.values) for m, r in image_quality(images.float().cpu(), references.float().cpu(),
                                                                  qual).items()})
        return out

    def details(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {}
        if self._bs is not None:
            d["bertscore"] = self._bs.details
        if self._lp is not None:
            d["lpips"] = self._lp.details
        if self._cs is not None:
            d["clip_score"] = self._cs.details
            d["psnr_ssim_ms_ssim"] = {"library": "torchmetrics", "data_range": 1.0, "vs": "the input image",
                                      **self.skipped}
        return d


def _summary_row(system: str, channel: str, snr: float, uses: Sequence[int],
                 per_item: Dict[str, List[float]], equalizer: str = "", reference: str = "", budget: str = "",
                 repetition: int = 1) -> Dict[str, Any]:
    from semantic.metrics import summarize

    row: Dict[str, Any] = {"system": system, "modality": MODALITY[system], "channel": channel, "snr_db": snr,
                           "channel_uses": sum(uses) / len(uses), "n_items": len(uses),
                           "channel_uses_min": min(uses), "channel_uses_max": max(uses), "equalizer": equalizer,
                           "reference": reference, "budget": budget, "repetition": repetition}
    for m in METRICS:
        if m in per_item:
            s = summarize(per_item[m], m)
            row[m], row[f"{m}_ci_low"], row[f"{m}_ci_high"] = s.mean, s.ci_low, s.ci_high
        else:
            row[m] = row[f"{m}_ci_low"] = row[f"{m}_ci_high"] = None
    return row
