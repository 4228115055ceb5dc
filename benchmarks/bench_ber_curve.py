"""The LDPC benchmark: decoder, full chain and a whole BLER curve, against a reference engine and Sionna.

One process, one run; compared variants alternate repeat by repeat (machine load hits all alike) and
every table prints ratios. Code: 5G LDPC (k=512, n=1024), 20 iterations, Gray 16-QAM, AWGN.

1. **decoder alone** on the same channel logits (Es/N0 ``--snr-db``, random codewords): Sionna's
   ``LDPC5GDecoder`` flooding boxplus-phi (its default) and layered offset-min-sum
   (``cn_schedule="layered", cn_update="offset-minsum"``); the *previous engine*
   (``phy/ldpc_fast.py`` of commit ``--previous``, loaded from git); the new kernel with 20 fixed
   iterations and with early termination. Edge updates per second per core = edges x iterations
   actually run x codewords / s / threads (the published SIMD decoders' unit).
2. **full chain**, information bits/s at the same Es/N0: Sionna written by hand (``BinarySource``,
   encoder, ``Mapper``, ``AWGN``, ``Demapper("app")``, flooding or layered decoder); the previous
   engine (``DigitalLink`` with the previous fast decoder: Sionna encoder, mapper and demapper); the
   new chain (:class:`phy.sim.trials.ScrambledZeroTrial`: scrambled all-zero codeword, compiled
   map/channel/APP demap, early-terminating decoder).
3. **the curve** (``--curve``): the curve command of the performance page run as a fresh ``semcom ber`` process
   (wall and CPU time, load average), its resolution checked with
   :func:`phy.sim.adaptive.curve_resolution`; the time the previous engine and Sionna's chains would
   need for the same points is *estimated* as the sum over the curve's points of (blocks simulated)
   / (each chain's throughput measured at that point's Es/N0 in this run) -- not run (hours).
5. **fixed-point loss** (``--bler-loss``): the Es/N0 at which the float32, int16 and int8 layered
   decoders reach BLER 1e-3, all on the same scrambled-zero logits (a few Es/N0 points,
   ``--bler-loss-blocks`` blocks each, log-linear interpolation); the loss in dB against float32.

Tables 1-2 also time the fixed-point kernels (``precision="int16"/"int8"``: 20 iterations and early
termination; one thread for the per-core edge-update rate) and their chains; table 3 runs the goal
command with ``--goal-decoder`` (default ``layered``: int8 on CPU). The ``one pass`` chains are the
fixed-point trials counting their errors in one compiled pass (``ScrambledZeroTrial.count_errors``: chain,
quantisation, decoding and count, no logits in memory), as ``semcom ber`` runs them.

4. **k=600, n=1200** (``--check-600``): BLER of the fast path (scrambled zero, layered OMS, early
   termination) vs Sionna's chain with random codewords and its flooding BP decoder, 20 iterations,
   QPSK and 16-QAM, a few Es/N0 points, with 95 % Clopper-Pearson intervals.

6. **low BLER** (``--floor``): paired block errors of int16, int8 (and int8 with its earlier defaults)
   and float32 at Es/N0 8.2 and 8.3 dB (BLER ~3e-6), ``--floor-blocks`` codewords each.

Run: ``python benchmarks/bench_ber_curve.py --curve --bler-loss --floor --check-600`` (writes
``benchmarks/results/bench_ber_curve.json``).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from experiments.core.results import write_benchmark  # noqa: E402

GOAL = ["ber", "--modulation", "16qam", "--code", "ldpc5g", "--k", "512", "--n", "1024", "--ldpc-decoder", "DECODER",
        "--channel", "awgn", "--snr-type", "esno", "--snr-db", "auto", "--min-bler", "1e-5",
        "--target-block-errors", "100", "--target-errors", "1e9", "--max-bits", "1e10", "--no-progress"]


def previous_engine(commit: str):
    """``phy/ldpc_fast.py`` as of ``commit`` (the reference engine), imported from git."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:phy/ldpc_fast.py"], check=True,
                         capture_output=True, text=True).stdout
    src = src.replace("from .threads import", "from phy.utils.threads import")
    path = Path(tempfile.mkdtemp()) / "ldpc_fast_previous.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("ldpc_fast_previous", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def interleaved(fns, repeats):
    """Warm each callable up once, then ``repeats`` rounds in alternating order; durations per name."""
    for fn in fns.values():
        fn()
    out = {name: [] for name in fns}
    names = list(fns)
    for rep in range(repeats):
        for name in (names if rep % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            fns[name]()
            out[name].append(time.perf_counter() - t0)
    return out


def table(title, rows, ref, unit, extra=()):
    print(f"\n{title}")
    print(f"{'':34s} {'median':>11s} {'[min .. max]':>25s} " + " ".join(f"{'x ' + r[:12]:>15s}" for r in ref)
          + "".join(f" {e:>14s}" for e in extra))
    for name, r in rows.items():
        ratios = " ".join(f"{r['median'] / rows[x]['median']:15.2f}" for x in ref)
        ex = "".join(f" {r.get(e, float('nan')):14.4g}" for e in extra)
        print(f"{name:34s} {r['median']:11.4g} [{r['min']:11.4g} .. {r['max']:11.4g}] {ratios}{ex}  {unit}")


def stats(times, work):
    rates = [work / t for t in times]
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates), "times_s": times}


def build_chains(k, n, num_iter, prev, threads_note=""):
    """name -> callable(batch, esno_db) -> (bits, bits_hat) for the chains of table 2."""
    from sionna.phy.channel import AWGN as SAWGN
    from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPC5GEncoder
    from sionna.phy.mapping import BinarySource, Demapper, Mapper

    from phy.channel.flat import AWGN
    from phy.fec.codes import LDPC5G
    from phy.link.digital import DigitalLink
    from phy.sim.trials import LinkTrial, ScrambledZeroTrial

    enc = LDPC5GEncoder(k, n)
    src, mapper, demapper, ch = BinarySource(), Mapper("qam", 4), Demapper("app", "qam", 4), SAWGN()
    sionna_decs = {"sionna flooding boxplus-phi": LDPC5GDecoder(enc, num_iter=num_iter),
                   "sionna layered offset-minsum": LDPC5GDecoder(enc, num_iter=num_iter, cn_schedule="layered",
                                                                 cn_update="offset-minsum")}

    def sionna_chain(dec):
        def run(b, esno):
            u = src([b, k])
            no = 10 ** (-esno / 10)
            return u, dec(demapper(ch(mapper(enc(u)), no), no))
        return run

    chains = {f"chain {name}": sionna_chain(d) for name, d in sionna_decs.items()}
    # previous engine: DigitalLink (Sionna encoder/mapper/demapper) with the previous fast decoder
    prev_code = LDPC5G(k, n, num_iter=num_iter, decoder="layered")
    prev_enc, _ = prev_code._get("cpu", torch.float32)
    prev_code._blocks[("cpu", "single")] = (prev_enc, prev.LDPC5GFastDecoder(prev_enc, num_iter=num_iter))
    prev_trial = LinkTrial(DigitalLink(AWGN(seed=0), code=prev_code, modulation="16qam"), k=k)
    prev_trial.reset(1)
    chains["chain previous engine"] = lambda b, esno: prev_trial(b, esno)
    new_code = LDPC5G(k, n, num_iter=num_iter, decoder="layered-float32", decoder_kwargs={"early_stop": True})
    new_trial = ScrambledZeroTrial(DigitalLink(AWGN(seed=0), code=new_code, modulation="16qam"), k=k)
    new_trial.reset(1)
    chains["chain new (scrambled zero)"] = lambda b, esno: new_trial(b, esno)
    for prec in ("int16", "int8"):
        code = LDPC5G.from_options(k=k, n=n, num_iter=num_iter, ldpc_decoder=f"layered-{prec}")
        trial = ScrambledZeroTrial(DigitalLink(AWGN(seed=0), code=code, modulation="16qam"), k=k)
        trial.reset(1)
        chains[f"chain new {prec}"] = lambda b, esno, t=trial: t(b, esno)
        # the same trial counting its errors in one compiled pass (what `semcom ber` runs)
        chains[f"chain new {prec}, one pass"] = lambda b, esno, t=trial: t.count_errors(b, esno)
    return chains, sionna_decs


def _parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--snr-db", type=float, default=7.5, help="Es/N0 of tables 1-2 (default 7.5: BLER ~1e-3)")
    ap.add_argument("--batch", type=int, default=512, help="codewords per call, tables 1-3")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--previous", default="7fa602a", help="git commit of the previous engine")
    ap.add_argument("--curve", action="store_true", help="run and time the goal command (table 3)")
    ap.add_argument("--curve-dir", default=None, help="output directory of the goal run (default: a temp dir)")
    ap.add_argument("--goal-decoder", default="layered",
                    choices=("layered", "layered-float32", "layered-int16", "layered-int8"),
                    help="--ldpc-decoder of the goal run (default layered: int8 on CPU)")
    ap.add_argument("--skip-estimates", action="store_true", help="table 3: do not estimate the other chains' time")
    ap.add_argument("--bler-loss", action="store_true",
                    help="table 5: Es/N0 at BLER 1e-3 of the float, int16 and int8 decoders on the same logits")
    ap.add_argument("--bler-loss-blocks", type=int, default=200_000)
    ap.add_argument("--check-600", action="store_true", help="BLER check k=600, n=1200 (table 4)")
    ap.add_argument("--floor", action="store_true", help="low-BLER check of the fixed-point decoders (6)")
    ap.add_argument("--floor-snrs", type=float, nargs="+", default=[8.2, 8.3])
    ap.add_argument("--floor-blocks", type=int, default=3_000_000)
    ap.add_argument("--floor-float-every", type=int, default=4)
    ap.add_argument("--blocks-600", type=int, default=4000)
    ap.add_argument("--skip-tables", action="store_true", help="skip tables 1-2 (decoder, chain)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_ber_curve.json"))
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = _parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from sionna.phy import config as sconfig

    sconfig.seed = 0
    k, n, it = 512, 1024, 20
    prev = previous_engine(args.previous)
    result = {"benchmark": "bench_ber_curve", "k": k, "n": n, "num_iter": it, "threads": args.threads,
              "snr_db": args.snr_db, "batch": args.batch, "previous_commit": args.previous,
              "loadavg_start": list(os.getloadavg())}
    print(f"LDPC5G({k},{n}) 16-QAM AWGN, {it} iterations, {args.threads} threads, Es/N0 {args.snr_db} dB, "
          f"load average at start {os.getloadavg()}")

    if not (args.skip_tables and not args.curve):
        chains = _decoder_table(args, result, prev, k, n, it)
        _chain_table(args, result, chains, k)
        if args.curve:
            _curve_table(args, result, chains)
    if args.bler_loss:
        _bler_loss(args, result)
    if args.floor:
        _floor(args, result)
    return _check_600(args, result)


def _decoder_table(args, result, prev, k, n, it):
    """1. the decoders alone on the same channel logits (and on one thread); returns the chains of table 2."""
    from sionna.phy.fec.ldpc import LDPC5GEncoder

    from phy.fec.ldpc_fast import LDPC5GFastDecoder
    from phy.mapping.modulation import QAM

    enc = LDPC5GEncoder(k, n)
    qam = QAM("16qam")
    B = args.batch
    u = torch.randint(0, 2, (B, k)).float()
    x = qam.modulate(enc(u))
    no = 10 ** (-args.snr_db / 10)
    y = x + (no / 2) ** 0.5 * torch.complex(torch.randn(x.shape), torch.randn(x.shape))
    llr = qam.demodulate(y, no)
    chains, sionna_decs = build_chains(k, n, it, prev)
    new_es = LDPC5GFastDecoder(enc, num_iter=it, early_stop=True)
    decs = dict(sionna_decs)
    decs["previous engine (numba)"] = prev.LDPC5GFastDecoder(enc, num_iter=it)
    decs["new, 20 iterations"] = LDPC5GFastDecoder(enc, num_iter=it)
    decs["new, early termination"] = new_es
    for prec in ("int16", "int8"):
        decs[f"{prec}, 20 iterations"] = LDPC5GFastDecoder(enc, num_iter=it, precision=prec)
        decs[f"{prec}, early termination"] = LDPC5GFastDecoder(enc, num_iter=it, early_stop=True, precision=prec)
    edges = decs["new, 20 iterations"].num_edges
    times = interleaved({name: (lambda d=d: d(llr)) for name, d in decs.items()}, args.repeats)
    mean_its = {}
    for name, d in decs.items():
        if "early" in name:
            d.frames_decoded = d.iterations_run = 0
            d(llr)
            mean_its[name] = d.mean_iterations
    dec_rows = {}
    for name, t in times.items():
        r = stats(t, B * k)
        iters = mean_its.get(name, it)
        r["edge_updates_per_s_per_core"] = r["median"] / k * edges * iters / args.threads
        r["mean_iterations"] = iters
        r["bler"] = float((decs[name](llr) != u).any(1).float().mean())
        dec_rows[name] = r
    table("1. decoder alone (info bits/s)", dec_rows, ["sionna flooding boxplus-phi", "sionna layered offset-minsum",
                                                       "previous engine (numba)"], "bit/s",
          extra=("edge_updates_per_s_per_core", "mean_iterations", "bler"))
    # the new kernel on one thread, same LLRs (per-core figure, and 2-thread scaling)
    torch.set_num_threads(1)
    per_core = {name: (lambda d=decs[name]: d(llr)) for name in
                ("new, 20 iterations", "int16, 20 iterations", "int8, 20 iterations")}
    t1 = interleaved(per_core, args.repeats)
    torch.set_num_threads(args.threads)
    ones, scalings = {}, {}
    for name, t in t1.items():
        one = stats(t, B * k)
        one["edge_updates_per_s_per_core"] = one["median"] / k * edges * it
        ones[name] = one
        scalings[name] = dec_rows[name]["median"] / one["median"]
        print(f"{name}, 1 thread: {one['median']:.4g} info bits/s = {one['edge_updates_per_s_per_core']:.3g} edge "
              f"updates/s per core ({one['median'] / ones['new, 20 iterations']['median']:.2f}x float32); "
              f"{args.threads} threads scale {scalings[name]:.2f}x")
    result.update(decoder_only=dec_rows, decoder_one_thread=ones, thread_scaling=scalings, edges=edges)
    return chains


def _chain_table(args, result, chains, k) -> None:
    """2. the full chains, information bits/s at the same Es/N0."""
    B = args.batch
    times = interleaved({name: (lambda c=c: c(B, args.snr_db)) for name, c in chains.items()}, args.repeats)
    chain_rows = {name: stats(t, B * k) for name, t in times.items()}
    table("2. full chain (info bits/s)", chain_rows, ["chain sionna flooding boxplus-phi",
                                                      "chain sionna layered offset-minsum", "chain previous engine"],
          "bit/s")
    result["chain"] = chain_rows


def _curve_table(args, result, chains) -> None:
    """3. the goal command as a fresh process, its resolution, and the other chains' estimated time."""
    import csv

    from phy.sim.adaptive import curve_resolution
    from phy.sim.points import PointResult

    B = args.batch
    out = args.curve_dir or tempfile.mkdtemp(prefix="bench_ber_curve_")
    goal = [args.goal_decoder if a == "DECODER" else a for a in GOAL]
    cmd = [sys.executable, "-m", "experiments.cli"] + goal + ["--out", out]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    load0 = os.getloadavg()
    t0, c0 = time.perf_counter(), os.times()
    subprocess.run(cmd, check=True, env=env, cwd=str(ROOT))
    wall = time.perf_counter() - t0
    c1 = os.times()
    cpu = (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system)
    with open(os.path.join(out, "ber.csv"), newline="") as fh:
        res = [PointResult.from_row(r) for r in csv.DictReader(fh)]
    cr = curve_resolution(res, 1e-5, metric="bler", top=0.2)
    ok = (cr["points_between"] >= 6 and cr["max_step_decades"] <= 1.5 and cr["floor_errors"] is not None
          and cr["floor_errors"] >= 100)
    print(f"\n3. goal curve: wall {wall:.1f} s, CPU {cpu:.1f} s (load average {load0} -> {os.getloadavg()}); "
          f"{len(res)} points, {sum(r.blocks for r in res):.3g} codewords; points between BLER 0.2 and 1e-5: "
          f"{cr['points_between']}, largest step {cr['max_step_decades']:.2f} decades, floor point "
          f"{cr['floor_snr_db']} dB with {cr['floor_errors']} block errors -> criteria "
          f"{'met' if ok else 'NOT met'}")
    # estimated time of the other chains on the same points: blocks / measured throughput
    est = {name: 0.0 for name in chains}
    main_chain = {"layered": "chain new int8, one pass", "layered-int8": "chain new int8, one pass",
                  "layered-int16": "chain new int16, one pass"}.get(args.goal_decoder, "chain new (scrambled zero)")
    per_point = []
    for r in ([] if args.skip_estimates else res):
        times = interleaved({name: (lambda c=c, s=r.snr_db: c(B, s)) for name, c in chains.items()}, 1)
        rates = {name: B / t[0] for name, t in times.items()}  # codewords/s at this point
        for name in chains:
            est[name] += r.blocks / rates[name]
        per_point.append({"snr_db": r.snr_db, "bler": r.bler, "blocks": r.blocks, "codewords_per_s": rates})
    for name, s in (est.items() if not args.skip_estimates else ()):
        print(f"   {name:34s} estimated {s:10.1f} s for the same points ({s / est[main_chain]:.1f}x"
              f" the estimate of the chain that ran)")
    result["curve"] = {"command": "semcom " + " ".join(goal), "wall_s": wall, "cpu_s": cpu,
                       "loadavg_before": list(load0), "loadavg_after": list(os.getloadavg()),
                       "resolution": {k2: v for k2, v in cr.items() if k2 != "rates"}, "rates": cr["rates"],
                       "criteria_met": ok, "estimated_s_same_points": est, "per_point": per_point}


def _bler_loss(args, result) -> None:
    """5. Es/N0 at which each decoder reaches BLER 1e-3 (log-linear interpolation between the two points
    around it), all decoders on the same scrambled-zero logits; the loss is the difference in dB."""
    import math

    from phy.channel.flat import AWGN
    from phy.fec.codes import LDPC5G
    from phy.link.digital import DigitalLink
    from phy.fec.ldpc_fast import LDPC5GFastDecoder
    from phy.sim.trials import ScrambledZeroTrial

    trial = ScrambledZeroTrial(DigitalLink(AWGN(seed=0), code=LDPC5G(512, 1024, decoder="layered-float32"),
                                           modulation="16qam"))
    enc = trial.link.code._get("cpu", torch.float32)[0]
    decs = {"float32 (offset 0.4)": LDPC5GFastDecoder(enc, early_stop=True),
            "float32 (offset 0.5)": LDPC5GFastDecoder(enc, early_stop=True, offset=0.5),
            "int16": LDPC5GFastDecoder(enc, early_stop=True, precision="int16"),
            "int8": LDPC5GFastDecoder(enc, early_stop=True, precision="int8")}
    snrs = [7.4, 7.55, 7.7]
    counts = {name: [] for name in decs}
    for snr in snrs:
        trial.reset(int(snr * 1000))
        errs, tot = dict.fromkeys(decs, 0), 0
        while tot < args.bler_loss_blocks:
            llr = trial._llr((8192,), snr)
            for name, d in decs.items():
                errs[name] += int((d(llr).sum(-1) > 0).sum())
            tot += 8192
        for name in decs:
            counts[name].append((errs[name], tot))
        print(f"5. Es/N0 {snr} dB, {tot} blocks: " + ", ".join(f"{nm} {e}" for nm, e in errs.items()), flush=True)

    def at_1e3(cs):
        pts = [(s, e / t) for s, (e, t) in zip(snrs, cs) if e > 0]
        for (s0, b0), (s1, b1) in zip(pts, pts[1:]):
            if b0 >= 1e-3 >= b1:
                return s0 + (s1 - s0) * (math.log10(b0) - (-3)) / (math.log10(b0) - math.log10(b1))
        return float("nan")

    snr_at = {name: at_1e3(cs) for name, cs in counts.items()}
    ref = snr_at["float32 (offset 0.4)"]
    for name, sv in snr_at.items():
        print(f"5. {name:22s} BLER 1e-3 at Es/N0 {sv:.3f} dB: {sv - ref:+.3f} dB vs float32 (offset 0.4), "
              f"{sv - snr_at['float32 (offset 0.5)']:+.3f} dB vs float32 (offset 0.5)")
    result["bler_loss"] = {"snrs": snrs, "counts": counts, "snr_at_bler_1e-3": snr_at}


def _floor(args, result) -> None:
    """6. Low-BLER check (``--floor``): paired block errors of the int16, int8 (defaults and the earlier
    defaults: 4 quanta per LLR unit, messages to +-10 LLR) and float32 layered decoders on the same
    scrambled-zero codewords (the fixed-point ones decoded in the one-pass kernel; float32, slower, on
    every ``--floor-float-every``-th batch only), at Es/N0 ``--floor-snrs``."""
    from sionna.phy.fec.ldpc import LDPC5GEncoder

    from phy.fec.ldpc_fast import LDPC5GFastDecoder
    from phy.fec.scrambled_chain import scrambled_awgn_logits

    enc = LDPC5GEncoder(512, 1024)
    fixed = {"int16": LDPC5GFastDecoder(enc, early_stop=True, precision="int16"),
             "int8": LDPC5GFastDecoder(enc, early_stop=True, precision="int8"),
             "int8 (earlier defaults)": LDPC5GFastDecoder(enc, early_stop=True, precision="int8", qscale=4.0,
                                                          qclip=63, qmsg=40)}
    fl = LDPC5GFastDecoder(enc, early_stop=True)
    rows, out = 16384, {}
    for snr in args.floor_snrs:
        no = 10 ** (-snr / 10)
        counts = {name: [0, 0] for name in list(fixed) + ["float32"]}
        for c in range(max(1, args.floor_blocks // rows)):
            for name, d in fixed.items():
                counts[name][0] += d.scrambled_awgn_errors(rows, "16qam", no, 77, c)[1]
                counts[name][1] += rows
            if c % args.floor_float_every == 0:
                u = fl(scrambled_awgn_logits(rows, 256, "16qam", torch.full((rows,), no), 77, c))
                counts["float32"][0] += int((u.sum(-1) > 0).sum())
                counts["float32"][1] += rows
        print(f"6. Es/N0 {snr} dB: " + ", ".join(f"{nm} {e} block errors in {t} (BLER {e / t:.3g})"
                                                for nm, (e, t) in counts.items()), flush=True)
        out[str(snr)] = counts
    result["floor"] = out


def _check_600(args, result) -> int:
    # 4. k=600, n=1200 vs Sionna -------------------------------------------------------------------
    if args.check_600:
        from phy.channel.flat import AWGN
        from phy.fec.codes import LDPC5G
        from phy.link.digital import DigitalLink
        from phy.sim.intervals import clopper_pearson
        from phy.sim.montecarlo import simulate_ber
        from phy.sim.trials import LinkTrial, ScrambledZeroTrial

        rows = []
        print("\n4. k=600, n=1200, 20 iterations: BLER fast path vs Sionna (random codewords, flooding BP)")
        for mod, snrs in (("qpsk", (1.5, 2.0, 2.5)), ("16qam", (6.5, 7.0, 7.5))):
            fast = ScrambledZeroTrial(DigitalLink(AWGN(seed=0), code=LDPC5G(600, 1200, num_iter=20, decoder="layered",
                                                                            decoder_kwargs={"early_stop": True}),
                                                  modulation=mod), k=600)
            ref = LinkTrial(DigitalLink(AWGN(seed=0), code=LDPC5G(600, 1200, num_iter=20), modulation=mod), k=600)
            for snr in snrs:
                kw = dict(batch_size=500, target_errors=None, max_bits=600 * args.blocks_600, seed=0, progress=False)
                a = simulate_ber(fast, [snr], **kw)[0]
                b = simulate_ber(ref, [snr], **kw)[0]
                row = {"modulation": mod, "esno_db": snr, "bler_fast": a.bler, "ci_fast": clopper_pearson(
                    a.block_errors, a.blocks), "bler_sionna": b.bler, "ci_sionna": clopper_pearson(b.block_errors, b.blocks),
                       "blocks": a.blocks}
                rows.append(row)
                print(f"   {mod:6s} {snr:5.2f} dB  fast {a.bler:.4f} [{row['ci_fast'][0]:.4f}, {row['ci_fast'][1]:.4f}]"
                      f"  sionna {b.bler:.4f} [{row['ci_sionna'][0]:.4f}, {row['ci_sionna'][1]:.4f}]")
        result["k600_n1200"] = rows

    result["loadavg_end"] = list(os.getloadavg())
    write_benchmark(args.out, json.loads(json.dumps(result, default=float)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
