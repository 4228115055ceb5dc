"""The systems of ``semcom semclip-eval`` (the upper bound, SemCLIP and its ablations, the baselines) and the
metrics of one of them on one evaluation set at one SNR and bandwidth (:func:`evaluate_point`)."""
from __future__ import annotations

import math
from typing import Dict, List

from experiments.semclip_eval.context import Context, EvalSet, snr_tag

__all__ = ["SYSTEMS", "SYSTEM_LABELS", "IMAGE_QUALITY", "chance_metrics", "evaluate_point"]

#: The systems ``--systems`` may name (the upper bound, SemCLIP and its ablations, the baselines).
SYSTEMS = ("upper-bound", "upper-bound-tapl", "semclip", "semclip-notapl", "semclip-noaf", "clip-ft", "djscc-ft",
           "djscc-ir", "bt-ir")
#: The legend label of each system.
SYSTEM_LABELS = {"upper-bound": "Upper bound", "upper-bound-tapl": "Upper bound (TAPL)", "semclip": "SemCLIP",
                 "semclip-notapl": "SemCLIP w/o TAPL",
                 "semclip-noaf": "SemCLIP w/o TAPL & AF",
                 "clip-ft": "CLIP-FT", "djscc-ft": "DJSCC-FT", "djscc-ir": "DJSCC-IR", "bt-ir": "BT-IR"}
#: The image-quality columns (of the systems that output an image).
IMAGE_QUALITY = ("psnr", "ssim", "ms_ssim")


def chance_metrics(labels, num_classes: int) -> Dict[str, float]:
    """Expected metrics of a receiver with nothing: a uniform guess among ``num_classes``.

    Top-k accuracy is ``min(k, G) / G``; text-to-image retrieval top-1 with a random ranking is,
    for the query of class ``g``, the fraction of images of class ``g``, averaged over the
    classes present in ``labels``.

    Examples
    --------
    >>> import torch
    >>> m = chance_metrics(torch.tensor([0, 0, 1, 2]), num_classes=4)
    >>> m["top1"], m["top5"], round(m["retrieval_top1"], 4)     # classes 0, 1, 2 hold 1/2, 1/4, 1/4 of the images
    (0.25, 1.0, 0.3333)
    """
    import torch

    labels = torch.as_tensor(labels)
    present, counts = torch.unique(labels, return_counts=True)
    return {"top1": 1.0 / num_classes, "top5": min(5, num_classes) / num_classes,
            "retrieval_top1": float((counts.float() / labels.numel()).mean())}


def _metrics_from_logits(logits, labels) -> Dict[str, float]:
    from semantic.semclip import classification_topk, text_to_image_retrieval

    acc = classification_topk(logits, labels, (1, 5))
    return {"top1": acc[1], "top5": acc[5], "retrieval_top1": text_to_image_retrieval(logits, labels, (1,))[1]}


def evaluate_point(ctx: Context, system: str, es: EvalSet, snr_db: float, L: int) -> Dict[str, object]:
    """Metrics of ``system`` on ``es`` at ``snr_db`` with ``L`` channel uses per image.

    Returns ``{"channel_uses", "top1", "top5", "retrieval_top1", "note"}``; ``channel_uses`` is the
    number the system actually sent (checked against each transmission).

    Examples
    --------
    Needs a :class:`~experiments.semclip_eval.context.Context` (CLIP weights and image data), so the example is
    not run by the test-suite (``tests/test_semclip_eval.py`` evaluates every system on a tiny random CLIP):

    >>> r = evaluate_point(ctx, "clip-ft", ctx.eval_set(), snr_db=0.0, L=384)      # doctest: +SKIP
    >>> r["channel_uses"]                                                           # doctest: +SKIP
    384
    """
    import torch

    from semantic.semclip import transmit_tokens

    G = len(es.class_names)
    dev, bs = ctx.device, ctx.args.batch_size
    note = ""
    with torch.no_grad():
        if system in ("upper-bound", "upper-bound-tapl"):
            return _upper_bound(ctx, system, es, L)
        if system in ("semclip", "semclip-notapl", "semclip-noaf"):
            per_snr = system == "semclip-noaf" and ctx.args.ablation_per_snr
            codec = ctx.jscc(L, use_af=system != "semclip-noaf", train_snr=snr_db if per_snr else None)
            if system == "semclip-noaf":
                note = (f"no-AF JSCC trained at a fixed {snr_tag(snr_db)} dB (per-SNR ablation)" if per_snr else
                        f"no-AF JSCC trained over {ctx.snr_train_range[0]:g}..{ctx.snr_train_range[1]:g} dB")
            used = codec.channel_uses
            received = transmit_tokens(es.features, codec, ctx.channel(), snr_db, batch_size=bs, device=dev)
            if system == "semclip":
                perf = ctx.performer(L)
                logits = torch.cat([perf(received[i:i + bs].to(dev), es.class_names).float().cpu()
                                    for i in range(0, received.shape[0], bs)])
            else:
                logits = ctx.plain_logits(received, es.class_names)
            return dict(channel_uses=used, note=note, **_metrics_from_logits(logits, es.labels))
        if system == "clip-ft":
            from baselines.clip_ft import CLIPFT

            ft = CLIPFT(ctx.channel(), equalizer=ctx.args.equalizer)
            used = ft.channel_uses(ctx.token_dim)
            outs = []
            for i in range(0, len(es), bs):
                o = ft(es.features[i:i + bs].to(dev), snr_db=snr_db)
                if o.channel_uses != used:
                    raise RuntimeError(f"CLIP-FT spent {o.channel_uses} channel uses, expected {used}")
                outs.append(o.x_hat.float().cpu())
            logits = ctx.plain_logits(torch.cat(outs), es.class_names)
            note = f"CLIP-FT: the raw token, L = N/2 = {used}" if used != L else ""
            return dict(channel_uses=used, note=note, **_metrics_from_logits(logits, es.labels))
        if system == "djscc-ir":
            bottleneck, why = ctx.djscc_ir_bottleneck(L)
            if bottleneck is None:  # recorded with the reason, never silently skipped
                return dict(channel_uses=L, note=why, top1=math.nan, top5=math.nan, retrieval_top1=math.nan)
            codec = ctx.djscc_ir(L)
            ch = ctx.channel()
            logits, quality = [], _QualityAccumulator()
            for imgs, _, _ in es.image_batches(bs):
                o = codec(imgs.to(dev), ch, snr_db)
                if o.channel_uses != L:
                    raise RuntimeError(f"DJSCC-IR spent {o.channel_uses} channel uses, expected {L}")
                logits.append(ctx.plain_logits(ctx.encode_images(o.x_hat.float()), es.class_names))
                quality.add(o.x_hat, imgs)
            note = "; ".join(n for n in (why, quality.note()) if n)
            return dict(channel_uses=L, note=note, **quality.means(),
                        **_metrics_from_logits(torch.cat(logits), es.labels))
        if system == "djscc-ft":
            from baselines.djscc_ft import predict_global_labels

            model = ctx.djscc_ft(L)
            ch = ctx.channel()
            seen_names = ctx.train_set().class_names
            hit1 = hit5 = 0
            for imgs, labels, pos in es.image_batches(bs):
                pred = predict_global_labels(model, model(imgs.to(dev), ch, snr_db), k=5).cpu()
                if es.global_labels is not None:  # same class space: compare global ids
                    target = es.global_labels[pos][:, None]
                    match = pred == target
                else:  # another data set: compare class names
                    ids = model.class_ids_t.cpu().tolist()
                    lut = {g: seen_names[i] for i, g in enumerate(ids)}
                    match = torch.tensor([[lut[int(p)] == es.class_names[int(y)] for p in row]
                                          for row, y in zip(pred, labels)], dtype=torch.bool)
                hit1 += int(match[:, :1].any(dim=1).sum())
                hit5 += int(match.any(dim=1).sum())
            n = len(es)
            note = (f"DJSCC-FT: head covers the {model.config.num_classes} seen classes only; "
                    "no text encoder, retrieval not defined")
            return dict(channel_uses=model.channel_uses, top1=hit1 / n, top5=hit5 / n, retrieval_top1=math.nan,
                        note=note)
        if system == "bt-ir":
            bt = ctx.btir(L)
            logits, delivered, bits, budget = [], [], [], None
            quality = _QualityAccumulator()
            for imgs, _, _ in es.image_batches(bs):
                res = bt.transmit(imgs, float(snr_db))
                budget = res.budget_bits
                ok = [im for im in res.images if im is not None]
                lg = torch.zeros(imgs.shape[0], G)
                if ok:
                    lg[res.delivered] = ctx.plain_logits(ctx.encode_images(torch.stack(ok)), es.class_names)
                    quality.add(torch.stack(ok), imgs[res.delivered])
                logits.append(lg)
                delivered.append(res.delivered)
                bits += [b for b in res.payload_bits if b is not None]
            m = _btir_metrics(torch.cat(logits), torch.cat(delivered), es.labels, G, budget, bits, bt.codec.name)
            if quality.n:
                m["note"] += f"; image metrics over the {quality.n} delivered images"
            if quality.note():
                m["note"] += f"; {quality.note()}"
            return dict(channel_uses=bt.channel_uses, **quality.means(), **m)
    raise ValueError(f"system must be one of {list(SYSTEMS)}, got {system!r}")


def _upper_bound(ctx: Context, system: str, es: EvalSet, L: int) -> Dict[str, object]:
    """The ideal link, no channel: ``upper-bound`` is the paper's (the clean CLIP token with CLIP's own zero-shot
    prompts; fig. 3, table II), ``upper-bound-tapl`` the clean token through the TAPL trained for the channel."""
    import torch

    dev, bs = ctx.device, ctx.args.batch_size
    if system == "upper-bound":
        logits = ctx.plain_logits(es.features, es.class_names)
        return dict(channel_uses=0, note="ideal link: clean CLIP token, CLIP's zero-shot prompts; no channel",
                    **_metrics_from_logits(logits, es.labels))
    perf = ctx.performer(L)
    logits = torch.cat([perf(es.features[i:i + bs].to(dev), es.class_names).float().cpu()
                        for i in range(0, len(es), bs)])
    return dict(channel_uses=0, note=f"ideal link: clean CLIP token, TAPL trained through the L={L} JSCC; "
                                     "no channel", **_metrics_from_logits(logits, es.labels))


class _QualityAccumulator:
    """Per-image PSNR / SSIM / MS-SSIM of reconstructions vs inputs (torchmetrics), averaged over the images
    added; MS-SSIM only where the image sides reach :data:`semantic.metrics.MS_SSIM_MIN_SIDE`."""

    def __init__(self):
        self.values: Dict[str, List[float]] = {m: [] for m in IMAGE_QUALITY}
        self.skipped = ""

    @property
    def n(self) -> int:
        return len(self.values["psnr"])

    def add(self, images, references) -> None:
        from semantic.metrics import MS_SSIM_MIN_SIDE, image_quality

        images = images.detach().float().cpu().clamp(0, 1)
        references = references.detach().float().cpu().clamp(0, 1)
        ms = min(images.shape[-2:]) >= MS_SSIM_MIN_SIDE
        if not ms:
            self.skipped = f"MS-SSIM not computed: {tuple(images.shape[-2:])} px < {MS_SSIM_MIN_SIDE} px"
        for m, r in image_quality(images, references, IMAGE_QUALITY if ms else ("psnr", "ssim")).items():
            self.values[m] += r.values

    def means(self) -> Dict[str, float]:
        return {m: (sum(v) / len(v) if v else math.nan) for m, v in self.values.items()}

    def note(self) -> str:
        return self.skipped


def _btir_metrics(logits, delivered, labels, G: int, budget: int, bits: List[int], codec: str) -> Dict:
    """BT-IR metrics: delivered images classified by CLIP, the others a uniform guess (expected value);
    in retrieval the undelivered images rank below every delivered one."""

    from semantic.semclip import classification_topk, text_to_image_retrieval

    n = labels.numel()
    nd = int(delivered.sum())
    chance = chance_metrics(labels, G)
    out = {}
    for k, name in ((1, "top1"), (5, "top5")):
        hits = classification_topk(logits[delivered], labels[delivered], (k,))[k] * nd if nd else 0.0
        out[name] = (hits + (n - nd) * chance[name]) / n
    if nd == 0:
        out["retrieval_top1"] = chance["retrieval_top1"]
    else:
        scores = logits.clone()
        scores[~delivered] = -math.inf
        out["retrieval_top1"] = text_to_image_retrieval(scores, labels, (1,))[1]
    note = (f"BT-IR ({codec}): {n - nd}/{n} images not delivered" + (" (chance)" if n - nd else "")
            + f"; budget {budget} bits, max payload {max(bits) if bits else 0} bits")
    out["note"] = note
    return out
