"""The study behind ``semcom compare``: its settings (:class:`CompareConfig`), the loop over (channel,
scheme, SNR) points that plans and sends every scheme of :mod:`experiments.schemes` through one shared channel
per channel kind (:func:`run_comparison`, or one task per point: :func:`run_compare_points`), the metrics
with their 95% intervals (:func:`feature_metrics`, :func:`aggregate_metrics`) and the columns of
``compare.csv``. The command (arguments, CSV, figures, manifest) is :mod:`experiments.commands.compare`.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from experiments.schemes.analog import AnalogScheme
from experiments.schemes.protocol import Plan, Received, SchemeContext
from experiments.schemes.references import fbl_reference, opta_reference
from experiments.schemes.registry import make_scheme
from experiments.schemes.resources import _grid_skip, _mimo_skip, _ofdm_grid, _split_uses

__all__ = [
    "KEY_COLUMNS", "VALUE_COLUMNS", "COLUMNS", "SNR_AXIS_LABEL", "DEFAULT_SCHEMES", "METRIC_INTERVALS", "LDPC_DECODERS",
    "CompareConfig", "feature_metrics", "example_metrics", "run_comparison",
]


#: The x-axis label of the comparison figures.
SNR_AXIS_LABEL = "Es/N0 per complex channel use [dB]"
#: The columns that identify a row of ``compare.csv`` (resuming matches rows on them).
KEY_COLUMNS = ["scheme", "channel", "snr_db"]
#: metric -> (low, high) columns of its 95% interval
METRIC_INTERVALS = {m: (f"{m}_ci_lo", f"{m}_ci_hi") for m in
                    ("nmse", "cosine", "retrieval_top1", "bleu", "ber", "outage_rate", "codeword_error_rate")}
#: The other columns of ``compare.csv``: metrics, their 95 % intervals, the plan and the seed.
VALUE_COLUMNS = [
    "status", "equalizer", "matched", "budget", "channel_uses", "channel_uses_mean", "data_uses", "pilot_uses",
    "fits", "bits_per_element",
    "dims_sent", "truncated_dims", "chars_sent", "modulation", "code", "coderate", "info_bits", "quant_lo",
    "quant_hi", "mcs", "mcs_bler_est", "codeword_span", "n_train", "n_examples", "n_items", "realizations",
    "chance", "nmse", "opta_nmse", "gap_db", "fbl_nmse", "gap_fbl_db", "cosine", "retrieval_top1", "semantic_similarity", "bleu", "ber",
    "outage_rate", "codeword_error_rate",
] + [c for pair in METRIC_INTERVALS.values() for c in pair] + ["seed", "note"]
#: Every column of ``compare.csv``.
COLUMNS = KEY_COLUMNS + VALUE_COLUMNS
#: The 5G LDPC decoders ``ldpc_decoder`` (``--ldpc-decoder``) may name, as in ``semcom ber``
#: (:attr:`phy.fec.codes.LDPC5G.DECODERS`).
LDPC_DECODERS = ("layered", "layered-float32", "layered-int16", "layered-int8", "bp")
#: The schemes of ``semcom compare`` by default.
DEFAULT_SCHEMES = ("opta", "fbl-separation", "analog", "analog-klt", "transform-ideal", "transform-ldpc5g-amc", "quant-ideal",
                   "quant-ldpc5g-16qam", "ascii-hamming74-16qam")


def example_metrics(f: torch.Tensor, f_hat: torch.Tensor, bank: torch.Tensor,
                    index: Optional[torch.Tensor] = None, chunk: int = 2048) -> Dict[str, torch.Tensor]:
    """Per-example statistics of received features (float64, ``[M]`` each).

    ``err`` (``||f - f_hat||^2``), ``energy`` (``||f||^2``), ``cosine`` (of ``f_hat`` to ``f``) and
    ``hit`` (1 when the highest-cosine entry of ``bank`` is the example's own row ``index[i]``; ties
    go to the lowest index, so a constant estimate is right for exactly one item). Every reduction
    is along rows, so the values do not depend on the thread count.

    Examples
    --------
    >>> f = torch.eye(3)
    >>> m = example_metrics(f, f * 0.5, bank=f)
    >>> m["err"].tolist(), m["cosine"].tolist(), m["hit"].tolist()
    ([0.25, 0.25, 0.25], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    """
    if f.shape != f_hat.shape or f.dim() != 2 or bank.dim() != 2 or bank.shape[1] != f.shape[1]:
        raise ValueError(f"need f, f_hat [M, d] and bank [N, d]; got {tuple(f.shape)}, {tuple(f_hat.shape)}, "
                         f"{tuple(bank.shape)}")
    f, f_hat, bank = f.double(), f_hat.double().to(f.device), bank.double().to(f.device)
    m = f.shape[0]
    if index is None:
        index = torch.arange(m)
    err = (f - f_hat).square().sum(1)
    energy = f.square().sum(1)
    cos = torch.nn.functional.cosine_similarity(f_hat, f, dim=1, eps=1e-12)
    bn = torch.nn.functional.normalize(bank, dim=1, eps=1e-12)
    hn = torch.nn.functional.normalize(f_hat, dim=1, eps=1e-12)
    hit = torch.zeros(m, dtype=torch.float64)
    for s in range(0, m, chunk):
        sims = hn[s:s + chunk] @ bn.T
        hit[s:s + chunk] = (sims.argmax(dim=1) == index[s:s + chunk].to(sims.device)).double().cpu()
    return {"err": err.cpu(), "energy": energy.cpu(), "cosine": cos.cpu(), "hit": hit}


def feature_metrics(f: torch.Tensor, f_hat: torch.Tensor, bank: torch.Tensor,
                    index: Optional[torch.Tensor] = None, chunk: int = 2048) -> Dict[str, float]:
    """NMSE, mean cosine and top-1 retrieval of received features.

    Parameters
    ----------
    f, f_hat : Tensor ``[M, d]``
        Sent and received features.
    bank : Tensor ``[N, d]``
        All source features; the retrieval target of row ``i`` is ``bank[index[i]]``.
    index : Tensor ``[M]`` int64, optional
        Bank row of each example (default ``arange(M)``).

    Returns
    -------
    dict with ``nmse`` (``sum ||f - f_hat||^2 / sum ||f||^2``), ``cosine`` (mean) and
    ``retrieval_top1`` (fraction of rows whose highest-cosine bank entry is their own; see
    :func:`example_metrics`). Sums are exact (``math.fsum``), so independent of the thread count.

    Example
    -------
    >>> f = torch.eye(3)
    >>> feature_metrics(f, f, f)["retrieval_top1"]
    1.0
    """
    e = example_metrics(f, f_hat, bank, index, chunk)
    m = e["err"].numel()
    return {"nmse": math.fsum(e["err"].tolist()) / max(math.fsum(e["energy"].tolist()), 1e-300),
            "cosine": math.fsum(e["cosine"].tolist()) / m, "retrieval_top1": math.fsum(e["hit"].tolist()) / m}


@dataclass
class CompareConfig:
    """Settings of one comparison (recorded in the manifest; a resumed run must match them). The defaults
    are those of ``semcom compare`` (its options take them from here); ``device="auto"`` is resolved by
    :meth:`validate` (CUDA when available, else the CPU).

    Examples
    --------
    >>> cfg = CompareConfig(schemes=("analog", "opta"), channels=("awgn", "rayleigh"), snr_db=[0.0, 10.0])
    >>> cfg.budget, cfg.realizations, cfg.train_fraction
    (None, 4, 0.8)
    """

    schemes: Sequence[str] = DEFAULT_SCHEMES
    channels: Sequence[str] = ("awgn",)
    snr_db: Sequence[float] = (-20.0, -15.0, -10.0, -5.0, 0.0, 5.0, 10.0, 15.0)
    budget: Optional[int] = None          # complex channel uses per example; None: ceil(d/2)
    matched: bool = True
    equalizer: str = "mmse"
    bits: Optional[int] = None            # fixed bits per element (default: chosen by the budget)
    max_bits_per_element: int = 8
    ldpc_rate: float = 0.5
    ldpc_iter: int = 20
    ldpc_decoder: str = "layered"         # phy.fec.codes.LDPC5G decoder (LDPC_DECODERS): layered offset min-sum, or "bp"
    ideal_outage: Optional[float] = None  # ideal code: None designs the payload (least expected distortion)
    text_max_items: Optional[int] = None
    train_fraction: float = 0.8           # seeded split: fit on train, score the held-out items
    realizations: int = 4                 # independent channel realisations averaged per point
    amc_policy: str = "distortion"        # transform-*-amc link adaptation: "distortion" or "bler-target"
    amc_bler_target: float = 0.1
    seed: int = 0
    device: str = "auto"                  # "auto": CUDA when available, else the CPU

    def validate(self, dim: int) -> "CompareConfig":
        from phy.channel.registry import canonical_channel_list
        from phy.mimo.equalization import EQUALIZERS

        if isinstance(self.budget, bool) or (self.budget is not None and (
                not isinstance(self.budget, numbers.Integral) or self.budget < 1)):
            raise ValueError(f"budget must be a positive int (complex channel uses per example) or None, "
                             f"got {self.budget!r}")
        if self.equalizer not in EQUALIZERS:
            raise ValueError(f"equalizer must be one of {EQUALIZERS}, got {self.equalizer!r}")
        self.channels = canonical_channel_list(self.channels)  # channel specs -> canonical (the CSV key)
        if not self.snr_db:
            raise ValueError("snr_db must list at least one SNR point")
        for s in self.snr_db:
            if isinstance(s, bool) or not isinstance(s, numbers.Real) or not math.isfinite(s):
                raise ValueError(f"snr_db values must be finite numbers, got {s!r}")
        if self.bits is not None and (isinstance(self.bits, bool) or not isinstance(self.bits, numbers.Integral)
                                      or not 1 <= self.bits <= 24):
            raise ValueError(f"bits must be an int in [1, 24] or None, got {self.bits!r}")
        if not isinstance(self.max_bits_per_element, numbers.Integral) or not 1 <= self.max_bits_per_element <= 24:
            raise ValueError(f"max_bits_per_element must be an int in [1, 24], got {self.max_bits_per_element!r}")
        if not 0.2 <= self.ldpc_rate <= 0.95:
            raise ValueError(f"ldpc_rate must be in [0.2, 0.95] (5G NR LDPC), got {self.ldpc_rate!r}")
        if self.ldpc_decoder not in LDPC_DECODERS:
            raise ValueError(f"ldpc_decoder must be one of {LDPC_DECODERS}, got {self.ldpc_decoder!r}")
        if self.device == "auto":
            from experiments.core.args import parse_device

            self.device = str(parse_device("auto"))
        if self.ideal_outage is not None and (isinstance(self.ideal_outage, bool) or not isinstance(
                self.ideal_outage, numbers.Real) or not 0 < self.ideal_outage < 1):
            raise ValueError(f"ideal_outage (--ideal-outage) must be None (the payload is designed) or a probability "
                             f"in (0, 1), got {self.ideal_outage!r}")
        if self.text_max_items is not None and (not isinstance(self.text_max_items, numbers.Integral)
                                                or self.text_max_items < 1):
            raise ValueError(f"text_max_items must be a positive int or None, got {self.text_max_items!r}")
        if isinstance(self.train_fraction, bool) or not isinstance(self.train_fraction, numbers.Real) \
                or not 0 < self.train_fraction < 1:
            raise ValueError(f"train_fraction (--train-fraction) must be in (0, 1), got {self.train_fraction!r}")
        if isinstance(self.realizations, bool) or not isinstance(self.realizations, numbers.Integral) \
                or not 1 <= self.realizations <= 10000:
            raise ValueError(f"realizations (--realizations) must be an int in [1, 10000], got {self.realizations!r}")
        from phy.link.amc import AMC_POLICIES

        if self.amc_policy not in AMC_POLICIES:
            raise ValueError(f"amc_policy (--amc-policy) must be one of {AMC_POLICIES}, got {self.amc_policy!r}")
        if isinstance(self.amc_bler_target, bool) or not isinstance(self.amc_bler_target, numbers.Real) \
                or not 0 < self.amc_bler_target < 1:
            raise ValueError(f"amc_bler_target (--amc-bler-target) must be in (0, 1), got {self.amc_bler_target!r}")
        names = [make_scheme(s).name for s in self.schemes]
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"schemes must be a non-empty list without duplicates, got {list(self.schemes)}")
        return self

    def effective_budget(self, dim: int) -> int:
        return self.budget if self.budget is not None else math.ceil(dim / 2)

    def settings(self, source) -> Dict[str, Any]:
        """What a resumed run must share with the one that wrote the CSV."""
        d = asdict(self)
        d.pop("channels"), d.pop("snr_db"), d.pop("schemes")
        d["budget"] = self.effective_budget(source.dim)
        d["source"] = source.name
        d["source_n_items"] = source.n_items
        d["source_feature_hash"] = source.feature_hash()
        return d


def _chance(n: int) -> float:
    return 1.0 / n


def run_comparison(source, config: CompareConfig, out_dir: Optional[str] = None, table=None,
                   progress: bool = True, log: Callable[[str], None] = None) -> List[Dict[str, Any]]:
    """Run every (channel, scheme, SNR) point and return the rows (also appended to ``table``).

    Each point reseeds the shared channel from ``(seed, scheme, channel, snr_db)`` (before and
    after the scheme's plan, so a plan's own channel draws never shift the transmission), sends the
    held-out items ``config.realizations`` times (fresh channel draws each time) and averages.

    Parameters
    ----------
    source : :class:`experiments.core.sources.FeatureSource`
    config : :class:`CompareConfig`
    table : :class:`experiments.core.results.ResumableCSV`, optional
        Rows already in it are skipped (resume); new rows are appended as they finish.
    progress : bool
        Print one line per point to stderr.

    Examples
    --------
    >>> from experiments.core.sources import load_source
    >>> src = load_source("gaussian", n_items=64, dim=16)
    >>> cfg = CompareConfig(schemes=("analog", "opta"), channels=("awgn",), snr_db=[0.0, 10.0], budget=8,
    ...                     realizations=1)
    >>> rows = run_comparison(src, cfg, progress=False, log=lambda msg: None)
    >>> [(r["scheme"], r["snr_db"]) for r in rows]
    [('analog', 0.0), ('analog', 10.0), ('opta', 0.0), ('opta', 10.0)]
    """
    from phy.channel.registry import make_channel
    from phy.sim.points import point_seed
    from phy.sim.resultstore import format_value

    config.validate(source.dim)
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    device = torch.device(config.device)
    budget = config.effective_budget(source.dim)
    ctx = SchemeContext(source, budget, config.matched, config.equalizer, device, config.bits,
                   config.max_bits_per_element, config.ldpc_rate, config.ideal_outage, config.text_max_items,
                   config.ldpc_iter, config.ldpc_decoder, train_fraction=config.train_fraction,
                   split_seed=config.seed, amc_policy=config.amc_policy, amc_bler_target=config.amc_bler_target,
                   seed=config.seed)
    schemes = [make_scheme(s) for s in config.schemes]
    done = table.finished_keys() if table is not None else set()
    rows: List[Dict[str, Any]] = []
    total = len(config.channels) * len(schemes) * len(config.snr_db)
    count, t0 = 0, time.perf_counter()
    for ch_name in config.channels:
        channel = make_channel(ch_name, seed=config.seed)  # one channel object, shared by every scheme
        ctx.channel, ctx.channel_name = channel, ch_name
        grid = _ofdm_grid(channel)
        # default budget over a grid: the resource elements (data + pilots) the analog scheme occupies
        budget = (grid.ledger(math.ceil(source.dim / 2)).channel_uses if grid is not None and config.budget is None
                  else config.effective_budget(source.dim))
        ctx.budget = budget
        for scheme in schemes:
            ok, why = scheme.applies(source)
            static_plan = None
            for snr in config.snr_db:
                count += 1
                key = (scheme.name, ch_name, float(snr))
                if tuple(format_value(v) for v in key) in done:
                    rows.append(table.get(key))
                    continue
                skip = None
                if not ok:  # a row says so (status "skipped: ..."), like every other point that does not run
                    if progress:
                        log(f"[compare {count}/{total}] {ch_name} {scheme.name}: skipped ({why})")
                    skip = Plan(0, False, note=f"skipped: {why}", status=f"skipped: {why}")
                opta = opta_reference(ctx, channel, ch_name, float(snr))
                fbl = fbl_reference(ctx, channel, ch_name, float(snr))[0]
                seed = point_seed(config.seed, scheme.name, ch_name, float(snr))
                channel.reset(seed)
                if scheme.snr_dependent_plan or static_plan is None:
                    plan = (skip or _grid_skip(scheme, channel) or _mimo_skip(scheme, channel)
                            or scheme.plan(ctx, float(snr), channel))
                    if not scheme.snr_dependent_plan:
                        static_plan = plan
                else:
                    plan = static_plan
                if ctx.matched and plan.channel_uses > budget:
                    raise RuntimeError(f"{scheme.name} planned {plan.channel_uses} uses > budget {budget}")
                channel.reset(seed)
                met: Dict[str, Any] = {}
                rxs: List[Received] = []
                if not plan.status.startswith("skipped"):
                    rxs = scheme.transmit_realizations(ctx, plan, channel, float(snr), config.realizations)
                    met = aggregate_metrics(rxs, ctx, source, seed)
                    if plan.status == "ok" and met.get("outage_rate") == 1.0:
                        plan = dataclasses.replace(plan, status="nothing delivered")
                row = _row(scheme, plan, rxs, met, ctx, config, ch_name, float(snr), opta,
                           None if fbl is None else fbl[1])
                if table is not None:
                    table.append(row)
                rows.append(row)
                if progress:
                    got = (f"retrieval={met['retrieval_top1']:.3f}  nmse={met['nmse']:.4f}" if met
                           else plan.status)
                    log(f"[compare {count}/{total} {time.perf_counter() - t0:6.1f}s] {ch_name:8s} "
                        f"{scheme.name:24s} {float(snr):6.1f} dB  uses={plan.channel_uses:4d}  {got}")
    return rows


def _bleu_interval(hyps: Sequence[Sequence[str]], refs: Sequence[str], seed: int,
                   resamples: int = 200) -> Tuple[float, float, float]:
    """Corpus BLEU-4 of every realisation's hypotheses against the references, with a 95% bootstrap
    percentile interval over the examples (each resample keeps all realisations of an example)."""
    import numpy as np
    from sacrebleu.metrics import BLEU

    bleu = BLEU()
    m = len(refs)
    flat_h = [h for hs in hyps for h in hs]
    flat_r = [r for _ in hyps for r in refs]
    score = float(bleu.corpus_score(flat_h, [flat_r]).score)
    stats = [bleu._extract_corpus_statistics([h], [[r]]) for h, r in zip(flat_h, flat_r)]
    stats = np.asarray(stats, dtype=np.float64).reshape(len(hyps), m, -1).sum(0)   # per example
    rng = np.random.default_rng(seed & 0xFFFFFFFF)
    vals = []
    for _ in range(resamples):
        tot = stats[rng.integers(0, m, m)].sum(0)
        vals.append(float(bleu._compute_score_from_stats(tot.tolist()).score))
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return score, float(lo), float(hi)


def aggregate_metrics(rxs: Sequence[Received], ctx: SchemeContext, source, seed: int) -> Dict[str, Any]:
    """Metrics over the realisations with 95% intervals (:mod:`phy.sim.intervals`).

    Per example, each statistic is averaged over the realisations first; the intervals are then
    over the examples (so they cover the channel and the choice of items): NMSE by the delta method
    for a ratio of sums, cosine by Student's t, retrieval and outage by Wilson's score interval
    (conservative with several realisations), BER as a ratio of per-example bit errors to bits
    (Clopper-Pearson on all bits when no error was seen), the codeword error rate by
    Clopper-Pearson over codewords, BLEU by a bootstrap over the examples.
    """
    from phy.sim.intervals import mean_interval, proportion_interval, ratio_interval
    from phy.sim.intervals import clopper_pearson

    idx = rxs[0].index
    per = [example_metrics(ctx.features[idx], rx.features, ctx.features, idx) for rx in rxs]
    R = len(rxs)
    err = sum(p["err"] for p in per) / R
    energy = per[0]["energy"]
    cos = sum(p["cosine"] for p in per) / R
    hit = sum(p["hit"] for p in per) / R
    m = int(err.numel())
    met: Dict[str, Any] = {
        "nmse": math.fsum(err.tolist()) / max(math.fsum(energy.tolist()), 1e-300),
        "cosine": math.fsum(cos.tolist()) / m, "retrieval_top1": math.fsum(hit.tolist()) / m,
    }
    met["nmse_ci"] = ratio_interval(err.numpy(), energy.numpy()) if math.fsum(energy.tolist()) > 0 else None
    met["cosine_ci"] = mean_interval(cos.numpy())
    met["retrieval_top1_ci"] = proportion_interval(math.fsum(hit.tolist()), m)
    if rxs[0].bit_errors is not None:
        be = sum(rx.bit_errors for rx in rxs) / R
        bs = rxs[0].bits_sent
        tot_bits = math.fsum(bs.tolist()) * R
        if tot_bits > 0:
            met["ber"] = math.fsum(be.tolist()) / math.fsum(bs.tolist())
            met["ber_ci"] = (ratio_interval(be.numpy(), bs.numpy()) if met["ber"] > 0
                             else clopper_pearson(0, int(tot_bits)))
    elif rxs[0].ber is not None:
        met["ber"] = math.fsum(rx.ber for rx in rxs) / R
    if rxs[0].outage is not None:
        out = sum(rx.outage.double() for rx in rxs) / R
        met["outage_rate"] = math.fsum(out.tolist()) / m
        met["outage_rate_ci"] = proportion_interval(math.fsum(out.tolist()), m)
    elif rxs[0].outage_rate is not None:
        met["outage_rate"] = math.fsum(rx.outage_rate for rx in rxs) / R
    if rxs[0].codeword_errors is not None:
        e = sum(rx.codeword_errors[0] for rx in rxs)
        n = sum(rx.codeword_errors[1] for rx in rxs)
        met["codeword_error_rate"] = e / n
        met["codeword_error_rate_ci"] = clopper_pearson(e, n)
    if rxs[0].texts is not None:
        refs = [source.items[i] for i in idx.tolist()]
        met["bleu"], lo, hi = _bleu_interval([rx.texts for rx in rxs], refs, seed)
        met["bleu_ci"] = (lo, hi)
    return met


def _row(scheme, plan, rxs, met, ctx, config, ch_name, snr, opta, fbl=None) -> Dict[str, Any]:
    q = None
    if plan.bits_per_element and plan.dims_sent and scheme.kind in ("digital", "ideal"):
        q = ctx.quantizer(plan.bits_per_element, plan.dims_sent)
    text = scheme.kind == "text"
    dims = plan.dims_sent
    nmse = met.get("nmse")
    gap = None
    if nmse is not None and opta is not None and opta > 0 and nmse > 0:
        gap = 10.0 * math.log10(nmse / opta)
    gap_fbl = None
    if nmse is not None and fbl is not None and fbl > 0 and nmse > 0:
        gap_fbl = 10.0 * math.log10(nmse / fbl)
    row = {
        "scheme": scheme.name, "channel": ch_name, "snr_db": snr, "status": plan.status,
        "equalizer": (scheme.equalizer(ctx) if isinstance(scheme, AnalogScheme)
                      else ("lmmse" if _ofdm_grid(ctx.channel) is not None else "zf")  # a grid: Sionna's OFDM LMMSE
                      if scheme.kind in ("digital", "ideal", "text", "transform", "analog") else None),
        "matched": ctx.matched, "budget": ctx.budget if ctx.matched else None,
        "channel_uses": plan.channel_uses, "channel_uses_mean": plan.channel_uses_mean
        if plan.channel_uses_mean is not None else float(plan.channel_uses),
        "data_uses": _split_uses(ctx.channel, plan.channel_uses)[0],
        "pilot_uses": _split_uses(ctx.channel, plan.channel_uses)[1],
        "fits": plan.fits, "bits_per_element": plan.bits_per_element, "dims_sent": dims,
        "truncated_dims": None if dims is None else ctx.dim - dims,
        "chars_sent": plan.chars_sent, "modulation": plan.extra.get("modulation", scheme.modulation),
        "code": scheme.code_name, "coderate": plan.coderate, "info_bits": plan.info_bits,
        "quant_lo": None if q is None else q.lo, "quant_hi": None if q is None else q.hi,
        "mcs": plan.extra.get("mcs"), "mcs_bler_est": plan.extra.get("bler"),
        "codeword_span": plan.extra.get("span"), "n_train": int(ctx.train_index.numel()),
        "n_examples": int(rxs[0].index.numel()) if rxs else 0, "n_items": ctx.features.shape[0],
        "realizations": len(rxs), "chance": _chance(ctx.features.shape[0]),
        "nmse": nmse, "opta_nmse": opta, "gap_db": gap, "fbl_nmse": fbl, "gap_fbl_db": gap_fbl, "cosine": met.get("cosine"),
        "retrieval_top1": met.get("retrieval_top1"), "semantic_similarity": met.get("cosine") if text else None,
        "bleu": met.get("bleu"), "ber": met.get("ber"), "outage_rate": met.get("outage_rate"),
        "codeword_error_rate": met.get("codeword_error_rate"), "seed": config.seed, "note": plan.note,
    }
    for metric, (lo, hi) in METRIC_INTERVALS.items():
        ci = met.get(f"{metric}_ci")
        row[lo], row[hi] = (ci if ci is not None else (None, None))
    return row


def compare_point(source, config: Mapping[str, Any], channel: str, scheme: str, snr_db: float) -> List[Dict[str, Any]]:
    """One ``semcom compare`` point in any process: :func:`run_comparison`
    restricted to one channel, one scheme and one SNR (the point reseeds the channel from its own
    key, so the row equals the sequential run's). Returns ``[row]`` (``[]`` when the scheme does
    not apply to the source)."""
    from experiments.core.plugins import load_entry_points

    load_entry_points()  # a worker process registers the installed plug-ins too
    cfg = CompareConfig(**dict(config, channels=[channel], schemes=[scheme], snr_db=[float(snr_db)]))
    return run_comparison(source, cfg, None, table=None, progress=False)


def run_compare_points(executor, source, config, table) -> List[Dict[str, Any]]:
    """Run a :class:`CompareConfig` as one task per point, skipping the points
    already in ``table``; returns the rows in the sequential order (channel, scheme, SNR)."""
    from dataclasses import asdict

    config.validate(source.dim)
    cfg = asdict(config)
    names = {spec: make_scheme(spec).name for spec in config.schemes}
    keys, tasks = [], []
    for ch in config.channels:
        for spec in config.schemes:
            for snr in config.snr_db:
                key = (names[spec], ch, float(snr))
                keys.append(key)
                tasks.append((key, compare_point, (source, cfg, ch, spec, float(snr))))
    from experiments.core.executors import run_points

    run_points(executor, tasks, table)
    return [r for r in (table.get(k) for k in keys) if r is not None]
