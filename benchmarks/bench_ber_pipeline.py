"""Benchmark (not a test): Monte Carlo engine overhead on the 5G LDPC + 16-QAM + AWGN chain.

Times, in one process and alternating run by run, the same chain two ways:

* **engine**: ``experiments.commands.ber.build_trial("ldpc5g", "16qam", AWGN)`` (``phy.link.digital.DigitalLink`` with
  ``phy.fec.codes.LDPC5G`` and ``phy.mapping.modulation.QAM``, APP demapping, 20 BP iterations) driven by
  ``phy.sim.montecarlo.simulate_ber`` with a fixed bit budget (no error target, no early stop);
* **sionna**: the chain hand-written with Sionna blocks (``BinarySource``, ``LDPC5GEncoder``,
  ``Mapper``, ``AWGN``, ``Demapper("app")``, ``LDPC5GDecoder(num_iter=20)``) and a plain loop
  counting bit and block errors.

Both simulate ``--batches`` batches of ``--batch-size`` blocks of k=512 information bits at the same
Eb/N0. Prints information bits per second for both (median, [min..max] over ``--repeats`` runs)
and the ratio engine/sionna (target: engine overhead <= 5 %, i.e. ratio >= 0.95), and writes the
numbers as JSON to ``benchmarks/results/bench_ber_pipeline.json`` (or ``--out``).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_ber_pipeline.py --repeats 5 --batches 8 --batch-size 256
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # run from a checkout without installing

K, N, BPS, NUM_ITER = 512, 1024, 4, 20


def engine_runner(args):
    from experiments.commands.ber import build_trial
    from phy.channel.flat import AWGN
    from phy.sim.montecarlo import simulate_ber

    trial, coderate, bps = build_trial("ldpc5g", "16qam", AWGN(seed=0), k=K, n=N, ldpc_iter=NUM_ITER,
                                       demapping="app", device=args.device)
    budget = args.batches * args.batch_size * K

    def run(rep):
        res = simulate_ber(trial, [args.ebno_db], snr_type="ebno", coderate=coderate, bits_per_symbol=bps,
                           batch_size=args.batch_size, target_errors=None, max_bits=budget, seed=rep,
                           scheme="ldpc5g", channel="awgn", early_stop=False, progress=False)[0]
        return res.bits, res.bit_errors, res.block_errors

    return run


def sionna_runner(args):
    import torch
    from sionna.phy import config
    from sionna.phy.channel import AWGN
    from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPC5GEncoder
    from sionna.phy.mapping import BinarySource, Demapper, Mapper
    from sionna.phy.utils import ebnodb2no

    from phy.mapping.modulation import sionna_device

    dev = sionna_device(args.device)
    config.seed = 0
    source = BinarySource(device=dev)
    enc = LDPC5GEncoder(K, N, device=dev)
    dec = LDPC5GDecoder(enc, num_iter=NUM_ITER, hard_out=True, device=dev)
    mapper = Mapper("qam", BPS, device=dev)
    demapper = Demapper("app", "qam", BPS, device=dev)
    channel = AWGN(device=dev)
    no = ebnodb2no(args.ebno_db, BPS, K / N)

    def run(rep):
        bit_err = blk_err = bits = 0
        with torch.no_grad():
            for _ in range(args.batches):
                b = source([args.batch_size, K])
                y = channel(mapper(enc(b)), no)
                b_hat = dec(demapper(y, no))
                err = b != b_hat
                counts = torch.stack([err.sum(), err.any(-1).sum()]).tolist()
                bit_err += int(counts[0])
                blk_err += int(counts[1])
                bits += err.numel()
        return bits, bit_err, blk_err

    return run


def _stats(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "all": values}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="timed runs per pipeline (alternating)")
    p.add_argument("--batches", type=int, default=8, help="batches per run")
    p.add_argument("--batch-size", type=int, default=256, help="blocks (of 512 info bits) per batch")
    p.add_argument("--ebno-db", type=float, default=2.0, help="Eb/N0 [dB] of the simulated point")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: unchanged)")
    p.add_argument("--out", default=os.path.join(HERE, "results", "bench_ber_pipeline.json"))
    args = p.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    runners = {"engine": engine_runner(args), "sionna": sionna_runner(args)}
    for run in runners.values():  # warm-up (block construction, caches)
        run(-1)

    times = {name: [] for name in runners}
    cpu_times = {name: [] for name in runners}
    rates = {name: [] for name in runners}
    cpu_rates = {name: [] for name in runners}
    errors = {name: [] for name in runners}
    for rep in range(args.repeats):
        order = list(runners) if rep % 2 == 0 else list(runners)[::-1]
        for name in order:
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            t0, c0 = time.perf_counter(), time.process_time()
            bits, be, ble = runners[name](rep)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            times[name].append(dt)
            cpu_times[name].append(dc)
            rates[name].append(bits / dt)
            cpu_rates[name].append(bits / dc)
            errors[name].append({"bits": bits, "bit_errors": be, "block_errors": ble})

    summary = {name: _stats(rates[name]) for name in runners}
    cpu_summary = {name: _stats(cpu_rates[name]) for name in runners}
    ratio = summary["engine"]["median"] / summary["sionna"]["median"]
    cpu_ratio = cpu_summary["engine"]["median"] / cpu_summary["sionna"]["median"]
    paired = [e / s for e, s in zip(rates["engine"], rates["sionna"])]
    for name in runners:
        s = summary[name]
        ber = sum(e["bit_errors"] for e in errors[name]) / sum(e["bits"] for e in errors[name])
        c = cpu_summary[name]
        print(f"{name:>7}: {s['median'] / 1e3:9.1f} kbit/s  [{s['min'] / 1e3:.1f} .. {s['max'] / 1e3:.1f}]  "
              f"per CPU-second {c['median'] / 1e3:.1f} kbit/s [{c['min'] / 1e3:.1f} .. {c['max'] / 1e3:.1f}]  "
              f"(BER {ber:.3g})")
    print(f"ratio engine/sionna (medians): {ratio:.3f}  -> engine overhead {100 * (1 - ratio):+.1f} %  "
          f"(paired ratios median {statistics.median(paired):.3f}, [{min(paired):.3f} .. {max(paired):.3f}]); "
          f"per CPU-second: {cpu_ratio:.3f}")

    from experiments.core.results import host_info, package_versions, write_json_atomic

    report = {
        "benchmark": "bench_ber_pipeline",
        "pipeline": f"LDPC5G(k={K}, n={N}) + 16-QAM + AWGN + APP demapping + {NUM_ITER}-iteration BP",
        "config": vars(args),
        "torch_threads": torch.get_num_threads(),
        "info_bits_per_s": summary,
        "seconds_per_run": times,
        "cpu_seconds_per_run": cpu_times,
        "info_bits_per_cpu_s": cpu_summary,
        "ratio_engine_over_sionna_cpu": cpu_ratio,
        "errors": errors,
        "ratio_engine_over_sionna": ratio,
        "paired_ratios": paired,
        "engine_overhead_percent": 100 * (1 - ratio),
        "versions": package_versions(),
        "host": host_info(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    write_json_atomic(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
