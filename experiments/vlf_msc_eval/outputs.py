"""The outputs of ``semcom vlf-msc-eval``: the resumable ``metrics.csv`` and ``items.csv``, the figures and the image
grids (drawn from the CSVs alone), the generated images and the record of what was last drawn."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Dict, Optional, Sequence

from experiments.vlf_msc_eval.systems import LABELS, METRICS, SYSTEMS, TEXT_METRICS

__all__ = ["METRIC_COLUMNS", "ITEM_COLUMNS", "metrics_table", "write_figures", "write_grids"]

_KEYS = ("system", "channel", "snr_db")
#: Columns of ``metrics.csv``: keys, the metrics, their 95 % intervals and the run's settings.
METRIC_COLUMNS = (("system", "modality", "channel", "snr_db", "channel_uses") + METRICS + ("n_items",)
                  + tuple(f"{m}_{b}" for m in METRICS for b in ("ci_low", "ci_high"))
                  + ("channel_uses_min", "channel_uses_max", "equalizer", "reference", "budget", "repetition"))
_ITEM_KEYS = ("system", "channel", "snr_db", "image")
#: Columns of ``items.csv``: one row per (system, channel, SNR, item).
ITEM_COLUMNS = _ITEM_KEYS + ("name", "reference", "sent_caption", "caption", "image_file", "channel_uses") + METRICS
_AXIS = {"bleu1": "BLEU-1 (0-1)", "bleu4": "BLEU-4 (0-1)", "bertscore_f1": "BERTScore F1",
         "lpips": "LPIPS (AlexNet; lower is better)", "clip_score": "CLIP score (100 x cosine)",
         "psnr": "PSNR [dB]", "ssim": "SSIM", "ms_ssim": "MS-SSIM"}



def metrics_table(out: Path):
    """The resumable ``out/metrics.csv`` (:class:`phy.sim.resultstore.ResumableCSV`, columns :data:`METRIC_COLUMNS`),
    one row per (system, channel, SNR).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> table = metrics_table(Path(tempfile.mkdtemp()))
    >>> table.key_columns, len(table)
    (('system', 'channel', 'snr_db'), 0)
    """
    from experiments.core.results import ResumableCSV

    return ResumableCSV(out / "metrics.csv", METRIC_COLUMNS, _KEYS)


def items_table(out: Path):
    from experiments.core.results import ResumableCSV

    return ResumableCSV(out / "items.csv", ITEM_COLUMNS, _ITEM_KEYS)


def _num(v) -> float:
    try:
        return float(v) if v not in (None, "") else math.nan
    except ValueError:
        return math.nan


def _compose(paths: Sequence[str], path: Path) -> str:
    """Paste single-metric PNGs side by side into one figure (a multi-panel figure of the paper)."""
    from PIL import Image

    ims = [Image.open(p).convert("RGB") for p in paths]
    h = max(im.height for im in ims)
    canvas = Image.new("RGB", (sum(im.width for im in ims), h), "white")
    x = 0
    for im in ims:
        canvas.paste(im, (x, 0))
        x += im.width
    tmp = path.with_name(path.stem + f".tmp.{os.getpid()}.png")
    canvas.save(tmp)
    os.replace(tmp, path)
    return str(path)


def write_figures(rows: Sequence[Dict[str, str]], out: Path) -> Dict[str, str]:
    """``fig_<metric>.png`` for every metric with data, and ``fig_text.png`` / ``fig_image.png``.

    Examples
    --------
    >>> import os, tempfile
    >>> from pathlib import Path
    >>> rows = []
    >>> for snr, b in ((0.0, "0.2"), (10.0, "0.5")):
    ...     row = dict.fromkeys(METRIC_COLUMNS, "")
    ...     row.update(system="vlf-msc", modality="text+image", channel="awgn", snr_db=str(snr), bleu1=b,
    ...                bleu1_ci_low=b, bleu1_ci_high=b)
    ...     rows.append(row)
    >>> figs = write_figures(rows, Path(tempfile.mkdtemp()))
    >>> sorted(figs), all(os.path.isfile(p) for p in figs.values())
    (['bleu1', 'text'], True)
    """
    from experiments.core.plots import plot_metric_vs_snr

    written: Dict[str, str] = {}
    for metric in METRICS:
        series, errors = {}, {}
        for system in SYSTEMS:
            pts = sorted((_num(r["snr_db"]), _num(r[metric]), _num(r[f"{metric}_ci_high"]))
                         for r in rows if r["system"] == system)
            pts = [p for p in pts if math.isfinite(p[1])]
            if not pts:
                continue
            label = LABELS[system]
            series[label] = ([p[0] for p in pts], [p[1] for p in pts])
            errors[label] = [p[2] - p[1] if math.isfinite(p[2]) else 0.0 for p in pts]
        if not series:
            continue
        written[metric] = plot_metric_vs_snr(series, out / f"fig_{metric}.png", snr_type="esno",
                                             ylabel=_AXIS[metric], errors=errors,
                                             title=f"{_AXIS[metric].split(' (')[0]} vs SNR (95% CI)")
    for name, group in (("text", TEXT_METRICS), ("image", ("lpips", "clip_score")),
                        ("image_quality", ("psnr", "ssim", "ms_ssim"))):
        parts = [written[m] for m in group if m in written]
        if parts:
            written[name] = _compose(parts, out / f"fig_{name}.png")
    return written


def write_grids(item_rows: Sequence[Dict[str, str]], snrs: Sequence[float], out: Path, max_rows: int,
                input_size: int) -> Dict[str, str]:
    """``grid.png`` (VLF-MSC) and ``grid_<system>.png`` for the Img2Img-SC variants, via VLF-MSC's grid.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> write_grids([], [0.0], Path(tempfile.mkdtemp()), max_rows=4, input_size=64)      # no items: no grid
    {}
    """
    from experiments.commands.vlf_msc import write_grid

    grids: Dict[str, str] = {}
    for system in ("vlf-msc", "img2img-sc", "img2img-sc-bsc"):
        rows = [r for r in item_rows if r["system"] == system and r["image_file"]]
        if not rows:
            continue
        path = out / ("grid.png" if system == "vlf-msc" else f"grid_{system}.png")
        g = write_grid(rows, snrs, str(out), str(path), max_rows, input_size)
        if g:
            grids[system] = g
    return grids


def _save_png(img, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    arr = (img.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype("uint8")
    tmp = path.with_name(path.stem + f".tmp.{os.getpid()}.png")
    Image.fromarray(arr).save(tmp)
    os.replace(tmp, path)


def _previous_outputs(out: Path, outputs: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Read (or, with ``outputs``, write) ``OUT/outputs.json``: the figures and grids last drawn."""
    from experiments.core.results import write_json_atomic

    path = out / "outputs.json"
    if outputs is not None:
        write_json_atomic(path, outputs)
        return outputs
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}
