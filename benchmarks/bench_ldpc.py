"""Throughput and BLER of the fast layered min-sum 5G LDPC decoder vs Sionna's ``LDPC5GDecoder``.

Pipeline: 5G LDPC (k=512, n=1024) + 16-QAM (exact APP demapping) + AWGN, 20 decoder iterations.

1. *decoder only*: the same channel logits ``[batch, n]`` decoded by Sionna's flooding
   boxplus-phi decoder, by :class:`phy.fec.ldpc_fast.LDPC5GFastDecoder` with the numba backend and with
   the torch backend; repeats are interleaved so that machine load hits every decoder alike.
2. *full chain*: :class:`phy.link.digital.DigitalLink` (encode, map, channel, ZF, demap, decode) with
   ``LDPC5G(decoder="bp")`` vs ``LDPC5G(decoder="layered")``.
3. *BLER*: both decoders on the same noisy blocks at a few Es/N0 points (paired), with 95 %
   Wilson intervals and the McNemar counts (blocks only one decoder gets wrong).

Throughput is in information bits/s (and codewords/s); each row prints median [min..max] over
the repeats and the ratio of medians against Sionna. Writes ``benchmarks/results/bench_ldpc.json``.

Run: ``python benchmarks/bench_ldpc.py`` (``--help`` for sizes; ``--threads 1`` for a per-core figure).
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from phy.channel.flat import AWGN  # noqa: E402
from phy.fec.codes import LDPC5G  # noqa: E402
from phy.fec.ldpc_fast import LDPC5GFastDecoder, numba_available  # noqa: E402
from phy.link.digital import DigitalLink  # noqa: E402
from phy.mapping.modulation import QAM  # noqa: E402
from experiments.core.results import write_benchmark  # noqa: E402


def summary(times, work):
    """Median/min/max rate (work per second) of a list of durations."""
    rates = [work / t for t in times]
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates),
            "times_s": times}


def wilson(errors, total, z=1.96):
    if total == 0:
        return (0.0, 1.0)
    p = errors / total
    den = 1 + z * z / total
    c = (p + z * z / (2 * total)) / den
    h = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / den
    return (max(0.0, c - h), min(1.0, c + h))


def time_interleaved(fns, repeats):
    """Run every callable once (warm-up), then ``repeats`` rounds in turn; durations per name."""
    for fn in fns.values():
        fn()
    out = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            out[name].append(time.perf_counter() - t0)
    return out


def channel_llr(enc, qam, channel, bits, snr_db):
    c = enc(bits)
    x = qam.modulate(c)
    no = 10 ** (-snr_db / 10)
    y = channel(x, no).y
    return qam.demodulate(y, no)


def print_table(title, rows, unit):
    print(f"\n{title}")
    print(f"{'':24s} {'median':>12s} {'[min .. max]':>28s} {'x sionna':>9s}")
    for name, r in rows.items():
        print(f"{name:24s} {r['median']:12.4g} [{r['min']:12.4g} .. {r['max']:12.4g}] {r['ratio']:9.2f}  {unit}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k", type=int, default=512)
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--num-iter", type=int, default=20)
    ap.add_argument("--batch", type=int, default=512, help="codewords per decoder call")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch and numba threads (default: torch's)")
    ap.add_argument("--snr-db", type=float, default=6.5, help="Es/N0 of the throughput LLRs")
    ap.add_argument("--bler-snrs", type=str, default="5.75,6.25,6.75", help="Es/N0 points ('' to skip)")
    ap.add_argument("--bler-blocks", type=int, default=2000, help="blocks per BLER point (0 skips the BLER table)")
    ap.add_argument("--skip-torch-backend", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=str, default=str(Path(__file__).parent / "results" / "bench_ldpc.json"))
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
        if numba_available():
            import numba
            numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    threads = torch.get_num_threads()
    torch.manual_seed(args.seed)
    from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPC5GEncoder

    k, n, B = args.k, args.n, args.batch
    enc = LDPC5GEncoder(k, n)
    qam = QAM("16qam")
    channel = AWGN(seed=args.seed)
    decoders = {"sionna boxplus-phi": LDPC5GDecoder(enc, num_iter=args.num_iter)}
    if numba_available():
        decoders["fast oms (numba)"] = LDPC5GFastDecoder(enc, num_iter=args.num_iter, backend="numba")
    if not args.skip_torch_backend:
        decoders["fast oms (torch)"] = LDPC5GFastDecoder(enc, num_iter=args.num_iter, backend="torch")
    print(f"LDPC ({k},{n}) 16-QAM AWGN, {args.num_iter} iterations, batch {B}, threads {threads}, "
          f"numba {'yes' if numba_available() else 'no'}, load average {os.getloadavg()}")

    # 1. decoder only -------------------------------------------------------------------
    bits = torch.randint(0, 2, (B, k)).float()
    llr = channel_llr(enc, qam, channel, bits, args.snr_db)
    times = time_interleaved({name: (lambda d=d: d(llr)) for name, d in decoders.items()}, args.repeats)
    dec_rows = {name: summary(t, B * k) for name, t in times.items()}
    ref = dec_rows["sionna boxplus-phi"]["median"]
    for r in dec_rows.values():
        r["ratio"] = r["median"] / ref
        r["codewords_per_s"] = r["median"] / k
    print_table("decoder only (info bits/s)", dec_rows, "bit/s")

    # 2. full chain through DigitalLink -------------------------------------------------
    links = {"chain sionna bp": DigitalLink(channel, code=LDPC5G(k, n, num_iter=args.num_iter), modulation="16qam")}
    if numba_available() or not args.skip_torch_backend:
        links["chain fast layered"] = DigitalLink(
            channel, code=LDPC5G(k, n, num_iter=args.num_iter, decoder="layered"), modulation="16qam")
    times = time_interleaved({name: (lambda l=l: l(bits, snr_db=args.snr_db)) for name, l in links.items()},
                             args.repeats)
    chain_rows = {name: summary(t, B * k) for name, t in times.items()}
    ref = chain_rows["chain sionna bp"]["median"]
    for r in chain_rows.values():
        r["ratio"] = r["median"] / ref
    print_table("DigitalLink encode+map+AWGN+demap+decode (info bits/s)", chain_rows, "bit/s")

    # 3. BLER, paired -------------------------------------------------------------------
    bler = []
    if args.bler_blocks < 0:
        raise SystemExit(f"--bler-blocks must be >= 0, got {args.bler_blocks}")
    snrs = [float(s) for s in args.bler_snrs.split(",") if s.strip()] if args.bler_blocks else []
    if snrs:
        fast = LDPC5GFastDecoder(enc, num_iter=args.num_iter)
        sion = decoders["sionna boxplus-phi"]
        print(f"\nBLER, {args.bler_blocks} blocks per point (same blocks for both decoders)")
        print(f"{'Es/N0 dB':>8s} {'sionna':>8s} {'95% CI':>17s} {'fast':>8s} {'95% CI':>17s} "
              f"{'only_s':>7s} {'only_f':>7s}")
        for snr in snrs:
            es = ef = os_ = of = 0
            done = 0
            while done < args.bler_blocks:
                m = min(B, args.bler_blocks - done)
                u = torch.randint(0, 2, (m, k)).float()
                l = channel_llr(enc, qam, channel, u, snr)
                e_s = (sion(l) != u).any(1)
                e_f = (fast(l) != u).any(1)
                es += int(e_s.sum()); ef += int(e_f.sum())
                os_ += int((e_s & ~e_f).sum()); of += int((e_f & ~e_s).sum())
                done += m
            row = {"snr_db": snr, "blocks": done, "bler_sionna": es / done, "bler_fast": ef / done,
                   "ci_sionna": wilson(es, done), "ci_fast": wilson(ef, done),
                   "only_sionna_wrong": os_, "only_fast_wrong": of}
            bler.append(row)
            print(f"{snr:8.2f} {row['bler_sionna']:8.4f} [{row['ci_sionna'][0]:.4f},{row['ci_sionna'][1]:.4f}] "
                  f"{row['bler_fast']:8.4f} [{row['ci_fast'][0]:.4f},{row['ci_fast'][1]:.4f}] {os_:7d} {of:7d}")

    res = {
        "benchmark": "bench_ldpc", "k": k, "n": n, "num_iter": args.num_iter, "batch": B,
        "repeats": args.repeats, "modulation": "16qam", "channel": "awgn", "snr_db": args.snr_db,
        "threads": threads, "numba": numba_available(),
        "decoder_only_info_bits_per_s": dec_rows, "chain_info_bits_per_s": chain_rows, "bler": bler,
    }
    write_benchmark(args.out, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
