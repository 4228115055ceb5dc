"""``semcom compare``: analog semantic transmission vs digital separation at matched channel uses,
each drawn beside the Gaussian OPTA.

Every scheme sends the same real feature vectors ``f [N, d]`` of a source (default: the embedded
``pydoc-minilm`` sentences, ``d = 384``) over **one shared channel object** per channel kind, and
reports the complex channel uses it spent per example. SNR is Es/N0 per complex channel use.

Held-out evaluation: the items are split once (``--train-fraction``, default 0.8, seeded by
``--seed``). Everything a scheme fits -- KLT, bit allocation, quantiser ranges and codebooks, the
receiver's fallback mean -- is fitted on the training split; the held-out items are sent and
scored, and retrieved among *all* N items. Each point averages ``--realizations`` independent
channel realisations (default 4), and every metric has a 95% interval column (``<metric>_ci_lo``,
``<metric>_ci_hi``; see :func:`aggregate_metrics`).

Schemes (``--schemes``, comma list)
-----------------------------------
``opta``
    The **Gaussian OPTA** (:class:`OptaScheme`): reverse water-filling over the training
    covariance's eigenvalues at ``R = U C`` bits (AWGN capacity; ergodic capacity for i.i.d.
    fading; the expectation over the fade for block fading), reconstructions sampled from the
    optimal forward test channel per KLT component. A reference, not a bound, for non-Gaussian
    features. Every row also carries the analytic ``opta_nmse`` and ``gap_db = 10 log10(nmse /
    opta_nmse)``.
``analog-klt``
    The optimal *linear* analog scheme (:class:`AnalogKLTScheme`): KLT, the strongest ``2U``
    components, MSE-optimal power allocation, LMMSE receiver.
``transform-ideal``, ``transform-ldpc5g-amc``
    Transform coding (:class:`phy.source.transform.TransformCoder`: KLT + integer bit allocation by
    marginal returns on the reverse water-filling slope + per-component Lloyd-Max quantisers),
    delivered by the ideal code (``transform-ideal``) or by CRC + 5G LDPC + QAM with adaptive
    modulation and coding (``transform-ldpc5g-amc``: the MCS of 3GPP TS 38.214 Table 5.1.3.1-2
    that minimises the expected distortion given simulated BLERs, or ``--amc-policy bler-target``;
    failed codewords are erased and replaced by the training mean). ``mcs``, ``mcs_bler_est``,
    ``codeword_span`` and the realised ``codeword_error_rate`` are reported.
``analog`` (``analog-zf``, ``analog-mmse``)
    :class:`phy.link.analog.AnalogLink`: pairs of reals -> one complex symbol, per-example power
    normalisation, ZF or MMSE equalisation. ``ceil(d/2)`` uses. ``analog`` takes ``--equalizer``.
``analog-svd``
    The analog link with SVD precoding (**needs CSIT**: the transmitter knows ``H``; :mod:`phy.mimo.precoding`):
    ``min(num_tx, num_rx)`` eigenmodes per channel use, MSE-optimal power, per-mode LMMSE. On a single-antenna
    channel it is ``analog-mmse``. Its ``note`` column says "needs CSIT".
``quant-<code>-<mod>`` with ``<code>`` in ``none, hamming74, ldpc5g`` and ``<mod>`` in ``qpsk, 16qam, ...``
    Naive separation, kept to show what it costs: :class:`phy.source.quantization.UniformQuantizer`
    (``b`` bits per element, natural binary, one range for all coordinates fitted on the training
    split as the percentile range with the smallest quantisation MSE; the range is side
    information) -> :class:`phy.link.digital.DigitalLink` (code + Gray QAM + channel + ZF + APP
    demapping + decoder; LDPC5G at nominal rate ``--ldpc-rate``, decoded by the layered min-sum
    decoder by default, ``--ldpc-decoder bp`` for Sionna's flooding BP) -> dequantise; the
    coordinates that do not fit are dropped in coordinate order.
``quant-ideal``
    The same quantiser with an ideal capacity-achieving code (:class:`phy.link.ideal.IdealCodeLink`,
    ``capacity="instantaneous"``): a payload of ``B`` bits in ``U`` uses is received error-free iff
    ``B <= sum_i log2(1 + |h_i|^2 snr)`` over the realised channel, else the example is in outage
    and the receiver gets nothing. Without transmitter CSI the payload is designed for an outage
    probability ``--ideal-outage`` (default 0.1): ``B`` = the ``--ideal-outage`` quantile of the
    mutual information of ``U`` uses, estimated from 2000 design draws of the same channel (AWGN:
    exactly ``floor(U log2(1 + snr))``).
``ascii-<code>-<mod>`` (text sources only; default ``ascii-hamming74-16qam``)
    The raw sentence as 7-bit ASCII (:class:`phy.source.text_codec.TextCodec`) through a DigitalLink; the
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
  actual uses are those of :meth:`phy.link.digital.DigitalLink.channel_uses` for the real payload.
* analog: with a budget below ``ceil(d/2)`` only the first ``2U`` features are sent.
* text: every sentence is cut to the longest prefix whose ASCII + code + QAM frame fits ``U``
  (``chars_sent``); the per-example uses vary with the sentence length, ``channel_uses`` reports
  the largest, ``channel_uses_mean`` the mean.
* A feature that was not sent (truncation) or an example in outage is replaced by the receiver's
  fallback estimate, the **training-split mean** (known statistics); retrieval with the fallback picks the
  item nearest to the mean, i.e. it succeeds about as often as chance (``chance = 1/N``).
* The ideal code bounds *this* source code (scalar quantiser + truncation), not the
  rate-distortion limit: at very low SNR it delivers a few error-free features, which can retrieve
  worse than all features sent with many bit errors.

Multi-antenna channels (``rayleigh(num_tx=2,num_rx=2)``, flat fading): a channel use is one resource element
carrying several streams, Es/N0 is the total over the transmit antennas per N0 per receive antenna. ``analog``
sends ``num_tx`` complex symbols per use (LMMSE/ZF per stream), ``analog-svd`` ``min(num_tx, num_rx)``,
``quant-*`` and ``ascii-*`` ``num_tx`` QAM streams per use through the LMMSE MIMO detector (capacity
``U m num_tx`` coded bits), and ``opta`` uses the MIMO ergodic capacity (equal power, no CSIT:
:mod:`phy.theory.mimo_capacity`). The other schemes (``analog-klt``, ``transform-*``, ``quant-ideal``, plug-ins
without ``supports_mimo = True``) are reported as ``skipped: ...`` on such channels.

Over an OFDM grid (``--channel "ofdm(...)"``, :mod:`phy.ofdm.channel`) a channel use is a resource element: the budget
counts data and pilot REs (and cyclic-prefix samples) of whole slots, by default those the analog scheme
occupies (``ledger(ceil(d/2))``); a scheme's capacity is the data symbols (all streams) of the whole slots within
the budget, so every scheme is charged the same pilot overhead, and the CSV's ``data_uses`` / ``pilot_uses``
split ``channel_uses`` (``pilot_uses`` 0 on other channels). ``opta`` (and every row's ``opta_nmse`` /
``gap_db``) uses the mutual information of the data REs of those slots with the realised channel of each
example's slots (:meth:`phy.ofdm.channel.OFDMChannel.rate_bits`: Gaussian inputs, perfect CSI at the receiver, the pilot
REs paid for and carrying nothing). Over a single-antenna grid every scheme but ``analog-svd`` runs:

* ``analog-klt`` fills the data symbols of the budget's slots (power allocation for the nominal SNR, as on flat
  channels) through the grid's ZF equaliser, and its per-component LMMSE uses each symbol's effective noise
  (Sionna's ``no_eff``, the LS estimation error included).
* ``transform-ldpc5g-amc``: the codeword layout uses the data symbols of the budget's slots as an example's
  uses; the BLER simulation and the codewords go through the grid (:class:`phy.link.digital.DigitalLink`: pilots, LS
  estimation, LMMSE), so the MCS is chosen for the estimated-CSI channel; a codeword spanning ``s`` examples
  occupies ``s`` examples' slots. MCS above the 90% quantile of an example's slot mutual information per data
  symbol are not simulated.
* ``quant-ideal`` / ``transform-ideal``: the payload is the ``--ideal-outage`` quantile of an example's slot
  mutual information (the ``opta`` rate, 2000 design draws); an example is delivered iff the payload fits the
  mutual information of its own slots' draw (perfect CSI: the ideal code is a genie), else it is in outage.

``analog-svd`` (needs CSIT) and plug-ins are reported as ``skipped: ...`` over a grid, and on a multi-antenna
grid so are the single-antenna schemes (``analog-klt``, ``*-ideal``, ``transform-*``).


``--no-match`` sends every scheme at its natural size instead (all features at ``--bits`` bits per
element, default 4; the full text), with ``matched = false`` and the actual uses reported.

Metrics per (scheme, channel, SNR)
----------------------------------
``nmse`` = sum ||f - f_hat||^2 / sum ||f||^2 over the examples; ``cosine`` = mean cosine
similarity of ``f_hat`` to ``f``; ``retrieval_top1`` = fraction of examples whose nearest
neighbour (cosine) among all N source features is their own; ``ber`` = information-bit error rate
of a digital scheme (for ``quant-ideal``: the bits of examples in outage are fair coin flips, as
:class:`phy.link.ideal.IdealCodeLink` fills them, although their features are replaced by the fallback);
``outage_rate`` (ideal); for text schemes ``semantic_similarity`` (MiniLM
cosine of the received to the original sentence, equal to ``cosine``) and ``bleu`` (sacrebleu
corpus BLEU-4, 0-100). Empty cells mean "does not apply". ``status`` is ``ok``, ``nothing delivered``
(every example lost or no bit fits) or ``skipped: <why>`` (e.g. a training split smaller than the
dimension: no covariance, so no KLT scheme; no metric is written then).

Outputs (``--out``): ``compare.csv`` (resumable, keyed by ``scheme, channel, snr_db``; each point
reseeds the shared channel from ``(seed, scheme, channel, snr_db)``, so the same seed gives the
same CSV, resumed or not), ``retrieval_<channel>.png``, ``cosine_<channel>.png``
(``bleu_<channel>.png`` with text schemes) and ``manifest.json``.

Example
-------
``semcom compare --source pydoc-minilm --channel awgn,rayleigh --snr-db=-20:15:5 --realizations 4 --out runs/cmp``
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import numbers
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from experiments.core.args import parse_device, positive_int_arg, snr_list_arg
from experiments.core.plugins import check_new_name, register_group

__all__ = [
    "KEY_COLUMNS", "VALUE_COLUMNS", "COLUMNS", "SNR_AXIS_LABEL", "DEFAULT_SCHEMES", "METRIC_INTERVALS",
    "Plan", "Received", "Scheme", "AnalogScheme", "QuantizedDigitalScheme", "IdealQuantizedScheme",
    "TextScheme", "OptaScheme", "AnalogKLTScheme", "TransformIdealScheme", "TransformAMCScheme", "make_scheme",
    "fit_quantizer", "feature_metrics", "example_metrics", "split_indices", "CompareConfig", "run_comparison",
    "plot_comparison", "add_arguments", "main",
]

#: The x-axis label of the comparison figures.
SNR_AXIS_LABEL = "Es/N0 per complex channel use [dB]"
#: The columns that identify a row of ``compare.csv`` (resuming matches rows on them).
KEY_COLUMNS = ["scheme", "channel", "snr_db"]
#: metric -> (low, high) columns of its 95% interval
METRIC_INTERVALS = {m: (f"{m}_ci_lo", f"{m}_ci_hi") for m in
                    ("nmse", "cosine", "retrieval_top1", "bleu", "ber", "outage_rate", "codeword_error_rate")}
#: The other columns of ``compare.csv``: metrics, their 95 % intervals, the plan and the seed.
VALUE_COLUMNS = [
    "status", "equalizer", "matched", "budget", "channel_uses", "channel_uses_mean", "data_uses", "pilot_uses",
    "fits", "bits_per_element",
    "dims_sent", "truncated_dims", "chars_sent", "modulation", "code", "coderate", "info_bits", "quant_lo",
    "quant_hi", "mcs", "mcs_bler_est", "codeword_span", "n_train", "n_examples", "n_items", "realizations",
    "chance", "nmse", "opta_nmse", "gap_db", "cosine", "retrieval_top1", "semantic_similarity", "bleu", "ber",
    "outage_rate", "codeword_error_rate",
] + [c for pair in METRIC_INTERVALS.values() for c in pair] + ["seed", "note"]
#: Every column of ``compare.csv``.
COLUMNS = KEY_COLUMNS + VALUE_COLUMNS
#: The schemes of ``semcom compare`` by default.
DEFAULT_SCHEMES = ("opta", "analog", "analog-klt", "transform-ideal", "transform-ldpc5g-amc", "quant-ideal",
                   "quant-ldpc5g-16qam", "ascii-hamming74-16qam")
_PERCENTILES = (90.0, 95.0, 98.0, 99.0, 99.5, 99.9, 100.0)


# --------------------------------------------------------------------------------------------
# Metrics (pure functions)
# --------------------------------------------------------------------------------------------
def example_metrics(f: torch.Tensor, f_hat: torch.Tensor, bank: torch.Tensor,
                    index: Optional[torch.Tensor] = None, chunk: int = 2048) -> Dict[str, torch.Tensor]:
    """Per-example statistics of received features (float64, ``[M]`` each).

    ``err`` (``||f - f_hat||^2``), ``energy`` (``||f||^2``), ``cosine`` (of ``f_hat`` to ``f``) and
    ``hit`` (1 when the highest-cosine entry of ``bank`` is the example's own row ``index[i]``; ties
    go to the lowest index, so a constant estimate is right for exactly one item). Every reduction
    is along rows, so the values do not depend on the thread count.

    Examples
    --------
    >>> f = torch.eye(3)
    >>> m = example_metrics(f, f * 0.5, bank=f)
    >>> m["err"].tolist(), m["cosine"].tolist(), m["hit"].tolist()
    ([0.25, 0.25, 0.25], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    """
    if f.shape != f_hat.shape or f.dim() != 2 or bank.dim() != 2 or bank.shape[1] != f.shape[1]:
        raise ValueError(f"need f, f_hat [M, d] and bank [N, d]; got {tuple(f.shape)}, {tuple(f_hat.shape)}, "
                         f"{tuple(bank.shape)}")
    f, f_hat, bank = f.double(), f_hat.double().to(f.device), bank.double().to(f.device)
    m = f.shape[0]
    if index is None:
        index = torch.arange(m)
    err = (f - f_hat).square().sum(1)
    energy = f.square().sum(1)
    cos = torch.nn.functional.cosine_similarity(f_hat, f, dim=1, eps=1e-12)
    bn = torch.nn.functional.normalize(bank, dim=1, eps=1e-12)
    hn = torch.nn.functional.normalize(f_hat, dim=1, eps=1e-12)
    hit = torch.zeros(m, dtype=torch.float64)
    for s in range(0, m, chunk):
        sims = hn[s:s + chunk] @ bn.T
        hit[s:s + chunk] = (sims.argmax(dim=1) == index[s:s + chunk].to(sims.device)).double().cpu()
    return {"err": err.cpu(), "energy": energy.cpu(), "cosine": cos.cpu(), "hit": hit}


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
    ``retrieval_top1`` (fraction of rows whose highest-cosine bank entry is their own; see
    :func:`example_metrics`). Sums are exact (``math.fsum``), so independent of the thread count.

    Example
    -------
    >>> f = torch.eye(3)
    >>> feature_metrics(f, f, f)["retrieval_top1"]
    1.0
    """
    e = example_metrics(f, f_hat, bank, index, chunk)
    m = e["err"].numel()
    return {"nmse": math.fsum(e["err"].tolist()) / max(math.fsum(e["energy"].tolist()), 1e-300),
            "cosine": math.fsum(e["cosine"].tolist()) / m, "retrieval_top1": math.fsum(e["hit"].tolist()) / m}


def split_indices(n_items: int, train_fraction: float, seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Seeded train / held-out split of ``range(n_items)``: ``floor(train_fraction n)`` training
    items (at least 2) and the rest (at least 1) held out, each sorted.

    Returns two int64 tensors of shape ``[n_train]`` and ``[n_items - n_train]``.

    Examples
    --------
    >>> tr, te = split_indices(10, 0.8, 0)
    >>> len(tr), len(te), sorted(tr.tolist() + te.tolist()) == list(range(10))
    (8, 2, True)
    """
    if isinstance(n_items, bool) or not isinstance(n_items, numbers.Integral) or n_items < 3:
        raise ValueError(f"a train/test split needs at least 3 items, got {n_items!r}")
    if isinstance(train_fraction, bool) or not isinstance(train_fraction, numbers.Real) \
            or not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction (--train-fraction) must be in (0, 1), got {train_fraction!r}")
    n_train = min(max(2, int(math.floor(train_fraction * n_items))), n_items - 1)
    g = torch.Generator().manual_seed(int(seed) & 0x7FFFFFFFFFFFFFFF)
    perm = torch.randperm(int(n_items), generator=g)
    return perm[:n_train].sort().values, perm[n_train:].sort().values


def fit_quantizer(x: torch.Tensor, bits: int):
    """A :class:`phy.source.quantization.UniformQuantizer` with ``bits`` bits whose range is the
    percentile range (of ``90, 95, 98, 99, 99.5, 99.9, 100``) giving the smallest MSE on ``x``
    (the training split). The MSE is computed in float64, so features with large finite values
    still get a quantiser; ``ValueError`` if none has a finite MSE.

    ``x`` ``[n, d]``: the training features.

    Examples
    --------
    >>> q = fit_quantizer(torch.randn(1000, 4), bits=3)
    >>> q.bits, q.quantize(torch.zeros(1, 4)).shape
    (3, torch.Size([1, 4]))
    """
    from phy.source.quantization import UniformQuantizer

    best, best_mse = None, math.inf
    xd = x.double()
    for p in _PERCENTILES:
        q = UniformQuantizer(bits, fit_mode="percentile" if p < 100 else "minmax",
                             percentile=p if p < 100 else 99.9).fit(x)
        mse = float((q(x).double() - xd).square().mean())
        if mse < best_mse:
            best, best_mse = q, mse
    if best is None:
        raise ValueError(f"no {bits}-bit quantiser range gives a finite MSE on these features "
                         f"(largest magnitude {float(x.abs().max()):.3g}); rescale the features")
    return best


# --------------------------------------------------------------------------------------------
# Schemes
# --------------------------------------------------------------------------------------------
@dataclass
class Plan:
    """How a scheme fits the budget (per example). ``channel_uses`` are complex channel uses.

    Examples
    --------
    >>> plan = Plan(channel_uses=8, fits=True, dims_sent=16)
    >>> plan.channel_uses, plan.fits, plan.status
    (8, True, ...)
    >>> Plan(0, False, status="skipped: no code fits").fits
    False
    """

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
    status: str = "ok"        # "ok", "nothing delivered", or "skipped: <why>" (metrics then empty)


@dataclass
class Received:
    """What the receiver reconstructs for the examples ``index`` (rows of the source).

    ``features`` ``[M, d]`` (the reconstructed features), ``index`` ``[M]`` (their rows in the source).

    Examples
    --------
    >>> rx = Received(features=torch.zeros(2, 16), index=torch.tensor([3, 7]))
    >>> rx.features.shape, rx.index.tolist(), rx.texts
    (torch.Size([2, 16]), [3, 7], None)
    """

    features: torch.Tensor           # [M, d]
    index: torch.Tensor              # [M] int64
    texts: Optional[List[str]] = None
    ber: Optional[float] = None
    outage_rate: Optional[float] = None
    bit_errors: Optional[torch.Tensor] = None     # [M] information-bit errors per example
    bits_sent: Optional[torch.Tensor] = None      # [M] information bits per example
    outage: Optional[torch.Tensor] = None         # [M] bool, nothing delivered (outage / erased codeword)
    codeword_errors: Optional[Tuple[int, int]] = None   # (failed codewords, codewords)


class SchemeContext:
    """Everything a scheme needs at run time (shared by all schemes of one comparison): the public
    interface a scheme of your own reads (see :class:`Scheme`).

    The source's items are split once (``split_indices``, seeded): everything a scheme fits
    (KLT, quantiser ranges, codebooks, the fallback mean) is fitted on ``train``; the held-out
    ``test`` items are sent, and retrieved among *all* items (``features``).

    Attributes a scheme may read
    ----------------------------
    ``features`` ``[N, d]`` (all items: the retrieval bank), ``train`` / ``test`` ``[., d]`` and
    ``train_index`` / ``test_index`` (their rows), ``fallback`` ``[d]`` (training mean: the estimate
    without data), ``dim``, ``n_test``, ``budget`` (complex channel uses per example), ``matched``,
    ``device``, ``source`` (items and encoder for text schemes), ``channel`` / ``channel_name`` (the
    shared channel of the current channel kind), ``seed``, and the fitted helpers ``klt``
    (:class:`phy.source.transform.KLT` of ``train``), ``coder(bits)`` and ``quantizer(bits, dims)``.
    """

    def __init__(self, source, budget: int, matched: bool, equalizer: str, device, bits: Optional[int],
                 max_bits: int, ldpc_rate: float, ideal_outage: float, text_max_items: Optional[int],
                 ldpc_iter: int = 20, ldpc_decoder: str = "layered", train_fraction: float = 0.8,
                 split_seed: int = 0, amc_policy: str = "distortion", amc_bler_target: float = 0.1,
                 seed: int = 0):
        self.source = source
        self.features = source.features.to(device)
        self.train_index, self.test_index = split_indices(source.n_items, train_fraction, split_seed)
        self.train = self.features[self.train_index.to(self.features.device)]
        self.test = self.features[self.test_index.to(self.features.device)]
        self.fallback = self.train.double().mean(0).to(self.features.dtype)
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
        self.amc_policy = amc_policy
        self.amc_bler_target = amc_bler_target
        self.seed = seed
        self._quantizers: Dict[Tuple[int, int], Any] = {}
        self._codes: Dict[Tuple, Any] = {}
        self._coders: Dict[int, Any] = {}
        self._train_dist: Dict[int, float] = {}
        self._emb_cache: Dict[str, torch.Tensor] = {}
        self._klt = None
        self.channel = None  # the shared channel of the channel kind being run
        self.channel_name = ""

    @property
    def dim(self) -> int:
        return self.features.shape[1]

    @property
    def n_test(self) -> int:
        return int(self.test_index.numel())

    @property
    def klt(self):
        """The KLT of the training split (fitted once)."""
        from phy.source.transform import KLT

        if self._klt is None:
            self._klt = KLT().fit(self.train)
        return self._klt

    def covariance_problem(self) -> str:
        """Why the training covariance cannot support a KLT-based scheme ("" when it can)."""
        n, d = int(self.train_index.numel()), self.dim
        if n <= d:
            return (f"training split has {n} items for d={d} dimensions: the covariance (KLT) is not "
                    f"estimable; use more items or a larger train_fraction")
        return ""

    def coder(self, total_bits: int):
        """The transform coder (KLT + bit allocation + Lloyd-Max) for ``total_bits`` per vector."""
        from phy.source.transform import TransformCoder

        if total_bits not in self._coders:
            self._coders[total_bits] = TransformCoder(total_bits, klt=self.klt).fit()
        return self._coders[total_bits]

    def train_distortion(self, total_bits: int) -> float:
        """Mean squared error per vector of the transform coder on the training split."""
        if total_bits not in self._train_dist:
            c = self.coder(total_bits)
            x = self.train
            xh = c.decode(c.encode(x), torch.float64) if c.used_bits else c.klt.mean.expand(x.shape[0], -1)
            self._train_dist[total_bits] = math.fsum((xh - x.double()).square().sum(1).tolist()) / x.shape[0]
        return self._train_dist[total_bits]

    def quantizer(self, bits: int, dims: int):
        key = (bits, dims)
        if key not in self._quantizers:
            self._quantizers[key] = fit_quantizer(self.train[:, :dims], bits)
        return self._quantizers[key]

    def code(self, name: str, k: Optional[int] = None, n: Optional[int] = None):
        from phy.fec.codes import make_code

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
    """The public scheme protocol: how a user's own encoder/decoder pair joins a comparison.

    A scheme is planned once per point and then sent ``realizations`` times:

    ``plan(ctx, snr_db, channel) -> Plan``
        How the scheme fits ``ctx.budget`` complex channel uses per example (``Plan.channel_uses``
        must not exceed it when ``ctx.matched``; the comparison checks). Fit anything here, on
        ``ctx.train`` only (cache it on the scheme: the same instance serves every SNR of a
        channel). ``Plan(0, False, status="skipped: why")`` skips the point with its reason.
    ``transmit(ctx, plan, channel, snr_db) -> Received``
        Send ``ctx.test`` (``[M, d]`` held-out features) through ``channel`` -- the one shared
        channel object, e.g. via :class:`phy.link.analog.AnalogLink` / :class:`phy.link.digital.DigitalLink`,
        whose ledgers count the channel uses -- and return the reconstructions ``[M, d]`` with
        ``index=ctx.test_index`` (their rows in ``ctx.features``, for retrieval among all items).
    ``applies(source) -> (bool, reason)``
        Whether the scheme can run on a source (default: always).

    Attributes: ``name`` (the CSV's ``scheme`` key; set from the registered name when left at the
    default), ``kind`` (free text), ``modulation``/``code_name`` (CSV columns),
    ``snr_dependent_plan`` (plan again at every SNR). Register a factory with
    :func:`register_scheme` (from a ``--plugin`` module or the ``semcom.schemes`` entry-point group).

    Examples
    --------
    A learned linear encoder/decoder (ridge regression through the noisy channel):

    >>> import torch
    >>> from phy.link.analog import AnalogLink
    >>> class RidgeScheme(Scheme):
    ...     snr_dependent_plan = True
    ...     def plan(self, ctx, snr_db, channel):
    ...         return Plan(ctx.budget, True, dims_sent=ctx.dim)
    ...     def transmit(self, ctx, plan, channel, snr_db):
    ...         link = AnalogLink(channel, equalizer="mmse")
    ...         x = ctx.train[:, : 2 * ctx.budget]               # what fits: 2 reals per use
    ...         r = link(x, snr_db=snr_db).x_hat                 # learn the decoder on training data
    ...         w = torch.linalg.lstsq(torch.cat([r, torch.ones(len(r), 1)], 1), ctx.train).solution
    ...         y = link(ctx.test[:, : 2 * ctx.budget], snr_db=snr_db).x_hat
    ...         return Received(torch.cat([y, torch.ones(len(y), 1)], 1) @ w, ctx.test_index)
    >>> _ = register_scheme("doc-ridge")(RidgeScheme)
    >>> from experiments.core.sources import load_source
    >>> rows = run_comparison(load_source("gaussian", n_items=200, dim=8),
    ...                       CompareConfig(schemes=["doc-ridge"], snr_db=[10.0], budget=4), progress=False)
    >>> rows[0]["scheme"], rows[0]["channel_uses"], rows[0]["nmse"] < 0.2
    ('doc-ridge', 4, True)
    >>> del SCHEMES["doc-ridge"]
    """

    name = "scheme"
    kind = "scheme"
    modulation: Optional[str] = None
    code_name: Optional[str] = None
    snr_dependent_plan = False
    #: whether the scheme handles a multi-antenna channel (several streams per channel use); the others are
    #: skipped there with the reason (:func:`_mimo_skip`)
    supports_mimo = False
    #: whether the scheme runs over an OFDM resource grid (its symbols on the grid's data REs, charged the
    #: slots' pilots); the others are skipped there with the reason (:func:`_grid_skip`)
    supports_grid = False

    def applies(self, source) -> Tuple[bool, str]:
        return True, ""

    def plan(self, ctx: SchemeContext, snr_db: float, channel) -> Plan:  # pragma: no cover - abstract
        raise NotImplementedError

    def transmit(self, ctx: SchemeContext, plan: Plan, channel, snr_db: float) -> Received:  # pragma: no cover
        raise NotImplementedError

    def transmit_realizations(self, ctx: SchemeContext, plan: Plan, channel, snr_db: float,
                              realizations: int) -> List[Received]:
        """``realizations`` independent transmissions (the channel's stream continues)."""
        return [self.transmit(ctx, plan, channel, snr_db) for _ in range(realizations)]


def _fill(ctx: SchemeContext, head: torch.Tensor, dims: int) -> torch.Tensor:
    """Received first ``dims`` features + the fallback (source mean) for the rest."""
    out = ctx.fallback.expand(head.shape[0], ctx.dim).clone()
    out[:, :dims] = head
    return out


class AnalogScheme(Scheme):
    """Features as complex symbols through :class:`phy.link.analog.AnalogLink` (``ceil(d/2)`` uses).

    Examples
    --------
    >>> from experiments.core.sources import load_source
    >>> src = load_source("gaussian", n_items=64, dim=16)              # 16 i.i.d. N(0, 1) features per item
    >>> cfg = CompareConfig(schemes=("analog",), channels=("awgn",), snr_db=[10.0], budget=8, realizations=1)
    >>> row = run_comparison(src, cfg, progress=False, log=lambda msg: None)[0]
    >>> row["channel_uses"], abs(row["nmse"] - 1 / 11) < 0.03     # 1:1 mapping, MMSE: 1 / (1 + SNR)
    (8, True)
    """

    kind = "analog"
    supports_mimo = True

    def __init__(self, equalizer: Optional[str] = None, precoding: Optional[str] = None):
        self.fixed_equalizer = "mmse" if precoding else equalizer
        self.precoding = precoding
        self.name = f"analog-{precoding}" if precoding else "analog" if equalizer is None else f"analog-{equalizer}"

    @property
    def supports_grid(self) -> bool:
        """Over an OFDM grid without precoding only: SVD precoding needs CSIT, which the grid's receiver-side
        estimation does not give."""
        return not self.precoding

    def equalizer(self, ctx) -> str:
        return self.fixed_equalizer or ctx.equalizer

    def plan(self, ctx, snr_db, channel):
        d = ctx.dim
        grid = _ofdm_grid(channel)
        if grid is not None:  # OFDM: symbols -> resource elements (data + pilots) of whole slots
            return self._grid_plan(ctx, grid)
        k = _streams(channel, self.precoding)   # complex symbols per channel use
        full = math.ceil(math.ceil(d / 2) / k)
        csit = "; needs CSIT (SVD precoding: the transmitter knows H)" if self.precoding else ""
        if not ctx.matched or ctx.budget >= full:
            note = "" if (not ctx.matched or ctx.budget == full) else f"uses {full} of the {ctx.budget} budget"
            return Plan(full, True, dims_sent=d, note=(note + csit).lstrip("; "))
        dims = min(d, 2 * k * ctx.budget)
        return Plan(math.ceil(math.ceil(dims / 2) / k), False, dims_sent=dims,
                    note=f"truncated: first {dims} of {d} features sent (fallback for the rest)" + csit)

    def _grid_plan(self, ctx, grid) -> Plan:
        """The plan over an OFDM grid: ``ceil(d/2)`` symbols on the data REs of whole slots, charged their REs."""
        d = ctx.dim
        full = math.ceil(d / 2)
        symbols = _symbol_budget(ctx.budget, grid)
        if not ctx.matched or symbols >= full:
            uses = grid.ledger(full).channel_uses
            note = "" if (not ctx.matched or ctx.budget == uses) else f"uses {uses} of the {ctx.budget} budget"
            return Plan(uses, True, dims_sent=d, note=note)
        dims = min(d, 2 * symbols)
        if dims == 0:
            why = f"skipped: a budget of {ctx.budget} uses holds no OFDM slot ({grid.ledger(1).channel_uses} uses)"
            return Plan(0, False, dims_sent=0, note=why, status=why)
        return Plan(grid.ledger(math.ceil(dims / 2)).channel_uses, False, dims_sent=dims,
                    note=f"truncated: first {dims} of {d} features sent (fallback for the rest)")

    def transmit(self, ctx, plan, channel, snr_db):
        from phy.link.analog import AnalogLink

        link = AnalogLink(channel, equalizer=self.equalizer(ctx), precoding=self.precoding)
        f = ctx.test[:, :plan.dims_sent]
        out = link(f, snr_db=float(snr_db))
        if out.channel_uses != plan.channel_uses:  # the ledger must agree with the plan
            raise RuntimeError(f"analog link used {out.channel_uses} channel uses, planned {plan.channel_uses}")
        return Received(_fill(ctx, out.x_hat, plan.dims_sent), ctx.test_index)


def _streams(channel, precoding: Optional[str] = None) -> int:
    """Complex symbols a link puts in one channel use of ``channel``: ``num_tx`` (spatial multiplexing) on a
    MIMO channel, ``min(num_tx, num_rx)`` eigenmodes with SVD precoding, else 1."""
    if not getattr(channel, "is_mimo", False):
        return 1
    return min(channel.num_tx, channel.num_rx) if precoding else int(channel.num_tx)


def _mimo_skip(scheme, channel) -> Optional[Plan]:
    """A skipped plan for a scheme that does not handle a multi-antenna channel (else ``None``)."""
    if not getattr(channel, "is_mimo", False) or getattr(scheme, "supports_mimo", False):
        return None
    why = (f"skipped: {scheme.name} is single-antenna (one stream per channel use); not run on a "
           f"{channel.num_rx} x {channel.num_tx} MIMO channel")
    return Plan(0, False, note=why, status=why)


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


class IdealQuantizedScheme(Scheme):
    """Quantiser + ideal capacity-achieving code (:class:`phy.link.ideal.IdealCodeLink`).

    Examples
    --------
    >>> from experiments.core.sources import load_source
    >>> src = load_source("gaussian", n_items=64, dim=16)              # 16 i.i.d. N(0, 1) features per item
    >>> cfg = CompareConfig(schemes=("quant-ideal",), channels=("awgn",), snr_db=[10.0], budget=8, realizations=1)
    >>> row = run_comparison(src, cfg, progress=False, log=lambda msg: None)[0]
    >>> row["scheme"], 0 < row["nmse"] < 1
    ('quant-ideal', True)
    """

    kind = "ideal"
    supports_grid = True
    name = "quant-ideal"
    code_name = "ideal"
    snr_dependent_plan = True
    design_draws = 2000

    def design_capacity(self, ctx, snr_db: float, channel, uses: int) -> int:
        """Payload bits with outage probability ~``ctx.ideal_outage`` over ``uses`` channel uses."""
        from phy.theory.capacity import channel_rate_bits, instantaneous_capacity
        from phy.utils.conventions import snr_db_to_no

        if _ofdm_grid(channel) is not None:  # an example's slots: the mutual information of their data REs
            _, mi = channel_rate_bits(channel, uses, float(snr_db), draws=self.design_draws)
            return int(math.floor(float(torch.quantile(torch.as_tensor(mi), ctx.ideal_outage)) + 1e-9))
        x = torch.ones(self.design_draws, uses, dtype=torch.complex64, device=ctx.device)
        h = channel(x, snr_db_to_no(float(snr_db))).h
        if h is None:  # AWGN: deterministic
            mi = instantaneous_capacity(None, float(snr_db), uses).reshape(1)
        else:
            mi = instantaneous_capacity(h.expand(x.shape), float(snr_db), uses)
        return int(math.floor(float(torch.quantile(mi.cpu(), ctx.ideal_outage)) + 1e-9))

    def plan(self, ctx, snr_db, channel):
        from phy.theory.capacity import awgn_capacity, rayleigh_ergodic_capacity

        d = ctx.dim
        if not ctx.matched and _ofdm_grid(channel) is not None:
            why = "not matched over an OFDM grid: the ideal code's uses are only defined for a budget of whole slots"
            return Plan(0, False, dims_sent=0, note=why, status=f"skipped: {why}")
        if not ctx.matched:
            b = ctx.bits or 4
            payload = b * d
            cap = awgn_capacity(float(snr_db)) if getattr(channel, "name", "") == "awgn" \
                else rayleigh_ergodic_capacity(float(snr_db))
            uses = int(math.ceil(payload / cap - 1e-9))
            return Plan(uses, True, dims_sent=d, bits_per_element=b, info_bits=payload,
                        note="not matched: uses = payload / nominal capacity (AWGN or ergodic Rayleigh)")
        uses, why = _ideal_uses(ctx, channel)
        if why:
            return Plan(0, False, dims_sent=0, note=why, status=f"skipped: {why}")
        cap = self.design_capacity(ctx, snr_db, channel, uses)
        b, dims = _choose_bits(cap, d, ctx.bits, ctx.max_bits)
        if dims == 0:
            return Plan(0, False, dims_sent=0, bits_per_element=b, info_bits=0,
                        note=f"skipped: design capacity {cap} bits in {ctx.budget} uses carries no element")
        note = f"design payload <= {cap} bits (outage target {ctx.ideal_outage})"
        if dims < d:
            note = f"truncated: first {dims} of {d} features sent; " + note
        return Plan(uses, dims == d, dims_sent=dims, bits_per_element=b, info_bits=b * dims, note=note)

    def transmit(self, ctx, plan, channel, snr_db):
        n_items = ctx.n_test
        index = ctx.test_index
        if plan.dims_sent == 0:
            return Received(ctx.fallback.expand(n_items, ctx.dim).clone(), index, outage_rate=1.0)
        q = ctx.quantizer(plan.bits_per_element, plan.dims_sent)
        bits = q.encode(ctx.test[:, :plan.dims_sent])
        x_hat, outage = _ideal_delivery(channel, plan.channel_uses, float(snr_db), bits)
        head = q.decode(x_hat).to(ctx.features.dtype)
        f_hat = _fill(ctx, head, plan.dims_sent)
        f_hat[outage.to(f_hat.device)] = ctx.fallback  # the receiver gets nothing: fallback estimate
        errs = (x_hat != bits).double().sum(1).cpu()
        return Received(f_hat, index, outage_rate=float(outage.float().mean()),
                        ber=float(errs.sum() / bits.numel()), bit_errors=errs,
                        bits_sent=torch.full_like(errs, float(bits.shape[1])), outage=outage.cpu())


def _ideal_uses(ctx, channel) -> Tuple[int, str]:
    """(channel uses, why not) of an ideal-code scheme: the budget; over an OFDM grid the REs of its whole slots
    (``""`` when they hold at least one slot, else the reason for the skip)."""
    grid = _ofdm_grid(channel)
    if grid is None:
        return ctx.budget, ""
    symbols = _symbol_budget(ctx.budget, grid)
    if symbols == 0:
        return 0, f"a budget of {ctx.budget} uses holds no OFDM slot ({grid.ledger(1).channel_uses} uses)"
    return grid.ledger(symbols).channel_uses, ""


def _ideal_delivery(channel, uses: int, snr_db: float, bits: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """The ideal code's delivery of ``bits [M, B]`` in ``uses`` channel uses per example: ``(bits_hat [M, B],
    outage [M] bool)``. An example is delivered iff ``B`` is at most the mutual information of its realised channel
    (:class:`phy.link.ideal.IdealCodeLink`, ``capacity="instantaneous"``; over an OFDM grid the data REs of its slots,
    :meth:`phy.ofdm.channel.OFDMChannel.rate_bits`: Gaussian inputs, perfect CSI at the receiver, the pilots paid for);
    an example in outage gets fair coin flips from the channel's stream."""
    from phy.theory.capacity import channel_rate_bits
    from phy.link.ideal import IdealCodeLink

    if _ofdm_grid(channel) is None:
        out = IdealCodeLink(channel, uses, capacity="instantaneous")(bits, snr_db=snr_db)
        return out.x_hat, out.info["outage"].reshape(bits.shape[0])
    _, mi = channel_rate_bits(channel, uses, snr_db, draws=bits.shape[0])   # one draw of slots per example
    outage = torch.as_tensor(mi < bits.shape[1], device=bits.device)
    fill = torch.randint(0, 2, bits.shape, generator=channel.generator(bits.device), device=bits.device)
    return torch.where(outage.unsqueeze(-1), fill.to(bits.dtype), bits), outage


class TextScheme(Scheme):
    """Raw text as 7-bit ASCII + code + QAM; the received text is re-encoded by the source encoder.

    Examples
    --------
    Needs text items (a source with an encoder, e.g. ``pydoc-minilm``): the received text is re-encoded.
    At a matched budget (here ``ceil(384 / 2) = 192`` uses) only the start of each sentence fits, so even
    error-free the BLEU against the full sentence stays well below 100:

    >>> import tempfile
    >>> from experiments.core.sources import load_source
    >>> src = load_source("pydoc-minilm", max_items=40, cache_dir=tempfile.mkdtemp())
    >>> cfg = CompareConfig(schemes=("ascii-hamming74-16qam",), snr_db=[20.0], realizations=1, text_max_items=8)
    >>> row = run_comparison(src, cfg, progress=False, log=lambda msg: None)[0]
    >>> row["scheme"], row["channel_uses"], 0 < row["bleu"] < 50
    ('ascii-hamming74-16qam', 191, True)
    """

    kind = "text"
    supports_grid = True
    supports_mimo = True   # DigitalLink's ledger counts num_tx streams per channel use

    def __init__(self, code: str = "hamming74", modulation: str = "16qam"):
        from phy.mapping.modulation import bits_per_symbol

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
        from phy.link.digital import DigitalLink
        from phy.source.text_codec import TextCodec

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

    def _index(self, ctx) -> torch.Tensor:
        """Held-out items sent (the first ``text_max_items`` of them)."""
        idx = ctx.test_index
        return idx[:ctx.text_max_items] if ctx.text_max_items is not None else idx

    def _items(self, ctx):
        return [ctx.source.items[i] for i in self._index(ctx).tolist()]

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
        if len(items) < ctx.n_test:
            note += f"; first {len(items)} held-out sentences sent, retrieval among all {ctx.source.n_items}"
        return Plan(max(uses), cut == 0, info_bits=None, chars_sent=sum(sent) / len(sent),
                    channel_uses_mean=sum(uses) / len(uses), note=note,
                    extra={"sent_chars": sent, "max_chars": cmax})

    def transmit(self, ctx, plan, channel, snr_db, defer_encoding: bool = False):
        items = self._items(ctx)
        sent_chars = plan.extra["sent_chars"]
        texts = [s[:c] for s, c in zip(items, sent_chars)]
        if max(sent_chars) == 0:  # the budget carries no character: nothing sent, fallback estimate
            n = len(items)
            return Received(ctx.fallback.expand(n, ctx.dim).clone(), self._index(ctx), texts=[""] * n)
        codec, link = self._codec_link(ctx, channel)
        bits, lengths = codec.encode_batch(texts)
        bits = bits.to(ctx.device)
        out = link(bits, snr_db=float(snr_db))
        rx = codec.decode_batch(out.x_hat, lengths)
        n_bits = [7 * c for c in sent_chars]
        mask = torch.arange(bits.shape[1], device=bits.device).unsqueeze(0) < torch.tensor(n_bits,
                                                                                           device=bits.device)[:, None]
        errs = ((out.x_hat != bits) & mask).double().sum(1).cpu()
        ber = float(errs.sum() / mask.sum().clamp_min(1))
        feats = None if defer_encoding else ctx.encode_texts(rx)
        return Received(feats, self._index(ctx), texts=rx, ber=ber, bit_errors=errs,
                        bits_sent=mask.double().sum(1).cpu())

    def transmit_realizations(self, ctx, plan, channel, snr_db, realizations):
        """Every realisation's received texts are re-encoded in one batch (their sorted distinct
        union, local to this point, so a resumed run encodes exactly the same batch)."""
        rxs = [self.transmit(ctx, plan, channel, snr_db, defer_encoding=True) for _ in range(realizations)]
        pending = [rx for rx in rxs if rx.features is None]
        if pending:
            texts = [t for rx in pending for t in rx.texts]
            feats = ctx.encode_texts(texts)
            pos = 0
            for rx in pending:
                rx.features = feats[pos:pos + len(rx.texts)]
                pos += len(rx.texts)
        return rxs

# --------------------------------------------------------------------------------------------
# References and transform-coded schemes (fitted on the training split)
# --------------------------------------------------------------------------------------------
class _FittedScheme(Scheme):
    """A scheme built on the training covariance: skipped (with the reason) when it is not
    estimable, else planned by :meth:`fitted_plan`."""

    snr_dependent_plan = True

    def plan(self, ctx, snr_db, channel):
        why = ctx.covariance_problem()
        if why:
            return Plan(0, False, note=why, status=f"skipped: {why}")
        return self.fitted_plan(ctx, snr_db, channel)

    def fitted_plan(self, ctx, snr_db, channel) -> Plan:  # pragma: no cover - abstract
        raise NotImplementedError


class OptaScheme(_FittedScheme):
    """The **Gaussian OPTA**: what any scheme could reach for a Gaussian source with the training
    covariance over this channel and budget (no channel is simulated).

    Reverse water-filling over the training eigenvalues at ``R = U C`` bits (AWGN: ``C = log2(1 +
    snr)``; i.i.d. fading: the ergodic capacity; a fade held over the block: one ``R`` per example,
    its mutual information over the channel's own fade draw). The reconstructions sample the optimal
    forward test channel per KLT component, ``z_hat = a z + w`` with ``a = 1 - theta / lambda``,
    ``Var w = a theta`` (zero for ``lambda <= theta``), so cosine and retrieval are reported too. For
    non-Gaussian features it is a reference, not a bound.

    Examples
    --------
    >>> from experiments.core.sources import load_source
    >>> src = load_source("gaussian", n_items=64, dim=16)              # 16 i.i.d. N(0, 1) features per item
    >>> cfg = CompareConfig(schemes=("opta",), channels=("awgn",), snr_db=[10.0], budget=8, realizations=1)
    >>> row = run_comparison(src, cfg, progress=False, log=lambda msg: None)[0]
    >>> row["channel_uses"], row["nmse"] < 0.1       # below the analog scheme's 1/11 at this budget
    (8, True)
    """

    kind = "reference"
    supports_grid = True
    name = "opta"
    supports_mimo = True   # MIMO: the log-det (Telatar) ergodic / block rates, phy.theory.mimo_capacity

    def fitted_plan(self, ctx, snr_db, channel):
        return Plan(ctx.budget, True, dims_sent=ctx.dim,
                    note="Gaussian OPTA (reverse water-filling on the training covariance at R = uses x "
                         "capacity); a reference, not a bound, for non-Gaussian features")

    def transmit(self, ctx, plan, channel, snr_db):
        from phy.theory.capacity import channel_rate_bits
        from phy.theory.ratedistortion import reverse_water_filling

        klt = ctx.klt
        lam = klt.eigenvalues
        m = ctx.n_test
        mode, rates = channel_rate_bits(channel, ctx.budget, float(snr_db), draws=m)
        theta = torch.as_tensor(reverse_water_filling(lam.numpy(), rates).theta, dtype=torch.float64)
        theta = theta.reshape(-1, 1) if mode == "block" else theta.reshape(1, 1)
        a = torch.where(lam > theta, 1.0 - theta / lam.clamp_min(1e-300), torch.zeros(()))
        z = klt.forward(ctx.test)
        w = torch.randn(z.shape, generator=channel.generator("cpu"), dtype=torch.float64)
        z_hat = a * z + (a * theta).sqrt() * w
        return Received(klt.inverse(z_hat).to(ctx.features.dtype).to(ctx.device), ctx.test_index)


class AnalogKLTScheme(_FittedScheme):
    """The optimal *linear* analog scheme: KLT on the training split, the ``min(d, 2U)`` strongest
    components (2 real dimensions per complex use), MSE-optimal power allocation across them
    (:func:`phy.theory.ratedistortion.linear_power_allocation`, designed for AWGN at the nominal SNR; on
    fading channels the same allocation is used), per-example power normalisation and ZF through
    :class:`phy.link.analog.AnalogLink`, then the per-component LMMSE estimate with the realised noise
    (``scale^2 N0 / (2 |h|^2)`` per real dimension; the scale is side information, as for ``analog``).
    A budget above ``d/2`` leaves the extra uses empty, so the per-use power of the sent ones grows
    (the energy per example stays ``U Es``). Over an OFDM grid the components fill the data symbols of the
    budget's whole slots (the allocation is designed for them, at the nominal SNR), charged the slots' REs,
    and the LMMSE uses each symbol's effective noise after the grid's ZF equaliser (``scale^2 no_eff / 2``,
    ``no_eff`` from Sionna's equaliser: the channel estimate's error included).

    Examples
    --------
    >>> from experiments.core.sources import load_source
    >>> src = load_source("gaussian", n_items=64, dim=16)              # 16 i.i.d. N(0, 1) features per item
    >>> cfg = CompareConfig(schemes=("analog-klt",), channels=("awgn",), snr_db=[10.0], budget=8, realizations=1)
    >>> row = run_comparison(src, cfg, progress=False, log=lambda msg: None)[0]
    >>> row["scheme"], row["channel_uses"], 0 < row["nmse"] < 0.2
    ('analog-klt', 8, True)
    """

    kind = "analog"
    supports_grid = True
    name = "analog-klt"

    def fitted_plan(self, ctx, snr_db, channel):
        grid = _ofdm_grid(channel)
        # complex symbols sent per example: the budget's uses, or over a grid the data symbols of its whole slots
        symbols = _symbol_budget(ctx.budget, grid) if ctx.matched else math.ceil(ctx.dim / 2)
        if symbols == 0:
            why = f"a budget of {ctx.budget} uses holds no OFDM slot ({grid.ledger(1).channel_uses} uses)"
            return Plan(0, False, dims_sent=0, note=why, status=f"skipped: {why}")
        uses = grid.ledger(symbols).channel_uses if grid is not None else symbols
        dims = min(ctx.dim, 2 * symbols, ctx.klt.rank)
        note = f"{dims} strongest KLT components of {ctx.dim}"
        if grid is not None:
            note += f"; {symbols} data symbols on the grid ({uses} resource elements with the pilots)"
        return Plan(uses, dims == min(ctx.dim, ctx.klt.rank), dims_sent=dims, note=note,
                    extra={"symbols": symbols})

    def transmit(self, ctx, plan, channel, snr_db):
        from phy.link.analog import AnalogLink
        from phy.theory.ratedistortion import linear_power_allocation

        klt = ctx.klt
        lam = klt.eigenvalues
        uses = plan.extra.get("symbols", plan.channel_uses)   # complex symbols (over a grid: its data symbols)
        m = ctx.n_test
        if plan.dims_sent == 0:  # constant features: the mean is exact, nothing to send
            return Received(klt.mean.expand(m, ctx.dim).to(ctx.features.dtype).clone(), ctx.test_index)
        no = 10.0 ** (-float(snr_db) / 10.0)
        alloc = linear_power_allocation(lam.numpy(), total_power=float(uses), noise_var=no / 2,
                                        num_dims=2 * uses)
        p = torch.as_tensor(alloc.power[:plan.dims_sent])
        k = int((p > 0).sum())
        if k == 0:
            return Received(klt.mean.expand(m, ctx.dim).to(ctx.features.dtype).clone(), ctx.test_index)
        lam_k = lam[:k]
        g = (p[:k] / lam_k).sqrt()
        z = klt.forward(ctx.test, k)
        s = torch.zeros(m, 2 * uses, dtype=torch.float64)
        s[:, :k] = z * g
        out = AnalogLink(channel, equalizer="zf")(s.to(ctx.features.dtype), snr_db=float(snr_db))
        if out.channel_uses != plan.channel_uses:
            raise RuntimeError(f"analog-klt link used {out.channel_uses} channel uses, planned {plan.channel_uses}")
        r = out.x_hat.double().cpu()[:, :k]
        # the per-symbol noise after ZF ([m, uses] over a grid: Sionna's no_eff with the LS estimation error)
        no_eff = torch.as_tensor(out.info["no_eff"]).double().cpu().expand(m, uses)
        scale = out.info["scale"].double().cpu().reshape(m, 1)
        sigma2 = (scale.square() * no_eff / 2).repeat_interleave(2, dim=1)[:, :k]
        z_hat = g * lam_k * r / (g.square() * lam_k + sigma2)
        return Received(klt.inverse(z_hat).to(ctx.features.dtype).to(ctx.device), ctx.test_index)


class TransformIdealScheme(_FittedScheme, IdealQuantizedScheme):
    """Transform coding (:class:`phy.source.transform.TransformCoder`: KLT, integer bit allocation,
    Lloyd-Max quantisers, all fitted on the training split) delivered by the ideal code of
    ``quant-ideal``: the payload is the design capacity of the budget (AWGN: ``floor(U log2(1 +
    snr))``; fading: the ``--ideal-outage`` quantile), an example in outage gets the training mean. Over an OFDM
    grid: the quantile of an example's slot mutual information, outage per example from its own slots' draw.

    Examples
    --------
    >>> from experiments.core.sources import load_source
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
        cap = self.design_capacity(ctx, snr_db, channel, uses)
        coder = ctx.coder(max(cap, 0))
        note = f"design payload <= {cap} bits (outage target {ctx.ideal_outage}); Lloyd-Max per component"
        if coder.used_bits == 0:
            return Plan(uses, False, dims_sent=0, info_bits=0, note=note, status="nothing delivered")
        return Plan(uses, True, dims_sent=coder.components, info_bits=coder.used_bits, note=note)

    def transmit(self, ctx, plan, channel, snr_db):
        m = ctx.n_test
        if not plan.info_bits:
            return Received(ctx.fallback.expand(m, ctx.dim).clone(), ctx.test_index, outage_rate=1.0,
                            outage=torch.ones(m, dtype=torch.bool))
        coder = ctx.coder(plan.info_bits)
        bits = coder.encode(ctx.test).to(ctx.device)
        x_hat, outage = _ideal_delivery(channel, plan.channel_uses, float(snr_db), bits)
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
    cached for the run. A codeword spans several examples (:func:`phy.link.amc.codeword_layout`, at least
    1024 coded bits), so the per-example budget is an average; a codeword whose CRC fails erases
    its examples, which get the training mean. Over an OFDM grid an example's uses in the layout are the data
    symbols of the budget's whole slots, and the BLERs and codewords go through the grid (pilots, LS, LMMSE).

    Examples
    --------
    >>> from experiments.core.sources import load_source
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
                layouts.append(codeword_layout(mcs, symbols))
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


#: exact scheme name -> factory (no argument) returning a :class:`Scheme`; the families
#: ``quant-<code>-<mod>``, ``ascii-<code>-<mod>`` and ``transform-<code>-amc`` are parsed by :func:`make_scheme`.
SCHEMES: Dict[str, Callable[[], Scheme]] = {}


def register_scheme(name: str, override: bool = False):
    """Decorator (or call ``register_scheme(name)(factory)``): make ``make_scheme(name)`` (and so
    ``--schemes name``) build ``factory()`` -- a :class:`Scheme` subclass or any callable returning a
    Scheme. Code outside the package registers its own schemes this way, from a ``--plugin`` module
    or the ``semcom.schemes`` entry-point group (:mod:`experiments.core.plugins`). A name already registered
    to another factory (a built-in such as ``analog``) is refused (``ValueError``) unless ``override``.

    Example
    -------
    >>> @register_scheme("doc-analog-zf")
    ... class DocScheme(AnalogScheme):
    ...     def __init__(self):
    ...         super().__init__("zf")
    >>> make_scheme("doc-analog-zf").equalizer(None)
    'zf'
    >>> del SCHEMES["doc-analog-zf"]
    """
    if not isinstance(name, str) or not name.strip() or name != name.strip().lower():
        raise ValueError(f"a scheme name must be a non-empty lower-case str without spaces, got {name!r}")

    def deco(factory):
        if not callable(factory):
            raise TypeError(f"scheme {name!r}: the factory must be callable, got {type(factory).__name__}")
        check_new_name(SCHEMES, name, factory, "scheme", override)
        SCHEMES[name] = factory
        return factory

    return deco


register_group("semcom.schemes", register_scheme)   # installed plug-ins' schemes register here
register_scheme("analog")(AnalogScheme)
register_scheme("analog-zf")(lambda: AnalogScheme("zf"))
register_scheme("analog-mmse")(lambda: AnalogScheme("mmse"))
register_scheme("analog-svd")(lambda: AnalogScheme(precoding="svd"))   # needs CSIT (phy.mimo.precoding)
register_scheme("opta")(OptaScheme)
register_scheme("analog-klt")(AnalogKLTScheme)
register_scheme("transform-ideal")(TransformIdealScheme)
register_scheme("quant-ideal")(IdealQuantizedScheme)


def make_scheme(spec: str) -> Scheme:
    """A scheme from its name: a registered one (:data:`SCHEMES`, see the module docstring) or a
    family member ``quant-<code>-<mod>``, ``ascii-<code>-<mod>``, ``transform-<code>-amc``.

    Examples
    --------
    >>> make_scheme("quant-ldpc5g-16qam").name
    'quant-ldpc5g-16qam'
    """
    if not isinstance(spec, str):
        raise TypeError(f"scheme must be a str, got {type(spec).__name__}")
    s = spec.strip().lower()
    if s in SCHEMES:
        scheme = SCHEMES[s]()
        if not isinstance(scheme, Scheme):
            raise TypeError(f"scheme {s!r}: its registered factory returned {type(scheme).__name__}, not a "
                            f"experiments.commands.compare.Scheme")
        if not getattr(scheme, "name", None) or scheme.name == Scheme.name:
            scheme.name = s
        return scheme
    if s.startswith("transform-") and s.endswith("-amc") and s.count("-") == 2:
        return TransformAMCScheme(s.split("-")[1])
    parts = s.split("-")
    if len(parts) == 3 and parts[0] in ("quant", "ascii"):
        from phy.mapping.modulation import MODULATIONS

        if parts[2] not in MODULATIONS:
            raise ValueError(f"scheme {spec!r}: unknown modulation {parts[2]!r}; expected one of {sorted(MODULATIONS)}")
        return (QuantizedDigitalScheme if parts[0] == "quant" else TextScheme)(parts[1], parts[2])
    raise ValueError(f"unknown scheme {spec!r}: expected one of {sorted(SCHEMES)}, transform-ldpc5g-amc, "
                     f"quant-<code>-<mod> (code none/hamming74/ldpc5g) or ascii-<code>-<mod>")


# --------------------------------------------------------------------------------------------
# The comparison
# --------------------------------------------------------------------------------------------
@dataclass
class CompareConfig:
    """Settings of one comparison (recorded in the manifest; a resumed run must match them).

    Examples
    --------
    >>> cfg = CompareConfig(schemes=("analog", "opta"), channels=("awgn", "rayleigh"), snr_db=[0.0, 10.0])
    >>> cfg.budget, cfg.realizations, cfg.train_fraction
    (None, 4, 0.8)
    """

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
    ldpc_decoder: str = "layered"         # phy.fec.codes.LDPC5G decoder: "layered" (fast min-sum) or "bp"
    ideal_outage: float = 0.1
    text_max_items: Optional[int] = None
    train_fraction: float = 0.8           # seeded split: fit on train, score the held-out items
    realizations: int = 4                 # independent channel realisations averaged per point
    amc_policy: str = "distortion"        # transform-*-amc link adaptation: "distortion" or "bler-target"
    amc_bler_target: float = 0.1
    seed: int = 0
    device: str = "cpu"

    def validate(self, dim: int) -> "CompareConfig":
        from phy.channel.registry import canonical_channel_list
        from phy.mimo.equalization import EQUALIZERS

        if isinstance(self.budget, bool) or (self.budget is not None and (
                not isinstance(self.budget, numbers.Integral) or self.budget < 1)):
            raise ValueError(f"budget must be a positive int (complex channel uses per example) or None, "
                             f"got {self.budget!r}")
        if self.equalizer not in EQUALIZERS:
            raise ValueError(f"equalizer must be one of {EQUALIZERS}, got {self.equalizer!r}")
        self.channels = canonical_channel_list(self.channels)  # channel specs -> canonical (the CSV key)
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
        if isinstance(self.train_fraction, bool) or not isinstance(self.train_fraction, numbers.Real) \
                or not 0 < self.train_fraction < 1:
            raise ValueError(f"train_fraction (--train-fraction) must be in (0, 1), got {self.train_fraction!r}")
        if isinstance(self.realizations, bool) or not isinstance(self.realizations, numbers.Integral) \
                or not 1 <= self.realizations <= 10000:
            raise ValueError(f"realizations (--realizations) must be an int in [1, 10000], got {self.realizations!r}")
        from phy.link.amc import AMC_POLICIES

        if self.amc_policy not in AMC_POLICIES:
            raise ValueError(f"amc_policy (--amc-policy) must be one of {AMC_POLICIES}, got {self.amc_policy!r}")
        if isinstance(self.amc_bler_target, bool) or not isinstance(self.amc_bler_target, numbers.Real) \
                or not 0 < self.amc_bler_target < 1:
            raise ValueError(f"amc_bler_target (--amc-bler-target) must be in (0, 1), got {self.amc_bler_target!r}")
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


def _grid_skip(scheme, channel) -> Optional[Plan]:
    """A skipped plan for a scheme that does not run over an OFDM grid (else ``None``): those with
    ``supports_grid`` do -- :class:`OptaScheme`, :class:`AnalogScheme` without precoding, :class:`AnalogKLTScheme`,
    :class:`QuantizedDigitalScheme`, :class:`IdealQuantizedScheme` (``quant-ideal``, ``transform-ideal``),
    :class:`TransformAMCScheme` and :class:`TextScheme` (single-antenna ones only on a 1 x 1 grid:
    :func:`_mimo_skip`)."""
    if _ofdm_grid(channel) is None:
        return None
    if getattr(scheme, "supports_grid", False):
        return None
    why = (f"skipped: {scheme.name} is not implemented over an OFDM grid (opta, analog, analog-zf, analog-mmse, "
           "analog-klt, quant-<code>-<mod>, quant-ideal, transform-ideal, transform-ldpc5g-amc and ascii-* are; "
           "analog-svd needs CSIT, which the grid's receiver-side estimation does not give)")
    return Plan(0, False, note=why, status=why)


def _ofdm_grid(channel):
    """The channel if it is a resource grid (:class:`phy.ofdm.channel.OFDMChannel`: a ``ledger``), else ``None``."""
    return channel if hasattr(channel, "ledger") and hasattr(channel, "send_symbols") else None


def _symbol_budget(budget: int, grid) -> int:
    """Data symbols (all streams) a budget of ``budget`` channel uses carries: itself on a flat channel; on an
    OFDM grid, those of the whole slots (data + pilot + cyclic-prefix uses) that fit the budget."""
    if grid is None:
        return budget
    per_slot = grid.ledger(1)
    return (budget // per_slot.channel_uses) * grid.symbols_per_slot


def _split_uses(channel, uses: int) -> Tuple[int, int]:
    """(data uses, pilot uses) of ``uses`` channel uses: an OFDM grid's ledger (whole slots), else all data."""
    grid = _ofdm_grid(channel)
    if grid is None or not uses:
        return uses, 0
    slot = grid.ledger(1)
    slots = uses // slot.channel_uses
    return slots * slot.data_uses, slots * slot.pilot_uses


def run_comparison(source, config: CompareConfig, out_dir: Optional[str] = None, table=None,
                   progress: bool = True, log: Callable[[str], None] = None) -> List[Dict[str, Any]]:
    """Run every (channel, scheme, SNR) point and return the rows (also appended to ``table``).

    Each point reseeds the shared channel from ``(seed, scheme, channel, snr_db)`` (before and
    after the scheme's plan, so a plan's own channel draws never shift the transmission), sends the
    held-out items ``config.realizations`` times (fresh channel draws each time) and averages.

    Parameters
    ----------
    source : :class:`experiments.core.sources.FeatureSource`
    config : :class:`CompareConfig`
    table : :class:`experiments.core.results.ResumableCSV`, optional
        Rows already in it are skipped (resume); new rows are appended as they finish.
    progress : bool
        Print one line per point to stderr.

    Examples
    --------
    >>> from experiments.core.sources import load_source
    >>> src = load_source("gaussian", n_items=64, dim=16)
    >>> cfg = CompareConfig(schemes=("analog", "opta"), channels=("awgn",), snr_db=[0.0, 10.0], budget=8,
    ...                     realizations=1)
    >>> rows = run_comparison(src, cfg, progress=False, log=lambda msg: None)
    >>> [(r["scheme"], r["snr_db"]) for r in rows]
    [('analog', 0.0), ('analog', 10.0), ('opta', 0.0), ('opta', 10.0)]
    """
    from phy.channel.registry import make_channel
    from phy.sim.points import point_seed
    from phy.sim.resultstore import format_value

    config.validate(source.dim)
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    device = torch.device(config.device)
    budget = config.effective_budget(source.dim)
    ctx = SchemeContext(source, budget, config.matched, config.equalizer, device, config.bits,
                   config.max_bits_per_element, config.ldpc_rate, config.ideal_outage, config.text_max_items,
                   config.ldpc_iter, config.ldpc_decoder, train_fraction=config.train_fraction,
                   split_seed=config.seed, amc_policy=config.amc_policy, amc_bler_target=config.amc_bler_target,
                   seed=config.seed)
    schemes = [make_scheme(s) for s in config.schemes]
    done = table.finished_keys() if table is not None else set()
    rows: List[Dict[str, Any]] = []
    total = len(config.channels) * len(schemes) * len(config.snr_db)
    count, t0 = 0, time.perf_counter()
    for ch_name in config.channels:
        channel = make_channel(ch_name, seed=config.seed)  # one channel object, shared by every scheme
        ctx.channel, ctx.channel_name = channel, ch_name
        grid = _ofdm_grid(channel)
        # default budget over a grid: the resource elements (data + pilots) the analog scheme occupies
        budget = (grid.ledger(math.ceil(source.dim / 2)).channel_uses if grid is not None and config.budget is None
                  else config.effective_budget(source.dim))
        ctx.budget = budget
        for scheme in schemes:
            ok, why = scheme.applies(source)
            static_plan = None
            for snr in config.snr_db:
                count += 1
                key = (scheme.name, ch_name, float(snr))
                if tuple(format_value(v) for v in key) in done:
                    rows.append(table.get(key))
                    continue
                skip = None
                if not ok:  # a row says so (status "skipped: ..."), like every other point that does not run
                    if progress:
                        log(f"[compare {count}/{total}] {ch_name} {scheme.name}: skipped ({why})")
                    skip = Plan(0, False, note=f"skipped: {why}", status=f"skipped: {why}")
                opta = opta_reference(ctx, channel, ch_name, float(snr))
                seed = point_seed(config.seed, scheme.name, ch_name, float(snr))
                channel.reset(seed)
                if scheme.snr_dependent_plan or static_plan is None:
                    plan = (skip or _grid_skip(scheme, channel) or _mimo_skip(scheme, channel)
                            or scheme.plan(ctx, float(snr), channel))
                    if not scheme.snr_dependent_plan:
                        static_plan = plan
                else:
                    plan = static_plan
                if ctx.matched and plan.channel_uses > budget:
                    raise RuntimeError(f"{scheme.name} planned {plan.channel_uses} uses > budget {budget}")
                channel.reset(seed)
                met: Dict[str, Any] = {}
                rxs: List[Received] = []
                if not plan.status.startswith("skipped"):
                    rxs = scheme.transmit_realizations(ctx, plan, channel, float(snr), config.realizations)
                    met = aggregate_metrics(rxs, ctx, source, seed)
                    if plan.status == "ok" and met.get("outage_rate") == 1.0:
                        plan = dataclasses.replace(plan, status="nothing delivered")
                row = _row(scheme, plan, rxs, met, ctx, config, ch_name, float(snr), opta)
                if table is not None:
                    table.append(row)
                rows.append(row)
                if progress:
                    got = (f"retrieval={met['retrieval_top1']:.3f}  nmse={met['nmse']:.4f}" if met
                           else plan.status)
                    log(f"[compare {count}/{total} {time.perf_counter() - t0:6.1f}s] {ch_name:8s} "
                        f"{scheme.name:24s} {float(snr):6.1f} dB  uses={plan.channel_uses:4d}  {got}")
    return rows


def opta_reference(ctx: SchemeContext, channel, ch_name: str, snr_db: float) -> Optional[float]:
    """The Gaussian OPTA NMSE for the training covariance at this channel, SNR and budget
    (``E[D(R)] / E||f||^2``; ``None`` when the covariance is not estimable). Cached per point;
    fading draws (block fading) come from the channel reseeded for this purpose."""
    from phy.theory.capacity import channel_rate_bits
    from phy.sim.points import point_seed
    from phy.theory.ratedistortion import gaussian_opta_distortion

    cache = ctx.__dict__.setdefault("_opta", {})
    key = (ch_name, float(snr_db), ctx.budget)
    if key not in cache:
        if ctx.covariance_problem():
            cache[key] = None
        else:
            channel.reset(point_seed(ctx.seed, "opta-reference", ch_name, float(snr_db)))
            _, rates = channel_rate_bits(channel, ctx.budget, float(snr_db), draws=4000)
            d = gaussian_opta_distortion(ctx.klt.eigenvalues.numpy(), rates)
            cache[key] = d / ctx.klt.energy if ctx.klt.energy > 0 else 0.0
    return cache[key]


def _bleu_interval(hyps: Sequence[Sequence[str]], refs: Sequence[str], seed: int,
                   resamples: int = 200) -> Tuple[float, float, float]:
    """Corpus BLEU-4 of every realisation's hypotheses against the references, with a 95% bootstrap
    percentile interval over the examples (each resample keeps all realisations of an example)."""
    import numpy as np
    from sacrebleu.metrics import BLEU

    bleu = BLEU()
    m = len(refs)
    flat_h = [h for hs in hyps for h in hs]
    flat_r = [r for _ in hyps for r in refs]
    score = float(bleu.corpus_score(flat_h, [flat_r]).score)
    stats = [bleu._extract_corpus_statistics([h], [[r]]) for h, r in zip(flat_h, flat_r)]
    stats = np.asarray(stats, dtype=np.float64).reshape(len(hyps), m, -1).sum(0)   # per example
    rng = np.random.default_rng(seed & 0xFFFFFFFF)
    vals = []
    for _ in range(resamples):
        tot = stats[rng.integers(0, m, m)].sum(0)
        vals.append(float(bleu._compute_score_from_stats(tot.tolist()).score))
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return score, float(lo), float(hi)


def aggregate_metrics(rxs: Sequence[Received], ctx: SchemeContext, source, seed: int) -> Dict[str, Any]:
    """Metrics over the realisations with 95% intervals (:mod:`phy.sim.intervals`).

    Per example, each statistic is averaged over the realisations first; the intervals are then
    over the examples (so they cover the channel and the choice of items): NMSE by the delta method
    for a ratio of sums, cosine by Student's t, retrieval and outage by Wilson's score interval
    (conservative with several realisations), BER as a ratio of per-example bit errors to bits
    (Clopper-Pearson on all bits when no error was seen), the codeword error rate by
    Clopper-Pearson over codewords, BLEU by a bootstrap over the examples.
    """
    from phy.sim.intervals import mean_interval, proportion_interval, ratio_interval
    from phy.sim.intervals import clopper_pearson

    idx = rxs[0].index
    per = [example_metrics(ctx.features[idx], rx.features, ctx.features, idx) for rx in rxs]
    R = len(rxs)
    err = sum(p["err"] for p in per) / R
    energy = per[0]["energy"]
    cos = sum(p["cosine"] for p in per) / R
    hit = sum(p["hit"] for p in per) / R
    m = int(err.numel())
    met: Dict[str, Any] = {
        "nmse": math.fsum(err.tolist()) / max(math.fsum(energy.tolist()), 1e-300),
        "cosine": math.fsum(cos.tolist()) / m, "retrieval_top1": math.fsum(hit.tolist()) / m,
    }
    met["nmse_ci"] = ratio_interval(err.numpy(), energy.numpy()) if math.fsum(energy.tolist()) > 0 else None
    met["cosine_ci"] = mean_interval(cos.numpy())
    met["retrieval_top1_ci"] = proportion_interval(math.fsum(hit.tolist()), m)
    if rxs[0].bit_errors is not None:
        be = sum(rx.bit_errors for rx in rxs) / R
        bs = rxs[0].bits_sent
        tot_bits = math.fsum(bs.tolist()) * R
        if tot_bits > 0:
            met["ber"] = math.fsum(be.tolist()) / math.fsum(bs.tolist())
            met["ber_ci"] = (ratio_interval(be.numpy(), bs.numpy()) if met["ber"] > 0
                             else clopper_pearson(0, int(tot_bits)))
    elif rxs[0].ber is not None:
        met["ber"] = math.fsum(rx.ber for rx in rxs) / R
    if rxs[0].outage is not None:
        out = sum(rx.outage.double() for rx in rxs) / R
        met["outage_rate"] = math.fsum(out.tolist()) / m
        met["outage_rate_ci"] = proportion_interval(math.fsum(out.tolist()), m)
    elif rxs[0].outage_rate is not None:
        met["outage_rate"] = math.fsum(rx.outage_rate for rx in rxs) / R
    if rxs[0].codeword_errors is not None:
        e = sum(rx.codeword_errors[0] for rx in rxs)
        n = sum(rx.codeword_errors[1] for rx in rxs)
        met["codeword_error_rate"] = e / n
        met["codeword_error_rate_ci"] = clopper_pearson(e, n)
    if rxs[0].texts is not None:
        refs = [source.items[i] for i in idx.tolist()]
        met["bleu"], lo, hi = _bleu_interval([rx.texts for rx in rxs], refs, seed)
        met["bleu_ci"] = (lo, hi)
    return met


def _row(scheme, plan, rxs, met, ctx, config, ch_name, snr, opta) -> Dict[str, Any]:
    q = None
    if plan.bits_per_element and plan.dims_sent and scheme.kind in ("digital", "ideal"):
        q = ctx.quantizer(plan.bits_per_element, plan.dims_sent)
    text = scheme.kind == "text"
    dims = plan.dims_sent
    nmse = met.get("nmse")
    gap = None
    if nmse is not None and opta is not None and opta > 0 and nmse > 0:
        gap = 10.0 * math.log10(nmse / opta)
    row = {
        "scheme": scheme.name, "channel": ch_name, "snr_db": snr, "status": plan.status,
        "equalizer": (scheme.equalizer(ctx) if isinstance(scheme, AnalogScheme)
                      else ("lmmse" if _ofdm_grid(ctx.channel) is not None else "zf")  # a grid: Sionna's OFDM LMMSE
                      if scheme.kind in ("digital", "ideal", "text", "transform", "analog") else None),
        "matched": ctx.matched, "budget": ctx.budget if ctx.matched else None,
        "channel_uses": plan.channel_uses, "channel_uses_mean": plan.channel_uses_mean
        if plan.channel_uses_mean is not None else float(plan.channel_uses),
        "data_uses": _split_uses(ctx.channel, plan.channel_uses)[0],
        "pilot_uses": _split_uses(ctx.channel, plan.channel_uses)[1],
        "fits": plan.fits, "bits_per_element": plan.bits_per_element, "dims_sent": dims,
        "truncated_dims": None if dims is None else ctx.dim - dims,
        "chars_sent": plan.chars_sent, "modulation": plan.extra.get("modulation", scheme.modulation),
        "code": scheme.code_name, "coderate": plan.coderate, "info_bits": plan.info_bits,
        "quant_lo": None if q is None else q.lo, "quant_hi": None if q is None else q.hi,
        "mcs": plan.extra.get("mcs"), "mcs_bler_est": plan.extra.get("bler"),
        "codeword_span": plan.extra.get("span"), "n_train": int(ctx.train_index.numel()),
        "n_examples": int(rxs[0].index.numel()) if rxs else 0, "n_items": ctx.features.shape[0],
        "realizations": len(rxs), "chance": _chance(ctx.features.shape[0]),
        "nmse": nmse, "opta_nmse": opta, "gap_db": gap, "cosine": met.get("cosine"),
        "retrieval_top1": met.get("retrieval_top1"), "semantic_similarity": met.get("cosine") if text else None,
        "bleu": met.get("bleu"), "ber": met.get("ber"), "outage_rate": met.get("outage_rate"),
        "codeword_error_rate": met.get("codeword_error_rate"), "seed": config.seed, "note": plan.note,
    }
    for metric, (lo, hi) in METRIC_INTERVALS.items():
        ci = met.get(f"{metric}_ci")
        row[lo], row[hi] = (ci if ci is not None else (None, None))
    return row


# --------------------------------------------------------------------------------------------
# semcom compare: one task per (scheme, channel, SNR) point
# --------------------------------------------------------------------------------------------
def compare_point(source, config: Mapping[str, Any], channel: str, scheme: str, snr_db: float) -> List[Dict[str, Any]]:
    """One ``semcom compare`` point in any process: :func:`experiments.commands.compare.run_comparison`
    restricted to one channel, one scheme and one SNR (the point reseeds the channel from its own
    key, so the row equals the sequential run's). Returns ``[row]`` (``[]`` when the scheme does
    not apply to the source)."""
    from experiments.core.plugins import load_entry_points

    load_entry_points()  # a worker process registers the installed plug-ins too
    cfg = CompareConfig(**dict(config, channels=[channel], schemes=[scheme], snr_db=[float(snr_db)]))
    return run_comparison(source, cfg, None, table=None, progress=False)


def run_compare_points(executor, source, config, table) -> List[Dict[str, Any]]:
    """Run a :class:`experiments.commands.compare.CompareConfig` as one task per point, skipping the points
    already in ``table``; returns the rows in the sequential order (channel, scheme, SNR)."""
    from dataclasses import asdict

    config.validate(source.dim)
    cfg = asdict(config)
    names = {spec: make_scheme(spec).name for spec in config.schemes}
    keys, tasks = [], []
    for ch in config.channels:
        for spec in config.schemes:
            for snr in config.snr_db:
                key = (names[spec], ch, float(snr))
                keys.append(key)
                tasks.append((key, compare_point, (source, cfg, ch, spec, float(snr))))
    from experiments.core.executors import run_points

    run_points(executor, tasks, table)
    return [r for r in (table.get(k) for k in keys) if r is not None]


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------
def _num(v) -> float:
    if v is None or v == "":
        return math.nan
    return float(v)


def _file_label(spec: str) -> str:
    """A file-name-safe label of a channel spec: the bare name when the spec is that channel's
    defaults (``rayleigh``), else the spec with every other character turned into ``_``."""
    import re

    from phy.channel.registry import canonical_channel_spec

    name = spec.split("(", 1)[0]
    try:
        if canonical_channel_spec(name) == spec:
            return name
    except ValueError:
        pass
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", spec).strip("_")


def plot_comparison(rows: Sequence[Dict[str, Any]], out_dir: str, prefix: str = "") -> List[str]:
    """One PNG per (metric, channel): NMSE (log axis, with the Gaussian OPTA of the training
    covariance drawn as the reference), retrieval, cosine (and BLEU with text schemes) vs SNR, every
    point with its 95% interval.

    Examples
    --------
    >>> import os, tempfile
    >>> from experiments.core.sources import load_source
    >>> cfg = CompareConfig(schemes=("analog",), snr_db=[0.0, 10.0], budget=8, realizations=1)
    >>> rows = run_comparison(load_source("gaussian", n_items=64, dim=16), cfg, progress=False, log=lambda m: None)
    >>> paths = plot_comparison(rows, tempfile.mkdtemp())
    >>> len(paths) > 0 and all(os.path.isfile(p) for p in paths)
    True
    """
    from experiments.core.plots import plot_metric_vs_snr

    paths = []
    channels = sorted({str(r["channel"]) for r in rows})
    for ch in channels:
        rs = [r for r in rows if str(r["channel"]) == ch]
        budget = next((r["budget"] for r in rs if r.get("budget") not in (None, "")), None)
        for metric, ylabel, logy in (("nmse", "NMSE of the received feature", True),
                                     ("retrieval_top1", "top-1 retrieval accuracy", False),
                                     ("cosine", "cosine similarity to the sent feature", False),
                                     ("bleu", "BLEU-4 (sacrebleu corpus, 0-100)", False)):
            lo_col, hi_col = METRIC_INTERVALS[metric]
            series: Dict[str, Tuple[List[float], List[float]]] = {}
            errs: Dict[str, List[List[float]]] = {}
            for r in rs:
                v = _num(r.get(metric))
                if math.isnan(v):
                    continue
                label = str(r["scheme"]) + (" (Gaussian OPTA, reference)" if r["scheme"] == "opta" else "")
                xs, ys = series.setdefault(label, ([], []))
                xs.append(_num(r["snr_db"]))
                ys.append(v)
                lo, hi = _num(r.get(lo_col)), _num(r.get(hi_col))
                e = errs.setdefault(label, [[], []])
                e[0].append(v - lo if not math.isnan(lo) else 0.0)
                e[1].append(hi - v if not math.isnan(hi) else 0.0)
            if not series:
                continue
            snrs = sorted({_num(r["snr_db"]) for r in rs})
            if metric == "retrieval_top1":
                chance = _num(rs[0]["chance"])
                series["chance (1/N)"] = (snrs, [chance] * len(snrs))
            if metric == "nmse":
                opta = {_num(r["snr_db"]): _num(r.get("opta_nmse")) for r in rs}
                if any(not math.isnan(v) for v in opta.values()):
                    series["Gaussian OPTA, training covariance (analytic)"] = (snrs, [opta[s] for s in snrs])
            title = f"{ch}" + (f", matched budget {budget} complex uses/example" if budget else ", unmatched")
            name = {"nmse": "nmse", "retrieval_top1": "retrieval", "cosine": "cosine", "bleu": "bleu"}[metric]
            paths.append(plot_metric_vs_snr(series, os.path.join(out_dir, f"{prefix}{name}_{_file_label(ch)}.png"),
                                            xlabel=SNR_AXIS_LABEL, ylabel=ylabel, title=title, logy=logy,
                                            errors=errs))
    return paths


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``semcom compare`` to ``parser`` (``semcom compare --help`` lists them).

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> args = parser.parse_args(["--out", "runs/compare"])
    >>> (args.out, args.source)
    ('runs/compare', 'pydoc-minilm')
    """
    parser.add_argument("--source", default="pydoc-minilm",
                        help="registered source (pydoc-minilm, gaussian) or a .npy/.pt/.safetensors feature file "
                             "(default pydoc-minilm)")
    parser.add_argument("--key", default=None, help="tensor name inside a .pt/.safetensors file (default 'features')")
    parser.add_argument("--items", default=None, help="text file with one item (sentence) per feature row")
    parser.add_argument("--max-items", type=positive_int_arg, default=None, help="use the first N items only")
    parser.add_argument("--channel", default="awgn", metavar="SPEC[,SPEC...]",
                        help="comma list of channel specs name(key=value,...), e.g. awgn,rician(k_db=10),"
                             "rayleigh(block_length=64) (commas inside parentheses do not split; the CSV's channel "
                             "column holds the canonical spec; default awgn)")
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
    parser.add_argument("--train-fraction", type=float, default=0.8,
                        help="share of the items (seeded split) on which every scheme is fitted (KLT, quantiser "
                             "ranges, codebooks, the fallback mean); the rest are sent and scored (default 0.8)")
    parser.add_argument("--realizations", type=positive_int_arg, default=4,
                        help="independent channel realisations averaged per point (default 4)")
    parser.add_argument("--amc-policy", default="distortion", choices=("distortion", "bler-target"),
                        help="MCS choice of transform-*-amc: minimum expected distortion (default) or the highest "
                             "rate whose simulated BLER is at most --amc-bler-target")
    parser.add_argument("--amc-bler-target", type=float, default=0.1,
                        help="BLER target of --amc-policy bler-target (default 0.1, as 5G link adaptation)")
    parser.add_argument("--text-max-items", type=positive_int_arg, default=None,
                        help="send only the first N sentences through the text scheme (MiniLM re-encoding is "
                             "the slow part); retrieval is still among all items")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="torch device: auto (default: cuda if available, else cpu), cpu, cuda, cuda:1 ...")
    parser.add_argument("--cache-dir", default=None, help="MiniLM feature cache (default ~/.cache/semcom)")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.add_argument("--out", required=True, help="output directory (created; reruns resume)")
    from experiments.core.executors import add_executor_arguments

    add_executor_arguments(parser)  # --executor local|ray, --num-cpus, --address


#: Options of ``semcom compare`` that are not settings of :meth:`CompareConfig.settings` under their own name:
#: the rows' keys, options recorded through another setting, and those that change no number (with the
#: reason). With the settings every option of the parser is one or the other (tests/test_reliability.py).
HARMLESS_OPTIONS = {
    "channel": "a key column (the canonical spec)", "snr_db": "a key column", "schemes": "a key column (scheme)",
    "key": "recorded through source_feature_hash (the tensor it selects)", "max_items": "recorded as source_n_items",
    "items": "read by text schemes only, which need a source with its own encoder (a registered source, whose "
             "items its name and feature hash fix); a feature file's items are never sent",
    "cache_dir": "a cache of the same features (source_feature_hash)", "progress": "display only",
    "out": "the folder itself", "executor": "the ray executor writes the local run's rows (run_compare_points)",
    "num_cpus": "as --executor", "address": "as --executor",
    "plugin": "recorded as 'plugins' by experiments.core.results.claim_result_settings",
}


def config_from_args(args) -> CompareConfig:
    names = [s.strip() for s in str(args.schemes).split(",") if s.strip()]
    from phy.channel.spec import split_channel_list

    channels = split_channel_list(str(args.channel))
    snrs = args.snr_db if args.snr_db is not None else [-20.0, -15.0, -10.0, -5.0, 0.0, 5.0, 10.0, 15.0]
    return CompareConfig(schemes=names, channels=channels, snr_db=list(snrs), budget=args.budget,
                         matched=args.matched, equalizer=args.equalizer, bits=args.bits,
                         max_bits_per_element=args.max_bits_per_element, ldpc_rate=args.ldpc_rate,
                         ldpc_decoder=args.ldpc_decoder, ldpc_iter=args.ldpc_iter,
                         ideal_outage=args.ideal_outage, text_max_items=args.text_max_items,
                         train_fraction=args.train_fraction, realizations=args.realizations,
                         amc_policy=args.amc_policy, amc_bler_target=args.amc_bler_target, seed=args.seed,
                         device=str(parse_device(args.device)))


def check_resume(out_dir: str, settings: Dict[str, Any], csv_name: str = "compare.csv",
                 manifest_name: str = "manifest.json") -> None:
    """Raise if ``out_dir`` holds a CSV written with other settings (resuming would mix them); see
    :func:`experiments.core.results.check_result_settings`."""
    from experiments.core.results import check_result_settings

    check_result_settings(out_dir, settings, csv_name, manifest_name)


def execute(source, config: CompareConfig, out_dir: str, *, args=None, progress: bool = True,
            command: str = "semcom compare", csv_name: str = "compare.csv", prefix: str = "") -> Tuple[List[Dict[str, Any]], List[str]]:
    """Validate, resume-check, run, write CSV + plots + manifest. Returns (rows, plot paths)."""
    from experiments.core.results import RunManifest, open_table

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
            from experiments.core.executors import executor_from_args

            with executor_from_args(args) as executor:
                rows = run_compare_points(executor, source, config, table)
                man.update(executor=executor.describe())
        else:
            rows = run_comparison(source, config, out_dir, table=table, progress=progress)
        plots = plot_comparison(table.rows(), out_dir, prefix=prefix)
        man.update(rows_resumed=resumed, rows=len(table), plots=[os.path.basename(p) for p in plots])
    return rows, plots


def main(args) -> int:
    """Run ``semcom compare`` with the parsed ``args`` (the options of :func:`add_arguments`); returns
    the exit status (0 on success, 2 for bad input, reported as one line).

    Examples
    --------
    Two schemes on synthetic Gaussian features (the default source, MiniLM embeddings of a text corpus,
    takes longer to encode):

    >>> import contextlib, io, os, tempfile
    >>> from experiments.cli import main as semcom
    >>> out = tempfile.mkdtemp()
    >>> with contextlib.redirect_stdout(io.StringIO()):
    ...     rc = semcom(["compare", "--source", "gaussian", "--schemes", "analog,opta", "--snr-db", "0,10",
    ...                  "--budget", "8", "--realizations", "1", "--no-progress", "--out", out])
    >>> rc, sorted(os.listdir(out))
    (0, ['compare.csv', 'compare.settings.json', 'cosine_awgn.png', 'manifest.json', 'nmse_awgn.png', 'retrieval_awgn.png'])
    """
    import semantic  # noqa: F401  (CPU shim before any transformers import)
    from experiments.core.sources import load_source

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
    names = [os.path.basename(p) for p in plots] + ["manifest.json"]
    print(f"wrote {os.path.join(args.out, 'compare.csv')} ({len(rows)} points), {', '.join(names)}")
    return 0
