"""``semcom channel``: measure a channel's SNR, fading power and noise against the convention.

Sends unit-energy random QPSK symbols (``|x|^2 = 1`` exactly, so ``Es = 1``) through the chosen
channel at the requested Es/N0 and prints the measured Es/N0 (``sum |h x|^2 / sum |y - h x|^2``),
``E|h|^2`` and the noise variance per real dimension next to what the package convention says
(``N0 = 10**(-snr_db/10)``, ``N0/2`` per real dimension, ``E|h|^2 = 1``).

``--channel`` takes any channel spec (:mod:`phy.channel.spec`): ``rayleigh(block_length=64)``,
``rician(k_db=10)``, ``tdl(model=C,delay_spread=100e-9,speed=30)``, ``rayleigh(num_tx=2,num_rx=2)``.
The canonical spec is printed. With several antennas each transmit antenna sends ``Es / num_tx`` (so
``Es = 1`` per channel use, all antennas together) and the SNR is measured per receive antenna; the
spatial correlation of ``h`` between neighbouring antennas is printed next to ``corr_tx``/``corr_rx``.
For Rician specs the measured K factor (method of moments: ``|E h|^2 / (E|h|^2 - |E h|^2)``) is printed
next to the spec's; for block fading the largest change of ``h`` inside a coherence block (0).

Example
-------
``semcom channel --channel "rician(k_db=10,block_length=64)" --snr-db 10 --symbols 1e6 --seed 0``
"""
from __future__ import annotations

import argparse
import math

__all__ = ["add_arguments", "main", "measure", "measure_impairment"]

_CHUNK = 1 << 20  # symbols per pass (bounded memory for any --symbols)
#: The largest --symbols (a few minutes at most).
MAX_SYMBOLS = 10 ** 9


def _count(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--symbols must be a number such as 1e6, got {text!r}") from None
    if not math.isfinite(value) or value < 1 or value != int(value) or value > MAX_SYMBOLS:
        raise argparse.ArgumentTypeError(f"--symbols must be an integer from 1 to {MAX_SYMBOLS:.0e}, got {text!r}")
    return int(value)


def _tolerance(text: str) -> float:
    from experiments.core.args import float_arg

    return float_arg(0.0)(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``semcom channel`` to ``parser`` (``semcom channel --help`` lists them).

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> args = parser.parse_args(["--channel", "rayleigh(block_length=4)", "--snr-db", "5"])
    >>> (args.channel, args.snr_db)
    ('rayleigh(block_length=4)', 5.0)
    """
    parser.add_argument("--channel", default="awgn", metavar="SPEC",
                        help="channel spec name(key=value,...), e.g. rayleigh(block_length=64), rician(k_db=10), "
                             "tdl(model=C,delay_spread=100e-9,speed=30), rayleigh(num_tx=2,num_rx=2) (default awgn)")
    parser.add_argument("--snr-db", type=float, default=10.0, help="Es/N0 per complex channel use [dB]")
    parser.add_argument("--symbols", type=_count, default=1_000_000,
                        help="number of QPSK symbols (channel uses x transmit antennas, e.g. 1e6; at most 1e9)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the channel and of the symbols")
    parser.add_argument("--device", default="auto", help="torch device: auto (default: cuda if available, else cpu), cpu, cuda, cuda:1 ...")
    parser.add_argument("--tolerance-db", type=_tolerance, default=None,
                        help="exit with status 1 if the measured Es/N0 is further than this from --snr-db")


def _qpsk(shape, nt: int, gen, device):
    """Random Gray QPSK symbols of energy ``1 / nt`` (``Es = 1`` per channel use over ``nt`` antennas), ``shape``."""
    import torch

    bits = torch.randint(0, 2, (*shape, 2), generator=gen, device=device, dtype=torch.int8)
    return torch.complex((1 - 2 * bits[..., 0]).float(), (1 - 2 * bits[..., 1]).float()) / math.sqrt(2 * nt)


def measure(channel, snr_db: float, symbols: int, seed: int = 0, device="cpu", row: int = 1024) -> dict:
    """Send ``symbols`` unit-energy QPSK symbols through ``channel``; return the measured statistics.

    The symbols are laid out as examples of ``row`` channel uses (rounded up to whole rows); a MIMO
    channel (``num_tx``/``num_rx`` > 1) gets ``x [rows, num_tx, row]`` with ``Es / num_tx`` per antenna.

    Returns
    -------
    dict with ``esno_db`` (measured, per receive antenna), ``h_power`` (E|h|^2), ``h_mean`` (E h),
    ``k_factor`` (``|E h|^2 / (E|h|^2 - |E h|^2)``), ``block_change`` (largest ``|h - h_first|`` inside
    a coherence block of ``channel.block_length``; 0 means constant), ``corr_rx`` / ``corr_tx`` (the
    normalised covariance of the fades of antennas 0 and 1, ``None`` for one antenna),
    ``noise_var_re`` and ``noise_var_im`` (per real dimension), ``no`` (the N0 used) and ``symbols``
    (sent, counting every transmit antenna). With a receiver impairment (:mod:`phy.channel.impairments`) these are
    measured on the unimpaired channel (same draws), and ``impairment`` holds :func:`measure_impairment`'s
    statistics (``None`` on an OFDM grid, whose impairment spreads into inter-carrier interference).

    Examples
    --------
    >>> from phy.channel.flat import Rayleigh
    >>> stats = measure(Rayleigh(block_length=4, seed=0), snr_db=10.0, symbols=100000)
    >>> round(stats["h_power"], 1), stats["block_change"], stats["no"]      # E|h|^2 = 1, constant per block
    (1.0, 0.0, 0.1)
    >>> abs(stats["esno_db"] - 10.0) < 0.1
    True
    """
    import torch

    from phy.utils.conventions import check_device, snr_db_to_no

    imp = getattr(channel, "impairment", None)
    if imp is not None and imp.active:  # the convention on the unimpaired channel, the impairment on its own
        channel.impairment = None       # (y - h x would count the oscillator's rotation as noise)
        try:
            stats = measure(channel, snr_db, symbols, seed=seed, device=device, row=row)
        finally:
            channel.impairment = imp
        stats["impairment"] = None if getattr(channel, "applies_impairment", False) else \
            measure_impairment(channel, symbols, seed=seed, device=device, row=row)
        return stats
    device = check_device(device, "--device")
    no = snr_db_to_no(float(snr_db))
    gen = torch.Generator(device=device).manual_seed(seed)
    nt, nr = getattr(channel, "num_tx", 1), getattr(channel, "num_rx", 1)
    mimo = bool(getattr(channel, "is_mimo", False))
    L = int(getattr(channel, "block_length", 1))
    rows_total = math.ceil(symbols / (row * nt))
    rows_per_pass = max(1, _CHUNK // (row * nt))
    from phy.utils.memory import check_memory

    # x, y, h x, y - h x and h per pass (complex64, the statistics in complex128)
    per_pass = min(rows_per_pass, rows_total) * row * (nt * 8 + nr * 40 + nr * nt * 24)
    check_memory(per_pass, f"measuring {symbols} symbols in passes of {min(rows_per_pass, rows_total)} example(s) of "
                 f"{row} channel uses over {nr} x {nt} antennas", hint="use a smaller grid or fewer antennas")
    s_sig = s_err = s_h2 = s_re = s_im = 0.0
    s_h = 0j
    s_crx = s_ctx = 0j
    block_change = 0.0
    sent = n_h = n_y = 0
    done = 0
    while done < rows_total:
        rows = min(rows_per_pass, rows_total - done)
        shape = (rows, nt, row) if mimo else (rows, row)
        x = _qpsk(shape, nt, gen, device)
        if mimo:
            out = channel(x, torch.tensor(no).reshape(1, 1, 1))
            hx = torch.einsum("...rtn,...tn->...rn", out.h, x)
        else:
            out = channel(x, no)
            hx = x if out.h is None else out.h * x
        n = (out.y - hx).to(torch.complex128)
        s_sig += hx.to(torch.complex128).abs().pow(2).sum().item()
        s_err += n.abs().pow(2).sum().item()
        s_re += n.real.pow(2).sum().item()
        s_im += n.imag.pow(2).sum().item()
        h = torch.ones_like(x) if out.h is None else out.h
        h = h.to(torch.complex128)
        s_h2 += h.abs().pow(2).sum().item()
        s_h += complex(h.sum().item())
        n_h += h.numel()
        if mimo and nr > 1:
            s_crx += complex((h[:, 0] * h[:, 1].conj()).sum().item())
        if mimo and nt > 1:
            s_ctx += complex((h[:, :, 0] * h[:, :, 1].conj()).sum().item())
        if L > 1 and out.h is not None:
            blocks = h.reshape(*h.shape[:-1], h.shape[-1] // L, L)
            block_change = max(block_change, (blocks - blocks[..., :1]).abs().max().item())
        sent += x.numel()
        n_y += n.numel()
        done += rows
    mean = s_h / n_h
    scatter = s_h2 / n_h - abs(mean) ** 2
    per_pair = n_h / max(nr, 1) / max(nt, 1)  # fades per (rx, tx) antenna pair

    def corr(total, pairs):
        return None if pairs == 0 else ((total / pairs - abs(mean) ** 2) / scatter) if scatter > 0 else None

    return {
        "esno_db": 10 * math.log10(s_sig / s_err) if s_err > 0 else math.inf,
        "h_power": s_h2 / n_h,
        "h_mean": mean,
        "k_factor": abs(mean) ** 2 / scatter if scatter > 0 else math.inf,
        "block_change": block_change,
        "corr_rx": corr(s_crx, per_pair * nt) if mimo and nr > 1 else None,
        "corr_tx": corr(s_ctx, per_pair * nr) if mimo and nt > 1 else None,
        "noise_var_re": s_re / n_y,
        "noise_var_im": s_im / n_y,
        "no": float(no),
        "symbols": sent,
    }


def measure_impairment(channel, symbols: int, seed: int = 0, device="cpu", row: int = 1024) -> dict:
    """Measure a flat channel's receiver oscillator (:mod:`phy.channel.impairments`) without noise.

    Unit-energy QPSK rows of ``row`` uses are sent at ``N0 = 0``; the phase ``theta[k]`` of ``y / (h x)``
    (the first receive antenna) gives the per-use increments ``theta[k+1] - theta[k] = 2 pi cfo Ts + w_k``.

    Returns
    -------
    dict with ``cfo`` (mean increment / (2 pi Ts)) [Hz], ``linewidth`` (increment variance / (2 pi Ts))
    [Hz], ``phase0_mean`` (the circular mean of ``theta[0]``) [rad] and ``increments`` (how many).

    Examples
    --------
    >>> from phy.channel.registry import make_channel
    >>> ch = make_channel("rayleigh(cfo=1000,phase_noise_linewidth=2000,symbol_rate=1e6)", seed=0)
    >>> m = measure_impairment(ch, 200000)
    >>> abs(m["cfo"] - 1000) < 50, abs(m["linewidth"] / 2000 - 1) < 0.05
    (True, True)
    """
    import torch

    from phy.utils.conventions import check_device

    device = check_device(device, "--device")
    imp = channel.impairment
    ts = imp.symbol_time
    gen = torch.Generator(device=device).manual_seed(seed)
    nt = getattr(channel, "num_tx", 1)
    mimo = bool(getattr(channel, "is_mimo", False))
    rows = max(1, math.ceil(symbols / (row * nt)))
    shape = (rows, nt, row) if mimo else (rows, row)
    x = _qpsk(shape, nt, gen, device)
    zero = torch.zeros((1, 1, 1) if mimo else (), device=device)
    out = channel(x, zero)
    hx = torch.einsum("...rtn,...tn->...rn", out.h, x)[..., 0, :] if mimo else (x if out.h is None else out.h * x)
    y = out.y[..., 0, :] if mimo else out.y
    r = (y * hx.conj()).to(torch.complex128)                   # |h x|^2 e^(j theta)
    d = torch.angle(r[..., 1:] * r[..., :-1].conj())           # theta[k+1] - theta[k] in (-pi, pi]
    mean = float(d.mean())
    var = float(d.var()) if d.numel() > 1 else 0.0
    p0 = complex((r[..., 0] / r[..., 0].abs()).mean())
    scale = 2 * math.pi * ts if ts > 0 else math.nan
    return {"cfo": mean / scale, "linewidth": var / scale, "phase0_mean": math.atan2(p0.imag, p0.real),
            "increments": d.numel()}


def main(args: argparse.Namespace) -> int:
    """Run ``semcom channel`` with the parsed ``args`` (the options of :func:`add_arguments`); returns
    the exit status (0 on success, 2 for bad input, reported as one line).

    Examples
    --------
    >>> from experiments.cli import main as semcom
    >>> semcom(["channel", "--channel", "awgn", "--snr-db", "10", "--symbols", "10000"])
    channel: awgn
    symbols sent: 10240 (unit-energy QPSK, Es = 1 per channel use)
    target Es/N0: 10.0000 dB -> N0 = 0.1 (N0/2 = 0.05 per real dimension)
    measured Es/N0: ... dB (error ... dB)
    ...
    0
    """
    import sys

    from phy.channel.registry import canonical_channel_spec, make_channel, parse_channel_spec

    try:
        spec = canonical_channel_spec(args.channel)
        name, params = parse_channel_spec(spec)
        channel = make_channel(spec, seed=args.seed)
        row = 1024
        if name == "tdl":
            row = 14 * channel.fft_size  # a slot of 14 OFDM symbols per example
        elif name == "ofdm":  # the bare grid (no pilots): one slot per example
            row = channel.num_ofdm_symbols * channel.grid_size
        elif getattr(channel, "block_length", 1) > 1:
            L = channel.block_length
            row = L * max(1, 1024 // L)
        stats = measure(channel, args.snr_db, args.symbols, seed=args.seed, device=args.device, row=row)
    except (ValueError, TypeError, RuntimeError) as e:  # bad --channel spec, --snr-db, --device, ...
        print(f"semcom channel: error: {e}", file=sys.stderr)
        return 2
    no = stats["no"]
    nt = params.get("num_tx", 1)
    print(f"channel: {spec}")
    print(f"symbols sent: {stats['symbols']} (unit-energy QPSK, Es = 1 per channel use"
          + (f", Es/{nt} per transmit antenna)" if nt > 1 else ")"))
    print(f"target Es/N0: {args.snr_db:.4f} dB -> N0 = {no:.6g} (N0/2 = {no / 2:.6g} per real dimension)")
    if not math.isfinite(stats["esno_db"]):  # the noise vanished in the float32 rounding of h x + n
        print(f"measured Es/N0: not measurable (the noise at {args.snr_db:g} dB is below the float32 resolution "
              "of the received symbols; measure at a lower --snr-db)")
    else:
        print(f"measured Es/N0: {stats['esno_db']:.4f} dB (error {stats['esno_db'] - args.snr_db:+.4f} dB)"
              + (" per receive antenna" if params.get("num_rx", 1) > 1 else ""))
    print(f"measured E|h|^2: {stats['h_power']:.5f} (convention 1)")
    if name == "rician":
        k = 10 ** (params["k_db"] / 10)
        los = math.sqrt(k / (k + 1))
        print(f"measured E[h]: {stats['h_mean'].real:.5f}{stats['h_mean'].imag:+.5f}j "
              f"(convention sqrt(K/(K+1)) e^(j los_phase), |.| = {los:.5f})")
        print(f"measured K factor: {10 * math.log10(stats['k_factor']):.4f} dB (spec k_db = {params['k_db']})")
    if params.get("block_length", 1) > 1:
        print(f"largest change of h inside a coherence block of {params['block_length']}: "
              f"{stats['block_change']:.3g} (convention 0)")
    for side in ("rx", "tx"):
        if stats[f"corr_{side}"] is not None:
            c = stats[f"corr_{side}"]
            print(f"measured {side} correlation of antennas 0 and 1: {c.real:.4f}{c.imag:+.4f}j "
                  + (f"(spec corr_{side} = {params[f'corr_{side}']})" if f"corr_{side}" in params else
                     "(set by the channel model)"))
    print(f"measured noise variance per real dimension: re {stats['noise_var_re']:.6g}, "
          f"im {stats['noise_var_im']:.6g} (convention N0/2 = {no / 2:.6g})")
    imp = getattr(channel, "impairment", None)
    if imp is not None and imp.active:
        print("impairment (receiver oscillator): the lines above are measured on the unimpaired channel")
        m = stats.get("impairment")
        if m is None:
            print("impairment not measured on an OFDM grid (it spreads into inter-carrier interference; "
                  "tests/test_ofdm_impairments.py checks it against the Dirichlet kernel)")
        else:
            print(f"measured CFO: {m['cfo']:.6g} Hz (spec cfo = {imp.cfo:g}); measured Wiener linewidth: "
                  f"{m['linewidth']:.6g} Hz (spec phase_noise_linewidth = {imp.phase_noise_linewidth:g}), "
                  f"from {m['increments']} phase increments at symbol_rate = {imp.symbol_rate:g} Hz")
    if args.tolerance_db is not None and not abs(stats["esno_db"] - args.snr_db) <= args.tolerance_db:
        print(f"FAIL: measured Es/N0 is more than {args.tolerance_db} dB from the target")
        return 1
    return 0
