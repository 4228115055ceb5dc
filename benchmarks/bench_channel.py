"""Channel application throughput against the machine's memory-copy roofline.

Measured, in complex symbols/s, on CPU (and CUDA when available):

* ``copy roofline``: ``torch.clone`` of a complex64 tensor of the same size. Bytes moved:
  8 B read + 8 B written = **16 B per symbol**; its symbols/s is the roofline (any channel must
  at least read ``x`` and write ``y``).
* ``copy into preallocated``: ``dst.copy_(x)`` into an output allocated once: the same bytes
  without the page faults of a fresh 32 MiB output (column ``/prealloc``). On this VM the two
  differ by up to 6x depending on whether the output's pages fault on first touch; every channel row
  allocates its output, like ``clone``, so ``/roofline`` is the like-for-like ratio and
  ``/prealloc`` the pure-bandwidth one. The column ``faults`` is the median count of minor page
  faults per call (``getrusage``): about 8200 per fresh 32 MiB output with 4 KiB pages, 0 when the
  allocator hands back recycled memory. Which of the two a run gets is up to glibc's ``malloc``
  (a 32 MiB block sits at its largest dynamic mmap threshold), not up to the channel.
* ``randn only``: ``Tensor.normal_`` of the ``2`` float32 normals per symbol into a preallocated
  buffer: the ceiling of any channel built on ``torch.randn``.
* ``awgn``: :class:`phy.channels.AWGN` ``(x, no)`` with one ``N0`` per example ``[B, 1]``.
* ``rayleigh``: :class:`phy.channels.Rayleigh` (i.i.d. per symbol) returning ``y`` and ``h``.
* ``rayleigh+zf`` / ``rayleigh+mmse``: the channel followed by perfect-CSI equalisation, i.e. what a
  link does: ``Rayleigh.forward_equalized`` (one fused pass with the numba backend) and, for the
  torch backend, ``equalize(*Rayleigh(x, no))``.

Each channel row runs with ``backend="torch"`` and (CPU) ``backend="numba"`` (the default on CPU:
:mod:`phy.channel_kernels`). Each row: median [min..max] over the repeats, and the ratio of medians
to the copy roofline, all measured in one run. Writes ``benchmarks/results/bench_channel.json``.

Run: ``python benchmarks/bench_channel.py`` (``--symbols 4194304 --repeats 7 --threads 2``).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from phy import channel_kernels  # noqa: E402
from phy.channels import AWGN, Rayleigh  # noqa: E402
from phy.equalization import equalize  # noqa: E402
from experiments.results import write_benchmark  # noqa: E402


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _minor_faults() -> int:
    """Minor page faults of this process so far (first touches of fresh pages); 0 where unknown."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def measure(cases, repeats, device):
    """Times and minor page faults of every case, round-robin over the repeats (machine load hits all
    cases alike)."""
    for fn in cases.values():
        fn()
    _sync(device)
    times = {name: [] for name in cases}
    faults = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            f0 = _minor_faults()
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
            faults[name].append(_minor_faults() - f0)
    return times, faults


def run_device(device, batch, n, repeats):
    x = (torch.randn(batch, n, 2, device=device) * 0.7071).view(torch.complex64).squeeze(-1).contiguous()
    no = torch.full((batch, 1), 0.1, device=device)
    sym = batch * n
    buf = torch.empty(batch, n, 2, device=device)
    gen = AWGN(seed=0).generator(device)
    backends = ["torch"] + (["numba"] if device.type == "cpu" and channel_kernels.available() else [])

    dst = torch.empty_like(x)
    cases = {"copy roofline": lambda: x.clone(), "copy into preallocated": lambda: dst.copy_(x),
             "randn only": lambda: buf.normal_(generator=gen)}
    for be in backends:
        awgn, ray = AWGN(seed=0, backend=be), Rayleigh(seed=0, backend=be)
        cases[f"awgn [{be}]"] = lambda awgn=awgn: awgn(x, no)
        cases[f"rayleigh (y, h) [{be}]"] = lambda ray=ray: ray(x, no)
        for eq in ("zf", "mmse"):
            if be == "torch":
                cases[f"rayleigh+{eq} [torch]"] = lambda ray=ray, eq=eq: equalize(*_yhno(ray(x, no)), eq)
            else:
                cases[f"rayleigh+{eq} [{be}, fused]"] = lambda ray=ray, eq=eq: ray.forward_equalized(x, no, eq)
    rows = {}
    times, faults = measure(cases, repeats, device)
    for name, t in times.items():
        rates = [sym / s for s in t]
        rows[name] = {"median": statistics.median(rates), "min": min(rates), "max": max(rates), "times_s": t,
                      "minor_faults_per_call": statistics.median(faults[name])}
    roof = rows["copy roofline"]["median"]
    warm = rows["copy into preallocated"]["median"]
    for r in rows.values():
        r["ratio_to_roofline"] = r["median"] / roof
        r["ratio_to_preallocated_copy"] = r["median"] / warm
    rows["copy roofline"]["bytes_per_symbol"] = 16
    rows["copy roofline"]["GB_per_s"] = roof * 16 / 1e9
    return rows


def _yhno(out):
    return out.y, out.h, out.no


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--symbols", type=int, default=1 << 22, help="complex symbols per call (default 4M)")
    ap.add_argument("--n", type=int, default=4096, help="symbols per example (batch = symbols / n)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--devices", type=str, default="cpu,cuda")
    ap.add_argument("--out", type=str, default=str(Path(__file__).parent / "results" / "bench_channel.json"))
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    batch = max(1, args.symbols // args.n)
    res = {"benchmark": "bench_channel", "symbols": batch * args.n, "batch": batch, "n": args.n,
           "repeats": args.repeats, "threads": torch.get_num_threads(),
           "note": "roofline = torch.clone of complex64: 16 bytes moved per symbol (8 read + 8 written)",
           "devices": {}}
    for dev in [d.strip() for d in args.devices.split(",") if d.strip()]:
        if dev.startswith("cuda") and not torch.cuda.is_available():
            print(f"{dev}: not available, skipped")
            continue
        device = torch.device(dev)
        rows = run_device(device, batch, args.n, args.repeats)
        res["devices"][dev] = rows
        print(f"\n{dev}: {batch * args.n} complex64 symbols, threads {torch.get_num_threads()}, "
              f"copy {rows['copy roofline']['GB_per_s']:.2f} GB/s (16 B/symbol)")
        print(f"{'':28s} {'Msym/s':>9s} {'[min .. max]':>20s} {'/roofline':>10s} {'/prealloc':>10s} {'faults':>7s}")
        for name, r in rows.items():
            print(f"{name:28s} {r['median'] / 1e6:9.1f} [{r['min'] / 1e6:8.1f} .. {r['max'] / 1e6:8.1f}] "
                  f"{r['ratio_to_roofline']:10.2f} {r['ratio_to_preallocated_copy']:10.2f} "
                  f"{r['minor_faults_per_call']:7.0f}")
    write_benchmark(args.out, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
