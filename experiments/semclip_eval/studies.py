"""The four studies of ``semcom semclip-eval`` (accuracy vs SNR, vs bandwidth, cross-dataset, complexity): the
points each evaluates, its resumable CSV, its figures and tables."""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from experiments.semclip_eval.context import Context, EvalSet, snr_tag
from experiments.semclip_eval.systems import IMAGE_QUALITY, SYSTEM_LABELS, evaluate_point

__all__ = ["COLUMNS", "study_snr", "study_bandwidth", "study_cross", "study_complexity"]

KEYS = ["system", "channel", "snr_db", "channel_uses"]
VALUES = ["bandwidth_ratio", "top1", "top5", "retrieval_top1", "psnr", "ssim", "ms_ssim", "note"]
#: Columns of the result CSVs: the keys, then the values.
COLUMNS = KEYS + VALUES


def _table(path: Path, keys=KEYS, values=VALUES):
    from experiments.core.results import open_table

    return open_table(path, keys=keys, values=values)


def _sweep(ctx: Context, table, points, es: EvalSet, extra_keys: Optional[dict] = None) -> int:
    """Evaluate every (system, snr, L) of ``points`` whose row is not in ``table``; returns rows added."""
    from experiments.core.results import format_value
    from phy.utils.conventions import bandwidth_compression_ratio

    done = table.finished_keys()
    added = 0
    for system, snr, L in points:
        used = ctx.system_channel_uses(system, L)
        row_keys = dict(extra_keys or {}, system=system, channel=ctx.args.channel, snr_db=float(snr),
                        channel_uses=used)
        if tuple(format_value(row_keys[k]) for k in table.key_columns) in done:
            continue
        r = evaluate_point(ctx, system, es, float(snr), int(L))
        if r["channel_uses"] != used:
            raise RuntimeError(f"{system} spent {r['channel_uses']} channel uses, expected {used}")
        ratio = bandwidth_compression_ratio(r["channel_uses"], ctx.image_shape)
        table.append(dict(row_keys, bandwidth_ratio=ratio, top1=r["top1"], top5=r["top5"],
                          retrieval_top1=r["retrieval_top1"], note=r["note"],
                          **{m: r.get(m, math.nan) for m in IMAGE_QUALITY}))
        done.add(tuple(format_value(row_keys[k]) for k in table.key_columns))
        added += 1
        print(f"[semclip-eval] {extra_keys or ''} {system} snr={snr} dB L={used}: top1={r['top1']:.4f} "
              f"top5={r['top5']:.4f} retrieval@1={r['retrieval_top1']:.4f} {r['note']}", flush=True)
    return added


def _rows(path: Path):
    from experiments.core.results import read_rows

    return read_rows(path)


def _check_ablation_rows(path: Path, per_snr: bool) -> None:
    """Refuse to add semclip-noaf rows of one ablation protocol to a CSV holding the other's (the row key
    does not say which; the note does)."""
    mode = "per-SNR" if per_snr else "one model over the SNR range"
    for r in _rows(path):
        if r.get("system") == "semclip-noaf" and ("per-SNR ablation" in (r.get("note") or "")) != per_snr:
            other = "one model over the SNR range" if per_snr else "per-SNR"
            raise ValueError(f"{path} holds semclip-noaf rows of the {other} ablation, this run asks for the {mode} "
                             "one (--ablation-per-snr / --no-ablation-per-snr); use a new --out or delete those rows")


def _series(rows, x: str, y: str, systems: Sequence[str]):
    out = {}
    for s in systems:
        pts = sorted((float(r[x]), float(r[y]) if r[y] not in ("", None) else math.nan)
                     for r in rows if r["system"] == s)
        if pts:
            out[SYSTEM_LABELS.get(s, s)] = ([p[0] for p in pts], [p[1] for p in pts])
    return out


def _write_markdown(path: Path, header: List[str], body: List[List[str]]) -> None:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)


def _fmt(v: str) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return "n/a" if math.isnan(f) else f"{100 * f:.2f}"



def _fmt_of(ctx) -> str:
    """The figures' file format (``--format``; png when the arguments predate it)."""
    return getattr(ctx.args, "format", None) or "png"

def study_snr(ctx: Context, systems: Sequence[str], snrs: Sequence[float], table_snrs: Sequence[float]) -> int:
    """Accuracy vs SNR (fig. 3, table I); returns the number of rows added to ``accuracy_vs_snr.csv``.

    Examples
    --------
    Needs a :class:`~experiments.semclip_eval.context.Context` (CLIP weights and image data), so the example is
    not run by the test-suite (``tests/test_semclip_eval.py`` runs every study on a tiny random CLIP):

    >>> study_snr(ctx, ["semclip", "clip-ft"], [-5.0, 0.0, 5.0], table_snrs=[0.0])      # doctest: +SKIP
    6
    """
    from experiments.core.plots import plot_metric_vs_snr
    from experiments.core.results import write_json_atomic

    out = ctx.out
    L = ctx.args.snr_channel_uses or max(1, ctx.token_dim // 2)
    table = _table(out / "accuracy_vs_snr.csv")
    _check_ablation_rows(out / "accuracy_vs_snr.csv", ctx.args.ablation_per_snr)
    es = ctx.eval_set()
    per_snr = ctx.args.ablation_per_snr
    points = [(s, snr, L) for s in systems for snr in snrs
              if not (per_snr and s == "semclip-noaf" and float(snr) not in {float(t) for t in table_snrs})]
    if per_snr and "semclip-noaf" in systems:
        print("[semclip-eval] semclip-noaf (per-SNR ablation): one no-AF JSCC per table-I SNR "
              f"({', '.join(snr_tag(t) for t in table_snrs)} dB), evaluated there only", flush=True)
    added = _sweep(ctx, table, points, es)
    rows = [r for r in _rows(out / "accuracy_vs_snr.csv") if r["channel"] == ctx.args.channel]
    plot_metric_vs_snr(_series(rows, "snr_db", "top1", systems), out / f"fig3_top1_vs_snr.{_fmt_of(ctx)}",
                       ylabel="zero-shot top-1 accuracy (unseen classes)",
                       title=f"accuracy vs SNR ({ctx.args.channel})")
    rs = _series(rows, "snr_db", "retrieval_top1", [s for s in systems if s != "djscc-ft"])
    if rs:
        plot_metric_vs_snr(rs, out / f"fig3_retrieval_vs_snr.{_fmt_of(ctx)}", ylabel="text-to-image retrieval top-1",
                           title=f"retrieval vs SNR ({ctx.args.channel})")
    # table I: top-1 / top-5 at the selected SNRs (those that were run)
    have = sorted({float(r["snr_db"]) for r in rows})
    cols = [s for s in table_snrs if float(s) in have]
    header = ["system"] + [f"top1@{s:g}dB" for s in cols] + [f"top5@{s:g}dB" for s in cols]
    body = []
    for s in systems:
        by = {float(r["snr_db"]): r for r in rows if r["system"] == s}
        if by:
            body.append([SYSTEM_LABELS[s]] + [_fmt(by[c]["top1"]) if c in by else "" for c in cols]
                        + [_fmt(by[c]["top5"]) if c in by else "" for c in cols])
    _write_markdown(out / "table_i.md", header, body)
    _write_csv(out / "table_i.csv", header, body)
    write_json_atomic(out / "accuracy_vs_snr.meta.json", {"channel_uses": L, "image_shape": ctx.image_shape,
                                                          "n_images": len(es), "classes": es.class_names})
    return added


def _write_csv(path: Path, header, body) -> None:
    import csv

    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(body)
    tmp.replace(path)


def study_bandwidth(ctx: Context, systems: Sequence[str], Ls: Sequence[int], snr: float,
                    extra: Optional[Dict[str, List[int]]] = None) -> int:
    """Accuracy vs bandwidth ratio at one SNR (fig. 4); ``extra``: more L values for single systems. Returns the
    number of rows added to ``accuracy_vs_bandwidth.csv``.

    Examples
    --------
    Needs a :class:`~experiments.semclip_eval.context.Context` (CLIP weights and image data), so the example is
    not run by the test-suite (``tests/test_semclip_eval.py`` runs every study on a tiny random CLIP):

    >>> study_bandwidth(ctx, ["semclip", "djscc-ir"], [48, 96], snr=0.0)               # doctest: +SKIP
    4
    """
    from experiments.core.plots import plot_metric_vs_snr

    out = ctx.out
    table = _table(out / "accuracy_vs_bandwidth.csv")
    points = []
    for s in systems:
        for L in (Ls if s != "clip-ft" else Ls[:1]):  # CLIP-FT has a single point (L = N/2)
            points.append((s, snr, L))
        points += [(s, snr, L) for L in (extra or {}).get(s, []) if L not in Ls]
    added = _sweep(ctx, table, points, ctx.eval_set())
    rows = [r for r in _rows(out / "accuracy_vs_bandwidth.csv")
            if r["channel"] == ctx.args.channel and float(r["snr_db"]) == float(snr)]
    plot_metric_vs_snr(_series(rows, "bandwidth_ratio", "top1", systems), out / f"fig4_top1_vs_bandwidth.{_fmt_of(ctx)}",
                       xlabel="bandwidth ratio L / (C H W)", ylabel="zero-shot top-1 accuracy (unseen classes)",
                       title=f"accuracy vs bandwidth ratio at {snr:g} dB ({ctx.args.channel})")
    return added


def study_cross(ctx: Context, systems: Sequence[str], datasets, snrs: Sequence[float]) -> int:
    """Cross-dataset zero-shot table (table II); absent data sets get a row saying so. Returns the number of
    rows added to ``cross_dataset.csv``.

    Examples
    --------
    Needs a :class:`~experiments.semclip_eval.context.Context` (CLIP weights and image data), so the example is
    not run by the test-suite (``tests/test_semclip_eval.py`` runs every study on a tiny random CLIP):

    >>> study_cross(ctx, ["semclip"], [("oxford_pets", "data/pets")], snrs=[0.0])      # doctest: +SKIP
    1
    """
    import torch

    from experiments.core.results import format_value

    out = ctx.out
    keys = ["dataset"] + KEYS
    table = _table(out / "cross_dataset.csv", keys=keys, values=VALUES)
    _check_ablation_rows(out / "cross_dataset.csv", ctx.args.ablation_per_snr)
    L = ctx.args.snr_channel_uses or max(1, ctx.token_dim // 2)
    added = 0
    for name, path in datasets:
        layout = name if name in ("oxford_pets", "food101", "caltech101", "imagenet", "folder") else "folder"
        if not Path(path).expanduser().exists():
            k = tuple(format_value(v) for v in (name, "absent", ctx.args.channel, math.nan, 0))
            if k not in table.finished_keys():
                table.append({"dataset": name, "system": "absent", "channel": ctx.args.channel, "snr_db": math.nan,
                              "channel_uses": 0, "bandwidth_ratio": math.nan, "top1": math.nan, "top5": math.nan,
                              "retrieval_top1": math.nan, "note": f"dataset not found at {path}: skipped",
                              **{m: math.nan for m in IMAGE_QUALITY}})
                added += 1
            print(f"[semclip-eval] cross-dataset: {name} not found at {path}: skipped", flush=True)
            continue
        fs, raw = ctx.features_of(f"cross-{name}", layout, str(Path(path).expanduser()))
        idx = torch.arange(len(fs))
        if ctx.args.max_images is not None and len(fs) > ctx.args.max_images:
            g = torch.Generator().manual_seed(ctx.args.seed)
            idx = torch.randperm(len(fs), generator=g)[: ctx.args.max_images].sort().values
        es = EvalSet(name, fs.features[idx].float(), fs.labels[idx], list(fs.class_names), raw, idx.tolist(), None)
        added += _sweep(ctx, table, [(s, snr, L) for s in systems for snr in snrs], es, {"dataset": name})
    rows = [r for r in _rows(out / "cross_dataset.csv") if r["system"] != "absent"]
    names = [n for n, _ in datasets if any(r["dataset"] == n for r in rows)]
    body = []
    for s in systems:
        for snr in snrs:
            by = {r["dataset"]: r for r in rows if r["system"] == s and float(r["snr_db"]) == float(snr)}
            if by:
                body.append([SYSTEM_LABELS[s], f"{snr:g}"] + [_fmt(by[n]["top1"]) if n in by else "" for n in names])
    _write_markdown(out / "table_ii.md", ["system", "snr_db"] + [f"{n} top1" for n in names], body)
    return added


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _timed(fn, device, repeats: int = 1) -> float:
    import torch

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()  # warm-up (kernel selection, caches)
    sync()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - t0) / repeats


def study_complexity(ctx: Context, n_images: int) -> int:
    """Parameters and measured time of each module for ``n_images`` images (table III). Returns the number of
    rows added to ``complexity.csv``.

    Examples
    --------
    Needs a :class:`~experiments.semclip_eval.context.Context` (CLIP weights and image data), so the example is
    not run by the test-suite (``tests/test_semclip_eval.py`` runs every study on a tiny random CLIP):

    >>> study_complexity(ctx, n_images=100)                                           # doctest: +SKIP
    10
    """
    import torch

    from experiments.core.results import format_value

    out = ctx.out
    table = _table(out / "complexity.csv", keys=["module", "device", "images"],
                   values=["system", "params", "time_s", "ms_per_image", "note"])
    dev, bs = ctx.device, ctx.args.batch_size
    es = ctx.eval_set()
    reps = -(-n_images // len(es))
    pick = (list(range(len(es))) * reps)[:n_images]
    images = torch.stack([es.dataset[es.indices[i]][0] for i in pick]).to(dev)
    tokens = es.features[pick].to(dev)
    L = ctx.args.snr_channel_uses or max(1, ctx.token_dim // 2)
    snr = torch.zeros(n_images, device=dev)
    done = table.finished_keys()
    names = es.class_names

    def batched(fn, x):
        return [fn(x[i:i + bs]) for i in range(0, x.shape[0], bs)]

    entries = []
    with torch.no_grad():
        entries.append(("CLIP image encoder", "all CLIP-based", _count(ctx.model.visual),
                        lambda: batched(lambda x: ctx.encode_images(x), images), "on the CLIP input size"))
        codec = ctx.jscc(L, True)
        syms = codec.encoder(tokens, snr)
        entries.append(("SemCLIP JSCC encoder", "semclip", _count(codec.encoder),
                        lambda: codec.encoder(tokens, snr), f"L={codec.channel_uses}"))
        entries.append(("SemCLIP JSCC decoder", "semclip", _count(codec.decoder),
                        lambda: codec.decoder(syms, snr), f"L={codec.channel_uses}"))
        tapl = ctx.tapl(L)
        perf = ctx.performer(L)
        entries.append(("TAPL meta-net + context", "semclip", _count(tapl), lambda: tapl(tokens), ""))
        entries.append(("TAPL + CLIP text encoder", "semclip", _count(tapl) + _count(ctx.tower),
                        lambda: batched(lambda x: perf(x, names), tokens),
                        f"{len(names)} class prompts per image"))
        entries.append(("CLIP text encoder (zero-shot prompts)", "semclip-notapl/clip-ft/djscc-ir/bt-ir",
                        _count(ctx.tower), lambda: ctx.tower.encode_ids(ctx.tokenizer(
                            [f"a photo of a {c}." for c in names]).to(dev)),
                        f"once per class set ({len(names)} prompts), not per image"))
        ir = ctx.djscc_ir(L, train=False).to(dev).eval()
        isyms = ir.encoder(images[:bs], snr[:bs])
        entries.append(("DJSCC-IR encoder", "djscc-ir", _count(ir.encoder),
                        lambda: batched(lambda x: ir.encoder(x, snr[:x.shape[0]]), images), f"L={L}"))
        entries.append(("DJSCC-IR decoder", "djscc-ir", _count(ir.decoder),
                        lambda: [ir.decoder(isyms[: min(bs, n_images - i)], snr[: min(bs, n_images - i)])
                                 for i in range(0, n_images, bs)], f"L={L}"))
        ft = ctx.djscc_ft(L, train=False).to(dev).eval()
        ch = ctx.channel()
        entries.append(("DJSCC-FT (CNN + JSCC + head)", "djscc-ft", _count(ft),
                        lambda: batched(lambda x: ft(x, ch, snr[:x.shape[0]]), images), f"L={L}, with the channel"))
        bt = ctx.btir(L)
        cpu_imgs = images.cpu()
        entries.append((f"BT-IR codec ({bt.codec.name})", "bt-ir",  # learned codecs load their models lazily
                        lambda: sum(_count(m) for m in getattr(bt.codec, "_models", {}).values()),
                        lambda: bt.transmit(cpu_imgs, 0.0), f"fit to the budget of L={L} at 0 dB + decode"))
    added = 0
    for module, system, params, fn, note in entries:
        key = (module, str(dev), n_images)
        if tuple(format_value(v) for v in key) in done:
            continue
        with torch.no_grad():
            t = _timed(fn, dev)
        params = params() if callable(params) else params
        table.append({"module": module, "device": str(dev), "images": n_images, "system": system, "params": params,
                      "time_s": t, "ms_per_image": 1000 * t / n_images, "note": note})
        added += 1
        print(f"[semclip-eval] complexity {module}: {params} params, {t * 1000:.2f} ms / {n_images} images",
              flush=True)
    rows = [r for r in _rows(out / "complexity.csv") if r["device"] == str(dev)]
    _write_markdown(out / "complexity.md", ["module", "system", "params", f"time [s] / {n_images} images", "note"],
                    [[r["module"], r["system"], r["params"], f"{float(r['time_s']):.4f}", r["note"]] for r in rows
                     if int(r["images"]) == n_images])
    return added
