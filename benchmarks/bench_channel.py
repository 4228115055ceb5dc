"""Channel application throughput against the machine's memory-copy roofline.

Measured, in complex symbols/s, on CPU (and CUDA when available):

* ``copy roofline``: ``torch.clone`` of a complex64 tensor of the same size. Bytes moved:
  8 B read + 8 B written = **16 B per symbol**; its symbols/s is the roofline (any channel must
  at least read ``x`` and write ``y``).
* ``copy into preallocated``: ``dst.copy_(x)`` into an output allocated once (column ``/prealloc``).
* ``randn only``: ``Tensor.normal_`` of the ``2`` float32 normals per symbol into a preallocated
  buffer: the ceiling of any channel built on ``torch.randn``.
* ``normals 1/sym`` and ``normals 2/sym`` (numba): :func:`phy.channel.kernels.complex_normal` drawing one
  or two complex normals per symbol and storing them: the generator's own cost, i.e. the ceiling of
  AWGN (one draw) and of a per-symbol Rayleigh channel (``h`` and ``n``: two draws).
* ``awgn``: :class:`phy.channel.flat.AWGN` ``(x, no)`` with one ``N0`` per example ``[B, 1]``.
* ``rayleigh``: :class:`phy.channel.flat.Rayleigh` (i.i.d. per symbol) returning ``y`` and ``h``.
* ``rayleigh+zf`` / ``rayleigh+mmse``: the channel followed by perfect-CSI equalisation, i.e. what a
  link does: ``Rayleigh.forward_equalized`` (one fused pass with the numba backend) and, for the
  torch backend, ``equalize(*Rayleigh(x, no))``.

Allocator regimes (CPU, glibc): every row allocates its output, like ``clone``. Whether a large
allocation gets fresh pages (a minor page fault on every first 4 KiB touch) or recycled memory is up
to glibc's ``malloc``, and on a VM a fault can cost more than copying the page. The script fixes it
with ``mallopt`` and measures every row in each regime (``--regimes``):

* ``recycled``: no ``mmap`` and no trimming, so freed blocks are reused: 0 faults after warm-up. The
  roofline is then the memory bandwidth, and the ratios compare arithmetic and traffic.
* ``fresh``: every allocation of 1 MiB or more is a new ``mmap``: about 8200 faults per 32 MiB; the
  roofline is then the page-fault rate, and every row pays per byte it allocates.

The column ``faults`` is the median count of minor page faults per call (``getrusage``) and shows
that each row ran in its regime. Each row: median [min..max] over the repeats, and the ratio of
medians to the copy roofline of the same regime, all measured in one run, the cases alternating.
Writes ``benchmarks/results/bench_channel.json``.

Each channel row runs with ``backend="torch"`` and (CPU) ``backend="numba"`` (the default on CPU:
:mod:`phy.channel.kernels`).

Run: ``python benchmarks/bench_channel.py`` (``--symbols 4194304 --repeats 7 --threads 2``).
"""
from __future__ import annotations

import argparse
import ctypes
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from phy.channel import kernels as channel_kernels  # noqa: E402
from phy.channel.flat import AWGN, Rayleigh  # noqa: E402
from phy.mimo.equalization import equalize  # noqa: E402
from experiments.core.results import write_benchmark  # noqa: E402


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


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4  # glibc <malloc.h>
REGIMES = ("fresh", "recycled")  # in this order: once the heap has grown, glibc serves large blocks from it


def _mallopt():
    """glibc's ``mallopt``, or ``None`` (another C library: the regime cannot be set)."""
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc.mallopt if hasattr(libc, "gnu_get_libc_version") else None


def set_malloc_regime(regime: str) -> bool:
    """Make large allocations of this process ``"recycled"`` (no mmap, no trimming: freed blocks are
    reused) or ``"fresh"`` (a new mmap from 1 MiB up: pages fault on first touch). ``False`` when
    the C library is not glibc (nothing set)."""
    if regime not in REGIMES:
        raise ValueError(f"regime must be one of {REGIMES}, got {regime!r}")
    mallopt = _mallopt()
    if mallopt is None:
        return False
    if regime == "recycled":
        ok = mallopt(_M_MMAP_MAX, 0) and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)  # C int
    else:
        ok = mallopt(_M_MMAP_MAX, 1 << 16) and mallopt(_M_MMAP_THRESHOLD, 1 << 20)
    return bool(ok)


def measure(cases, repeats, device, warmup=1):
    """Times and minor page faults of every case, round-robin over the repeats (machine load hits all
    cases alike), after ``warmup`` rounds (compilation; the heap reaching its working size)."""
    for _ in range(warmup):
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


def run_device(device, batch, n, repeats, regime=None):
    """Rows of every case on ``device``; on CPU in malloc ``regime`` (see :func:`set_malloc_regime`)."""
    if regime is not None:
        set_malloc_regime(regime)
    x = (torch.randn(batch, n, 2, device=device) * 0.7071).view(torch.complex64).squeeze(-1).contiguous()
    no = torch.full((batch, 1), 0.1, device=device)
    sym = batch * n
    buf = torch.empty(batch, n, 2, device=device)
    gen = AWGN(seed=0).generator(device)
    backends = ["torch"] + (["numba"] if device.type == "cpu" and channel_kernels.available() else [])

    dst = torch.empty_like(x)
    cases = {"copy roofline": lambda: x.clone(), "copy into preallocated": lambda: dst.copy_(x),
             "randn only": lambda: buf.normal_(generator=gen)}
    if "numba" in backends:
        cases["normals 1/sym [numba]"] = lambda: channel_kernels.complex_normal((batch, n), key=1)
        cases["normals 2/sym [numba]"] = lambda: channel_kernels.complex_normal((batch, 2 * n), key=2)
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
    times, faults = measure(cases, repeats, device, warmup=3 if regime == "recycled" else 1)
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
    ap.add_argument("--regimes", type=str, default=",".join(REGIMES),
                    help="CPU malloc regimes to measure, comma-separated: recycled, fresh (glibc only)")
    ap.add_argument("--out", type=str, default=str(Path(__file__).parent / "results" / "bench_channel.json"))
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    asked = {r.strip() for r in args.regimes.split(",") if r.strip()}
    if not asked or asked - set(REGIMES):
        ap.error(f"--regimes must be a comma-separated subset of {list(REGIMES)}, got {args.regimes!r}")
    batch = max(1, args.symbols // args.n)
    res = {"benchmark": "bench_channel", "symbols": batch * args.n, "batch": batch, "n": args.n,
           "repeats": args.repeats, "threads": torch.get_num_threads(),
           "note": "roofline = torch.clone of complex64: 16 bytes moved per symbol (8 read + 8 written); "
                   "devices[cpu][regime]: glibc malloc set to recycle freed memory or to map fresh pages",
           "devices": {}}
    for dev in [d.strip() for d in args.devices.split(",") if d.strip()]:
        if dev.startswith("cuda") and not torch.cuda.is_available():
            print(f"{dev}: not available, skipped")
            continue
        device = torch.device(dev)
        regimes = [r for r in REGIMES if r in asked] if device.type == "cpu" and _mallopt() is not None else [None]
        res["devices"][dev] = {}
        for regime in regimes:
            rows = run_device(device, batch, args.n, args.repeats, regime)
            res["devices"][dev][regime or "default"] = rows
            print(f"\n{dev}{f', {regime} memory' if regime else ''}: {batch * args.n} complex64 symbols, "
                  f"threads {torch.get_num_threads()}, copy {rows['copy roofline']['GB_per_s']:.2f} GB/s (16 B/symbol)")
            print(f"{'':28s} {'Msym/s':>9s} {'[min .. max]':>20s} {'/roofline':>10s} {'/prealloc':>10s} "
                  f"{'faults':>7s}")
            for name, r in rows.items():
                print(f"{name:28s} {r['median'] / 1e6:9.1f} [{r['min'] / 1e6:8.1f} .. {r['max'] / 1e6:8.1f}] "
                      f"{r['ratio_to_roofline']:10.2f} {r['ratio_to_preallocated_copy']:10.2f} "
                      f"{r['minor_faults_per_call']:7.0f}")
    write_benchmark(args.out, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
