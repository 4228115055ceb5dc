"""CUDA correctness checks and throughput of the BER chain on one GPU (run by ``benchmarks/gpu_check.sh``).

Checks (each prints PASS/FAIL, exit status 1 if any fails):

1. channel: AWGN and Rayleigh + ZF on the device have the noise power they should (``E|y - x|^2 = N0``,
   ``E|x_hat - x|^2 |h|^2 = N0``) to 4 sigma;
2. decoder: :class:`phy.fec.ldpc_fast.LDPC5GFastDecoder` (torch backend on the device) gives the same
   posteriors as on CPU (numba), bit for bit, 20 iterations; with ``early_stop`` its decisions are
   those of the CPU decoder (whose per-codeword stop can only end earlier) on every block that both
   decode correctly, and no more block errors than 20 fixed iterations plus 3 sigma;
3. chain: :class:`phy.sim.trials.ScrambledZeroTrial` on the device (torch path): uncoded 16-QAM
   BER equals the closed form, and the LDPC BLER equals the CPU trial's within 4 sigma;
4. host synchronisations: the input checks (``check_finite``, ``check_no``, the links' bit check) and
   the AWGN channel run under ``torch.cuda.set_sync_debug_mode("error")`` (any synchronising call
   fails the check); the synchronisations of a whole ``DigitalLink`` call and of a
   ``ScrambledZeroTrial`` call are counted (``"warn"`` mode) and reported.

Throughput (median of ``--repeats``, alternating, CUDA synchronised around each call): decoder
alone (torch backend vs Sionna's flooding and layered decoders on the same device) and full chain
(ScrambledZeroTrial vs Sionna written by hand) at Es/N0 7.5 dB, in information bits/s. Writes
``benchmarks/results/gpu_check.json``. ``--device cpu`` runs the same code on the CPU (a smoke test).
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

FAILS = []


def check(name, ok, detail=""):
    print(f"{'PASS' if ok else 'FAIL'}  {name}  {detail}", flush=True)
    if not ok:
        FAILS.append(name)


def timed(fns, repeats, device):
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for fn in fns.values():
        fn()
    out = {n: [] for n in fns}
    for rep in range(repeats):
        for n in (list(fns) if rep % 2 == 0 else list(fns)[::-1]):
            sync()
            t0 = time.perf_counter()
            fns[n]()
            sync()
            out[n].append(time.perf_counter() - t0)
    return {n: statistics.median(t) for n, t in out.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=8192)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "gpu_check.json"))
    args = ap.parse_args(argv)
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing checked")
        return 2
    torch.manual_seed(0)
    import sionna.phy  # noqa: F401  (its first import reseeds torch's global generator: done before the checks draw)

    from experiments.core.results import write_benchmark

    result = {"benchmark": "gpu_check", "device": str(dev),
              "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None}
    k, nn = 512, 1024
    _check_channel(dev)
    enc_dev = _check_decoder(dev, k, nn)
    _check_chain(dev, k, nn)
    if dev.type == "cuda":  # 4. host synchronisations on the hot path
        result["host_syncs"] = sync_checks(dev, k, nn, check)
    _throughput(args, dev, enc_dev, k, nn, result)
    result["failed_checks"] = FAILS
    write_benchmark(args.out, result)
    return 1 if FAILS else 0


def _check_channel(dev) -> None:
    """1. the noise power of AWGN and of Rayleigh + ZF on the device."""
    from phy.channel.flat import AWGN, Rayleigh
    from phy.mapping.modulation import QAM
    from phy.mimo.equalization import Equalizer

    n, no = 1 << 20, 0.1
    x = QAM("16qam").modulate(torch.randint(0, 2, (4, n), device=dev).float())
    y = AWGN(seed=1)(x, no).y
    p = float((y - x).abs().square().mean())
    check("channel: AWGN noise power", abs(p - no) < 4 * no / math.sqrt(x.numel()), f"{p:.5f} vs {no}")
    xh, no_eff, _ = Equalizer("zf").transmit(Rayleigh(seed=2), x, no)
    z = (xh - x).abs().square() / torch.as_tensor(no_eff, device=dev).expand(x.shape)
    check("channel: Rayleigh + ZF, |x_hat - x|^2 |h|^2 / N0", abs(float(z.mean()) - 1) < 4 / math.sqrt(z.numel()),
          f"{float(z.mean()):.4f} vs 1")


def _check_decoder(dev, k, nn):
    """2. the decoder's torch backend on the device against the CPU (numba) kernel; returns the encoder on the
    device."""
    from sionna.phy.fec.ldpc import LDPC5GEncoder

    from phy.fec.ldpc_fast import LDPC5GFastDecoder
    from phy.mapping.modulation import QAM, sionna_device

    enc_cpu = LDPC5GEncoder(k, nn)
    enc_dev = LDPC5GEncoder(k, nn, device=sionna_device(dev))
    qam = QAM("16qam")
    B = 2048
    u = torch.randint(0, 2, (B, k)).float()
    xs = qam.modulate(enc_cpu(u))
    nos = 10 ** (-6.8 / 10)
    llr = qam.demodulate(xs + (nos / 2) ** 0.5 * torch.complex(torch.randn(xs.shape), torch.randn(xs.shape)), nos)
    kw = dict(num_iter=20, hard_out=False, return_infobits=False)
    a = LDPC5GFastDecoder(enc_cpu, **kw)(llr)
    b = LDPC5GFastDecoder(enc_dev, backend="torch", **kw)(llr.to(dev)).cpu()
    check("decoder: device posteriors == CPU (numba) posteriors", torch.equal(a, b),
          f"max |diff| {float((a - b).abs().max()):.3g}")
    fixed = (LDPC5GFastDecoder(enc_dev, num_iter=20)(llr.to(dev)).cpu() != u).any(1)
    es_dev = (LDPC5GFastDecoder(enc_dev, num_iter=20, early_stop=True)(llr.to(dev)).cpu() != u).any(1)
    es_cpu = (LDPC5GFastDecoder(enc_cpu, num_iter=20, early_stop=True)(llr) != u).any(1)
    extra = int((es_dev & ~fixed).sum())
    check("decoder: early stop (per batch on the device) no worse than 20 iterations",
          extra <= 3 * math.sqrt(max(1, int(fixed.sum()))), f"BLER fixed {float(fixed.float().mean()):.4f}, "
          f"early stop device {float(es_dev.float().mean()):.4f}, CPU per codeword {float(es_cpu.float().mean()):.4f}")
    return enc_dev


def _ldpc_trial(device, k, nn):
    """The early-stopping LDPC(nn, k) 16-QAM AWGN scrambled-zero trial on ``device``."""
    from phy.channel.flat import AWGN
    from phy.fec.codes import LDPC5G
    from phy.link.digital import DigitalLink
    from phy.sim.trials import ScrambledZeroTrial

    code = LDPC5G(k, nn, decoder="layered", decoder_kwargs={"early_stop": True})
    return ScrambledZeroTrial(DigitalLink(AWGN(seed=4), code=code, modulation="16qam"), k=k, device=device)


def _check_chain(dev, k, nn) -> None:
    """3. the scrambled-zero chain on the device: uncoded BER vs the closed form, LDPC BLER vs the CPU."""
    from phy.channel.flat import AWGN
    from phy.fec.codes import make_code
    from phy.link.digital import DigitalLink
    from phy.mapping.modulation import uncoded_ber
    from phy.sim.montecarlo import simulate_ber
    from phy.sim.trials import ScrambledZeroTrial

    t = ScrambledZeroTrial(DigitalLink(AWGN(seed=3), code=make_code("none", k=512), modulation="16qam"), k=512,
                           device=dev)
    r = simulate_ber(t, [8.0], batch_size=1024, target_errors=None, max_bits=2e6, progress=False)[0]
    pth = float(uncoded_ber(8.0, "16qam", "awgn"))
    check("chain: uncoded 16-QAM BER == closed form", abs(r.ber - pth) < 4 * math.sqrt(4 * pth / r.bits),
          f"{r.ber:.5f} vs {pth:.5f}")
    kw = dict(batch_size=1024, target_errors=None, max_bits=k * 8192, progress=False)
    rd = simulate_ber(_ldpc_trial(dev, k, nn), [6.5], **kw)[0]
    rc = simulate_ber(_ldpc_trial("cpu", k, nn), [6.5], **kw)[0]
    pp = (rd.block_errors + rc.block_errors) / (rd.blocks + rc.blocks)
    z = (rd.bler - rc.bler) / math.sqrt(max(pp * (1 - pp), 1e-12) * 2 / rd.blocks)
    check("chain: LDPC BLER on the device == CPU (4 sigma)", abs(z) < 4, f"{rd.bler:.4f} vs {rc.bler:.4f}")


def _throughput(args, dev, enc_dev, k, nn, result) -> None:
    """Decoder alone and full chain, information bits/s at Es/N0 7.5 dB, against Sionna on the same device."""
    from sionna.phy.channel import AWGN as SAWGN
    from sionna.phy.fec.ldpc import LDPC5GDecoder
    from sionna.phy.mapping import BinarySource, Demapper, Mapper

    from phy.fec.ldpc_fast import LDPC5GFastDecoder
    from phy.mapping.modulation import QAM, sionna_device

    qam = QAM("16qam")
    Bt = args.batch
    ut = torch.randint(0, 2, (Bt, k), device=dev).float()
    xt = qam.modulate(enc_dev(ut))
    not_ = 10 ** (-7.5 / 10)
    lt = qam.demodulate(xt + (not_ / 2) ** 0.5 * torch.complex(torch.randn(xt.shape, device=dev),
                                                               torch.randn(xt.shape, device=dev)), not_)
    decs = {"fast torch backend, 20 it": LDPC5GFastDecoder(enc_dev, num_iter=20, backend="torch"),
            "fast torch backend, early stop": LDPC5GFastDecoder(enc_dev, num_iter=20, backend="torch", early_stop=True),
            "sionna flooding boxplus-phi": LDPC5GDecoder(enc_dev, num_iter=20),
            "sionna layered offset-minsum": LDPC5GDecoder(enc_dev, num_iter=20, cn_schedule="layered",
                                                          cn_update="offset-minsum")}
    med = timed({nm: (lambda d=d: d(lt)) for nm, d in decs.items()}, args.repeats, dev)
    rates = {nm: Bt * k / s for nm, s in med.items()}
    print("\ndecoder alone, info bits/s:")
    for nm, v in rates.items():
        print(f"  {nm:34s} {v:12.4g}  ({v / rates['sionna flooding boxplus-phi']:.2f}x sionna flooding)")
    result["decoder_info_bits_per_s"] = rates

    sd = sionna_device(dev)
    src, mapper, demapper, sch = (BinarySource(device=sd), Mapper("qam", 4, device=sd),
                                  Demapper("app", "qam", 4, device=sd), SAWGN(device=sd))
    sdec = decs["sionna flooding boxplus-phi"]
    new = _ldpc_trial(dev, k, nn)
    new.reset(0)
    chains = {"new chain (scrambled zero)": lambda: new(Bt, 7.5),
              "sionna chain (flooding)": lambda: sdec(demapper(sch(mapper(enc_dev(src([Bt, k]))), not_), not_))}
    med = timed(chains, args.repeats, dev)
    crates = {nm: Bt * k / s for nm, s in med.items()}
    print("full chain, info bits/s:")
    for nm, v in crates.items():
        print(f"  {nm:34s} {v:12.4g}  ({v / crates['sionna chain (flooding)']:.2f}x sionna)")
    result["chain_info_bits_per_s"] = crates


def sync_checks(dev, k, n, check):
    """Input checks and the channel must not synchronise with the host (``set_sync_debug_mode("error")``
    raises on any synchronising call); the synchronisations of a whole link / trial call are counted
    (``"warn"`` mode) and reported, with the time of the checks per call."""
    import warnings

    from phy.channel.flat import AWGN
    from phy.fec.codes import LDPC5G
    from phy.utils.conventions import check_finite, check_no
    from phy.link.digital import DigitalLink, _check_bits
    from phy.mapping.modulation import QAM
    from phy.sim.trials import ScrambledZeroTrial

    x = QAM("16qam").modulate(torch.randint(0, 2, (1024, 1024), device=dev).float())
    no = torch.full((1024, 1), 0.1, device=dev)
    bits = torch.randint(0, 2, (1024, k), device=dev).float()
    ch = AWGN(seed=0)
    ch(x, no)
    strict = {"check_finite": lambda: check_finite(x, "x"), "check_no": lambda: check_no(no, "no", finite=True),
              "_check_bits": lambda: _check_bits(bits, 1), "AWGN channel": lambda: ch(x, no)}
    out = {}
    for name, fn in strict.items():
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            fn()
            err = None
        except RuntimeError as e:
            err = str(e).splitlines()[0]
        finally:
            torch.cuda.set_sync_debug_mode("default")
        torch.cuda.synchronize()
        check(f"no host sync: {name}", err is None, err or "")
        out[name] = err is None
    # time of the three checks per call (device work queued, no sync)
    reps = 50
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        check_finite(x, "x"), check_no(no, "no", finite=True), _check_bits(bits, 1)
    torch.cuda.synchronize()
    out["checks_ms_per_call"] = 1e3 * (time.perf_counter() - t0) / reps
    # count the synchronisations of whole calls (informational: the decoder's early stop syncs once per
    # iteration by design, and the Monte Carlo engine once per batch to count errors)

    def count(fn):
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                fn()
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return sum(1 for m in w if "synchroniz" in str(m.message).lower())

    code = LDPC5G(k, n, decoder="layered")
    link = DigitalLink(AWGN(seed=1), code=code, modulation="16qam")
    link(bits, snr_db=7.0)
    trial = ScrambledZeroTrial(DigitalLink(AWGN(seed=2), code=LDPC5G(k, n, decoder="layered",
                                                                     decoder_kwargs={"early_stop": True}),
                                           modulation="16qam"), k=k, device=dev)
    trial.reset(0)
    trial(1024, 7.0)
    out["syncs_link_call_20_iterations"] = count(lambda: link(bits, snr_db=7.0))
    out["syncs_trial_call_early_stop"] = count(lambda: trial(1024, 7.0))
    print(f"  host syncs: DigitalLink call (layered, 20 it) {out['syncs_link_call_20_iterations']}, "
          f"ScrambledZeroTrial call (early stop) {out['syncs_trial_call_early_stop']}; "
          f"the three input checks {out['checks_ms_per_call']:.3f} ms per call", flush=True)
    return out


if __name__ == "__main__":
    sys.exit(main())
