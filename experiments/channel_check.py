"""``semcom channel``: measure a channel's SNR, fading power and noise against the convention.

Sends unit-energy random QPSK symbols (``|x|^2 = 1`` exactly, so ``Es = 1``) through the chosen
channel at the requested Es/N0 and prints the measured Es/N0 (``sum |h x|^2 / sum |y - h x|^2``),
``E|h|^2`` and the noise variance per real dimension next to what the package convention says
(``N0 = 10**(-snr_db/10)``, ``N0/2`` per real dimension, ``E|h|^2 = 1``).

Example
-------
``semcom channel --channel rayleigh --snr-db 10 --symbols 1e6 --seed 0``
"""
from __future__ import annotations

import argparse
import math

__all__ = ["add_arguments", "main", "measure"]

_CHOICES = ("awgn", "rayleigh", "rician", "tdl")
_CHUNK = 1 << 20  # symbols per pass (bounded memory for any --symbols)


def _count(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--symbols must be a number such as 1e6, got {text!r}") from None
    if not math.isfinite(value) or value < 1 or value != int(value):
        raise argparse.ArgumentTypeError(f"--symbols must be a positive integer, got {text!r}")
    return int(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--channel", choices=_CHOICES, default="awgn", help="channel model (default awgn)")
    parser.add_argument("--snr-db", type=float, default=10.0, help="Es/N0 per complex channel use [dB]")
    parser.add_argument("--symbols", type=_count, default=1_000_000, help="number of QPSK symbols (e.g. 1e6)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the channel and of the symbols")
    parser.add_argument("--k-factor", type=float, default=3.0, help="Rician K factor (linear)")
    parser.add_argument("--block-length", type=int, default=1,
                        help="fading coherence length in symbols (rayleigh/rician)")
    parser.add_argument("--tdl-model", default="A", help="3GPP TDL profile A..E (tdl)")
    parser.add_argument("--fft-size", type=int, default=64, help="subcarriers per OFDM symbol (tdl)")
    parser.add_argument("--max-speed", type=float, default=0.0, help="terminal speed [m/s] (tdl)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--tolerance-db", type=float, default=None,
                        help="exit with status 1 if the measured Es/N0 is further than this from --snr-db")


def _build_channel(args):
    from phy.channels import make_channel

    if args.channel == "awgn":
        return make_channel("awgn", seed=args.seed)
    if args.channel == "rayleigh":
        return make_channel("rayleigh", block_length=args.block_length, seed=args.seed)
    if args.channel == "rician":
        return make_channel("rician", k_factor=args.k_factor, block_length=args.block_length, seed=args.seed)
    return make_channel("tdl", model=args.tdl_model, fft_size=args.fft_size, max_speed=args.max_speed,
                        seed=args.seed)


def measure(channel, snr_db: float, symbols: int, seed: int = 0, device="cpu", row: int = 1024) -> dict:
    """Send ``symbols`` unit-energy QPSK symbols through ``channel``; return the measured statistics.

    The symbols are laid out as examples of ``row`` channel uses (rounded up to whole rows).

    Returns
    -------
    dict with ``esno_db`` (measured), ``h_power`` (E|h|^2), ``h_mean`` (E h), ``noise_var_re`` and
    ``noise_var_im`` (per real dimension), ``no`` (the N0 used) and ``symbols`` (sent).
    """
    import torch

    from phy.conventions import check_device, snr_db_to_no

    device = check_device(device, "--device")
    no = snr_db_to_no(float(snr_db))
    gen = torch.Generator(device=device).manual_seed(seed)
    rows_total = math.ceil(symbols / row)
    rows_per_pass = max(1, _CHUNK // row)
    s_sig = s_err = s_h2 = s_re = s_im = 0.0
    s_h = 0j
    sent = 0
    done = 0
    while done < rows_total:
        rows = min(rows_per_pass, rows_total - done)
        bits = torch.randint(0, 2, (rows, row, 2), generator=gen, device=device, dtype=torch.int8)
        x = torch.complex((1 - 2 * bits[..., 0]).float(), (1 - 2 * bits[..., 1]).float()) / math.sqrt(2)
        out = channel(x, no)
        hx = x if out.h is None else out.h * x
        n = (out.y - hx).to(torch.complex128)
        s_sig += hx.to(torch.complex128).abs().pow(2).sum().item()
        s_err += n.abs().pow(2).sum().item()
        s_re += n.real.pow(2).sum().item()
        s_im += n.imag.pow(2).sum().item()
        if out.h is None:
            s_h2 += x.numel()
            s_h += x.numel()
        else:
            h = out.h.to(torch.complex128)
            s_h2 += h.abs().pow(2).sum().item()
            s_h += complex(h.sum().item())
        sent += x.numel()
        done += rows
    return {
        "esno_db": 10 * math.log10(s_sig / s_err) if s_err > 0 else math.inf,
        "h_power": s_h2 / sent,
        "h_mean": s_h / sent,
        "noise_var_re": s_re / sent,
        "noise_var_im": s_im / sent,
        "no": float(no),
        "symbols": sent,
    }


def main(args: argparse.Namespace) -> int:
    import sys

    try:
        channel = _build_channel(args)
        row = 1024
        if args.channel == "tdl":
            row = 14 * args.fft_size  # a slot of 14 OFDM symbols per example
        elif args.block_length > 1:
            row = args.block_length * max(1, 1024 // args.block_length)
        stats = measure(channel, args.snr_db, args.symbols, seed=args.seed, device=args.device, row=row)
    except (ValueError, TypeError, RuntimeError) as e:  # bad --snr-db, --block-length, --device, ...
        print(f"semcom channel: error: {e}", file=sys.stderr)
        return 2
    no = stats["no"]
    print(f"channel: {channel!r}".replace("\n", " "))
    print(f"symbols sent: {stats['symbols']} (unit-energy QPSK, Es = 1)")
    print(f"target Es/N0: {args.snr_db:.4f} dB -> N0 = {no:.6g} (N0/2 = {no / 2:.6g} per real dimension)")
    print(f"measured Es/N0: {stats['esno_db']:.4f} dB (error {stats['esno_db'] - args.snr_db:+.4f} dB)")
    print(f"measured E|h|^2: {stats['h_power']:.5f} (convention 1)")
    if args.channel == "rician":
        los = math.sqrt(args.k_factor / (args.k_factor + 1))
        print(f"measured E[h]: {stats['h_mean'].real:.5f}{stats['h_mean'].imag:+.5f}j "
              f"(convention sqrt(K/(K+1)) = {los:.5f})")
    print(f"measured noise variance per real dimension: re {stats['noise_var_re']:.6g}, "
          f"im {stats['noise_var_im']:.6g} (convention N0/2 = {no / 2:.6g})")
    if args.tolerance_db is not None and not abs(stats["esno_db"] - args.snr_db) <= args.tolerance_db:
        print(f"FAIL: measured Es/N0 is more than {args.tolerance_db} dB from the target")
        return 1
    return 0
