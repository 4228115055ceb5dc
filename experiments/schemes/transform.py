"""Transform coding (:class:`phy.source.transform.TransformCoder`: KLT, integer bit allocation, Lloyd-Max
quantisers, fitted on the training split), delivered by the ideal code (:class:`TransformIdealScheme`,
``transform-ideal``) or by CRC + 5G LDPC + QAM with adaptive modulation and coding
(:class:`TransformAMCScheme`, ``transform-ldpc5g-amc``).
"""
from __future__ import annotations

import torch

from experiments.schemes.ideal import IdealQuantizedScheme, _ideal_delivery, _ideal_uses
from experiments.schemes.protocol import Plan, Received, _FittedScheme
from experiments.schemes.resources import _MIN_CODEWORD_USES, _codeword_span, _ofdm_grid, _symbol_budget

__all__ = ["TransformIdealScheme", "TransformAMCScheme"]


class TransformIdealScheme(_FittedScheme, IdealQuantizedScheme):
    """Transform coding (:class:`phy.source.transform.TransformCoder`: KLT, integer bit allocation,
    Lloyd-Max quantisers, all fitted on the training split) delivered by the ideal code of
    ``quant-ideal``. A codeword spans ``ceil(512 / U)`` examples (the rule of the LDPC scheme) and is delivered iff
    its payload fits the mutual information of its realised uses, else its examples get the training mean. The
    payload ``B`` per example minimises the expected distortion ``(1 - P_out(B)) D(B) + P_out(B) D_erased`` over
    the channel's fading (:func:`phy.link.ideal.design_payload`; ``D(B)`` the coder's MSE on the training split,
    as the AMC's MCS choice uses it): AWGN gives ``floor(U log2(1 + snr))``, a fading channel trades payload
    against outage; ``--ideal-outage`` fixes the outage target instead. Over an OFDM grid the mutual information
    is that of the examples' slots (:meth:`~experiments.schemes.ideal.IdealQuantizedScheme.codeword_mutual_information`).

    Examples
    --------
    >>> from experiments.core.sources import load_source
    >>> from experiments.comparison import CompareConfig, run_comparison
    >>> src = load_source("gaussian", n_items=64, dim=16)              # 16 i.i.d. N(0, 1) features per item
    >>> cfg = CompareConfig(schemes=("transform-ideal",), channels=("awgn",), snr_db=[10.0], budget=8, realizations=1)
    >>> row = run_comparison(src, cfg, progress=False, log=lambda msg: None)[0]
    >>> row["scheme"], 0 < row["nmse"] < 1
    ('transform-ideal', True)
    """

    kind = "transform"
    name = "transform-ideal"
    code_name = "ideal"

    def fitted_plan(self, ctx, snr_db, channel):
        uses, why = _ideal_uses(ctx, channel)
        if why:
            return Plan(0, False, dims_sent=0, note=why, status=f"skipped: {why}")
        span = _codeword_span(_symbol_budget(ctx.budget, _ofdm_grid(channel)))
        design = self.design(ctx, snr_db, channel, uses, span, ctx.train_distortion, ctx.train_distortion(0))
        coder = ctx.coder(design.payload_bits)
        note = self.design_note(ctx, design, span, uses) + "; Lloyd-Max per component"
        if coder.used_bits == 0:
            return Plan(uses, False, dims_sent=0, info_bits=0, note=note, status="nothing delivered",
                        extra={"span": span})
        return Plan(uses, True, dims_sent=coder.components, info_bits=coder.used_bits, note=note,
                    extra={"span": span})

    def transmit(self, ctx, plan, channel, snr_db):
        m = ctx.n_test
        if not plan.info_bits:
            return Received(ctx.fallback.expand(m, ctx.dim).clone(), ctx.test_index, outage_rate=1.0,
                            outage=torch.ones(m, dtype=torch.bool))
        coder = ctx.coder(plan.info_bits)
        bits = coder.encode(ctx.test).to(ctx.device)
        x_hat, outage = _ideal_delivery(channel, plan.channel_uses, float(snr_db), bits, plan.extra.get("span", 1))
        outage = outage.cpu()
        f_hat = coder.decode(x_hat.cpu(), ctx.features.dtype).to(ctx.device)
        f_hat[outage.to(f_hat.device)] = ctx.fallback
        errs = (x_hat != bits).double().sum(1).cpu()
        return Received(f_hat, ctx.test_index, outage_rate=float(outage.float().mean()),
                        ber=float(errs.sum() / bits.numel()), bit_errors=errs,
                        bits_sent=torch.full_like(errs, float(bits.shape[1])), outage=outage)


class TransformAMCScheme(_FittedScheme):
    """Transform coding over 5G LDPC + QAM with adaptive modulation and coding.

    At each SNR the MCS is chosen from :data:`phy.link.amc.MCS_TABLE` (3GPP TS 38.214 Table
    5.1.3.1-2) by :func:`phy.link.amc.select_mcs`: ``--amc-policy distortion`` minimises
    ``(1 - BLER) D(B) + BLER D(erased)`` with ``D(B)`` the transform coder's MSE at ``B`` bits on the
    training split and ``D(erased)`` that of the training mean; ``--amc-policy bler-target`` takes
    the highest rate whose BLER is at most ``--amc-bler-target`` (10%, as 5G link adaptation). The
    BLERs are simulated once per (MCS, SNR, channel) on the package's own chain
    (:func:`phy.link.amc.estimate_bler`: CRC + LDPC + QAM + the shared channel, separate seeds) and
    cached for the run. A codeword spans the fewest whole examples whose uses reach 512 (those of a 1024-bit QPSK
    codeword; the rule of the ideal code, for every MCS; :func:`phy.link.amc.codeword_layout` with
    ``min_codeword_bits = 512 x bits per symbol``, fewer examples where one 5G LDPC codeword cannot hold them; an
    MCS below 0 repeats the codeword ``r`` times over ``r`` times as many examples),
    so the per-example budget is an average; a codeword whose CRC fails erases
    its examples, which get the training mean. Over an OFDM grid an example's uses in the layout are the data
    symbols of the budget's whole slots, and the BLERs and codewords go through the grid (pilots, LS, LMMSE).

    Examples
    --------
    >>> from experiments.core.sources import load_source
    >>> from experiments.comparison import CompareConfig, run_comparison
    >>> src = load_source("gaussian", n_items=64, dim=16)              # 16 i.i.d. N(0, 1) features per item
    >>> cfg = CompareConfig(schemes=("transform-ldpc5g-amc",), channels=("awgn",), snr_db=[10.0], budget=8, realizations=1)
    >>> row = run_comparison(src, cfg, progress=False, log=lambda msg: None)[0]
    >>> row["scheme"], row["channel_uses"] <= 8, 0 < row["nmse"] < 1
    ('transform-ldpc5g-amc', True, True)
    """

    kind = "transform"
    supports_grid = True
    bler_codewords = 300      # most codewords simulated per (MCS, SNR) BLER estimate (stops at 30 errors)

    def __init__(self, code: str = "ldpc5g"):
        if code != "ldpc5g":
            raise ValueError(f"transform-<code>-amc: only ldpc5g has an MCS table, got {code!r}")
        self.code_name = code
        self.name = f"transform-{code}-amc"

    capacity_draws = 256      # grid: examples' slots drawn for the capacity bound of the MCS search
    capacity_quantile = 0.9   # grid: the quantile of an example's mutual information used as the bound

    def _capacity_bound(self, ctx, channel, snr_db: float) -> float:
        """Bits per data symbol above which no MCS is simulated (prunes the MCS search).

        Flat channels: the AWGN capacity (the ergodic one for i.i.d. Rayleigh). Over an OFDM grid: the
        ``capacity_quantile`` quantile of an example's mutual information over its slots (Gaussian inputs,
        perfect CSI: :meth:`phy.ofdm.channel.OFDMChannel.rate_bits`) per data symbol -- a codeword above it is lost in
        roughly 90% of the draws or more (exactly so when a codeword spans one example), which the policies do
        not choose; ``capacity_draws`` draws from a channel reseeded for this purpose."""
        from phy.theory.capacity import awgn_capacity, channel_rate_bits, rayleigh_ergodic_capacity
        from phy.sim.points import point_seed

        grid = _ofdm_grid(channel)
        if grid is not None:
            channel.reset(point_seed(ctx.seed, "amc-capacity", ctx.channel_name, float(snr_db)))
            _, mi = channel_rate_bits(channel, ctx.budget, snr_db, draws=self.capacity_draws)
            import numpy as np

            return float(np.quantile(mi, self.capacity_quantile)) / _symbol_budget(ctx.budget, grid)
        if getattr(channel, "name", "") == "rayleigh" and getattr(channel, "block_length", 0) == 1:
            return float(rayleigh_ergodic_capacity(snr_db))
        return float(awgn_capacity(snr_db))   # an upper bound for every channel with E|h|^2 = 1

    def fitted_plan(self, ctx, snr_db, channel):
        from phy.link.amc import MCS_TABLE, codeword_layout, estimate_bler, select_mcs
        from phy.sim.points import point_seed

        grid = _ofdm_grid(channel)
        symbols = _symbol_budget(ctx.budget, grid)   # over a grid: the data symbols of the budget's whole slots
        if symbols == 0:
            why = f"a budget of {ctx.budget} uses holds no OFDM slot ({grid.ledger(1).channel_uses} uses)"
            return Plan(0, False, note=why, status=f"skipped: {why}")
        uses = grid.ledger(symbols).channel_uses if grid is not None else ctx.budget
        layouts, refused = [], []
        for mcs in MCS_TABLE:
            try:
                layouts.append(codeword_layout(mcs, symbols,
                                               min_codeword_bits=_MIN_CODEWORD_USES * mcs.bits_per_symbol))
            except ValueError as e:
                refused.append(str(e))
        if not layouts:
            why = f"no MCS fits a budget of {ctx.budget} uses ({refused[0]})"
            return Plan(0, False, note=why, status=f"skipped: {why}")
        cache = ctx.__dict__.setdefault("_bler", {})

        def bler_of(lay):
            key = (ctx.channel_name, float(snr_db), lay.mcs.index, lay.span, lay.n)
            if key not in cache:
                seed = point_seed(ctx.seed, "amc-bler", ctx.channel_name, float(snr_db), lay.mcs.index, lay.n)
                cache[key] = estimate_bler(channel, lay, float(snr_db), seed, num_iter=ctx.ldpc_iter,
                                           decoder=ctx.ldpc_decoder, max_codewords=self.bler_codewords).bler
            return cache[key]

        choice = select_mcs(layouts, bler_of, ctx.train_distortion, ctx.train_distortion(0),
                            self._capacity_bound(ctx, channel, float(snr_db)), policy=ctx.amc_policy,
                            bler_target=ctx.amc_bler_target)
        lay = choice.layout
        coder = ctx.coder(lay.payload_bits)
        tried = ", ".join(f"{i}: {b:.3g}" for i, (b, _) in sorted(choice.evaluated.items()))
        note = (f"MCS {lay.mcs.index} ({lay.modulation}, R={lay.mcs.rate_x1024:g}/1024), {ctx.amc_policy} policy; "
                f"codeword n={lay.n} k={lay.k} ({lay.crc}) spans {lay.span} examples, so uses per example are "
                f"an average; simulated BLER per MCS {{{tried}}}")
        if grid is not None:
            note += f"; {symbols} data symbols per example on the grid ({uses} resource elements with the pilots)"
        status = "ok" if coder.used_bits else "nothing delivered"
        return Plan(uses, bool(coder.used_bits), dims_sent=coder.components, info_bits=coder.used_bits,
                    coderate=lay.coderate, note=note, status=status,
                    extra={"layout": lay, "bler": choice.bler, "modulation": lay.modulation, "mcs": lay.mcs.index,
                           "span": lay.span})

    def transmit(self, ctx, plan, channel, snr_db):
        from phy.link.amc import CodewordLink

        lay = plan.extra["layout"]
        m, B = ctx.n_test, lay.payload_bits
        coder = ctx.coder(B)
        bits = torch.zeros(m, B)
        bits[:, :coder.used_bits] = coder.encode(ctx.test)
        s = lay.span
        ncw = -(-m // s)
        padded = torch.zeros(ncw * s, B)
        padded[:m] = bits
        links = ctx.__dict__.setdefault("_cw_links", {})
        key = (id(channel), lay)
        if key not in links:
            links[key] = CodewordLink(channel, lay, num_iter=ctx.ldpc_iter, decoder=ctx.ldpc_decoder)
        p_hat, ok = links[key](padded.reshape(ncw, s * B).to(ctx.device), float(snr_db))
        ok = ok.cpu()
        ok_ex = ok.repeat_interleave(s)[:m]
        bits_hat = p_hat.cpu().reshape(ncw * s, B)[:m]
        f_hat = coder.decode(bits_hat[:, :coder.used_bits], ctx.features.dtype).to(ctx.device)
        f_hat[~ok_ex.to(f_hat.device)] = ctx.fallback
        errs = (bits_hat[:, :coder.used_bits] != bits[:, :coder.used_bits]).double().sum(1)
        return Received(f_hat, ctx.test_index, ber=float(errs.sum() / max(1, errs.numel() * coder.used_bits)),
                        bit_errors=errs, bits_sent=torch.full_like(errs, float(coder.used_bits)),
                        outage=~ok_ex, outage_rate=float((~ok_ex).float().mean()),
                        codeword_errors=(int((~ok).sum()), int(ncw)))
