"""Monte Carlo sweep of S = 9 SNR points: ``simulate_ber`` point by point vs one batched pass.

For each chain and batch size ``B`` (blocks of k = 512 information bits per SNR point and call),
times a whole 9-point sweep with :func:`phy.sim.montecarlo.simulate_ber` two ways, alternating run by
run so that machine load hits both alike:

* ``sequential``: ``snr_batch=1``, each point draws ``--batches`` batches ``[B, k]`` (one link
  call each), i.e. ``9 * batches`` calls;
* ``batched``: ``snr_batch=9``, one ``link(bits [9, B, k], snr_db=[9, 1], batch_dims=2)`` call per
  iteration, i.e. ``batches`` calls.

The work is equal: a fixed budget per point (``target_errors=None``, ``max_bits = batches * B *
k``, no early stop), and the layered LDPC decoder always runs all its iterations. Chains (built by
``experiments.commands.ber.build_trial``, as ``semcom ber`` does): uncoded 16-QAM and 5G LDPC(512, 1024)
with the layered min-sum decoder (``--ldpc-decoder layered``, 20 iterations), APP demapping, AWGN.
Torch runs one intra-op thread unless ``--threads`` says otherwise. Prints median [min..max] wall
time of a sweep over ``--repeats`` runs and the speed-up ``sequential / batched`` (ratio of
medians), checks that both runs simulated the same number of bits, and writes
``benchmarks/results/bench_mc_snr_batch.json``. The batched run draws the same
distribution but not the same random numbers as the sequential one.

Run: ``python benchmarks/bench_mc_snr_batch.py`` (``--help``).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from experiments.commands.ber import build_trial  # noqa: E402
from experiments.core.results import write_benchmark  # noqa: E402
from phy.channel.flat import AWGN  # noqa: E402
from phy.sim.montecarlo import simulate_ber  # noqa: E402

K, N = 512, 1024
SNRS = [4.0 + 0.5 * i for i in range(9)]  # Es/N0 [dB]: the rate-1/2 16-QAM waterfall region


def pin_threads(threads):
    """Set torch's and numba's thread counts (numba's pool restoring its own count can otherwise
    reset the process-wide OpenMP count that torch reads, so the count flips in the middle of a run)."""
    if not threads:
        return
    torch.set_num_threads(threads)
    try:
        import numba
    except ImportError:
        return
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))


def compare(trial, batch, batches, repeats, threads=None):
    """Times of the sequential and the batched sweep; returns a result row (``threads`` is
    re-applied before every sweep)."""
    kw = dict(snr_type="esno", batch_size=batch, target_errors=None, max_bits=batches * batch * K,
              early_stop=False, progress=False, scheme="bench", channel="awgn")

    seen_threads = set()

    def sweep(snr_batch, rep):
        pin_threads(threads)
        t0 = time.perf_counter()
        res = simulate_ber(trial, SNRS, seed=rep, snr_batch=snr_batch, **kw)
        elapsed = time.perf_counter() - t0
        seen_threads.add(torch.get_num_threads())
        return elapsed, res

    sweep(1, -1), sweep(len(SNRS), -1)  # warm-up (allocations, decoder graphs)
    seen_threads.clear()
    t_seq, t_bat, bits_seq, bits_bat, ber_seq, ber_bat = [], [], set(), set(), [], []
    for rep in range(repeats):
        t, res = sweep(1, rep)
        t_seq.append(t)
        bits_seq.add(sum(r.bits for r in res))
        ber_seq.append([r.ber for r in res])
        t, res = sweep(len(SNRS), rep)
        t_bat.append(t)
        bits_bat.add(sum(r.bits for r in res))
        ber_bat.append([r.ber for r in res])
    if bits_seq != bits_bat or len(bits_seq) != 1:
        raise RuntimeError(f"unequal work: sequential simulated {bits_seq} bits, batched {bits_bat}")
    ms, mb = statistics.median(t_seq), statistics.median(t_bat)
    total_bits = bits_seq.pop()
    mean = lambda rows: [statistics.fmean(col) for col in zip(*rows)]  # noqa: E731
    return {"batch_blocks": batch, "batches_per_point": batches, "bits_per_point": batches * batch * K,
            "bits_per_sweep": total_bits,
            "sequential_s": {"median": ms, "min": min(t_seq), "max": max(t_seq), "times": t_seq},
            "batched_s": {"median": mb, "min": min(t_bat), "max": max(t_bat), "times": t_bat},
            "speedup": ms / mb, "torch_threads_after_sweeps": sorted(seen_threads),
            "sequential_bits_per_s": total_bits / ms, "batched_bits_per_s": total_bits / mb,
            "mean_ber_sequential": mean(ber_seq), "mean_ber_batched": mean(ber_bat)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5, help="timed sweeps per mode (default 5)")
    ap.add_argument("--batch-sizes", type=str, default="16,128",
                    help="comma list of blocks per SNR point and call (default 16,128; 128 is semcom ber's "
                         "default batch for k=512)")
    ap.add_argument("--batches", type=int, default=2, help="batches per SNR point (default 2)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (default 1, as in the test suite: on a busy 2-core machine "
                         "more threads spin-wait and the timings scatter; 0: torch's default)")
    ap.add_argument("--skip-ldpc", action="store_true", help="uncoded chain only")
    ap.add_argument("--out", type=str, default=str(Path(__file__).parent / "results" / "bench_mc_snr_batch.json"))
    args = ap.parse_args(argv)
    pin_threads(args.threads)
    chains = {"uncoded 16qam": dict(code="none")}
    if not args.skip_ldpc:
        chains["ldpc5g layered 16qam"] = dict(code="ldpc5g", ldpc_decoder="layered")

    rows = {}
    for name, c in chains.items():
        trial, _, _ = build_trial(c["code"], "16qam", AWGN(seed=0), k=K, n=N, ldpc_iter=20, demapping="app",
                                  ldpc_decoder=c.get("ldpc_decoder", "bp"))
        for B in [int(b) for b in args.batch_sizes.split(",") if b]:
            rows[f"{name} B={B}"] = compare(trial, B, args.batches, args.repeats, args.threads)

    threads = args.threads or torch.get_num_threads()
    print(f"S = {len(SNRS)} SNR points (Es/N0 {SNRS[0]:g}..{SNRS[-1]:g} dB), k = {K}, {args.batches} batches per "
          f"point, threads {threads}, load average {os.getloadavg()}")
    print(f"{'':28s} {'bits/point':>10s} {'sequential s (median [min..max])':>36s} "
          f"{'snr_batch=9 s (median [min..max])':>36s} {'speed-up':>9s}")
    for name, r in rows.items():
        sq, ba = r["sequential_s"], r["batched_s"]
        print(f"{name:28s} {r['bits_per_point']:10d} {sq['median']:9.4f} [{sq['min']:9.4f}..{sq['max']:9.4f}]    "
              f"{ba['median']:9.4f} [{ba['min']:9.4f}..{ba['max']:9.4f}]    {r['speedup']:8.2f}")
    res = {"benchmark": "bench_mc_snr_batch", "num_snr_points": len(SNRS), "snrs_esno_db": SNRS, "k": K, "n": N,
           "repeats": args.repeats, "threads": threads, "rows": rows}
    write_benchmark(args.out, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
