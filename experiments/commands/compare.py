"""``semcom compare``: analog semantic transmission vs digital separation at matched channel uses,
each drawn beside the Gaussian OPTA and beside ideal separation at the block length actually used.

Every scheme sends the same real feature vectors ``f [N, d]`` of a source (default: the embedded
``pydoc-minilm`` sentences, ``d = 384``) over **one shared channel object** per channel kind, and
reports the complex channel uses it spent per example. SNR is Es/N0 per complex channel use.

Held-out evaluation: the items are split once (``--train-fraction``, default 0.8, seeded by
``--seed``). Everything a scheme fits -- KLT, bit allocation, quantiser ranges and codebooks, the
receiver's fallback mean -- is fitted on the training split; the held-out items are sent and
scored, and retrieved among *all* N items. Each point averages ``--realizations`` independent
channel realisations (default 4), and every metric has a 95% interval column (``<metric>_ci_lo``,
``<metric>_ci_hi``; see :func:`experiments.comparison.aggregate_metrics`).

Schemes (``--schemes``, comma list; :mod:`experiments.schemes`)
---------------------------------------------------------------
``opta``
    The **Gaussian OPTA** (:class:`~experiments.schemes.references.OptaScheme`): reverse water-filling over the training
    covariance's eigenvalues at ``R = U C`` bits (AWGN capacity; ergodic capacity for i.i.d.
    fading; the expectation over the fade for block fading), reconstructions sampled from the
    optimal forward test channel per KLT component. A reference, not a bound, for non-Gaussian
    features. Every row also carries the analytic ``opta_nmse`` and ``gap_db = 10 log10(nmse /
    opta_nmse)``.
``fbl-separation``
    **Ideal separation at the finite block length** (:class:`~experiments.schemes.references.FBLSeparationScheme`):
    the minimum over the payload ``B`` per example of ``(1 - eps(B)) D(B) + eps(B) D_erased``, with ``eps`` the
    normal approximation (Polyanskiy-Poor-Verdu, Gaussian input; :mod:`phy.theory.finite_blocklength`) of the
    error probability of a codeword of the digital schemes' span (below) carrying its examples' bits, ``D(B)``
    reverse water-filling on the training covariance and ``D_erased`` the training variance. AWGN and i.i.d.
    (per-symbol) Rayleigh fading with receiver CSI; on other channels the row is ``skipped`` and says why. Every
    row carries the analytic ``fbl_nmse`` and ``gap_fbl_db = 10 log10(nmse / fbl_nmse)`` (empty where not
    covered). Codes that are actually built (LDPC) sit above it; analog (joint) schemes may sit below it, which
    is the short-block advantage of joint source-channel coding, not an error; so may the ideal-code schemes,
    whose genie code pays no finite-length penalty.
``analog-klt``
    The optimal *linear* analog scheme (:class:`~experiments.schemes.analog.AnalogKLTScheme`): KLT, the strongest ``2U``
    components, MSE-optimal power allocation, LMMSE receiver.
``transform-ideal``, ``transform-ldpc5g-amc``
    Transform coding (:class:`phy.source.transform.TransformCoder`: KLT + integer bit allocation by
    marginal returns on the reverse water-filling slope + per-component Lloyd-Max quantisers),
    delivered by the ideal code (``transform-ideal``) or by CRC + 5G LDPC + QAM with adaptive
    modulation and coding (``transform-ldpc5g-amc``: the MCS of 3GPP TS 38.214 Table 5.1.3.1-2
    that minimises the expected distortion given simulated BLERs, or ``--amc-policy bler-target``;
    failed codewords are erased and replaced by the training mean). ``mcs``, ``mcs_bler_est``,
    ``codeword_span`` and the realised ``codeword_error_rate`` are reported. **Codeword span**, one rule for
    the ideal code and every MCS: a codeword spans the fewest whole examples whose channel uses (data symbols
    on a grid) reach 512, the uses of a 1024-bit QPSK codeword (``ceil(512 / U)`` examples; the LDPC scheme uses
    fewer only where one 5G codeword cannot hold them, and an MCS below 0 repeats its codeword ``r`` times over
    ``r`` times as many examples).
``analog`` (``analog-zf``, ``analog-mmse``)
    :class:`phy.link.analog.AnalogLink`: pairs of reals -> one complex symbol, per-example power
    normalisation, ZF or MMSE equalisation. ``ceil(d/2)`` uses. ``analog`` takes ``--equalizer``.
``analog-svd``
    The analog link with SVD precoding (**needs CSIT**: the transmitter knows ``H``; :mod:`phy.mimo.precoding`):
    ``min(num_tx, num_rx)`` eigenmodes per channel use, MSE-optimal power, per-mode LMMSE. On a single-antenna
    channel it is ``analog-mmse``. Its ``note`` column says "needs CSIT".
``quant-<code>-<mod>`` with ``<code>`` in ``none, hamming74, ldpc5g`` and ``<mod>`` in ``qpsk, 16qam, ...``
    Naive separation, kept to show what it costs: :class:`phy.source.quantization.UniformQuantizer`
    (``b`` bits per element, natural binary, one range for all coordinates fitted on the training
    split as the percentile range with the smallest quantisation MSE; the range is side
    information) -> :class:`phy.link.digital.DigitalLink` (code + Gray QAM + channel + ZF + APP
    demapping + decoder; LDPC5G at nominal rate ``--ldpc-rate``, decoded by the layered offset
    min-sum decoder by default, ``--ldpc-decoder bp`` for Sionna's flooding BP) -> dequantise; the
    coordinates that do not fit are dropped in coordinate order.
``quant-ideal``
    The same quantiser with an ideal capacity-achieving code (:class:`phy.link.ideal.IdealCodeLink`,
    ``capacity="instantaneous"``): a codeword of ``s`` examples (the span rule above) carrying ``s B`` bits in
    ``s U`` uses is received error-free iff ``s B <= sum_i log2(1 + |h_i|^2 snr)`` over its realised channel,
    else its examples are in outage and the receiver gets nothing. Without transmitter CSI the payload ``B`` is
    **designed** per SNR and channel like the AMC's MCS: it minimises ``(1 - P_out(B)) D(B) + P_out(B)
    D_erased`` on the training split, ``P_out`` from 20000 design draws of a codeword's mutual information
    (:func:`phy.link.ideal.design_payload`; AWGN: exactly ``floor(U log2(1 + snr))``). ``--ideal-outage p``
    overrides the design with a fixed outage target (``B`` = the ``p`` quantile of the draws).
``ascii-<code>-<mod>`` (text sources only; default ``ascii-hamming74-16qam``)
    The raw sentence as 7-bit ASCII (:class:`phy.source.text_codec.TextCodec`) through a DigitalLink; the
    received text is re-encoded by the source's encoder (MiniLM) for the feature metrics and the
    retrieval, and scored with BLEU against the full original sentence.

Matched bandwidth (default)
---------------------------
``--budget U`` complex channel uses per example (default: the analog scheme's ``ceil(d/2)``).
Every scheme is fitted into ``U``; the actual uses are reported (``channel_uses`` <= ``budget``):

* digital: the information-bit capacity of the budget (``U m`` coded bits, ``m`` bits/symbol;
  Hamming: ``4 floor(U m / 7)``; LDPC: ``floor(U m r)``; ideal: see above) sets
  ``b = clamp(floor(capacity / d), 1, --max-bits-per-element)``; if even 1 bit per element does not
  fit, only the first ``floor(capacity / b)`` features are sent (``truncated_dims`` > 0). The
  actual uses are those of :meth:`phy.link.digital.DigitalLink.channel_uses` for the real payload.
* analog: with a budget below ``ceil(d/2)`` only the first ``2U`` features are sent.
* text: every sentence is cut to the longest prefix whose ASCII + code + QAM frame fits ``U``
  (``chars_sent``); the per-example uses vary with the sentence length, ``channel_uses`` reports
  the largest, ``channel_uses_mean`` the mean.
* A feature that was not sent (truncation) or an example in outage is replaced by the receiver's
  fallback estimate, the **training-split mean** (known statistics); retrieval with the fallback picks the
  item nearest to the mean, i.e. it succeeds about as often as chance (``chance = 1/N``).
* The ideal code bounds *this* source code (scalar quantiser + truncation), not the
  rate-distortion limit: at very low SNR it delivers a few error-free features, which can retrieve
  worse than all features sent with many bit errors.

Multi-antenna channels (``rayleigh(num_tx=2,num_rx=2)``, flat fading): a channel use is one resource element
carrying several streams, Es/N0 is the total over the transmit antennas per N0 per receive antenna. ``analog``
sends ``num_tx`` complex symbols per use (LMMSE/ZF per stream), ``analog-svd`` ``min(num_tx, num_rx)``,
``quant-*`` and ``ascii-*`` ``num_tx`` QAM streams per use through the LMMSE MIMO detector (capacity
``U m num_tx`` coded bits), and ``opta`` uses the MIMO ergodic capacity (equal power, no CSIT:
:mod:`phy.theory.mimo_capacity`). The other schemes (``analog-klt``, ``transform-*``, ``quant-ideal``, plug-ins
without ``supports_mimo = True``) are reported as ``skipped: ...`` on such channels.

Over an OFDM grid (``--channel "ofdm(...)"``, :mod:`phy.ofdm.channel`) a channel use is a resource element: the budget
counts data and pilot REs (and cyclic-prefix samples) of whole slots, by default those the analog scheme
occupies (``ledger(ceil(d/2))``); a scheme's capacity is the data symbols (all streams) of the whole slots within
the budget, so every scheme is charged the same pilot overhead, and the CSV's ``data_uses`` / ``pilot_uses``
split ``channel_uses`` (``pilot_uses`` 0 on other channels). ``opta`` (and every row's ``opta_nmse`` /
``gap_db``) uses the mutual information of the data REs of those slots with the realised channel of each
example's slots (:meth:`phy.ofdm.channel.OFDMChannel.rate_bits`: Gaussian inputs, perfect CSI at the receiver, the pilot
REs paid for and carrying nothing). Over a single-antenna grid every scheme but ``analog-svd`` runs:

* ``analog-klt`` fills the data symbols of the budget's slots (power allocation for the nominal SNR, as on flat
  channels) through the grid's ZF equaliser, and its per-component LMMSE uses each symbol's effective noise
  (Sionna's ``no_eff``, the LS estimation error included).
* ``transform-ldpc5g-amc``: the codeword layout uses the data symbols of the budget's slots as an example's
  uses; the BLER simulation and the codewords go through the grid (:class:`phy.link.digital.DigitalLink`: pilots, LS
  estimation, LMMSE), so the MCS is chosen for the estimated-CSI channel; a codeword spanning ``s`` examples
  occupies ``s`` examples' slots. MCS above the 90% quantile of an example's slot mutual information per data
  symbol are not simulated.
* ``quant-ideal`` / ``transform-ideal``: the mutual information of a codeword is that of its examples' slots
  (the ``opta`` rate; the design sums 2000 draws of an example's slots in random groups of the span); a codeword
  is delivered iff its payload fits the mutual information of its examples' own slot draws (perfect CSI: the
  ideal code is a genie), else its examples are in outage.

``analog-svd`` (needs CSIT) and plug-ins are reported as ``skipped: ...`` over a grid, and on a multi-antenna
grid so are the single-antenna schemes (``analog-klt``, ``*-ideal``, ``transform-*``).


``--no-match`` sends every scheme at its natural size instead (all features at ``--bits`` bits per
element, default 4; the full text), with ``matched = false`` and the actual uses reported.

Metrics per (scheme, channel, SNR)
----------------------------------
``nmse`` = sum ||f - f_hat||^2 / sum ||f||^2 over the examples; ``cosine`` = mean cosine
similarity of ``f_hat`` to ``f``; ``retrieval_top1`` = fraction of examples whose nearest
neighbour (cosine) among all N source features is their own; ``ber`` = information-bit error rate
of a digital scheme (for ``quant-ideal``: the bits of examples in outage are fair coin flips, as
:class:`phy.link.ideal.IdealCodeLink` fills them, although their features are replaced by the fallback);
``outage_rate`` (ideal); for text schemes ``semantic_similarity`` (MiniLM
cosine of the received to the original sentence, equal to ``cosine``) and ``bleu`` (sacrebleu
corpus BLEU-4, 0-100). Empty cells mean "does not apply". ``status`` is ``ok``, ``nothing delivered``
(every example lost or no bit fits) or ``skipped: <why>`` (e.g. a training split smaller than the
dimension: no covariance, so no KLT scheme; no metric is written then).

Outputs (``--out``): ``compare.csv`` (resumable, keyed by ``scheme, channel, snr_db``; each point
reseeds the shared channel from ``(seed, scheme, channel, snr_db)``, so the same seed gives the
same CSV, resumed or not), ``nmse_<channel>.png``, ``retrieval_<channel>.png``, ``cosine_<channel>.png``
(``bleu_<channel>.png`` with text schemes; ``--format pdf|svg`` for vector figures; ``<channel>`` is the bare
name for a channel's defaults, else its short name, ``ofdm_tdl-C_cfo=600``, cut to 40 characters and
ended by a hash of the spec when longer) and
``manifest.json``. The figures' titles name the channel briefly; its full spec is in the CSV and in the
figures' metadata.

Example
-------
``semcom compare --source pydoc-minilm --channel awgn,rayleigh --snr-db=-20:15:5 --realizations 4 --out runs/cmp``
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import asdict
from typing import Any, Dict, List, Optional, Sequence, Tuple

from experiments.comparison import (DEFAULT_SCHEMES, KEY_COLUMNS, LDPC_DECODERS, METRIC_INTERVALS,  # noqa: F401
                                    SNR_AXIS_LABEL, VALUE_COLUMNS, CompareConfig, run_compare_points, run_comparison)
from experiments.core.args import open_unit_arg, parse_device, positive_int_arg, snr_list_arg

__all__ = ["plot_comparison", "add_arguments", "main"]


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------
def _num(v) -> float:
    if v is None or v == "":
        return math.nan
    return float(v)


def _file_label(spec: str) -> str:
    """A short, file-name-safe label of a channel spec (:func:`experiments.core.figstyle.channel_file_label`)."""
    from experiments.core.figstyle import channel_file_label

    return channel_file_label(spec)


#: metric -> (file name, axis label, log axis)
_FIGURES = {"nmse": ("nmse", "NMSE of the received feature", True),
            "retrieval_top1": ("retrieval", "top-1 retrieval accuracy", False),
            "cosine": ("cosine", "cosine similarity to the sent feature", False),
            "bleu": ("bleu", "BLEU-4 (sacrebleu corpus, 0-100)", False)}


def plot_comparison(rows: Sequence[Dict[str, Any]], out_dir: str, prefix: str = "", fmt: str = "png") -> List[str]:
    """One figure per (metric, channel): NMSE (log axis, with the analytic Gaussian OPTA of the training
    covariance as a reference), retrieval (with chance), cosine (and BLEU with text schemes) vs SNR, every
    point with its 95% interval, in the style of :mod:`experiments.core.figstyle` (a fixed colour and marker
    per scheme, legend labels from its label table, the channel's short name in the title and its full
    spec in the file's metadata, y range from the data). Files: ``<metric>_<channel>.<fmt>``
    (:func:`experiments.core.figstyle.channel_file_label`).

    Examples
    --------
    >>> import os, tempfile
    >>> from experiments.core.sources import load_source
    >>> cfg = CompareConfig(schemes=("analog",), snr_db=[0.0, 10.0], budget=8, realizations=1)
    >>> rows = run_comparison(load_source("gaussian", n_items=64, dim=16), cfg, progress=False, log=lambda m: None)
    >>> paths = plot_comparison(rows, tempfile.mkdtemp())
    >>> len(paths) > 0 and all(os.path.isfile(p) for p in paths)
    True
    """
    from experiments.core.figstyle import channel_short_name, figure_path, scheme_label
    from experiments.core.plots import plot_metric_vs_snr

    paths = []
    channels = sorted({str(r["channel"]) for r in rows})
    for ch in channels:
        rs = [r for r in rows if str(r["channel"]) == ch]
        budget = next((r["budget"] for r in rs if r.get("budget") not in (None, "")), None)
        for metric, (name, ylabel, logy) in _FIGURES.items():
            lo_col, hi_col = METRIC_INTERVALS[metric]
            series: Dict[str, Tuple[List[float], List[float]]] = {}
            errs: Dict[str, List[List[float]]] = {}
            schemes: Dict[str, str] = {}
            for r in rs:
                v = _num(r.get(metric))
                if math.isnan(v):
                    continue
                label = scheme_label(str(r["scheme"]), r)
                schemes[label] = str(r["scheme"])
                xs, ys = series.setdefault(label, ([], []))
                xs.append(_num(r["snr_db"]))
                ys.append(v)
                lo, hi = _num(r.get(lo_col)), _num(r.get(hi_col))
                e = errs.setdefault(label, [[], []])
                e[0].append(v - lo if not math.isnan(lo) else 0.0)
                e[1].append(hi - v if not math.isnan(hi) else 0.0)
            if not series:
                continue
            snrs = sorted({_num(r["snr_db"]) for r in rs})
            refs = []
            if metric == "retrieval_top1":
                chance = _num(rs[0]["chance"])
                refs.append(f"chance (1/N = {chance:.2g})")
                series[refs[-1]] = (snrs, [chance] * len(snrs))
            if metric == "nmse":
                opta = {_num(r["snr_db"]): _num(r.get("opta_nmse")) for r in rs}
                if any(not math.isnan(v) for v in opta.values()):
                    refs.append("Gaussian OPTA (analytic, training covariance)")
                    series[refs[-1]] = (snrs, [opta[s] for s in snrs])
                fbl = {_num(r["snr_db"]): _num(r.get("fbl_nmse")) for r in rs}
                if any(not math.isnan(v) for v in fbl.values()):
                    refs.append("separation at this block length (normal approx., analytic)")
                    series[refs[-1]] = (snrs, [fbl[s] for s in snrs])
            title = channel_short_name(ch) + (f", {budget} complex uses/example" if budget else ", unmatched")
            path = figure_path(out_dir, f"{prefix}{name}_{_file_label(ch)}", fmt)
            paths.append(plot_metric_vs_snr(series, path, xlabel=SNR_AXIS_LABEL, ylabel=ylabel, title=title,
                                            logy=logy, errors=errs, references=refs, schemes=schemes,
                                            description=f"channel {ch}; budget {budget} complex channel uses per "
                                                        "example; Es/N0 per complex channel use"))
    return paths


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``semcom compare`` to ``parser`` (``semcom compare --help`` lists them).

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> args = parser.parse_args(["--out", "runs/compare"])
    >>> (args.out, args.source)
    ('runs/compare', 'pydoc-minilm')
    """
    parser.add_argument("--source", default="pydoc-minilm",
                        help="registered source (pydoc-minilm, gaussian) or a .npy/.pt/.safetensors feature file "
                             "(default pydoc-minilm)")
    parser.add_argument("--key", default=None, help="tensor name inside a .pt/.safetensors file (default 'features')")
    parser.add_argument("--items", default=None, help="text file with one item (sentence) per feature row")
    parser.add_argument("--max-items", type=positive_int_arg, default=None, help="use the first N items only")
    d = CompareConfig()   # the Python API's defaults are the command line's
    parser.add_argument("--channel", default=",".join(d.channels), metavar="SPEC[,SPEC...]",
                        help="comma list of channel specs name(key=value,...), e.g. awgn,rician(k_db=10),"
                             "rayleigh(block_length=64),ofdm(model=tdl-C) (commas inside parentheses do not split; "
                             "the CSV's channel column holds the canonical spec; default awgn)")
    parser.add_argument("--equalizer", default=d.equalizer, choices=("zf", "mmse"),
                        help="equaliser of the 'analog' scheme (digital links always use ZF + APP demapping); "
                             "default mmse")
    parser.add_argument("--snr-db", type=snr_list_arg, default=list(d.snr_db), metavar="SNRS",
                        help="Es/N0 per complex channel use [dB]: start:stop:step (inclusive stop), a comma list, "
                             "or both; a negative start needs no '=' (default -20:15:5)")
    parser.add_argument("--budget", type=positive_int_arg, default=d.budget,
                        help="complex channel uses per example (default: the analog scheme's ceil(d/2))")
    parser.add_argument("--no-match", dest="matched", action="store_false",
                        help="send every scheme at its natural size (--bits per element, full text)")
    parser.add_argument("--schemes", default=",".join(d.schemes),
                        help="comma list of opta, analog, analog-mmse, analog-zf, analog-svd, analog-klt, "
                             "transform-ideal, transform-<code>-amc, quant-ideal, quant-<code>-<mod>, "
                             "ascii-<code>-<mod> or a plug-in's scheme (default: %(default)s)")
    parser.add_argument("--bits", type=positive_int_arg, default=d.bits,
                        help="fixed quantiser bits per element (default: the most that fit the budget; 4 with "
                             "--no-match)")
    parser.add_argument("--max-bits-per-element", type=positive_int_arg, default=d.max_bits_per_element,
                        help="largest quantiser resolution a matched budget may choose, bits per element "
                             "(default 8)")
    parser.add_argument("--ldpc-rate", type=float, default=d.ldpc_rate,
                        help="nominal 5G LDPC code rate of the quant-ldpc5g-* schemes (default 0.5)")
    parser.add_argument("--ldpc-decoder", default=d.ldpc_decoder, choices=LDPC_DECODERS,
                        help="5G LDPC decoder, as in semcom ber: layered (default): the layered offset min-sum "
                             "decoder, int8 fixed point on CPU and float32 on GPU; layered-float32 / layered-int16 / "
                             "layered-int8 pick its precision; bp: Sionna's flooding sum-product decoder")
    parser.add_argument("--ldpc-iter", type=positive_int_arg, default=d.ldpc_iter,
                        help="LDPC decoder iterations (default 20)")
    parser.add_argument("--ideal-outage", type=_probability, default=d.ideal_outage,
                        help="fix the ideal code's outage target on fading channels (the payload is that quantile "
                             "of the channel's mutual information); default: the payload is designed for the least "
                             "expected distortion on the training split")
    parser.add_argument("--train-fraction", type=float, default=d.train_fraction,
                        help="share of the items (seeded split) on which every scheme is fitted (KLT, quantiser "
                             "ranges, codebooks, the fallback mean); the rest are sent and scored (default 0.8)")
    parser.add_argument("--realizations", type=positive_int_arg, default=d.realizations,
                        help="independent channel realisations averaged per point (default 4)")
    parser.add_argument("--amc-policy", default=d.amc_policy, choices=("distortion", "bler-target"),
                        help="MCS choice of transform-*-amc: minimum expected distortion (default) or the highest "
                             "rate whose simulated BLER is at most --amc-bler-target")
    parser.add_argument("--amc-bler-target", type=float, default=d.amc_bler_target,
                        help="BLER target of --amc-policy bler-target (default 0.1, as 5G link adaptation)")
    parser.add_argument("--text-max-items", type=positive_int_arg, default=d.text_max_items,
                        help="send only the first N sentences through the text scheme (MiniLM re-encoding is "
                             "the slow part); retrieval is still among all items (default: all)")
    parser.add_argument("--seed", type=int, default=d.seed,
                        help="master seed: the train/test split and every point's channel draws (default 0)")
    parser.add_argument("--device", default=d.device,
                        help="torch device: auto (default: cuda if available, else cpu), cpu, cuda, cuda:1 ...")
    parser.add_argument("--cache-dir", default=None, help="MiniLM cache folder: the corpus's features and the text scheme's re-encoded sentences, each "
                             "call kept by its exact texts, so a seeded run made again encodes nothing and writes "
                             "the same numbers (default $SEMCOM_CACHE or ~/.cache/semcom)")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no per-point progress lines")
    parser.add_argument("--out", required=True, help="output directory (created; reruns resume)")
    from experiments.core.figstyle import add_format_argument

    add_format_argument(parser)
    from experiments.core.executors import add_executor_arguments

    add_executor_arguments(parser)  # --executor local|ray, --num-cpus, --address


_probability = open_unit_arg("a probability", "0.01")

#: Options of ``semcom compare`` that are not settings of :meth:`CompareConfig.settings` under their own name:
#: the rows' keys, options recorded through another setting, and those that change no number (with the
#: reason). With the settings every option of the parser is one or the other (tests/test_reliability.py).
HARMLESS_OPTIONS = {
    "channel": "a key column (the canonical spec)", "snr_db": "a key column", "schemes": "a key column (scheme)",
    "key": "recorded through source_feature_hash (the tensor it selects)", "max_items": "recorded as source_n_items",
    "items": "read by text schemes only, which need a source with its own encoder (a registered source, whose "
             "items its name and feature hash fix); a feature file's items are never sent",
    "cache_dir": "a cache of the same features (source_feature_hash)", "progress": "display only",
    "out": "the folder itself", "executor": "the ray executor writes the local run's rows (run_compare_points)",
    "num_cpus": "as --executor", "address": "as --executor",
    "plugin": "recorded as 'plugins' by experiments.core.results.claim_result_settings",
    "format": "the figures' file format",
}


def config_from_args(args) -> CompareConfig:
    names = [s.strip() for s in str(args.schemes).split(",") if s.strip()]
    from phy.channel.spec import split_channel_list

    channels = split_channel_list(str(args.channel))
    snrs = args.snr_db if args.snr_db is not None else list(CompareConfig().snr_db)
    return CompareConfig(schemes=names, channels=channels, snr_db=list(snrs), budget=args.budget,
                         matched=args.matched, equalizer=args.equalizer, bits=args.bits,
                         max_bits_per_element=args.max_bits_per_element, ldpc_rate=args.ldpc_rate,
                         ldpc_decoder=args.ldpc_decoder, ldpc_iter=args.ldpc_iter,
                         ideal_outage=args.ideal_outage, text_max_items=args.text_max_items,
                         train_fraction=args.train_fraction, realizations=args.realizations,
                         amc_policy=args.amc_policy, amc_bler_target=args.amc_bler_target, seed=args.seed,
                         device=str(parse_device(args.device)))


def check_resume(out_dir: str, settings: Dict[str, Any], csv_name: str = "compare.csv",
                 manifest_name: str = "manifest.json") -> None:
    """Raise if ``out_dir`` holds a CSV written with other settings (resuming would mix them); see
    :func:`experiments.core.results.check_result_settings`."""
    from experiments.core.results import check_result_settings

    check_result_settings(out_dir, settings, csv_name, manifest_name)


def execute(source, config: CompareConfig, out_dir: str, *, args=None, progress: bool = True,
            command: str = "semcom compare", csv_name: str = "compare.csv", prefix: str = "",
            fmt: Optional[str] = None) -> Tuple[List[Dict[str, Any]], List[str]]:
    """Validate, resume-check, run, write CSV + plots + manifest. Returns (rows, plot paths)."""
    from experiments.core.results import RunManifest, open_table

    config.validate(source.dim)
    os.makedirs(out_dir, exist_ok=True)
    settings = config.settings(source)
    check_resume(out_dir, settings, csv_name)
    table = open_table(os.path.join(out_dir, csv_name), KEY_COLUMNS, VALUE_COLUMNS)
    resumed = len(table)
    with RunManifest(out_dir, args=args if args is not None else asdict(config), seed=config.seed,
                     command=command, extra={"result_settings": settings, "source": source.describe(),
                                             "snr_convention": SNR_AXIS_LABEL,
                                             "fallback_estimate": "source mean (per feature)"}) as man:
        if getattr(args, "executor", "local") not in (None, "local"):  # one Ray task per point, same rows
            from experiments.core.executors import executor_from_args

            with executor_from_args(args) as executor:
                rows = run_compare_points(executor, source, config, table)
                man.update(executor=executor.describe())
        else:
            rows = run_comparison(source, config, out_dir, table=table, progress=progress)
        fmt = fmt or getattr(args, "format", None) or "png"
        plots = plot_comparison(table.rows(), out_dir, prefix=prefix, fmt=fmt)
        man.update(rows_resumed=resumed, rows=len(table), plots=[os.path.basename(p) for p in plots])
    return rows, plots


def main(args) -> int:
    """Run ``semcom compare`` with the parsed ``args`` (the options of :func:`add_arguments`); returns
    the exit status (0 on success, 2 for bad input, reported as one line).

    Examples
    --------
    Two schemes on synthetic Gaussian features (the default source, MiniLM embeddings of a text corpus,
    takes longer to encode):

    >>> import contextlib, io, os, tempfile
    >>> from experiments.cli import main as semcom
    >>> out = tempfile.mkdtemp()
    >>> with contextlib.redirect_stdout(io.StringIO()):
    ...     rc = semcom(["compare", "--source", "gaussian", "--schemes", "analog,opta", "--snr-db", "0,10",
    ...                  "--budget", "8", "--realizations", "1", "--no-progress", "--out", out])
    >>> rc, sorted(os.listdir(out))
    (0, ['compare.csv', 'compare.settings.json', 'cosine_awgn.png', 'manifest.json', 'nmse_awgn.png', 'retrieval_awgn.png'])
    """
    import semantic  # noqa: F401  (CPU shim before any transformers import)
    from experiments.core.sources import load_source

    try:
        config = config_from_args(args)
        source = load_source(args.source, max_items=args.max_items, key=args.key, items_path=args.items,
                             **({"cache_dir": args.cache_dir} if args.source == "pydoc-minilm" else {}))
        config.validate(source.dim)
        parse_device(config.device)
    except (ValueError, TypeError, FileNotFoundError, KeyError) as e:
        print(f"semcom compare: error: {e}", file=sys.stderr)
        return 2
    try:
        rows, plots = execute(source, config, args.out, args=args, progress=args.progress)
    except ValueError as e:  # resume with other settings, a payload no code can carry, ...
        print(f"semcom compare: error: {e}", file=sys.stderr)
        return 2
    names = [os.path.basename(p) for p in plots] + ["manifest.json"]
    print(f"wrote {os.path.join(args.out, 'compare.csv')} ({len(rows)} points), {', '.join(names)}")
    return 0
