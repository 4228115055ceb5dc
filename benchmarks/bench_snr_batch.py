"""An SNR sweep as one batched pass (SNR as a tensor dimension) vs one pass per SNR point.

For ``S`` SNR points (default 9: -5..35 dB step 5 for the analog link, a waterfall range for the
digital chains) and a batch of ``B`` examples:

* ``loop``: ``S`` calls ``link(x, snr_db=s)`` with ``x`` of shape ``[B, ...]``;
* ``batched``: one call ``link(x.expand(S, B, ...), snr_db=snr[S, 1], batch_dims=2)``.

Links: :class:`phy.link.analog.AnalogLink` (AWGN and i.i.d. Rayleigh + ZF), and
:class:`phy.link.digital.DigitalLink` uncoded 16-QAM and LDPC(512,1024) 16-QAM with the fast layered
decoder (``LDPC5G(decoder="layered")``) and with Sionna's decoder. Each row prints median
[min..max] wall time of a whole sweep over the repeats and the speed-up ``loop / batched``
(ratio of medians). The batched pass draws the same distribution but not the same random numbers
as the loop. Writes ``benchmarks/results/bench_snr_batch.json``.

Run: ``python benchmarks/bench_snr_batch.py`` (``--help``).
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

from phy.channel.flat import AWGN, Rayleigh  # noqa: E402
from phy.fec.codes import LDPC5G  # noqa: E402
from phy.link.analog import AnalogLink  # noqa: E402
from phy.link.digital import DigitalLink
from experiments.core.results import write_benchmark  # noqa: E402


def compare(link, x, snrs, repeats):
    """Times of the per-point loop and of the batched pass; returns a result row."""
    S = len(snrs)
    snr_t = torch.tensor(snrs, dtype=torch.float32).reshape(S, 1)
    xb = x.unsqueeze(0).expand(S, *x.shape)

    def loop():
        return [link(x, snr_db=float(s)) for s in snrs]

    def batched():
        return link(xb, snr_db=snr_t, batch_dims=2)

    # interleave the two so that machine load hits both alike
    loop(), batched()
    t_loop, t_batch = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        loop()
        t_loop.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        batched()
        t_batch.append(time.perf_counter() - t0)
    out = batched()
    ml, mb = statistics.median(t_loop), statistics.median(t_batch)
    return {"loop_s": {"median": ml, "min": min(t_loop), "max": max(t_loop), "times": t_loop},
            "batched_s": {"median": mb, "min": min(t_batch), "max": max(t_batch), "times": t_batch},
            "speedup": ml / mb, "batched_output_shape": list(out.x_hat.shape)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--analog-batches", type=str, default="16,512")
    ap.add_argument("--analog-dim", type=int, default=768, help="real features per example")
    ap.add_argument("--digital-batch", type=int, default=32, help="examples (codewords) per SNR point")
    ap.add_argument("--skip-sionna", action="store_true", help="skip the Sionna-decoder LDPC chain (slow)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=str, default=str(Path(__file__).parent / "results" / "bench_snr_batch.json"))
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    analog_snrs = [float(s) for s in range(-5, 36, 5)]          # 9 points
    digital_snrs = [4.0 + 0.5 * i for i in range(9)]            # 9 points, 16-QAM rate-1/2 waterfall

    rows = {}
    for B in [int(b) for b in args.analog_batches.split(",") if b]:
        feats = torch.randn(B, args.analog_dim)
        for ch_name, ch in (("awgn", AWGN(seed=1)), ("rayleigh+zf", Rayleigh(seed=1))):
            rows[f"analog {ch_name} B={B}"] = compare(AnalogLink(ch), feats, analog_snrs, args.repeats)
    Bd = args.digital_batch
    bits = torch.randint(0, 2, (Bd, 512)).float()
    rows[f"uncoded 16qam B={Bd}x512b"] = compare(DigitalLink(AWGN(seed=2), code="none", modulation="16qam",
                                                            code_kwargs={"k": 1}), bits, digital_snrs, args.repeats)
    rows[f"ldpc fast 16qam B={Bd}"] = compare(
        DigitalLink(AWGN(seed=3), code=LDPC5G(512, 1024, decoder="layered"), modulation="16qam"),
        bits, digital_snrs, args.repeats)
    if not args.skip_sionna:
        rows[f"ldpc sionna 16qam B={Bd}"] = compare(
            DigitalLink(AWGN(seed=4), code=LDPC5G(512, 1024), modulation="16qam"),
            bits, digital_snrs, max(1, min(args.repeats, 3)))

    print(f"S = 9 SNR points, threads {torch.get_num_threads()}, load average {os.getloadavg()}")
    print(f"{'':34s} {'loop s (median [min..max])':>34s} {'batched s (median [min..max])':>34s} {'speed-up':>9s}")
    for name, r in rows.items():
        lo, ba = r["loop_s"], r["batched_s"]
        print(f"{name:34s} {lo['median']:9.4f} [{lo['min']:9.4f}..{lo['max']:9.4f}]   "
              f"{ba['median']:9.4f} [{ba['min']:9.4f}..{ba['max']:9.4f}]   {r['speedup']:8.2f}")
    res = {"benchmark": "bench_snr_batch", "num_snr_points": 9, "analog_snrs_db": analog_snrs,
           "digital_snrs_db": digital_snrs, "repeats": args.repeats, "threads": torch.get_num_threads(),
           "rows": rows}
    write_benchmark(args.out, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
