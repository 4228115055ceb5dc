"""Naive separation: :class:`QuantizedDigitalScheme` (``quant-<code>-<mod>``), a uniform scalar quantiser
fitted on the training split, then a channel code and QAM through :class:`phy.link.digital.DigitalLink`; the
features that do not fit the budget are left to the receiver's fallback.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

from experiments.schemes.protocol import Plan, Received, Scheme, _fill
from experiments.schemes.resources import _ofdm_grid, _streams, _symbol_budget

__all__ = ["QuantizedDigitalScheme"]


def _choose_bits(capacity_bits: int, d: int, fixed: Optional[int], max_bits: int) -> Tuple[int, int]:
    """(bits per element, features sent) for an information-bit capacity."""
    b = fixed if fixed is not None else max(1, min(max_bits, capacity_bits // d))
    return b, min(d, capacity_bits // b)


class QuantizedDigitalScheme(Scheme):
    """Quantiser + channel code + QAM through :class:`phy.link.digital.DigitalLink` (ZF + APP demapping; on a MIMO
    channel ``num_tx`` QAM streams per channel use through the LMMSE MIMO detector).

    Examples
    --------
    >>> from experiments.core.sources import load_source
    >>> from experiments.comparison import CompareConfig, run_comparison
    >>> src = load_source("gaussian", n_items=64, dim=16)              # 16 i.i.d. N(0, 1) features per item
    >>> cfg = CompareConfig(schemes=("quant-hamming74-qpsk",), channels=("awgn",), snr_db=[10.0], budget=8, realizations=1)
    >>> row = run_comparison(src, cfg, progress=False, log=lambda msg: None)[0]
    >>> row["scheme"], row["channel_uses"] <= 8, 0 < row["nmse"] < 1
    ('quant-hamming74-qpsk', True, True)
    """

    kind = "digital"
    supports_grid = True
    supports_mimo = True

    def __init__(self, code: str, modulation: str):
        from phy.fec.codes import CODES
        from phy.mapping.modulation import bits_per_symbol

        if code not in CODES:
            raise ValueError(f"unknown code {code!r} in a quant-<code>-<mod> scheme; expected one of {sorted(CODES)}")
        self.code_name = code
        self.m = bits_per_symbol(modulation)
        self.modulation = modulation
        self.name = f"quant-{code}-{modulation}"

    # -- sizes ----------------------------------------------------------------------------------
    def _code_for(self, ctx, payload: int):
        """(code, link payload bits incl. zero padding) for ``payload`` information bits."""
        from phy.fec.codes import LDPC5G_MAX_K

        if self.code_name == "hamming74":
            return ctx.code("hamming74"), payload + (-payload) % 4
        if self.code_name == "none":
            return ctx.code("none", k=1), payload
        k = max(payload, 12)
        if k > LDPC5G_MAX_K:
            raise ValueError(f"{self.name}: a payload of {payload} bits exceeds one 5G LDPC codeword "
                             f"(k <= {LDPC5G_MAX_K}); lower --bits or --budget")
        r = ctx.ldpc_rate
        n = self.m * math.ceil(k / (r * self.m) - 1e-9)
        n = max(n, self.m * math.ceil(k / (0.95 * self.m)))
        return ctx.code("ldpc5g", k=k, n=n), k

    def _uses(self, ctx, payload: int) -> int:
        from phy.link.digital import DigitalLink

        code, padded = self._code_for(ctx, payload)
        return DigitalLink(ctx.channel, code=code, modulation=self.modulation).channel_uses(padded)

    def capacity_bits(self, ctx) -> int:
        """Information bits that fit the budget (OFDM: the data symbols of its whole slots, all streams)."""
        grid = _ofdm_grid(ctx.channel)
        coded = (_symbol_budget(ctx.budget, grid) if grid is not None else ctx.budget * _streams(ctx.channel)) * self.m
        if self.code_name == "hamming74":
            return 4 * (coded // 7)
        if self.code_name == "none":
            return coded
        return int(math.floor(coded * ctx.ldpc_rate + 1e-9))

    def plan(self, ctx, snr_db, channel):
        d = ctx.dim
        if not ctx.matched:
            b = ctx.bits or 4
            payload = b * d
            code, padded = self._code_for(ctx, payload)
            return Plan(self._uses(ctx, payload), True, dims_sent=d, bits_per_element=b, info_bits=payload,
                        coderate=code.rate, note="not matched: all features at --bits")
        cap = self.capacity_bits(ctx)
        b, dims = _choose_bits(cap, d, ctx.bits, ctx.max_bits)
        if self.code_name == "ldpc5g" and b * dims < 12:
            dims = 0
        while dims > 0 and self._uses(ctx, b * dims) > ctx.budget:
            dims -= 1
        if dims == 0:
            return Plan(0, False, dims_sent=0, bits_per_element=b, info_bits=0,
                        note=f"skipped: {cap} information bits in {ctx.budget} uses cannot carry one element")
        payload = b * dims
        code, _ = self._code_for(ctx, payload)
        note = "" if dims == d else f"truncated: first {dims} of {d} features sent (fallback for the rest)"
        return Plan(self._uses(ctx, payload), dims == d, dims_sent=dims, bits_per_element=b, info_bits=payload,
                    coderate=code.rate, note=note)

    def transmit(self, ctx, plan, channel, snr_db):
        from phy.link.digital import DigitalLink

        n_items = ctx.n_test
        index = ctx.test_index
        if plan.dims_sent == 0:
            return Received(ctx.fallback.expand(n_items, ctx.dim).clone(), index)
        q = ctx.quantizer(plan.bits_per_element, plan.dims_sent)
        code, padded = self._code_for(ctx, plan.info_bits)
        link = DigitalLink(channel, code=code, modulation=self.modulation)
        bits = q.encode(ctx.test[:, :plan.dims_sent])
        sent = torch.nn.functional.pad(bits, (0, padded - bits.shape[1])) if padded > bits.shape[1] else bits
        out = link(sent, snr_db=float(snr_db))
        if out.channel_uses != plan.channel_uses:
            raise RuntimeError(f"{self.name}: link used {out.channel_uses} channel uses, planned {plan.channel_uses}")
        bits_hat = out.x_hat[:, :bits.shape[1]]
        errs = (bits_hat != bits).double().sum(1).cpu()
        ber = float(errs.sum() / bits.numel())
        head = q.decode(bits_hat).to(ctx.features.dtype)
        return Received(_fill(ctx, head, plan.dims_sent), index, ber=ber, bit_errors=errs,
                        bits_sent=torch.full_like(errs, float(bits.shape[1])))
