"""Adaptive modulation and coding: the 5G NR MCS table, CRC-protected LDPC codewords, BLER by simulation.

* :data:`MCS_TABLE`: 3GPP TS 38.214 Table 5.1.3.1-2 (the 256-QAM PDSCH MCS table), indices 0..27, and
  below it three lower rates, indices -1, -2, -3: MCS 0's codeword sent over 2, 4 and 8 times the
  resources (:attr:`MCS.repetition`, as 5G's slot aggregation repeats a transport block). MCS 0 and 1
  (code rates 120/1024 and 193/1024) are below the 1/5 mother rate of the LDPC code: their rate matching
  reads on around the circular buffer and repeats it (TS 38.212 5.4.2.1, :class:`phy.fec.codes.LDPC5G`),
  and so does every lower rate; the receiver sums the LLRs of a buffer bit's copies. :func:`mcs_by_index`
  looks an entry up.
* :func:`codeword_layout`: how the payload of several examples shares one codeword. An example
  owns ``U`` complex channel uses; one LDPC codeword spans ``s`` examples (``n = s U Q_m`` coded bits,
  ``k = floor(n R)`` bits including a CRC: CRC16 up to 3824 bits, CRC24A above, as 5G does), chosen
  so that ``n`` is at least ``min_codeword_bits`` and ``k`` at most 8448. Each example gets
  ``B = floor((k - crc) / s)`` payload bits; the per-example channel uses are then an average over
  the ``s`` examples of a codeword. An entry with ``repetition = r`` takes the layout of its base rate
  (``r`` times its code rate) and spreads the same ``k`` bits over ``r`` times the examples and code bits.
* :class:`CodewordLink`: payload -> CRC (Sionna's ``CRCEncoder``) -> 5G LDPC -> Gray QAM -> the shared
  channel -> ZF + APP demapping -> LDPC decoding -> CRC check. A codeword whose CRC fails is
  *erased* (the receiver knows it), never delivered as garbage bits.
* :func:`estimate_bler`: the block error rate of a layout at one SNR by Monte Carlo over the same
  chain and channel (stops at ``target_errors`` block errors or ``max_codewords``), with its 95%
  Clopper-Pearson interval.
* :func:`select_mcs`: link adaptation. ``policy="distortion"`` picks the MCS minimising the expected
  distortion ``(1 - BLER) D(B) + BLER D_erased``; ``policy="bler-target"`` the highest spectral
  efficiency whose BLER is at most a target (10% as in 5G's outer loop; the lowest MCS when none
  meets it). BLERs are estimated lazily
  from the highest MCS the channel can possibly carry downwards, stopping as soon as no lower MCS
  can win.

Example
-------
>>> lay = codeword_layout(mcs_by_index(2), uses_per_example=192)
>>> lay.modulation, lay.span, lay.n, lay.k, lay.crc, lay.payload_bits
('qpsk', 3, 1152, 346, 'CRC16', 110)
>>> low = codeword_layout(mcs_by_index(-1), uses_per_example=192)      # MCS 0 over twice the examples
>>> low.span, low.n, low.k, low.payload_bits
(6, 2304, 135, 19)
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

__all__ = ["MCS", "MCS_TABLE", "mcs_by_index", "CodewordLayout", "codeword_layout", "CodewordLink", "estimate_bler",
           "BlerEstimate", "McsChoice", "select_mcs", "AMC_POLICIES"]

#: The link-adaptation policies of :func:`select_mcs`: minimum expected distortion, or the highest MCS meeting a BLER target.
AMC_POLICIES = ("distortion", "bler-target")


@dataclass(frozen=True)
class MCS:
    """One MCS entry: index in the 3GPP table, bits per QAM symbol, target code rate.

    ``rate_x1024`` is the effective code rate (information bits per code bit, times 1024). ``repetition``
    (default 1) marks the entries below the table: the codeword of the rate ``repetition * rate_x1024 /
    1024`` sent over ``repetition`` times the resources (indices -1, -2, -3: MCS 0 twice, 4 and 8 times).

    Examples
    --------
    >>> mcs = mcs_by_index(2)
    >>> mcs.index, mcs.modulation, round(mcs.rate, 4), round(mcs.spectral_efficiency, 4)
    (2, 'qpsk', 0.3008, 0.6016)
    >>> low = mcs_by_index(-2)
    >>> low.repetition, low.rate_x1024, round(low.spectral_efficiency, 4)
    (4, 30.0, 0.0586)
    """

    index: int
    bits_per_symbol: int
    rate_x1024: float
    repetition: int = 1

    @property
    def rate(self) -> float:
        return self.rate_x1024 / 1024.0

    @property
    def modulation(self) -> str:
        return {2: "qpsk", 4: "16qam", 6: "64qam", 8: "256qam"}[self.bits_per_symbol]

    @property
    def spectral_efficiency(self) -> float:
        return self.bits_per_symbol * self.rate


# 3GPP TS 38.214 V17, Table 5.1.3.1-2 (MCS index, Qm, target code rate R x 1024), indices 0..27, preceded by
# MCS 0 repeated over 2, 4 and 8 times the resources (the aggregation factors of 5G's slot aggregation)
#: The 5G NR MCS entries 0..27 and the repetitions of MCS 0, indices -3..-1 (:class:`MCS`), lowest
#: spectral efficiency first.
MCS_TABLE: Tuple[MCS, ...] = tuple(MCS(-j, 2, 120 / 2 ** j, 2 ** j) for j in (3, 2, 1)) + tuple(MCS(i, q, r) for i, q, r in (
    (0, 2, 120), (1, 2, 193),
    (2, 2, 308), (3, 2, 449), (4, 2, 602),
    (5, 4, 378), (6, 4, 434), (7, 4, 490), (8, 4, 553), (9, 4, 616), (10, 4, 658),
    (11, 6, 466), (12, 6, 517), (13, 6, 567), (14, 6, 616), (15, 6, 666), (16, 6, 719), (17, 6, 772),
    (18, 6, 822), (19, 6, 873),
    (20, 8, 682.5), (21, 8, 711), (22, 8, 754), (23, 8, 797), (24, 8, 841), (25, 8, 885), (26, 8, 916.5),
    (27, 8, 948),
))


def mcs_by_index(index: int) -> MCS:
    """The :data:`MCS_TABLE` entry of MCS ``index`` (-3..27).

    Examples
    --------
    >>> mcs_by_index(0)
    MCS(index=0, bits_per_symbol=2, rate_x1024=120, repetition=1)
    """
    for m in MCS_TABLE:
        if m.index == index and not isinstance(index, bool):
            return m
    raise ValueError(f"index must be an MCS index of MCS_TABLE ({MCS_TABLE[0].index}..{MCS_TABLE[-1].index}), "
                     f"got {index!r}")


@dataclass(frozen=True)
class CodewordLayout:
    """One codeword carries the payload of ``span`` examples (see the module docstring).

    Examples
    --------
    >>> lay = codeword_layout(mcs_by_index(2), uses_per_example=192)
    >>> lay.n, lay.k, lay.span * lay.payload_bits + lay.crc_bits + lay.filler_bits == lay.k
    (1152, 346, True)
    """

    mcs: MCS
    uses_per_example: int
    span: int
    n: int
    k: int
    crc: str
    crc_bits: int
    payload_bits: int         # per example

    @property
    def modulation(self) -> str:
        return self.mcs.modulation

    @property
    def filler_bits(self) -> int:
        """Known zero bits between the payload and the CRC."""
        return self.k - self.crc_bits - self.span * self.payload_bits

    @property
    def coderate(self) -> float:
        return self.k / self.n


def codeword_layout(mcs: MCS, uses_per_example: int, min_codeword_bits: int = 1024) -> CodewordLayout:
    """The codeword layout of ``mcs`` for ``uses_per_example`` complex uses per example.

    Raises ``ValueError`` (naming the numbers) when even one example's uses exceed one codeword
    (``k > 8448``, or ``k > 3840`` for rates at or below 1/4: base graph 2) or the codeword carries no
    payload bit. An entry with ``repetition = r`` (below MCS 0) gets its base rate's layout with ``r``
    times the span and code bits and the same ``k``.

    Examples
    --------
    >>> lay = codeword_layout(MCS_TABLE[-1], uses_per_example=64)
    >>> lay.modulation, lay.span, lay.n, lay.crc, lay.payload_bits
    ('256qam', 2, 1024, 'CRC16', 466)
    >>> lay = codeword_layout(mcs_by_index(0), uses_per_example=192)     # rate 120/1024: the buffer repeats
    >>> lay.span, lay.n, lay.k, lay.payload_bits
    (3, 1152, 135, 39)
    """
    from phy.fec.codes import LDPC5G_BG2_MAX_K, LDPC5G_MAX_K, LDPC5G_MAX_N, LDPC5G_MIN_K

    if not isinstance(mcs, MCS):
        raise TypeError(f"mcs must be a phy.link.amc.MCS, got {type(mcs).__name__}")
    for v, nm in ((uses_per_example, "uses_per_example"), (min_codeword_bits, "min_codeword_bits")):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{nm} must be a positive int, got {v!r}")
    r = mcs.repetition
    if isinstance(r, bool) or not isinstance(r, numbers.Integral) or r < 1:
        raise ValueError(f"mcs.repetition must be a positive int, got {r!r}")
    rate = mcs.rate * r                       # the code rate of the codeword that is repeated
    max_k = LDPC5G_BG2_MAX_K if rate <= 0.25 else LDPC5G_MAX_K   # base graph 2 below 1/4 (TS 38.212 5.2.2)
    per = uses_per_example * mcs.bits_per_symbol
    span = max(1, math.ceil(min_codeword_bits / per))
    while span > 1 and (math.floor(span * per * rate) > max_k or span * per * r > LDPC5G_MAX_N):
        span -= 1
    n = span * per
    k = int(math.floor(n * rate + 1e-9))
    if k > max_k or n * r > LDPC5G_MAX_N:
        raise ValueError(f"MCS {mcs.index}: {uses_per_example} channel uses per example give k={k} information "
                         f"bits (n={n * r}), more than one 5G LDPC codeword (k <= {max_k}); examples split "
                         f"over several codewords are not supported: lower the budget")
    crc, crc_bits = ("CRC24A", 24) if k > 3824 else ("CRC16", 16)
    span, n = span * r, n * r
    payload = (k - crc_bits) // span
    if k < LDPC5G_MIN_K or payload < 1:
        raise ValueError(f"MCS {mcs.index}: {uses_per_example} channel uses per example carry no payload bit "
                         f"(k={k} with a {crc_bits}-bit CRC over {span} examples)")
    return CodewordLayout(mcs, int(uses_per_example), span, n, k, crc, crc_bits, payload)


class CodewordLink:
    """CRC + 5G LDPC + QAM over a shared channel for one :class:`CodewordLayout`.

    ``forward(payload, snr_db)`` takes ``payload [num_codewords, span * payload_bits]`` (0/1) and
    returns ``(payload_hat, crc_ok)``: the decoded payload and a bool ``[num_codewords]``. Each
    codeword occupies ``span * uses_per_example`` channel uses (checked against the link's ledger); over an
    OFDM grid (:class:`phy.ofdm.channel.OFDMChannel`, through :class:`phy.link.digital.DigitalLink`) a layout's use is a data
    symbol, and the codeword is charged the resource elements of its slots, ``ledger(span * uses_per_example)``
    (:attr:`uses_per_codeword`).

    Examples
    --------
    >>> from phy.channel.flat import AWGN
    >>> lay = codeword_layout(mcs_by_index(2), uses_per_example=192)
    >>> link = CodewordLink(AWGN(seed=0), lay)
    >>> payload = torch.randint(0, 2, (2, lay.span * lay.payload_bits)).float()
    >>> payload_hat, crc_ok = link(payload, snr_db=10.0)
    >>> payload_hat.shape, crc_ok.tolist(), bool((payload_hat == payload).all())
    (torch.Size([2, 330]), [True, True], True)
    """

    def __init__(self, channel, layout: CodewordLayout, num_iter: int = 20, decoder: str = "layered"):
        from sionna.phy.fec.crc import CRCDecoder, CRCEncoder

        from phy.fec.codes import make_code
        from phy.link.digital import DigitalLink

        self.layout = layout
        code = make_code("ldpc5g", k=layout.k, n=layout.n, num_iter=num_iter, decoder=decoder)
        self.link = DigitalLink(channel, code=code, modulation=layout.modulation)
        symbols = layout.span * layout.uses_per_example
        # over an OFDM grid a "use" of the layout is a data symbol: the codeword is charged its slots' REs
        self.uses_per_codeword = self.link.channel.ledger(symbols).channel_uses if self.link.ofdm else symbols
        uses = self.link.channel_uses(layout.k)
        if uses != self.uses_per_codeword:
            raise ValueError(f"a codeword of n={layout.n} bits needs {uses} channel uses on this channel (its "
                             f"block length pads it), not {self.uses_per_codeword} (span x uses = {symbols}); "
                             f"choose a budget that is a multiple of the channel's coherence block")
        self.crc_enc = CRCEncoder(layout.crc)
        self.crc_dec = CRCDecoder(self.crc_enc)

    def forward(self, payload: torch.Tensor, snr_db: float) -> Tuple[torch.Tensor, torch.Tensor]:
        lay = self.layout
        if payload.dim() != 2 or payload.shape[1] != lay.span * lay.payload_bits:
            raise ValueError(f"payload must be [num_codewords, {lay.span * lay.payload_bits}], "
                             f"got {tuple(payload.shape)}")
        u = torch.nn.functional.pad(payload.float(), (0, lay.filler_bits))
        with torch.no_grad():
            c = self.crc_enc(u)                                        # [cw, k]
            out = self.link(c, snr_db=float(snr_db))
            if out.channel_uses != self.uses_per_codeword:
                raise RuntimeError(f"codeword used {out.channel_uses} channel uses, planned {self.uses_per_codeword}")
            u_hat, ok = self.crc_dec(out.x_hat)
        return u_hat[:, :payload.shape[1]], ok.reshape(-1).bool()

    __call__ = forward


@dataclass
class BlerEstimate:
    """Block errors counted over ``trials`` codewords; :attr:`bler` is their ratio and :meth:`interval` its
    95% Clopper-Pearson interval.

    Examples
    --------
    >>> est = BlerEstimate(errors=3, trials=100)
    >>> est.bler, [round(v, 4) for v in est.interval()]
    (0.03, [0.0062, 0.0852])
    """
    errors: int
    trials: int

    @property
    def bler(self) -> float:
        return self.errors / self.trials if self.trials else float("nan")

    def interval(self) -> Tuple[float, float]:
        from phy.sim.intervals import clopper_pearson

        return clopper_pearson(self.errors, self.trials)


def estimate_bler(channel, layout: CodewordLayout, snr_db: float, seed: int, *, target_errors: int = 30,
                  max_codewords: int = 600, batch: int = 200, first_batch: int = 32, num_iter: int = 20,
                  decoder: str = "layered") -> BlerEstimate:
    """Block error rate (CRC failures) of ``layout`` at ``snr_db`` over ``channel`` by simulation.

    The channel is reseeded with ``seed`` first (and left wherever the simulation ends: reseed it
    before using it again). Random payloads; stops after ``target_errors`` errors or
    ``max_codewords`` codewords.

    Examples
    --------
    >>> from phy.channel.flat import AWGN
    >>> lay = codeword_layout(mcs_by_index(2), uses_per_example=192)
    >>> est = estimate_bler(AWGN(), lay, snr_db=10.0, seed=0, max_codewords=64)
    >>> est.errors, est.trials
    (0, 64)
    """
    link = CodewordLink(channel, layout, num_iter=num_iter, decoder=decoder)
    channel.reset(int(seed))
    g = torch.Generator().manual_seed(int(seed) & 0x7FFFFFFF)
    errors = trials = 0
    width = layout.span * layout.payload_bits
    m = min(first_batch, max_codewords)
    while trials < max_codewords and errors < target_errors:
        m = min(m, max_codewords - trials)
        payload = torch.randint(0, 2, (m, width), generator=g).float()
        p_hat, ok = link(payload, snr_db)
        errors += int((~ok | (p_hat != payload).any(1)).sum())
        trials += m
        m = min(2 * m, batch)
    return BlerEstimate(errors, trials)


@dataclass
class McsChoice:
    """The chosen layout, its estimated BLER and expected distortion, and every estimate made.

    Examples
    --------
    >>> lays = [codeword_layout(mcs_by_index(i), uses_per_example=192) for i in (2, 3, 4)]
    >>> choice = select_mcs(lays, bler_of=lambda l: 0.0, distortion_of=lambda b: 1.0 / (1 + b),
    ...                     erased_distortion=1.0, capacity_bound=10.0)
    >>> choice.layout.mcs.index, choice.bler, sorted(choice.evaluated)
    (4, 0.0, [4])
    """

    layout: Optional[CodewordLayout]
    bler: float
    expected_distortion: float
    evaluated: Dict[int, Tuple[float, float]]     # MCS index -> (BLER, expected distortion)


def select_mcs(layouts: Sequence[CodewordLayout], bler_of: Callable[[CodewordLayout], float],
               distortion_of: Callable[[int], float], erased_distortion: float, capacity_bound: float,
               policy: str = "distortion", bler_target: float = 0.1) -> McsChoice:
    """Pick the MCS (see the module docstring).

    Parameters
    ----------
    layouts : the candidate layouts (any order).
    bler_of : layout -> estimated BLER (called lazily, highest spectral efficiency first).
    distortion_of : payload bits per example -> distortion when the codeword is received.
    erased_distortion : distortion of an erased example (the receiver's estimate without data).
    capacity_bound : bits per channel use no MCS can exceed with a low BLER (e.g. the AWGN capacity
        at this SNR, an upper bound for every fading channel with ``E|h|^2 = 1``); layouts above it
        are skipped unless none is below, in which case the lowest one is tried.

    Examples
    --------
    >>> lays = [codeword_layout(mcs_by_index(i), uses_per_example=192) for i in range(2, 8)]
    >>> bler = {2: 0.0, 3: 0.0, 4: 0.01, 5: 0.5, 6: 0.9, 7: 1.0}
    >>> choice = select_mcs(lays, bler_of=lambda l: bler[l.mcs.index], distortion_of=lambda b: 2.0 ** (-b / 100),
    ...                     erased_distortion=1.0, capacity_bound=1.5)
    >>> choice.layout.mcs.index, sorted(choice.evaluated)
    (4, [4, 5])

    MCS 6 and 7 exceed 1.5 bit/use and are never simulated; MCS 3 and 2 carry fewer bits than MCS 4, so
    even error-free they cannot beat it and are not simulated either.
    """
    if policy not in AMC_POLICIES:
        raise ValueError(f"policy must be one of {AMC_POLICIES}, got {policy!r}")
    if not 0 < bler_target < 1:
        raise ValueError(f"bler_target must be in (0, 1), got {bler_target!r}")
    order = sorted(layouts, key=lambda l: l.mcs.spectral_efficiency, reverse=True)
    if not order:
        return McsChoice(None, 1.0, erased_distortion, {})
    feasible = [l for l in order if l.mcs.spectral_efficiency <= capacity_bound] or order[-1:]
    evaluated: Dict[int, Tuple[float, float]] = {}
    best: Optional[CodewordLayout] = None
    best_val, best_bler = float(erased_distortion), 1.0
    for lay in feasible:
        d_ok = float(distortion_of(lay.payload_bits))
        if policy == "distortion" and best is not None and d_ok >= best_val:
            break  # lower MCS carry fewer bits: even error-free they cannot beat the best so far
        p = float(bler_of(lay))
        val = (1.0 - p) * d_ok + p * float(erased_distortion)
        evaluated[lay.mcs.index] = (p, val)
        if policy == "bler-target":
            best, best_val, best_bler = lay, val, p   # none meets the target: the lowest MCS tried
            if p <= bler_target:
                break
            continue
        if val < best_val or best is None:
            best, best_val, best_bler = lay, val, p
    return McsChoice(best, best_bler, best_val, evaluated)
