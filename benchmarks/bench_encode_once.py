"""Goal: a semantic SNR sweep encodes each input once.

With the tiny VLF-MSC models of ``tests/tiny_models.py`` (BLIP-2 ViT + Q-Former + OPT, SD U-Net +
VAE; built from configs, no download), an S-point sweep (:meth:`semantic.vlf_msc.VLFMSC.sweep`)
must cost at most

    1.1 x [ one-point run  +  (S - 1) x (channel + decoder time of one point) ]

i.e. no per-point re-encoding and no hidden per-point overhead. Per repeat (the caches are cleared
before every timed sweep) we time:

* ``t_encode``: :meth:`VLFMSC.encode` (BLIP-2 ViT + Q-Former) of the batch, cache off;
* ``t_point``: transmit + decode (OPT captions + SD images) of one SNR point from a given VLF,
  averaged over the S SNRs;
* ``t_1``: ``sweep(images, [snr_0])`` (encode + one point);
* ``t_S``: ``sweep(images, snrs)`` with S points;

and report ``ratio = t_S / (t_1 + (S - 1) * t_point)`` (median over repeats; goal <= 1.1), the
number of encoder calls during the S-point sweep (must be 1), and the cost of the naive loop that
re-encodes at every point (``S * t_1``) for comparison. Prints a table and writes JSON.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_encode_once.py --out benchmarks/results/bench_encode_once.json``
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import semantic  # noqa: E402,F401  (torchvision shim first)
import torch  # noqa: E402

from experiments.core.results import write_json_atomic  # noqa: E402
from semantic.vlf_msc import VLFMSC, VLFMSCConfig  # noqa: E402


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def build_system(workdir: Path, steps: int, size: int, max_new_tokens: int, channel: str) -> VLFMSC:
    from tiny_models import save_tiny_blip2, save_tiny_sd

    blip = save_tiny_blip2(workdir / "blip2")
    sd = save_tiny_sd(workdir / "sd")
    cfg = VLFMSCConfig(blip2_checkpoint=str(blip), sd_checkpoint=str(sd), device="cpu",
                       num_inference_steps=steps, image_size=size, max_new_tokens=max_new_tokens, channel=channel)
    return VLFMSC.from_config(cfg)


def run(args) -> dict:
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    snrs = [float(s) for s in torch.linspace(args.snr_min, args.snr_max, args.points).tolist()]
    g = torch.Generator().manual_seed(1)
    images = torch.rand(args.batch, 3, 40, 40, generator=g)
    with tempfile.TemporaryDirectory() as d:
        system = build_system(Path(d), args.steps, args.image_size, args.max_new_tokens, args.channel)
        calls = []
        original = system.encoder.encode

        def counting(imgs):
            calls.append(len(imgs))
            return original(imgs)

        system.encoder.encode = counting
        # warm-up (first-call allocations, tokenizer caches)
        system._cache.clear()
        system.sweep(images, snrs[:2])
        reps = []
        for r in range(args.repeats):
            system._cache.clear()
            t_enc, vlf = _timed(lambda: system.encode(images, use_cache=False))
            t_pts = [_timed(lambda s=s, i=i: system._one_point(vlf, s, 1000 + i))[0] for i, s in enumerate(snrs)]
            t_point = sum(t_pts) / len(t_pts)
            system._cache.clear()
            t_1, _ = _timed(lambda: system.sweep(images, snrs[:1]))
            system._cache.clear()
            calls.clear()
            t_s, outs = _timed(lambda: system.sweep(images, snrs))
            enc_calls = len(calls)
            assert len(outs) == len(snrs)
            bound = t_1 + (len(snrs) - 1) * t_point
            reps.append({"t_encode": t_enc, "t_point": t_point, "t_1": t_1, "t_S": t_s, "bound": bound,
                         "ratio": t_s / bound, "encoder_calls_in_sweep": enc_calls,
                         "naive_reencode": len(snrs) * t_1})
            print(f"  repeat {r + 1}/{args.repeats}: t_S {t_s:.3f}s, bound {bound:.3f}s, ratio {t_s / bound:.3f}, "
                  f"encoder calls {enc_calls}", flush=True)
    med = {k: statistics.median(rep[k] for rep in reps) for k in reps[0]}
    return {
        "benchmark": "bench_encode_once",
        "S": len(snrs), "snr_db": snrs, "batch": args.batch, "ddim_steps": args.steps,
        "image_size": args.image_size, "max_new_tokens": args.max_new_tokens, "channel": args.channel,
        "repeats": args.repeats, "torch_threads": torch.get_num_threads(),
        "median": med,
        "ratio_of_medians": med["t_S"] / (med["t_1"] + (len(snrs) - 1) * med["t_point"]),
        "goal_ratio_max": 1.1,
        "passes": med["ratio"] <= 1.1 and all(rep["encoder_calls_in_sweep"] == 1 for rep in reps),
        "encode_fraction_of_one_point": med["t_encode"] / med["t_1"],
        "speedup_vs_naive_reencode": med["naive_reencode"] / med["t_S"],
        "per_repeat": reps,
        "host": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
                 "cpu_count": os.cpu_count(), "loadavg": list(os.getloadavg())},
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--points", type=int, default=9, help="S, SNR points in the sweep (default 9)")
    p.add_argument("--snr-min", type=float, default=-10.0)
    p.add_argument("--snr-max", type=float, default=30.0)
    p.add_argument("--batch", type=int, default=4, help="images per batch (default 4)")
    p.add_argument("--steps", type=int, default=2, help="DDIM steps of the tiny SD decoder (default 2)")
    p.add_argument("--image-size", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int, default=4)
    p.add_argument("--channel", default="awgn")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1; 0 = leave as is)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_encode_once.json"))
    args = p.parse_args(argv)
    if args.points < 2:
        p.error("--points must be >= 2")
    res = run(args)
    m = res["median"]
    print()
    print(f"VLF-MSC tiny models, S = {res['S']} points, batch {res['batch']}, median of {res['repeats']} repeats")
    print(f"{'quantity':<44}{'seconds':>10}")
    for label, key in (("encode (BLIP-2 ViT + Q-Former)", "t_encode"), ("channel + decoders, one point", "t_point"),
                       ("1-point sweep (t_1)", "t_1"), (f"{res['S']}-point sweep (t_S)", "t_S"),
                       ("bound t_1 + (S-1) t_point", "bound"), ("naive: re-encode at every point", "naive_reencode")):
        print(f"{label:<44}{m[key]:>10.4f}")
    print(f"ratio t_S / bound (median of repeats): {m['ratio']:.3f}   (ratio of medians {res['ratio_of_medians']:.3f};"
          f" goal <= 1.1) -> {'PASS' if res['passes'] else 'FAIL'}")
    print(f"encoder calls per sweep: {[r['encoder_calls_in_sweep'] for r in res['per_repeat']]}; "
          f"speed-up vs re-encoding: {res['speedup_vs_naive_reencode']:.2f}x")
    write_json_atomic(args.out, res)
    print(f"wrote {args.out}")
    return 0 if res["passes"] else 1


if __name__ == "__main__":
    sys.exit(main())
