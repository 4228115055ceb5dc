"""``semcom compare``: analog semantic transmission vs digital separation at matched channel uses.

Every scheme sends the same real feature vectors ``f [N, d]`` of a source (default: the embedded
``pydoc-minilm`` sentences, ``d = 384``) over **one shared channel object** per channel kind, and
reports the complex channel uses it spent per example. SNR is Es/N0 per complex channel use.

Schemes (``--schemes``, comma list)
-----------------------------------
``analog`` (``analog-zf``, ``analog-mmse``)
    :class:`phy.links.AnalogLink`: pairs of reals -> one complex symbol, per-example power
    normalisation, ZF or MMSE equalisation. ``ceil(d/2)`` uses. ``analog`` takes ``--equalizer``.
``quant-<code>-<mod>`` with ``<code>`` in ``none, hamming74, ldpc5g`` and ``<mod>`` in ``qpsk, 16qam, ...``
    Separation: :class:`phy.quantization.UniformQuantizer` (``b`` bits per element, natural binary,
    range fitted on the source as the percentile range with the smallest quantisation MSE; the range
    is side information) -> :class:`phy.links.DigitalLink` (code + Gray QAM + channel + ZF + APP
    demapping + decoder; LDPC5G at nominal rate ``--ldpc-rate``, decoded by the layered min-sum decoder
    by default, ``--ldpc-decoder bp`` for Sionna's flooding BP) -> dequantise.
``quant-ideal``
    The same quantiser with an ideal capacity-achieving code (:class:`phy.links.IdealCodeLink`,
    ``capacity="instantaneous"``): a payload of ``B`` bits in ``U`` uses is received error-free iff
    ``B <= sum_i log2(1 + |h_i|^2 snr)`` over the realised channel, else the example is in outage
    and the receiver gets nothing. Without transmitter CSI the payload is designed for an outage
    probability ``--ideal-outage`` (default 0.1): ``B`` = the ``--ideal-outage`` quantile of the
    mutual information of ``U`` uses, estimated from 2000 design draws of the same channel (AWGN:
    exactly ``floor(U log2(1 + snr))``).
``ascii-<code>-<mod>`` (text sources only; default ``ascii-hamming74-16qam``)
    The raw sentence as 7-bit ASCII (:class:`phy.text_codec.TextCodec`) through a DigitalLink; the
    received text is re-encoded by the source's encoder (MiniLM) for the feature metrics and the
    retrieval, and scored with BLEU against the full original sentence.

Matched bandwidth (default)
---------------------------
``--budget U`` complex channel uses per example (default: the analog scheme's ``ceil(d/2)``).
Every scheme is fitted into ``U``; the actual uses are reported (``channel_uses`` <= ``budget``):

* digital: the information-bit capacity of the budget (``U m`` coded bits, ``m`` bits/symbol;
  Hamming: ``4 floor(U m / 7)``; LDPC: ``floor(U m r)``; ideal: see above) sets
  ``b = clamp(floor(capacity / d), 1, --max-bits-per-element)``; if even 1 bit per element does not
  fit, only the first ``floor(capacity / b)`` features are sent (``truncated_dims`` > 0). The
  actual uses are those of :meth:`phy.links.DigitalLink.channel_uses` for the real payload.
* analog: with a budget below ``ceil(d/2)`` only the first ``2U`` features are sent.
* text: every sentence is cut to the longest prefix whose ASCII + code + QAM frame fits ``U``
  (``chars_sent``); the per-example uses vary with the sentence length, ``channel_uses`` reports
  the largest, ``channel_uses_mean`` the mean.
* A feature that was not sent (truncation) or an example in outage is replaced by the receiver's
  fallback estimate, the **source mean** (known statistics); retrieval with the fallback picks the
  item nearest to the mean, i.e. it succeeds about as often as chance (``chance = 1/N``).
* The ideal code bounds *this* source code (scalar quantiser + truncation), not the
  rate-distortion limit: at very low SNR it delivers a few error-free features, which can retrieve
  worse than all features sent with many bit errors.

``--no-match`` sends every scheme at its natural size instead (all features at ``--bits`` bits per
element, default 4; the full text), with ``matched = false`` and the actual uses reported.

Metrics per (scheme, channel, SNR)
----------------------------------
``nmse`` = sum ||f - f_hat||^2 / sum ||f||^2 over the examples; ``cosine`` = mean cosine
similarity of ``f_hat`` to ``f``; ``retrieval_top1`` = fraction of examples whose nearest
neighbour (cosine) among all N source features is their own; ``ber`` = information-bit error rate
of a digital scheme (for ``quant-ideal``: the bits of examples in outage are fair coin flips, as
:class:`phy.links.IdealCodeLink` fills them, although their features are replaced by the fallback);
``outage_rate`` (ideal); for text schemes ``semantic_similarity`` (MiniLM
cosine of the received to the original sentence, equal to ``cosine``) and ``bleu`` (sacrebleu
corpus BLEU-4, 0-100). Empty cells mean "does not apply".

Outputs (``--out``): ``compare.csv`` (resumable, keyed by ``scheme, channel, snr_db``; each point
reseeds the shared channel from ``(seed, scheme, channel, snr_db)``, so the same seed gives the
same CSV, resumed or not), ``retrieval_<channel>.png``, ``cosine_<channel>.png``
(``bleu_<channel>.png`` with text schemes) and ``manifest.json``.

Example
-------
``semcom compare --source pydoc-minilm --channel awgn,rayleigh --equalizer mmse --snr-db=-20:15:5 --out runs/cmp``
"""
from __future__ import annotations

import argparse
import math
import numbers
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from experiments.ber import parse_device, positive_int_arg, snr_list_arg

__all__ = [
    "KEY_COLUMNS", "VALUE_COLUMNS", "COLUMNS", "SNR_AXIS_LABEL", "DEFAULT_SCHEMES",
    "Plan", "Received", "Scheme", "AnalogScheme", "QuantizedDigitalScheme", "IdealQuantizedScheme",
    "TextScheme", "make_scheme", "fit_quantizer", "feature_metrics", "CompareConfig", "run_comparison",
    "plot_comparison", "add_arguments", "main",
]

SNR_AXIS_LABEL = "Es/N0 per complex channel use [dB]"
KEY_COLUMNS = ["scheme", "channel", "snr_db"]
VALUE_COLUMNS = [
    "equalizer", "matched", "budget", "channel_uses", "channel_uses_mean", "fits", "bits_per_element",
    "dims_sent", "truncated_dims", "chars_sent", "modulation", "code", "coderate", "info_bits", "quant_lo",
    "quant_hi", "n_examples", "n_items", "chance", "nmse", "cosine", "retrieval_top1", "semantic_similarity",
    "bleu", "ber", "outage_rate", "seed", "note",
]
COLUMNS = KEY_COLUMNS + VALUE_COLUMNS
DEFAULT_SCHEMES = ("analog", "quant-hamming74-qpsk", "quant-hamming74-16qam", "quant-ldpc5g-qpsk",
                   "quant-ldpc5g-16qam", "quant-ideal", "ascii-hamming74-16qam")
_PERCENTILES = (90.0, 95.0, 98.0, 99.0, 99.5, 99.9, 100.0)


# --------------------------------------------------------------------------------------------
# Metrics (pure functions)
# --------------------------------------------------------------------------------------------
def feature_metrics(f: torch.Tensor, f_hat: torch.Tensor, bank: torch.Tensor,
                    index: Optional[torch.Tensor] = None, chunk: int = 2048) -> Dict[str, float]:
    """NMSE, mean cosine and top-1 retrieval of received features.

    Parameters
    ----------
    f, f_hat : Tensor ``[M, d]``
        Sent and received features.
    bank : Tensor ``[N, d]``
        All source features; the retrieval target of row ``i`` is ``bank[index[i]]``.
    index : Tensor ``[M]`` int64, optional
        Bank row of each example (default ``arange(M)``).

    Returns
    -------
    dict with ``nmse`` (``sum ||f - f_hat||^2 / sum ||f||^2``), ``cosine`` (mean) and
    ``retrieval_top1`` (fraction of rows whose highest-cosine bank entry is their own; ties go
    to the lowest index, so a constant estimate is right for exactly one item).

    Example
    -------
    >>> f = torch.eye(3)
    >>> feature_metrics(f, f, f)["retrieval_top1"]
    1.0
    """
    if f.shape != f_hat.shape or f.dim() != 2 or bank.dim() != 2 or bank.shape[1] != f.shape[1]:
        raise ValueError(f"need f, f_hat [M, d] and bank [N, d]; got {tuple(f.shape)}, {tuple(f_hat.shape)}, "
                         f"{tuple(bank.shape)}")
    f, f_hat, bank = f.double(), f_hat.double(), bank.double()
    m = f.shape[0]
    if index is None:
        index = torch.arange(m)
    err = (f - f_hat).square().sum()
    nmse = float(err / f.square().sum().clamp_min(1e-300))
    cos = torch.nn.functional.cosine_similarity(f_hat, f, dim=1, eps=1e-12)
    bn = torch.nn.functional.normalize(bank, dim=1, eps=1e-12)
    hn = torch.nn.functional.normalize(f_hat, dim=1, eps=1e-12)
    hits = 0
    for s in range(0, m, chunk):
        sims = hn[s:s + chunk] @ bn.T
        hits += int((sims.argmax(dim=1) == index[s:s + chunk].to(sims.device)).sum())
    return {"nmse": nmse, "cosine": float(cos.mean()), "retrieval_top1": hits / m}


def fit_quantizer(x: torch.Tensor, bits: int):
    """A :class:`phy.quantization.UniformQuantizer` with ``bits`` bits whose range is the
    percentile range (of ``90, 95, 98, 99, 99.5, 99.9, 100``) giving the smallest MSE on ``x``."""
    from phy.quantization import UniformQuantizer

    best, best_mse = None, math.inf
    for p in _PERCENTILES:
        q = UniformQuantizer(bits, fit_mode="percentile" if p < 100 else "minmax",
                             percentile=p if p < 100 else 99.9).fit(x)
        mse = float((q(x) - x).square().mean())
        if mse < best_mse:
            best, best_mse = q, mse
    return best


# --------------------------------------------------------------------------------------------
# Schemes
# --------------------------------------------------------------------------------------------
@dataclass
class Plan:
    """How a scheme fits the budget (per example). ``channel_uses`` are complex channel uses."""

    channel_uses: int
    fits: bool
    dims_sent: Optional[int] = None
    bits_per_element: Optional[int] = None
    info_bits: Optional[int] = None
    coderate: Optional[float] = None
    chars_sent: Optional[float] = None
    channel_uses_mean: Optional[float] = None
    note: str = ""
    extra: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Received:
    """What the receiver reconstructs for the examples ``index`` (rows of the source)."""

    features: torch.Tensor           # [M, d]
    index: torch.Tensor              # [M] int64
    texts: Optional[List[str]] = None
    ber: Optional[float] = None
    outage_rate: Optional[float] = None


class _Context:
    """Everything a scheme needs at run time (shared by all schemes of one comparison)."""

    def __init__(self, source, budget: int, matched: bool, equalizer: str, device, bits: Optional[int],
                 max_bits: int, ldpc_rate: float, ideal_outage: float, text_max_items: Optional[int],
                 ldpc_iter: int = 20, ldpc_decoder: str = "layered"):
        self.source = source
        self.features = source.features.to(device)
        self.fallback = self.features.mean(0)
        self.budget = budget
        self.matched = matched
        self.equalizer = equalizer
        self.device = device
        self.bits = bits
        self.max_bits = max_bits
        self.ldpc_rate = ldpc_rate
        self.ldpc_iter = ldpc_iter
        self.ldpc_decoder = ldpc_decoder
        self.ideal_outage = ideal_outage
        self.text_max_items = text_max_items
        self._quantizers: Dict[Tuple[int, int], Any] = {}
        self._codes: Dict[Tuple, Any] = {}
        self._emb_cache: Dict[str, torch.Tensor] = {}
        self.channel = None  # the shared channel of the channel kind being run

    @property
    def dim(self) -> int:
        return self.features.shape[1]

    def quantizer(self, bits: int, dims: int):
        key = (bits, dims)
        if key not in self._quantizers:
            self._quantizers[key] = fit_quantizer(self.features[:, :dims], bits)
        return self._quantizers[key]

    def code(self, name: str, k: Optional[int] = None, n: Optional[int] = None):
        from phy.codes import make_code

        key = (name, k, n)
        if key not in self._codes:
            if name == "ldpc5g":
                self._codes[key] = make_code("ldpc5g", k=k, n=n, num_iter=self.ldpc_iter,
                                             decoder=self.ldpc_decoder)
            elif name == "none":
                self._codes[key] = make_code("none", k=k or 1)
            else:
                self._codes[key] = make_code(name)
        return self._codes[key]

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Re-encode received texts with the source's encoder (once per distinct text of this call).

        The batch is the sorted distinct texts of this call only, never texts cached by earlier
        points: a batched encoder's output depends (~1e-7) on the batch it runs in, so a cache
        shared across points would make a resumed run's rows differ from an uninterrupted run's.
        """
        todo = sorted(set(texts))
        emb = self.source.encoder(todo).float()
        self._emb_cache = dict(zip(todo, emb))
        return torch.stack([self._emb_cache[t] for t in texts]).to(self.device)


class Scheme:
    """Base class: ``plan(ctx, snr_db, channel)`` then ``transmit(ctx, plan, channel, snr_db)``."""

    name = "scheme"
    kind = "scheme"
    modulation: Optional[str] = None
    code_name: Optional[str] = None
    snr_dependent_plan = False

    def applies(self, source) -> Tuple[bool, str]:
        return True, ""

    def plan(self, ctx: _Context, snr_db: float, channel) -> Plan:  # pragma: no cover - abstract
        raise NotImplementedError

    def transmit(self, ctx: _Context, plan: Plan, channel, snr_db: float) -> Received:  # pragma: no cover
        raise NotImplementedError


def _fill(ctx: _Context, head: torch.Tensor, dims: int) -> torch.Tensor:
    """Received first ``dims`` features + the fallback (source mean) for the rest."""
    out = ctx.fallback.expand(head.shape[0], ctx.dim).clone()
    out[:, :dims] = head
    return out


class AnalogScheme(Scheme):
    """Features as complex symbols through :class:`phy.links.AnalogLink` (``ceil(d/2)`` uses)."""

    kind = "analog"

    def __init__(self, equalizer: Optional[str] = None):
        self.fixed_equalizer = equalizer
        self.name = "analog" if equalizer is None else f"analog-{equalizer}"

    def equalizer(self, ctx) -> str:
        return self.fixed_equalizer or ctx.equalizer

    def plan(self, ctx, snr_db, channel):
        d = ctx.dim
        full = math.ceil(d / 2)
        if not ctx.matched or ctx.budget >= full:
            note = "" if (not ctx.matched or ctx.budget == full) else f"uses {full} of the {ctx.budget} budget"
            return Plan(full, True, dims_sent=d, note=note)
        dims = min(d, 2 * ctx.budget)
        return Plan(math.ceil(dims / 2), False, dims_sent=dims,
                    note=f"truncated: first {dims} of {d} features sent (fallback for the rest)")

    def transmit(self, ctx, plan, channel, snr_db):
        from phy.links import AnalogLink

        link = AnalogLink(channel, equalizer=self.equalizer(ctx))
        f = ctx.features[:, :plan.dims_sent]
        out = link(f, snr_db=float(snr_db))
        if out.channel_uses != plan.channel_uses:  # the ledger must agree with the plan
            raise RuntimeError(f"analog link used {out.channel_uses} channel uses, planned {plan.channel_uses}")
        return Received(_fill(ctx, out.x_hat, plan.dims_sent), torch.arange(ctx.features.shape[0]))


def _choose_bits(capacity_bits: int, d: int, fixed: Optional[int], max_bits: int) -> Tuple[int, int]:
    """(bits per element, features sent) for an information-bit capacity."""
    b = fixed if fixed is not None else max(1, min(max_bits, capacity_bits // d))
    return b, min(d, capacity_bits // b)


class QuantizedDigitalScheme(Scheme):
    """Quantiser + channel code + QAM through :class:`phy.links.DigitalLink` (ZF + APP demapping)."""

    kind = "digital"

    def __init__(self, code: str, modulation: str):
        from phy.codes import CODES
        from phy.modulation import bits_per_symbol

        if code not in CODES:
            raise ValueError(f"unknown code {code!r} in a quant-<code>-<mod> scheme; expected one of {sorted(CODES)}")
        self.code_name = code
        self.m = bits_per_symbol(modulation)
        self.modulation = modulation
        self.name = f"quant-{code}-{modulation}"

    # -- sizes ----------------------------------------------------------------------------------
    def _code_for(self, ctx, payload: int):
        """(code, link payload bits incl. zero padding) for ``payload`` information bits."""
        from phy.codes import LDPC5G_MAX_K

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
        from phy.links import DigitalLink

        code, padded = self._code_for(ctx, payload)
        return DigitalLink(ctx.channel, code=code, modulation=self.modulation).channel_uses(padded)

    def capacity_bits(self, ctx) -> int:
        """Information bits that fit the budget."""
        coded = ctx.budget * self.m
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
        from phy.links import DigitalLink

        n_items = ctx.features.shape[0]
        index = torch.arange(n_items)
        if plan.dims_sent == 0:
            return Received(ctx.fallback.expand(n_items, ctx.dim).clone(), index)
        q = ctx.quantizer(plan.bits_per_element, plan.dims_sent)
        code, padded = self._code_for(ctx, plan.info_bits)
        link = DigitalLink(channel, code=code, modulation=self.modulation)
        bits = q.encode(ctx.features[:, :plan.dims_sent])
        sent = torch.nn.functional.pad(bits, (0, padded - bits.shape[1])) if padded > bits.shape[1] else bits
        out = link(sent, snr_db=float(snr_db))
        if out.channel_uses != plan.channel_uses:
            raise RuntimeError(f"{self.name}: link used {out.channel_uses} channel uses, planned {plan.channel_uses}")
        bits_hat = out.x_hat[:, :bits.shape[1]]
        ber = float((bits_hat != bits).float().mean())
        head = q.decode(bits_hat).to(ctx.features.dtype)
        return Received(_fill(ctx, head, plan.dims_sent), index, ber=ber)


class IdealQuantizedScheme(Scheme):
    """Quantiser + ideal capacity-achieving code (:class:`phy.links.IdealCodeLink`)."""

    kind = "ideal"
    name = "quant-ideal"
    code_name = "ideal"
    snr_dependent_plan = True
    design_draws = 2000

    def design_capacity(self, ctx, snr_db: float, channel, uses: int) -> int:
        """Payload bits with outage probability ~``ctx.ideal_outage`` over ``uses`` channel uses."""
        from phy.capacity import instantaneous_capacity
        from phy.conventions import snr_db_to_no

        x = torch.ones(self.design_draws, uses, dtype=torch.complex64, device=ctx.device)
        h = channel(x, snr_db_to_no(float(snr_db))).h
        if h is None:  # AWGN: deterministic
            mi = instantaneous_capacity(None, float(snr_db), uses).reshape(1)
        else:
            mi = instantaneous_capacity(h.expand(x.shape), float(snr_db), uses)
        return int(math.floor(float(torch.quantile(mi.cpu(), ctx.ideal_outage)) + 1e-9))

    def plan(self, ctx, snr_db, channel):
        from phy.capacity import awgn_capacity, rayleigh_ergodic_capacity

        d = ctx.dim
        if not ctx.matched:
            b = ctx.bits or 4
            payload = b * d
            cap = awgn_capacity(float(snr_db)) if getattr(channel, "name", "") == "awgn" \
                else rayleigh_ergodic_capacity(float(snr_db))
            uses = int(math.ceil(payload / cap - 1e-9))
            return Plan(uses, True, dims_sent=d, bits_per_element=b, info_bits=payload,
                        note="not matched: uses = payload / nominal capacity (AWGN or ergodic Rayleigh)")
        cap = self.design_capacity(ctx, snr_db, channel, ctx.budget)
        b, dims = _choose_bits(cap, d, ctx.bits, ctx.max_bits)
        if dims == 0:
            return Plan(0, False, dims_sent=0, bits_per_element=b, info_bits=0,
                        note=f"skipped: design capacity {cap} bits in {ctx.budget} uses carries no element")
        note = f"design payload <= {cap} bits (outage target {ctx.ideal_outage})"
        if dims < d:
            note = f"truncated: first {dims} of {d} features sent; " + note
        return Plan(ctx.budget, dims == d, dims_sent=dims, bits_per_element=b, info_bits=b * dims, note=note)

    def transmit(self, ctx, plan, channel, snr_db):
        from phy.links import IdealCodeLink

        n_items = ctx.features.shape[0]
        index = torch.arange(n_items)
        if plan.dims_sent == 0:
            return Received(ctx.fallback.expand(n_items, ctx.dim).clone(), index, outage_rate=1.0)
        q = ctx.quantizer(plan.bits_per_element, plan.dims_sent)
        link = IdealCodeLink(channel, plan.channel_uses, capacity="instantaneous")
        bits = q.encode(ctx.features[:, :plan.dims_sent])
        out = link(bits, snr_db=float(snr_db))
        outage = out.info["outage"].reshape(n_items)
        head = q.decode(out.x_hat).to(ctx.features.dtype)
        f_hat = _fill(ctx, head, plan.dims_sent)
        f_hat[outage] = ctx.fallback  # the receiver gets nothing: fallback estimate
        return Received(f_hat, index, outage_rate=float(outage.float().mean()),
                        ber=float((out.x_hat != bits).float().mean()))


class TextScheme(Scheme):
    """Raw text as 7-bit ASCII + code + QAM; the received text is re-encoded by the source encoder."""

    kind = "text"

    def __init__(self, code: str = "hamming74", modulation: str = "16qam"):
        from phy.modulation import bits_per_symbol

        if code not in ("hamming74", "none"):
            raise ValueError(f"ascii-<code>-<mod>: code must be hamming74 or none (a fixed small block), got {code!r}")
        self.code_name = code
        self.modulation = modulation
        self.m = bits_per_symbol(modulation)
        self.name = f"ascii-{code}-{modulation}"

    def applies(self, source):
        if not source.has_text:
            return False, "source has no sentences + encoder"
        return True, ""

    def _codec_link(self, ctx, channel=None):
        from phy.links import DigitalLink
        from phy.text_codec import TextCodec

        code = ctx.code(self.code_name, k=1) if self.code_name == "none" else ctx.code(self.code_name)
        link = DigitalLink(channel if channel is not None else ctx.channel, code=code, modulation=self.modulation)
        return TextCodec(block_size=code.k, errors="replace"), link

    def uses_for_chars(self, ctx, chars: int, _cl=None) -> int:
        """Channel uses of a sentence of ``chars`` characters (``DigitalLink.channel_uses``)."""
        codec, link = _cl or self._codec_link(ctx)
        return 0 if chars == 0 else link.channel_uses(codec.num_bits(chars))

    def max_chars(self, ctx) -> int:
        """Longest sentence prefix (characters) whose frame fits the budget."""
        cl = self._codec_link(ctx)
        c = 0
        while self.uses_for_chars(ctx, c + 1, cl) <= ctx.budget:
            c += 1
        return c

    def _items(self, ctx):
        items = ctx.source.items
        if ctx.text_max_items is not None:
            items = items[:ctx.text_max_items]
        return items

    def plan(self, ctx, snr_db, channel):
        items = self._items(ctx)
        lengths = [len(s) for s in items]
        if ctx.matched:
            cmax = self.max_chars(ctx)
            sent = [min(n, cmax) for n in lengths]
        else:
            cmax = max(lengths)
            sent = lengths
        cl = self._codec_link(ctx)
        table = {c: self.uses_for_chars(ctx, c, cl) for c in set(sent)}
        uses = [table[c] for c in sent]
        cut = sum(a < b for a, b in zip(sent, lengths))
        note = (f"{cut} of {len(items)} sentences cut to {cmax} chars" if cut else "full sentences")
        if len(items) < ctx.source.n_items:
            note += f"; first {len(items)} sentences sent, retrieval among all {ctx.source.n_items}"
        return Plan(max(uses), cut == 0, info_bits=None, chars_sent=sum(sent) / len(sent),
                    channel_uses_mean=sum(uses) / len(uses), note=note,
                    extra={"sent_chars": sent, "max_chars": cmax})

    def transmit(self, ctx, plan, channel, snr_db):
        items = self._items(ctx)
        sent_chars = plan.extra["sent_chars"]
        texts = [s[:c] for s, c in zip(items, sent_chars)]
        if max(sent_chars) == 0:  # the budget carries no character: nothing sent, fallback estimate
            n = len(items)
            return Received(ctx.fallback.expand(n, ctx.dim).clone(), torch.arange(n), texts=[""] * n)
        codec, link = self._codec_link(ctx, channel)
        bits, lengths = codec.encode_batch(texts)
        bits = bits.to(ctx.device)
        out = link(bits, snr_db=float(snr_db))
        rx = codec.decode_batch(out.x_hat, lengths)
        n_bits = [7 * c for c in sent_chars]
        mask = torch.arange(bits.shape[1], device=bits.device).unsqueeze(0) < torch.tensor(n_bits,
                                                                                           device=bits.device)[:, None]
        ber = float(((out.x_hat != bits) & mask).sum() / mask.sum().clamp_min(1))
        feats = ctx.encode_texts(rx)
        return Received(feats, torch.arange(len(items)), texts=rx, ber=ber)


def make_scheme(spec: str) -> Scheme:
    """A scheme from its name (see the module docstring).

    >>> make_scheme("quant-ldpc5g-16qam").name
    'quant-ldpc5g-16qam'
    """
    if not isinstance(spec, str):
        raise TypeError(f"scheme must be a str, got {type(spec).__name__}")
    s = spec.strip().lower()
    if s == "analog":
        return AnalogScheme()
    if s in ("analog-zf", "analog-mmse"):
        return AnalogScheme(s.split("-")[1])
    if s == "quant-ideal":
        return IdealQuantizedScheme()
    parts = s.split("-")
    if len(parts) == 3 and parts[0] in ("quant", "ascii"):
        from phy.modulation import MODULATIONS

        if parts[2] not in MODULATIONS:
            raise ValueError(f"scheme {spec!r}: unknown modulation {parts[2]!r}; expected one of {sorted(MODULATIONS)}")
        return (QuantizedDigitalScheme if parts[0] == "quant" else TextScheme)(parts[1], parts[2])
    raise ValueError(f"unknown scheme {spec!r}: expected analog, analog-zf, analog-mmse, quant-<code>-<mod> "
                     f"(code none/hamming74/ldpc5g), quant-ideal or ascii-<code>-<mod>")


# --------------------------------------------------------------------------------------------
# The comparison
# --------------------------------------------------------------------------------------------
@dataclass
class CompareConfig:
    """Settings of one comparison (recorded in the manifest; a resumed run must match them)."""

    schemes: Sequence[str] = DEFAULT_SCHEMES
    channels: Sequence[str] = ("awgn",)
    snr_db: Sequence[float] = (-20.0, -10.0, 0.0, 10.0)
    budget: Optional[int] = None          # complex channel uses per example; None: ceil(d/2)
    matched: bool = True
    equalizer: str = "mmse"
    bits: Optional[int] = None            # fixed bits per element (default: chosen by the budget)
    max_bits_per_element: int = 8
    ldpc_rate: float = 0.5
    ldpc_iter: int = 20
    ldpc_decoder: str = "layered"         # phy.codes.LDPC5G decoder: "layered" (fast min-sum) or "bp"
    ideal_outage: float = 0.1
    text_max_items: Optional[int] = None
    seed: int = 0
    device: str = "cpu"

    def validate(self, dim: int) -> "CompareConfig":
        from phy.channels import CHANNELS
        from phy.equalization import EQUALIZERS

        if isinstance(self.budget, bool) or (self.budget is not None and (
                not isinstance(self.budget, numbers.Integral) or self.budget < 1)):
            raise ValueError(f"budget must be a positive int (complex channel uses per example) or None, "
                             f"got {self.budget!r}")
        if self.equalizer not in EQUALIZERS:
            raise ValueError(f"equalizer must be one of {EQUALIZERS}, got {self.equalizer!r}")
        bad = [c for c in self.channels if c not in CHANNELS]
        if bad or not self.channels:
            raise ValueError(f"unknown channel {bad[0] if bad else None!r}; expected one of {sorted(CHANNELS)}")
        if not self.snr_db:
            raise ValueError("snr_db must list at least one SNR point")
        for s in self.snr_db:
            if isinstance(s, bool) or not isinstance(s, numbers.Real) or not math.isfinite(s):
                raise ValueError(f"snr_db values must be finite numbers, got {s!r}")
        if self.bits is not None and (isinstance(self.bits, bool) or not isinstance(self.bits, numbers.Integral)
                                      or not 1 <= self.bits <= 24):
            raise ValueError(f"bits must be an int in [1, 24] or None, got {self.bits!r}")
        if not isinstance(self.max_bits_per_element, numbers.Integral) or not 1 <= self.max_bits_per_element <= 24:
            raise ValueError(f"max_bits_per_element must be an int in [1, 24], got {self.max_bits_per_element!r}")
        if not 0.2 <= self.ldpc_rate <= 0.95:
            raise ValueError(f"ldpc_rate must be in [0.2, 0.95] (5G NR LDPC), got {self.ldpc_rate!r}")
        if self.ldpc_decoder not in ("layered", "bp"):
            raise ValueError(f"ldpc_decoder must be 'layered' or 'bp', got {self.ldpc_decoder!r}")
        if not 0 < self.ideal_outage < 1:
            raise ValueError(f"ideal_outage must be in (0, 1), got {self.ideal_outage!r}")
        if self.text_max_items is not None and (not isinstance(self.text_max_items, numbers.Integral)
                                                or self.text_max_items < 1):
            raise ValueError(f"text_max_items must be a positive int or None, got {self.text_max_items!r}")
        names = [make_scheme(s).name for s in self.schemes]
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"schemes must be a non-empty list without duplicates, got {list(self.schemes)}")
        return self

    def effective_budget(self, dim: int) -> int:
        return self.budget if self.budget is not None else math.ceil(dim / 2)

    def settings(self, source) -> Dict[str, Any]:
        """What a resumed run must share with the one that wrote the CSV."""
        d = asdict(self)
        d.pop("channels"), d.pop("snr_db"), d.pop("schemes")
        d["budget"] = self.effective_budget(source.dim)
        d["source"] = source.name
        d["source_n_items"] = source.n_items
        d["source_feature_hash"] = source.feature_hash()
        return d


def _chance(n: int) -> float:
    return 1.0 / n


def run_comparison(source, config: CompareConfig, out_dir: Optional[str] = None, table=None,
                   progress: bool = True, log: Callable[[str], None] = None) -> List[Dict[str, Any]]:
    """Run every (channel, scheme, SNR) point and return the rows (also appended to ``table``).

    Parameters
    ----------
    source : :class:`experiments.sources.FeatureSource`
    config : :class:`CompareConfig`
    table : :class:`experiments.results.ResumableCSV`, optional
        Rows already in it are skipped (resume); new rows are appended as they finish.
    progress : bool
        Print one line per point to stderr.
    """
    from phy.channels import make_channel
    from phy.montecarlo import format_value, point_seed

    config.validate(source.dim)
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    device = torch.device(config.device)
    budget = config.effective_budget(source.dim)
    ctx = _Context(source, budget, config.matched, config.equalizer, device, config.bits,
                   config.max_bits_per_element, config.ldpc_rate, config.ideal_outage, config.text_max_items,
                   config.ldpc_iter, config.ldpc_decoder)
    schemes = [make_scheme(s) for s in config.schemes]
    done = table.finished_keys() if table is not None else set()
    rows: List[Dict[str, Any]] = []
    total = len(config.channels) * len(schemes) * len(config.snr_db)
    count, t0 = 0, time.perf_counter()
    for ch_name in config.channels:
        channel = make_channel(ch_name, seed=config.seed)  # one channel object, shared by every scheme
        ctx.channel = channel
        for scheme in schemes:
            ok, why = scheme.applies(source)
            static_plan = None
            for snr in config.snr_db:
                count += 1
                key = (scheme.name, ch_name, float(snr))
                if tuple(format_value(v) for v in key) in done:
                    rows.append(table.get(key))
                    continue
                if not ok:
                    if progress:
                        log(f"[compare {count}/{total}] {ch_name} {scheme.name}: skipped ({why})")
                    continue
                channel.reset(point_seed(config.seed, scheme.name, ch_name, float(snr)))
                if scheme.snr_dependent_plan or static_plan is None:
                    plan = scheme.plan(ctx, float(snr), channel)
                    if not scheme.snr_dependent_plan:
                        static_plan = plan
                else:
                    plan = static_plan
                if ctx.matched and plan.channel_uses > budget:
                    raise RuntimeError(f"{scheme.name} planned {plan.channel_uses} uses > budget {budget}")
                rx = scheme.transmit(ctx, plan, channel, float(snr))
                f = ctx.features[rx.index]
                met = feature_metrics(f, rx.features, ctx.features, rx.index)
                row = _row(scheme, plan, rx, met, ctx, config, ch_name, float(snr), source)
                if table is not None:
                    table.append(row)
                rows.append(row)
                if progress:
                    log(f"[compare {count}/{total} {time.perf_counter() - t0:6.1f}s] {ch_name:8s} "
                        f"{scheme.name:24s} {float(snr):6.1f} dB  uses={plan.channel_uses:4d}  "
                        f"retrieval={met['retrieval_top1']:.3f}  cosine={met['cosine']:.3f}")
    return rows


def _row(scheme, plan, rx, met, ctx, config, ch_name, snr, source) -> Dict[str, Any]:
    q = None
    if plan.bits_per_element and plan.dims_sent and scheme.kind in ("digital", "ideal"):
        q = ctx.quantizer(plan.bits_per_element, plan.dims_sent)
    text = scheme.kind == "text"
    bleu = None
    if text:
        from sacrebleu.metrics import BLEU

        refs = [source.items[i] for i in rx.index.tolist()]
        bleu = float(BLEU().corpus_score(rx.texts, [refs]).score)
    dims = plan.dims_sent
    return {
        "scheme": scheme.name, "channel": ch_name, "snr_db": snr,
        "equalizer": (scheme.equalizer(ctx) if isinstance(scheme, AnalogScheme) else "zf"),
        "matched": ctx.matched, "budget": ctx.budget if ctx.matched else None,
        "channel_uses": plan.channel_uses, "channel_uses_mean": plan.channel_uses_mean
        if plan.channel_uses_mean is not None else float(plan.channel_uses),
        "fits": plan.fits, "bits_per_element": plan.bits_per_element, "dims_sent": dims,
        "truncated_dims": None if dims is None else ctx.dim - dims,
        "chars_sent": plan.chars_sent, "modulation": scheme.modulation,
        "code": scheme.code_name, "coderate": plan.coderate, "info_bits": plan.info_bits,
        "quant_lo": None if q is None else q.lo, "quant_hi": None if q is None else q.hi,
        "n_examples": int(rx.index.numel()), "n_items": ctx.features.shape[0],
        "chance": _chance(ctx.features.shape[0]),
        "nmse": met["nmse"], "cosine": met["cosine"], "retrieval_top1": met["retrieval_top1"],
        "semantic_similarity": met["cosine"] if text else None, "bleu": bleu,
        "ber": rx.ber, "outage_rate": rx.outage_rate, "seed": config.seed, "note": plan.note,
    }


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------
def _num(v) -> float:
    if v is None or v == "":
        return math.nan
    return float(v)


def plot_comparison(rows: Sequence[Dict[str, Any]], out_dir: str, prefix: str = "") -> List[str]:
    """One PNG per (metric, channel): retrieval, cosine (and BLEU with text schemes) vs SNR."""
    from experiments.plots import plot_metric_vs_snr

    paths = []
    channels = sorted({str(r["channel"]) for r in rows})
    for ch in channels:
        rs = [r for r in rows if str(r["channel"]) == ch]
        budget = next((r["budget"] for r in rs if r.get("budget") not in (None, "")), None)
        for metric, ylabel in (("retrieval_top1", "top-1 retrieval accuracy"),
                               ("cosine", "cosine similarity to the sent feature"),
                               ("bleu", "BLEU-4 (sacrebleu corpus, 0-100)")):
            series: Dict[str, Tuple[List[float], List[float]]] = {}
            for r in rs:
                v = _num(r.get(metric))
                if math.isnan(v):
                    continue
                label = str(r["scheme"])
                xs, ys = series.setdefault(label, ([], []))
                xs.append(_num(r["snr_db"]))
                ys.append(v)
            if not series:
                continue
            if metric == "retrieval_top1":
                snrs = sorted({_num(r["snr_db"]) for r in rs})
                chance = _num(rs[0]["chance"])
                series["chance (1/N)"] = (snrs, [chance] * len(snrs))
            title = f"{ch}" + (f", matched budget {budget} complex uses/example" if budget else ", unmatched")
            name = {"retrieval_top1": "retrieval", "cosine": "cosine", "bleu": "bleu"}[metric]
            paths.append(plot_metric_vs_snr(series, os.path.join(out_dir, f"{prefix}{name}_{ch}.png"),
                                            xlabel=SNR_AXIS_LABEL, ylabel=ylabel, title=title))
    return paths


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", default="pydoc-minilm",
                        help="registered source (pydoc-minilm, gaussian) or a .npy/.pt/.safetensors feature file "
                             "(default pydoc-minilm)")
    parser.add_argument("--key", default=None, help="tensor name inside a .pt/.safetensors file (default 'features')")
    parser.add_argument("--items", default=None, help="text file with one item (sentence) per feature row")
    parser.add_argument("--max-items", type=positive_int_arg, default=None, help="use the first N items only")
    parser.add_argument("--channel", default="awgn", help="comma list: awgn, rayleigh, rician, ... (default awgn)")
    parser.add_argument("--equalizer", default="mmse", choices=("zf", "mmse"),
                        help="equaliser of the 'analog' scheme (digital links always use ZF + APP demapping); "
                             "default mmse")
    parser.add_argument("--snr-db", type=snr_list_arg, default=None, metavar="SNRS",
                        help="Es/N0 per complex channel use [dB]: start:stop:step (inclusive) or a comma list; "
                             "default -20:15:5 (write --snr-db=-20:15:5)")
    parser.add_argument("--budget", type=positive_int_arg, default=None,
                        help="complex channel uses per example (default: the analog scheme's ceil(d/2))")
    parser.add_argument("--no-match", dest="matched", action="store_false",
                        help="send every scheme at its natural size (--bits per element, full text)")
    parser.add_argument("--schemes", default=",".join(DEFAULT_SCHEMES),
                        help="comma list (default: %(default)s)")
    parser.add_argument("--bits", type=positive_int_arg, default=None,
                        help="fixed quantiser bits per element (default: the most that fit the budget; 4 with "
                             "--no-match)")
    parser.add_argument("--max-bits-per-element", type=positive_int_arg, default=8)
    parser.add_argument("--ldpc-rate", type=float, default=0.5, help="nominal 5G LDPC code rate (default 0.5)")
    parser.add_argument("--ldpc-decoder", default="layered", choices=("layered", "bp"),
                        help="5G LDPC decoder: layered normalised min-sum (fast, default) or Sionna's flooding BP")
    parser.add_argument("--ldpc-iter", type=positive_int_arg, default=20, help="LDPC decoder iterations (default 20)")
    parser.add_argument("--ideal-outage", type=float, default=0.1,
                        help="design outage probability of the ideal code on fading channels (default 0.1)")
    parser.add_argument("--text-max-items", type=positive_int_arg, default=None,
                        help="send only the first N sentences through the text scheme (MiniLM re-encoding is "
                             "the slow part); retrieval is still among all items")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cache-dir", default=None, help="MiniLM feature cache (default ~/.cache/semcom)")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.add_argument("--out", required=True, help="output directory (created; reruns resume)")
    from experiments.executors import add_executor_arguments

    add_executor_arguments(parser)  # --executor local|ray, --num-cpus, --address


def config_from_args(args) -> CompareConfig:
    names = [s.strip() for s in str(args.schemes).split(",") if s.strip()]
    channels = [c.strip().lower() for c in str(args.channel).split(",") if c.strip()]
    snrs = args.snr_db if args.snr_db is not None else [-20.0, -15.0, -10.0, -5.0, 0.0, 5.0, 10.0, 15.0]
    return CompareConfig(schemes=names, channels=channels, snr_db=list(snrs), budget=args.budget,
                         matched=args.matched, equalizer=args.equalizer, bits=args.bits,
                         max_bits_per_element=args.max_bits_per_element, ldpc_rate=args.ldpc_rate,
                         ldpc_decoder=args.ldpc_decoder, ldpc_iter=args.ldpc_iter,
                         ideal_outage=args.ideal_outage, text_max_items=args.text_max_items, seed=args.seed,
                         device=args.device)


def check_resume(out_dir: str, settings: Dict[str, Any], csv_name: str = "compare.csv",
                 manifest_name: str = "manifest.json") -> None:
    """Raise if ``out_dir`` holds a CSV written with other settings (resuming would mix them); see
    :func:`experiments.results.check_result_settings`."""
    from experiments.results import check_result_settings

    check_result_settings(out_dir, settings, csv_name, manifest_name)


def execute(source, config: CompareConfig, out_dir: str, *, args=None, progress: bool = True,
            command: str = "semcom compare", csv_name: str = "compare.csv", prefix: str = "") -> Tuple[List[Dict[str, Any]], List[str]]:
    """Validate, resume-check, run, write CSV + plots + manifest. Returns (rows, plot paths)."""
    from experiments.results import RunManifest, open_table

    config.validate(source.dim)
    os.makedirs(out_dir, exist_ok=True)
    settings = config.settings(source)
    check_resume(out_dir, settings, csv_name)
    table = open_table(os.path.join(out_dir, csv_name), KEY_COLUMNS, VALUE_COLUMNS)
    resumed = len(table)
    with RunManifest(out_dir, args=args if args is not None else asdict(config), seed=config.seed,
                     command=command, extra={"result_settings": settings, "source": source.describe(),
                                             "snr_convention": SNR_AXIS_LABEL,
                                             "fallback_estimate": "source mean (per feature)"}) as man:
        if getattr(args, "executor", "local") not in (None, "local"):  # one Ray task per point, same rows
            from experiments.executors import executor_from_args, run_compare_points

            with executor_from_args(args) as executor:
                rows = run_compare_points(executor, source, config, table)
                man.update(executor=executor.describe())
        else:
            rows = run_comparison(source, config, out_dir, table=table, progress=progress)
        plots = plot_comparison(table.rows(), out_dir, prefix=prefix)
        man.update(rows_resumed=resumed, rows=len(table), plots=[os.path.basename(p) for p in plots])
    return rows, plots


def main(args) -> int:
    import semantic  # noqa: F401  (CPU shim before any transformers import)
    from experiments.sources import load_source

    try:
        config = config_from_args(args)
        source = load_source(args.source, max_items=args.max_items, key=args.key, items_path=args.items,
                             **({"cache_dir": args.cache_dir} if args.source == "pydoc-minilm" else {}))
        config.validate(source.dim)
        parse_device(config.device)
    except (ValueError, TypeError, FileNotFoundError, KeyError) as e:
        print(f"semcom compare: error: {e}", file=sys.stderr)
        return 2
    try:
        rows, plots = execute(source, config, args.out, args=args, progress=args.progress)
    except ValueError as e:  # resume with other settings, a payload no code can carry, ...
        print(f"semcom compare: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {os.path.join(args.out, 'compare.csv')} ({len(rows)} points), "
          f"{', '.join(os.path.basename(p) for p in plots)}, manifest.json")
    return 0
