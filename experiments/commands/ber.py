"""``semcom ber``: BER/BLER Monte Carlo of the digital chain (code + QAM + channel + APP demapping).

Example
-------
``semcom ber --modulation 16qam --code none,hamming74,ldpc5g --k 512 --n 1024 --channel awgn,rayleigh
--snr-db 0:12:2 --snr-type ebno --target-errors 200 --max-bits 1e7 --seed 0 --device cpu --out runs/ber``

Writes, in ``--out``:

* ``ber.csv``: one row per (scheme, channel, SNR point) with the columns of
  :data:`phy.sim.points.BER_COLUMNS` (``scheme, channel, snr_db, snr_type, esno_db, ebno_db, ber,
  bler, bit_errors, bits, block_errors, blocks``, 95 % Clopper-Pearson bounds ``ber_ci_low ...``,
  ``seed`` and ``status``), then ``bler_normal_approx``: for a coded chain on AWGN, the normal
  approximation of the best code's block error probability for the run's ``k`` information bits over
  the chain's complex channel uses per block (``n / bits_per_symbol`` for LDPC) with uniform input on the
  run's constellation, at the point's Es/N0 (:func:`phy.theory.finite_blocklength.normal_approx_bler`);
  empty for uncoded chains and other channels; then the settings that make the curve
  (:data:`SETTING_COLUMNS`: ``modulation, k, n, coderate, decoder, ldpc_iter, demapping, detector``;
  ``decoder`` is the LDPC decoder as run, ``layered-int8`` on CPU, or the Hamming decoder; ``ldpc_iter`` is
  empty for other codes and ``detector`` for single-stream channels), so that ``semcom plot`` tells merged
  runs apart. Rows are written as they finish; rerunning the same command resumes and skips finished
  points (with ``--snr-batch 1`` the CSV is then byte-identical to an uninterrupted run); a ``ber.csv``
  written before ``bler_normal_approx`` or the settings columns existed gets them computed for its rows on
  resume (the stored rows were made with the run's settings, which ``ber.settings.json`` vouches for).
  Points after an error-free point are not simulated and have ``ber = NaN`` with ``status = "skipped: ..."``.
* ``ber.png`` (and ``bler.png``; ``--format pdf|svg`` for vector files): error rate vs SNR, log scale, one
  curve per scheme (per scheme/channel when several channels) labelled with its code, size, modulation and
  decoder, closed-form uncoded BER overlaid for AWGN and Rayleigh, and on the BLER figure the normal
  approximation of each coded chain on AWGN (references: black/grey, dashed, clipped to the measured
  range), error-free points as open triangles at their 95 % upper bound (:mod:`experiments.core.figstyle`).
* ``manifest.json``: arguments, seed, package versions, host, elapsed time.

SNR points: ``--snr-db start:stop:step`` with an **inclusive** stop (``0:12:2`` is 0, 2, ..., 12;
``step`` defaults to 1), or a comma list (``0,3,7.5``), or a mix (``0:4:2,10``); a negative start needs
no ``=`` (``--snr-db -4:8:2``). ``--snr-type ebno`` reads them as Eb/N0, converted
per scheme with ``Es/N0 = Eb/N0 + 10 log10(bits_per_symbol * R)``, where ``R = k / (coded bits sent
per block)`` (the code rate; zero padding to whole QAM symbols, if any, counts as sent);
``--snr-type esno`` (default) reads them as Es/N0 per complex channel use (the package's SNR convention).

``--snr-batch S`` runs up to ``S`` consecutive SNR points of a sweep as one batched pass (SNR as a
tensor dimension: one link call on ``[S, batch, k]`` bits per iteration instead of ``S``); every
point keeps its own stopping rule and its row is written as soon as it finishes. Memory grows about
``S``-fold. The rows are statistically equivalent to, not bit-identical with, ``--snr-batch 1``; a
point interrupted inside its group is recomputed on resume (see :mod:`phy.sim.montecarlo`). The value
is a result setting (it decides the random streams): a run resumes only with the same ``--snr-batch``. Local
executor only.
It saves per-call overhead, so it pays off for small batches (or an accelerator); on a CPU with
large batches it can be slower (``benchmarks/bench_mc_snr_batch.py`` measures both).

``--snr-db auto[:START:STOP[:STEP]]`` (default range 0 to 40 dB, coarse step 1 dB) lets the curve
choose its points (:func:`phy.sim.adaptive.simulate_ber_adaptive`): a march up from START with steps
predicted to lower the error rate by ``--max-decades`` (0.75), ending at the first point below
``--min-bler`` (ldpc5g) / ``--min-ber`` (uncoded, hamming74) or at STOP, then midpoints wherever
neighbours still differ by more than ``--max-decades``. The grid depends only on the points' results,
so a rerun resumes it from the CSV. Local executor, ``--snr-batch 1``.

``--codeword scrambled-zero`` (default) sends the all-zero codeword XORed with a random scrambling
sequence and flips the demapped logits back (:class:`phy.sim.trials.ScrambledZeroTrial`): no
encoder in the loop, and on CPU the mapping and the exact APP / max-log demapping are compiled
kernels (:mod:`phy.mapping.qam_kernels`). For these linear codes and symmetric decoders the error statistics
equal those of random codewords (tested within Monte Carlo error); ``--codeword random`` runs random
information bits through the encoder and Sionna's mapper and demapper. The layered LDPC decoder stops
each codeword at its first zero syndrome in both cases, and the batch of a point doubles after each
batch up to 16 times ``--batch-size`` with ``scrambled-zero``.

``--ldpc-decoder layered`` (the default) is the layered offset-min-sum decoder at the device's fast
precision (:func:`phy.fec.codes.layered_precision`): int8 fixed point on CPU (:mod:`phy.fec.ldpc_fixed`, 64 codewords
per SIMD vector; its BLER is at or below the float32 decoder's from 1e-3 down to 3e-6, the documentation's
performance page), float32 on GPU; ``layered-float32``, ``layered-int16`` and ``layered-int8`` pick one. On CPU
with AWGN the scrambled-zero chain draws labels, noise and exact APP logits in one pass
(:mod:`phy.fec.scrambled_chain`), and with a fixed-point decoder the logits go straight into the decoder's
lanes and only the errors are counted (:meth:`phy.sim.trials.ScrambledZeroTrial.count_errors`); such a
point's batch grows up to 512 times ``--batch-size``.

One block is ``--k`` information bits for every scheme (the LDPC code's ``k``; ``hamming74`` uses
``k/4`` codewords, ``none`` sends the ``k`` bits as they are), so BLERs are comparable.
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from experiments.core.args import (AutoGrid, open_unit_arg, parse_device, parse_name_list,  # noqa: F401
                                   parse_snr_grid, parse_snr_list, positive_int_arg, snr_grid_arg, snr_list_arg)

__all__ = ["add_arguments", "main", "parse_snr_list", "snr_list_arg", "positive_int_arg", "parse_device", "parse_name_list", "build_trial", "DEFAULT_BATCH_BITS", "AutoGrid", "parse_snr_grid", "CODEWORDS", "NA_COLUMN", "normal_approx_reference",
           "SETTING_COLUMNS", "chain_settings"]

#: Information bits per batch when ``--batch-size`` is not given.
DEFAULT_BATCH_BITS = 1 << 16
#: A point's batch doubles after each batch up to this many times --batch-size (fast chains only).
BATCH_GROWTH = 16
#: The same for a trial that counts its errors in one compiled pass (``ScrambledZeroTrial.counts_in_one_pass``).
FUSED_BATCH_GROWTH = 512
#: How the coded bits are produced: random information bits through the encoder, or the all-zero
#: codeword with a random scrambling sequence (phy.sim.trials.ScrambledZeroTrial, no encoder).
CODEWORDS = ("scrambled-zero", "random")
#: The column of ``ber.csv`` after :data:`phy.sim.points.BER_COLUMNS`: the normal approximation's BLER.
NA_COLUMN = "bler_normal_approx"
#: The columns of ``ber.csv`` after :data:`phy.sim.points.BER_COLUMNS`: the settings that make a curve.
SETTING_COLUMNS = ("modulation", "k", "n", "coderate", "decoder", "ldpc_iter", "demapping", "detector")
_RESULT_SETTINGS = ("modulation", "k", "n", "num_iter", "ldpc_decoder", "hamming_decoder", "demapping",
                    "target_errors", "target_block_errors", "max_bits", "batch_size", "seed", "device",
                    "early_stop", "codeword", "detector", "snr_batch")
#: Settings a record written before they were recorded had, as their values then.
_ADDED_LATER = {"snr_batch": 1}
#: Options that change no number of ber.csv (with the reason), or that are the rows' keys; with
#: _RESULT_SETTINGS every option of the parser is one or the other (tests/test_reliability.py checks it).
HARMLESS_OPTIONS = {
    "code": "a key column (scheme)", "channel": "a key column (the canonical spec)",
    "snr_db": "a key column", "snr_type": "a key column",
    "min_ber": "chooses which SNR points of an auto grid run; each point's numbers depend on its key only",
    "min_bler": "as --min-ber", "max_decades": "as --min-ber",
    "executor": "the ray executor writes the local run's rows (run_ber_sweeps)", "num_cpus": "as --executor",
    "address": "as --executor", "progress": "display only", "out": "the folder itself",
    "plugin": "recorded as 'plugins' by experiments.core.results.claim_result_settings",
    "ldpc_iter": "recorded as num_iter (the record's name for it)", "format": "the figures' file format",
}


# --------------------------------------------------------------------------------------------
# Argument parsing helpers (the shared ones, the SNR grid included, live in experiments.core.args)
# --------------------------------------------------------------------------------------------
_rate_arg = open_unit_arg("an error rate", "1e-5")


def _positive_number(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number such as 1e7, got {text!r}") from None
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text!r}")
    return v


def _positive_int(text: str) -> int:
    return positive_int_arg(text, allow_exponent=True)


_positive_int.positive_int = True  # experiments.core.args.harden_parser bounds these counts (COUNT_LIMITS)
#: The largest --max-bits (information bits per SNR point): about a day at 1e8 bits per second.
MAX_BITS_LIMIT = 1e13


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``semcom ber`` to ``parser`` (``semcom ber --help`` lists them).

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> args = parser.parse_args(["--out", "runs/ber", "--code", "hamming74", "--snr-db", "0:4:2"])
    >>> (args.code, args.snr_db, args.modulation)
    ('hamming74', [0.0, 2.0, 4.0], '16qam')
    """
    parser.add_argument("--modulation", default="16qam",
                        help="qpsk, 16qam, 64qam or 256qam (Gray QAM, Sionna's Mapper/Demapper; default 16qam)")
    parser.add_argument("--code", default="none,hamming74,ldpc5g",
                        help="comma list of none, hamming74, ldpc5g (default: all three)")
    parser.add_argument("--k", type=_positive_int, default=512,
                        help="information bits per block, the 5G LDPC k (default 512)")
    parser.add_argument("--n", type=_positive_int, default=1024, help="5G LDPC codeword length n (default 1024)")
    parser.add_argument("--ldpc-iter", "--num-iter", dest="ldpc_iter", type=_positive_int, default=20,
                        help="LDPC decoder iterations (default 20); --num-iter is an alias kept for older command "
                             "lines")
    parser.add_argument("--ldpc-decoder", default="layered",
                        choices=("bp", "layered", "layered-float32", "layered-int16", "layered-int8"),
                        help="layered-float32: the layered offset-min-sum decoder of phy.fec.ldpc_fast; layered-int16 / "
                             "layered-int8: the same in fixed point with 64 codewords per SIMD vector "
                             "(phy.fec.ldpc_fixed; CPU); layered (default, as in every command): int8 on CPU, "
                             "float32 on GPU (phy.fec.codes.layered_precision); bp: Sionna's flooding sum-product "
                             "LDPC5GDecoder")
    parser.add_argument("--hamming-decoder", default="syndrome", choices=("syndrome", "ml"),
                        help="Hamming(7,4) decoding: hard-decision syndrome (default) or soft ML")
    parser.add_argument("--demapping", default="app", choices=("app", "maxlog"),
                        help="soft demapping method (default app)")
    parser.add_argument("--channel", default="awgn", metavar="SPEC[,SPEC...]",
                        help="comma list of channel specs name(key=value,...) (commas inside parentheses do not "
                             "split), e.g. awgn,rician(k_db=10),rayleigh(block_length=64),rayleigh(num_tx=2,num_rx=2); "
                             "the CSV's channel column holds the canonical spec (default awgn)")
    parser.add_argument("--detector", default="lmmse", choices=("zf", "lmmse", "kbest", "ml"),
                        help="MIMO detector with soft outputs (Sionna) for channels with num_tx > 1 (default lmmse); "
                             "1 x N_r channels use MRC")
    parser.add_argument("--snr-db", type=snr_grid_arg, default=parse_snr_list("0:12:2"), metavar="SNRS",
                        help="start:stop:step with an inclusive stop, a comma list, or both (-2:4:1,10; a negative "
                             "start needs no '='); or auto[:START:STOP[:STEP]], an adaptive grid (coarse pass, "
                             "then points where the curve falls by more than --max-decades between neighbours) "
                             "up to --min-ber/--min-bler, START:STOP:STEP being 0:40:1 when left out "
                             "(default 0:12:2)")
    parser.add_argument("--min-ber", type=_rate_arg, default=None,
                        help="with --snr-db auto: no higher SNR point once a point's BER is below this "
                             "(uncoded and hamming74; also ldpc5g when --min-bler is not given)")
    parser.add_argument("--min-bler", type=_rate_arg, default=None,
                        help="with --snr-db auto: no higher SNR point once a point's BLER is below this "
                             "(ldpc5g; also the others when --min-ber is not given)")
    parser.add_argument("--max-decades", type=_positive_number, default=0.75,
                        help="with --snr-db auto: the largest fall of the steering error rate, in decades, "
                             "aimed at between neighbouring points (and the gap that gets a midpoint); "
                             "default 0.75 (6 or more points over 4.3 decades)")
    parser.add_argument("--codeword", default="scrambled-zero", choices=CODEWORDS,
                        help="scrambled-zero (default): the all-zero codeword with a random scrambling "
                             "sequence, no encoder in the loop (same statistics as random codewords for "
                             "these linear codes, symmetric decoders and the scrambled channel); random: "
                             "random information bits through the encoder and Sionna's mapper/demapper")
    parser.add_argument("--snr-type", default="esno", choices=("ebno", "esno"),
                        help="esno: the SNRs are Es/N0 per complex channel use (default, the package's convention); "
                             "ebno: Eb/N0")
    parser.add_argument("--target-errors", type=_positive_int, default=200,
                        help="bit errors per SNR point before moving on (default 200)")
    parser.add_argument("--target-block-errors", type=_positive_int, default=None,
                        help="also stop a point after this many block errors (default: off)")
    parser.add_argument("--max-bits", type=_positive_number, default=1e7,
                        help="information-bit budget per SNR point (default 1e7; at most 1e13)")
    parser.add_argument("--batch-size", type=_positive_int, default=None,
                        help=f"blocks per batch (default: about {DEFAULT_BATCH_BITS} bits per batch)")
    parser.add_argument("--snr-batch", type=_positive_int, default=1, metavar="S",
                        help="run up to S consecutive SNR points as one batched pass (SNR as a tensor "
                             "dimension; about S times the memory); each point keeps its own stopping "
                             "rule. Statistically equivalent to, not bit-identical with, 1 (default: 1, "
                             "points one by one; --executor local only; a resume needs the same S)")
    parser.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    parser.add_argument("--device", default="auto", help="torch device: auto (default: cuda if available, else cpu), cpu, cuda, cuda:1 ...")
    parser.add_argument("--no-early-stop", dest="early_stop", action="store_false",
                        help="simulate every SNR point even after an error-free point")
    parser.add_argument("--progress", dest="progress", action="store_true", default=None,
                        help="force the progress bar (default: only on a terminal)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.add_argument("--out", required=True, help="output directory (created; reruns resume)")
    from experiments.core.figstyle import add_format_argument

    add_format_argument(parser)
    from experiments.core.executors import add_executor_arguments

    add_executor_arguments(parser)  # --executor local|ray, --num-cpus, --address


# --------------------------------------------------------------------------------------------
# The chain
# --------------------------------------------------------------------------------------------
def build_trial(code: str, modulation: str, channel, *, k: int, n: int, ldpc_iter: int = 20,
                demapping: str = "app", device: str = "cpu", ldpc_decoder: str = "bp",
                hamming_decoder: str = "syndrome", codeword: str = "random", detector: str = "lmmse"):
    """A trial for one scheme on the shared ``channel`` object: a :class:`phy.sim.trials.LinkTrial`
    (``codeword="random"``) or a :class:`phy.sim.trials.ScrambledZeroTrial` (``"scrambled-zero"``)
    on the same :class:`phy.link.digital.DigitalLink`. The layered LDPC decoder stops each codeword at
    its first zero syndrome (``early_stop=True``) in both cases. The code is any registered one
    (:data:`phy.fec.codes.CODES`, plug-ins included), built by its ``from_options``; a code that does not
    declare ``symmetric = True``, and any multi-antenna link (``detector`` picks its MIMO detector), is
    simulated with random codewords.

    Returns ``(trial, coderate, bits_per_symbol)`` where ``coderate = k / (coded bits per block)``.

    Examples
    --------
    >>> from phy.channel.flat import AWGN
    >>> from phy.sim.montecarlo import simulate_ber
    >>> trial, coderate, bps = build_trial("hamming74", "qpsk", AWGN(), k=4, n=7)
    >>> trial.k, coderate, bps            # 7 code bits padded to 4 QPSK symbols: 4 / 8
    (4, 0.5, 2)
    >>> res = simulate_ber(trial, [30.0], batch_size=100, max_bits=400)
    >>> res[0].ber                                   # error-free at 30 dB
    0.0
    """
    import torch

    from phy.fec.codes import CODES
    from phy.link.digital import DigitalLink
    from phy.mapping.modulation import bits_per_symbol
    from phy.sim.trials import LinkTrial, ScrambledZeroTrial

    if codeword not in CODEWORDS:
        raise ValueError(f"codeword must be one of {CODEWORDS}, got {codeword!r}")
    bps = bits_per_symbol(modulation)
    if code not in CODES:
        raise ValueError(f"unknown code {code!r}; expected one of {sorted(CODES)}")
    c = CODES[code].from_options(k=k, n=n, num_iter=ldpc_iter, ldpc_decoder=ldpc_decoder,
                                 hamming_decoder=hamming_decoder)
    link = DigitalLink(channel, code=c, modulation=modulation, demapping=demapping, detector=detector)
    if not c.symmetric or link.streams > 1 or getattr(channel, "num_rx", 1) > 1 or getattr(link, "ofdm", False):
        codeword = "random"  # the scrambled all-zero trick: linear codes, symmetric decoders, one antenna, no grid
    bps *= link.streams  # coded bits per channel use (MIMO: all spatial streams)
    # energy per information bit counts every transmitted symbol (padding included, if any)
    coded_bits = link.channel_uses(k) * bps
    if codeword == "random":
        trial = LinkTrial(link, k=k, device=torch.device(device), coderate=k / coded_bits, bits_per_symbol=bps)
    else:
        trial = ScrambledZeroTrial(link, k=k, device=torch.device(device))
        trial.coderate = k / coded_bits
    return trial, k / coded_bits, bps


def normal_approx_reference(code: str, channel: str, modulation: str, k: int, uses: float):
    """The normal-approximation reference of a chain: a function ``esno_db -> BLER`` for a coded chain on a
    single-antenna AWGN channel, else ``None`` (uncoded, fading, several antennas, OFDM grids).

    The reference is the best code of ``k`` information bits over ``uses`` complex channel uses (the chain's
    uses per block: ``n / bits_per_symbol`` for LDPC) with uniform input on ``modulation``
    (:func:`phy.theory.finite_blocklength.normal_approx_bler`).

    Examples
    --------
    >>> na = normal_approx_reference("ldpc5g", "awgn", "qpsk", k=512, uses=512)
    >>> round(na(1.0), 4), normal_approx_reference("none", "awgn", "qpsk", k=512, uses=256)
    (0.0038, None)
    """
    from phy.channel.registry import parse_channel_spec
    from phy.theory.finite_blocklength import normal_approx_bler

    kind, params = parse_channel_spec(channel)
    if code == "none" or kind != "awgn" or params.get("num_tx", 1) * params.get("num_rx", 1) != 1:
        return None

    def bler(esno_db):
        return normal_approx_bler(k, uses, esno_db, modulation)

    bler.uses = uses
    return bler


def _validate(args) -> Dict[str, object]:
    from phy.channel.registry import canonical_channel_list
    from phy.fec.codes import CODES
    from phy.mapping.modulation import MODULATIONS, bits_per_symbol

    mod = args.modulation.lower().replace("-", "").replace("_", "")
    if mod not in MODULATIONS:
        raise ValueError(f"unknown --modulation {args.modulation!r}; expected one of {sorted(MODULATIONS)}")
    codes = parse_name_list(args.code, list(CODES), "code", aliases={"uncoded": "none"})
    channels = canonical_channel_list(args.channel)
    if args.k > args.n:
        raise ValueError(f"--k must be <= --n, got k={args.k} > n={args.n}")
    if "hamming74" in codes and args.k % 4:
        raise ValueError(f"--k={args.k} must be a multiple of 4 for hamming74 (4 information bits per codeword)")
    snrs = args.snr_db if isinstance(args.snr_db, (list, AutoGrid)) else parse_snr_grid(str(args.snr_db))
    if not snrs:
        raise ValueError("--snr-db gave no SNR points")
    if not isinstance(snrs, AutoGrid) and (args.min_ber is not None or args.min_bler is not None):
        raise ValueError("--min-ber/--min-bler apply to --snr-db auto[:START:STOP[:STEP]] only")
    if args.codeword not in CODEWORDS:
        raise ValueError(f"--codeword must be one of {CODEWORDS}, got {args.codeword!r}")
    if not (0 < args.max_bits <= MAX_BITS_LIMIT):
        raise ValueError(f"--max-bits must be a positive number of at most {MAX_BITS_LIMIT:g}, got {args.max_bits}")
    batch = args.batch_size or max(1, min(4096, -(-DEFAULT_BATCH_BITS // args.k)))
    return {"modulation": mod, "codes": codes, "channels": channels, "snrs": snrs, "batch_size": batch,
            "bits_per_symbol": bits_per_symbol(mod)}


def _with_defaults(args):
    """Fill options missing from a hand-built Namespace with the parser's defaults (``--out`` excepted)."""
    p = argparse.ArgumentParser(add_help=False)
    add_arguments(p)
    for action in p._actions:
        if action.dest != "out" and not hasattr(args, action.dest):
            setattr(args, action.dest, action.default)
    return args


def main(args) -> int:
    """Run ``semcom ber`` with the parsed ``args`` (the options of :func:`add_arguments`); returns
    the exit status (0 on success, 2 for bad input, reported as one line).

    Examples
    --------
    A small sweep (one code, one SNR point) into a temporary run folder:

    >>> import contextlib, io, os, tempfile
    >>> from experiments.cli import main as semcom
    >>> out = tempfile.mkdtemp()
    >>> with contextlib.redirect_stdout(io.StringIO()):
    ...     rc = semcom(["ber", "--out", out, "--code", "none", "--modulation", "qpsk", "--snr-db", "0",
    ...                  "--max-bits", "20000"])
    >>> rc, sorted(os.listdir(out))
    (0, ['ber.csv', 'ber.png', 'ber.settings.json', 'bler.png', 'manifest.json'])
    """
    args = _with_defaults(args)
    try:
        cfg = _validate(args)
        _check_run_options(args, cfg)
        device, settings, trials, references, table = _prepare_run(args, cfg)
    except ValueError as e:
        print(f"semcom ber: error: {e}", file=sys.stderr)
        return 2

    from experiments.core.results import RunManifest
    from phy.sim.resultstore import format_value

    resumed = len(table)
    results = []
    with RunManifest(args.out, args=args, seed=args.seed, command="semcom ber",
                     extra={"result_settings": settings, "ci": "95% Clopper-Pearson",
                            "snr_convention": "Es/N0 per complex channel use; Eb/N0 = Es/N0 - "
                                              "10 log10(bits_per_symbol * coderate)"}) as manifest:
        rates = {}
        # the fast chain's batch grows within a point (fewer calls where errors are rare)
        growth = cfg["batch_size"] * (BATCH_GROWTH if args.codeword == "scrambled-zero" else 1)
        if args.executor != "local":  # one task per (scheme, channel, SNR) point; same rows as below
            from experiments.core.executors import executor_from_args

            point_cfg = dict(modulation=cfg["modulation"], k=args.k, n=args.n, ldpc_iter=args.ldpc_iter,
                             demapping=args.demapping, device=str(device), ldpc_decoder=args.ldpc_decoder,
                             hamming_decoder=args.hamming_decoder, detector=args.detector, seed=args.seed,
                             snr_type=args.snr_type,
                             batch_size=cfg["batch_size"], target_errors=args.target_errors,
                             target_block_errors=args.target_block_errors, max_bits=args.max_bits,
                             codeword=args.codeword, max_batch_size=growth)
            sweeps = [(dict(point_cfg, code=code, channel=name), cfg["snrs"]) for (code, name) in trials]
            with executor_from_args(args) as executor:
                results = run_ber_sweeps(executor, sweeps, table, early_stop=args.early_stop,
                                         rates={key: (cr, bps) for key, (_, cr, bps) in trials.items()},
                                         progress=args.progress)
                manifest.update(executor=executor.describe())
            rates = {code: cr for (code, _), (_, cr, _) in trials.items()}
        if args.executor == "local":
            results, rates = _run_local(args, cfg, trials, table)
        if isinstance(cfg["snrs"], AutoGrid):  # the CSV in (scheme, channel, SNR) order, like a fixed grid
            table.reorder((r.scheme, r.channel, r.snr_type, r.snr_db) for r in results)
        wanted = {(r.scheme, r.channel, r.snr_type, format_value(r.snr_db)) for r in results}
        chains = {key: (references.get(key), cr, bps) for key, (_, cr, bps) in trials.items()}
        plots = _plots(args.out, [r for r in table.rows() if table.key_of(r) in wanted], cfg, args.snr_type,
                       args.format, chains, args.k)
        manifest.update(rows_resumed=resumed, rows=len(table), coderates=rates, plots=plots)
    print(f"wrote {os.path.join(args.out, 'ber.csv')} ({len(results)} points), {', '.join(plots)}, manifest.json")
    return 0


def _check_run_options(args, cfg) -> None:
    """Refuse option combinations the run cannot honour (``ValueError``, one line)."""
    if isinstance(args.snr_batch, bool) or not isinstance(args.snr_batch, int) or args.snr_batch < 1:
        raise ValueError(f"--snr-batch must be a positive integer, got {args.snr_batch!r}")
    if args.executor != "local" and args.snr_batch > 1:
        raise ValueError(f"--snr-batch {args.snr_batch} applies to --executor local only (the ray "
                         "executor runs one task per SNR point)")
    if args.num_cpus is not None and args.num_cpus < 1:
        raise ValueError(f"--num-cpus must be a positive integer, got {args.num_cpus}")
    if args.executor == "local" and (args.address is not None or args.num_cpus is not None):
        raise ValueError("--num-cpus and --address apply to --executor ray only")
    if isinstance(cfg["snrs"], AutoGrid) and (args.executor != "local" or args.snr_batch > 1):
        raise ValueError("--snr-db auto needs --executor local and --snr-batch 1 (each point of the "
                         "adaptive grid depends on the ones before it)")


def _prepare_run(args, cfg):
    """The device, settings record, trials, normal-approximation references and result table of a run,
    built and checked before anything is written (a refused run leaves nothing behind)."""
    from experiments.core.results import claim_result_settings
    from phy.channel.registry import make_channel
    from phy.sim.points import BER_COLUMNS, BER_KEY_COLUMNS
    from phy.sim.resultstore import ResumableCSV

    device = parse_device(args.device)
    args.device = str(device)   # "auto" resolved: the device used is what is recorded
    # the record keeps the name ``num_iter`` for the LDPC iterations (records of older runs resume)
    settings = {key: (cfg[key] if key in cfg else getattr(args, "ldpc_iter" if key == "num_iter" else key))
                for key in _RESULT_SETTINGS}
    settings["device"] = str(device)
    # one channel object per channel name, shared by every scheme (reseeded per point)
    channels = {name: make_channel(name, seed=args.seed) for name in cfg["channels"]}
    trials = {}
    for code in cfg["codes"]:
        for name, ch in channels.items():
            trials[(code, name)] = build_trial(code, cfg["modulation"], ch, k=args.k, n=args.n,
                                               ldpc_iter=args.ldpc_iter, demapping=args.demapping,
                                               device=str(device), ldpc_decoder=args.ldpc_decoder,
                                               hamming_decoder=args.hamming_decoder, codeword=args.codeword,
                                               detector=args.detector)
    from phy.utils.memory import check_memory

    coded = max(args.k / cr for _, cr, _ in trials.values())  # channel bits per block (padding included)
    check_memory(cfg["batch_size"] * args.snr_batch * (args.k + coded) * 32,
                 f"one batch of {cfg['batch_size']} blocks x {args.snr_batch} SNR point(s) of {args.k} bits",
                 hint="use a smaller --batch-size, --snr-batch or --k")
    # built and checked before anything is written: a refused run leaves nothing behind
    os.makedirs(args.out, exist_ok=True)
    claim_result_settings(args.out, settings, ["ber.csv"], added_later=_ADDED_LATER)
    # channel uses per block: k / (coderate * bits per use)
    references = {key: normal_approx_reference(key[0], key[1], cfg["modulation"], args.k, args.k / (cr * bps))
                  for key, (_, cr, bps) in trials.items()}
    settings_of = functools.partial(_settings_of, {key: cr for key, (_, cr, _) in trials.items()}, args, cfg)
    derived = {NA_COLUMN: functools.partial(_na_cell, references, args, cfg, str(device))}
    derived.update({c: functools.partial(_setting_cell, settings_of, c) for c in SETTING_COLUMNS})
    table = ResumableCSV(os.path.join(args.out, "ber.csv"), BER_COLUMNS + (NA_COLUMN,) + SETTING_COLUMNS,
                         BER_KEY_COLUMNS, derived=derived)
    return device, settings, trials, references, table


def _run_local(args, cfg, trials, table):
    """Every (code, channel) curve in this process; returns the results and the code rates."""
    from phy.sim.adaptive import simulate_ber_adaptive
    from phy.sim.montecarlo import simulate_ber

    results, rates = [], {}
    growth = cfg["batch_size"] * (BATCH_GROWTH if args.codeword == "scrambled-zero" else 1)
    for (code, name), (trial, coderate, bps) in trials.items():
        rates[code] = coderate
        # one compiled pass per batch (no logits in memory): batches may grow further, which keeps the
        # lanes of the decoder's last codewords of a call from idling
        grow = cfg["batch_size"] * FUSED_BATCH_GROWTH if getattr(trial, "counts_in_one_pass", False) else growth
        common = dict(snr_type=args.snr_type, coderate=coderate, bits_per_symbol=bps,
                      batch_size=cfg["batch_size"], max_batch_size=grow, target_errors=args.target_errors,
                      target_block_errors=args.target_block_errors, max_bits=args.max_bits, seed=args.seed,
                      scheme=code, channel=name, csv_file=table, progress=args.progress)
        if isinstance(cfg["snrs"], AutoGrid):
            grid = cfg["snrs"]
            results += simulate_ber_adaptive(trial, grid.start, grid.stop, coarse_step=grid.step,
                                             max_decades=args.max_decades,
                                             **_floor(code, args.min_ber, args.min_bler), **common)
        else:
            results += simulate_ber(trial, cfg["snrs"], early_stop=args.early_stop, snr_batch=args.snr_batch,
                                    **common)
    return results, rates


def _na_cell(references, args, cfg, device: str, row) -> Optional[float]:
    """The ``bler_normal_approx`` cell of a row (``None``: empty). A row of a chain this run does not
    simulate (a resumed file with other codes or channels) gets its reference built here."""
    key = (str(row["scheme"]), str(row["channel"]))
    if key not in references:
        from phy.channel.registry import make_channel

        _, cr, bps = build_trial(key[0], cfg["modulation"], make_channel(key[1], seed=0), k=args.k, n=args.n,
                                 ldpc_iter=args.ldpc_iter, device=device, ldpc_decoder=args.ldpc_decoder,
                                 hamming_decoder=args.hamming_decoder, detector=args.detector)
        references[key] = normal_approx_reference(key[0], key[1], cfg["modulation"], args.k, args.k / (cr * bps))
    esno = float(row["esno_db"])
    if references[key] is None or not math.isfinite(esno):
        return None
    return references[key](esno)

def chain_settings(code: str, channel: str, *, modulation: str, k: int, n: int, coderate: float,
                   ldpc_decoder: str = "layered", ldpc_iter: int = 20, hamming_decoder: str = "syndrome",
                   demapping: str = "app", detector: str = "lmmse", device: str = "cpu") -> Dict[str, Any]:
    """The :data:`SETTING_COLUMNS` cells of one chain (code on channel): what makes its curve.

    ``decoder`` is the decoder as run (``layered`` resolved to its precision on ``device``,
    :func:`phy.fec.codes.layered_precision`; the Hamming decoder for ``hamming74``; empty when uncoded);
    ``ldpc_iter`` is empty for codes other than ``ldpc5g``; ``detector`` names the MIMO detector of a channel
    with several transmit antennas, ``mrc`` for one with several receive antennas only, else is empty.

    Examples
    --------
    >>> s = chain_settings("ldpc5g", "awgn", modulation="16qam", k=512, n=1024, coderate=0.5)
    >>> s["decoder"], s["ldpc_iter"], s["detector"]
    ('layered-int8', 20, '')
    >>> chain_settings("none", "rayleigh(num_tx=2,num_rx=2)", modulation="qpsk", k=64, n=128, coderate=1.0)["detector"]
    'lmmse'
    """
    from phy.channel.registry import parse_channel_spec
    from phy.fec.codes import layered_precision

    _, params = parse_channel_spec(channel)
    if code == "ldpc5g":
        decoder = f"layered-{layered_precision(device)}" if ldpc_decoder == "layered" else ldpc_decoder
    elif code == "hamming74":
        decoder = hamming_decoder
    else:
        decoder = ""
    detector = detector if params.get("num_tx", 1) > 1 else ("mrc" if params.get("num_rx", 1) > 1 else "")
    return {"modulation": modulation, "k": k, "n": n if code == "ldpc5g" else "", "coderate": coderate,
            "decoder": decoder, "ldpc_iter": ldpc_iter if code == "ldpc5g" else "", "demapping": demapping,
            "detector": detector}


def _settings_of(coderates, args, cfg, scheme: str, channel: str) -> Dict[str, Any]:
    """:func:`chain_settings` of a row's chain under this run's settings (a chain the run does not simulate,
    in a resumed file, gets its code rate from a trial built here)."""
    key = (scheme, channel)
    if key not in coderates:
        from phy.channel.registry import make_channel

        _, coderates[key], _ = build_trial(scheme, cfg["modulation"], make_channel(channel, seed=0), k=args.k,
                                           n=args.n, ldpc_iter=args.ldpc_iter, ldpc_decoder=args.ldpc_decoder,
                                           hamming_decoder=args.hamming_decoder, detector=args.detector)
    return chain_settings(scheme, channel, modulation=cfg["modulation"], k=args.k, n=args.n, coderate=coderates[key],
                          ldpc_decoder=args.ldpc_decoder, ldpc_iter=args.ldpc_iter,
                          hamming_decoder=args.hamming_decoder, demapping=args.demapping, detector=args.detector,
                          device=args.device)



def _setting_cell(settings_of, column: str, row):
    """The ``column`` cell (one of :data:`SETTING_COLUMNS`) of a row: its chain's settings."""
    return settings_of(str(row["scheme"]), str(row["channel"]))[column]


def _floor(code: str, min_ber: Optional[float], min_bler: Optional[float]) -> Dict[str, Optional[float]]:
    """The adaptive grid's floor for ``code``: ldpc5g by BLER (``--min-bler``, else ``--min-ber``),
    the others by BER (``--min-ber``, else ``--min-bler``)."""
    if code == "ldpc5g":
        return {"min_bler": min_bler} if min_bler is not None else {"min_ber": min_ber}
    return {"min_ber": min_ber} if min_ber is not None else {"min_bler": min_bler}


def _plots(out_dir: str, rows, cfg, snr_type: str, fmt: str = "png", chains=None, k: Optional[int] = None
           ) -> List[str]:
    import numpy as np

    from experiments.core.figstyle import channel_short_name, figure_path, modulation_label
    from experiments.core.plots import plot_error_rate
    from phy.channel.registry import parse_channel_spec
    from phy.mapping.modulation import uncoded_ber

    rows = [r for r in rows if str(r["snr_type"]) == snr_type]
    snrs = np.array(sorted({float(r["snr_db"]) for r in rows}), dtype=float)
    if not len(snrs):
        return []
    fine = np.linspace(snrs.min(), snrs.max(), max(50, 10 * len(snrs))) if len(snrs) > 1 else snrs
    # uncoded: coderate 1, so Es/N0 = Eb/N0 + 10 log10(bits_per_symbol)
    esno = fine + (10 * math.log10(cfg["bits_per_symbol"]) if snr_type == "ebno" else 0.0)
    forms = {}
    siso = {name for name, p in map(parse_channel_spec, cfg["channels"])
            if p.get("num_tx", 1) * p.get("num_rx", 1) == 1 and p.get("block_length", 1) == 1}
    mod = modulation_label(cfg["modulation"])
    for kind, label in (("awgn", "AWGN"), ("rayleigh", "Rayleigh")):
        if kind in siso:
            forms[f"theory: uncoded {mod} {label}"] = (fine, uncoded_ber(esno, cfg["modulation"], kind))
    where = ", ".join(channel_short_name(c) for c in cfg["channels"])
    spec = "; ".join(cfg["channels"])
    written = [plot_error_rate(rows, figure_path(out_dir, "ber", fmt), metric="ber", snr_type=snr_type,
                               closed_forms=forms, title=f"BER, {where}", description=f"channels: {spec}")]
    # the normal approximation of each coded chain on AWGN (drawn within the measured range)
    references = {}
    several = len(cfg["channels"]) > 1
    for (code, name), (ref, coderate, bps) in (chains or {}).items():
        if ref is None:
            continue
        shift = 10 * math.log10(bps * coderate) if snr_type == "ebno" else 0.0
        label = f"normal approx.: {code}, k={k} in {ref.uses:g} uses" + (f" / {channel_short_name(name, 24)}"
                                                                         if several else "")
        references[label] = (fine, np.asarray(ref(fine + shift), dtype=float))
    written.append(plot_error_rate(rows, figure_path(out_dir, "bler", fmt), metric="bler", snr_type=snr_type,
                                   closed_forms=references, title=f"BLER, {where}", description=f"channels: {spec}"))
    return [os.path.basename(p) for p in written]


# --------------------------------------------------------------------------------------------
# BER sweeps as one task per point (any experiments.core.executors executor)
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def _ber_trial(cfg_json: str):
    """Build (and keep, per worker process) the trial of one scheme; reseeded at every point."""
    from phy.channel.registry import make_channel

    cfg = json.loads(cfg_json)
    channel = make_channel(cfg["channel"], seed=cfg["seed"])
    return build_trial(cfg["code"], cfg["modulation"], channel, k=cfg["k"], n=cfg["n"], ldpc_iter=cfg["ldpc_iter"],
                       demapping=cfg["demapping"], device=cfg["device"], ldpc_decoder=cfg["ldpc_decoder"],
                       hamming_decoder=cfg["hamming_decoder"], codeword=cfg.get("codeword") or "random",
                       detector=cfg.get("detector") or "lmmse")


_BUILD_KEYS = ("code", "modulation", "channel", "k", "n", "ldpc_iter", "demapping", "device", "ldpc_decoder",
               "hamming_decoder", "detector", "seed")


def ber_point(config: Mapping[str, Any], snr_db: float) -> Dict[str, Any]:
    """One BER point in any process: rebuild the scheme from ``config`` and simulate ``snr_db``.

    ``config`` (JSON-able) has the build keys ``code, modulation, channel, k, n, ldpc_iter, demapping,
    device, ldpc_decoder, hamming_decoder, seed`` (and optionally ``codeword``, default ``"random"``)
    and the engine keys ``snr_type, batch_size, target_errors, target_block_errors, max_bits`` (and
    optionally ``max_batch_size``) (see :func:`phy.sim.montecarlo.simulate_ber`).
    Returns the CSV row (:meth:`PointResult.to_row`); identical to the row the sequential engine
    writes for that point, since the point's seed depends only on its key.
    """
    from experiments.core.plugins import load_entry_points
    from phy.sim.montecarlo import simulate_ber

    load_entry_points()  # a worker process registers the installed plug-ins too
    torch_threads = config.get("torch_threads")
    if torch_threads:
        import torch

        torch.set_num_threads(int(torch_threads))
    build = json.dumps({k: config.get(k) for k in _BUILD_KEYS + ("codeword",)}, sort_keys=True)
    trial, coderate, bps = _ber_trial(build)
    res = simulate_ber(trial, [float(snr_db)], snr_type=config["snr_type"], coderate=coderate,
                       bits_per_symbol=bps, batch_size=config["batch_size"], target_errors=config["target_errors"],
                       target_block_errors=config["target_block_errors"], max_bits=config["max_bits"],
                       seed=config["seed"], scheme=config["code"], channel=config["channel"], early_stop=False,
                       csv_file=None, progress=False, max_batch_size=config.get("max_batch_size"))
    return res[0].to_row()


def _skipped_row(config: Mapping[str, Any], snr: float, coderate: Optional[float], bps: Optional[float]):
    from phy.utils.conventions import ebno_db_to_esno_db, esno_db_to_ebno_db
    from phy.sim.points import STATUS_SKIPPED, PointResult, point_seed

    have_rate = coderate is not None and bps is not None
    if config["snr_type"] == "esno":
        esno, ebno = snr, (esno_db_to_ebno_db(snr, bps, coderate) if have_rate else math.nan)
    else:
        ebno, esno = snr, ebno_db_to_esno_db(snr, bps, coderate)
    pseed = point_seed(config["seed"], config["code"], config["channel"], config["snr_type"], snr)
    return PointResult(config["code"], config["channel"], snr, config["snr_type"], esno, ebno, math.nan, math.nan,
                       0, 0, 0, 0, math.nan, math.nan, math.nan, math.nan, pseed, STATUS_SKIPPED).to_row()


def run_ber_sweeps(executor, sweeps: Sequence[Tuple[Mapping[str, Any], Sequence[float]]], table,
                   *, early_stop: bool = True, rates: Optional[Mapping[Tuple[str, str], Tuple[float, float]]] = None,
                   progress: Optional[bool] = None) -> List[Any]:
    """Run BER sweeps as one task per SNR point; rows equal :func:`phy.sim.montecarlo.simulate_ber`'s.

    Parameters
    ----------
    executor : Executor
    sweeps : list of ``(config, snr_dbs)``
        ``config`` as for :func:`ber_point` (one scheme on one channel); ``snr_dbs`` in the order
        the sequential engine would walk them.
    table : ResumableCSV
        The ``ber.csv`` table (:data:`phy.sim.points.BER_COLUMNS`); stored points are not rerun.
    early_stop : bool
        As in ``simulate_ber``: after a point with zero errors, later points of the sweep with a
        higher SNR are written as skipped (their queued tasks are cancelled).
    rates : dict ``(code, channel) -> (coderate, bits_per_symbol)``, optional
        For the Eb/N0 column of skipped rows (built in the driver when omitted).

    Returns
    -------
    list of PointResult, sweep by sweep, each in ``snr_dbs`` order.

    Rows of one sweep are appended in ``snr_dbs`` order (a finished point waits for the points
    before it), so an interrupted CSV always holds a prefix of every sweep, exactly as the
    sequential engine leaves it, and resuming with either executor gives the same rows. Sweeps
    interleave while running; at the end the file is put in sweep order, so it equals the
    sequential engine's line for line.
    """
    from phy.sim.points import PointResult
    from phy.sim.resultstore import format_value

    if table is None:
        raise ValueError("run_ber_sweeps needs the result table (a ResumableCSV)")
    book = _SweepBook([dict(c) for c, _ in sweeps], [[float(s) for s in snrs] for _, snrs in sweeps], table,
                      executor, early_stop, dict(rates or {}))
    order = book.task_order()

    def tasks():
        for i, j in order:
            if book.skippable(i, j):
                continue  # already known to be skipped: never submitted
            yield (i, j), ber_point, (book.configs[i], book.snrs[i][j])

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(order), desc=f"ber ({executor.name})", unit="pt", leave=False)
    try:
        for i in range(len(sweeps)):
            book.advance(i)
        for (i, j), row in executor.map(tasks()):
            book.computed[(i, j)] = row
            book.advance(i)
            if bar is not None:
                bar.update(1)
        for i in range(len(sweeps)):
            book.advance(i)
    finally:
        if bar is not None:
            bar.close()
    rows = book.rows
    missing = [(book.configs[i]["code"], book.configs[i]["channel"], book.snrs[i][j])
               for i in range(len(sweeps)) for j in range(len(book.snrs[i])) if rows[i][j] is None]
    if missing:  # pragma: no cover - would be a bug in the bookkeeping of _SweepBook
        raise RuntimeError(f"points without a result: {missing}")
    # sweep by sweep, as the sequential engine writes them (rows were appended as points finished)
    table.reorder(table.key_of(r) for rs in rows for r in rs)
    return [PointResult.from_row({k: format_value(v) for k, v in r.items()}) for rs in rows for r in rs]


class _SweepBook:
    """The rows of :func:`run_ber_sweeps`: per sweep ``i`` and point ``j``, the stored row, the computed row
    waiting for the points before it (``computed``), the row written (``rows``), the next point to write
    (``pointer``) and the lowest SNR that ended without errors (``zero_snr``, for the early stop)."""

    def __init__(self, configs: List[Dict[str, Any]], snrs: List[List[float]], table, executor, early_stop: bool,
                 rates: Dict[Tuple[str, str], Tuple[float, float]]):
        self.configs, self.snrs, self.table, self.executor = configs, snrs, table, executor
        self.early_stop, self.rates = early_stop, rates
        self.stored: List[List[Optional[Dict[str, str]]]] = []
        for cfg, s in zip(configs, snrs):
            if len(set(s)) != len(s):
                raise ValueError(f"sweep {cfg['code']}/{cfg['channel']} lists an SNR twice: {s}")
            self.stored.append([table.get((cfg["code"], cfg["channel"], cfg["snr_type"], x)) for x in s])
        self.rows: List[List[Optional[Dict[str, Any]]]] = [[None] * len(s) for s in snrs]
        self.computed: Dict[Tuple[int, int], Dict[str, Any]] = {}
        self.pointer = [0] * len(snrs)
        self.zero_snr: List[Optional[float]] = [None] * len(snrs)

    def task_order(self) -> List[Tuple[int, int]]:
        """The points to compute: round-robin over sweeps, low list positions first, so early points start
        first."""
        order = []
        for j in range(max((len(s) for s in self.snrs), default=0)):
            for i in range(len(self.snrs)):
                if j < len(self.snrs[i]) and self.stored[i][j] is None:
                    order.append((i, j))
        return order

    def rate_of(self, i: int) -> Tuple[float, float]:
        key = (self.configs[i]["code"], self.configs[i]["channel"])
        if key not in self.rates:
            _, cr, bps = _ber_trial(json.dumps({k: self.configs[i].get(k) for k in _BUILD_KEYS}, sort_keys=True))
            self.rates[key] = (cr, bps)
        return self.rates[key]

    def skippable(self, i: int, j: int) -> bool:
        z = self.zero_snr[i]
        return self.early_stop and z is not None and self.snrs[i][j] > z and self.stored[i][j] is None

    def advance(self, i: int) -> None:
        """Write every resolvable row of sweep i from its pointer on."""
        from phy.sim.points import STATUS_NO_ERRORS
        from phy.sim.resultstore import format_value

        snrs = self.snrs[i]
        while self.pointer[i] < len(snrs):
            j = self.pointer[i]
            snr = snrs[j]
            if self.stored[i][j] is not None:
                row = self.stored[i][j]
            elif self.skippable(i, j):
                self.executor.cancel((i, j))
                cr, bps = self.rate_of(i)
                row = _skipped_row(self.configs[i], snr, cr, bps)
                self.table.append(row)
            elif (i, j) in self.computed:
                row = self.computed.pop((i, j))
                self.table.append(row)
            else:
                return
            self.rows[i][j] = row
            if format_value(row["status"]) == STATUS_NO_ERRORS and (self.zero_snr[i] is None or snr < self.zero_snr[i]):
                self.zero_snr[i] = snr
                for jj in range(j + 1, len(snrs)):
                    if self.skippable(i, jj):
                        self.executor.cancel((i, jj))
            self.pointer[i] += 1
