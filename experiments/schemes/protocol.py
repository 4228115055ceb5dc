"""The public scheme protocol: :class:`Scheme` (plan, then transmit), the :class:`Plan` it returns, the
:class:`Received` reconstructions and the :class:`SchemeContext` every scheme of one comparison shares, with
the fits the context makes on the training split (:func:`split_indices`, :func:`fit_quantizer`).

A scheme of your own subclasses :class:`Scheme` and registers a factory with
:func:`experiments.schemes.registry.register_scheme` (from a ``--plugin`` module or the ``semcom.schemes``
entry-point group); :func:`experiments.comparison.run_comparison` then plans, sends and scores it like the
built-in families.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

__all__ = ["Plan", "Received", "SchemeContext", "Scheme", "split_indices", "fit_quantizer"]


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
    :func:`~experiments.schemes.registry.register_scheme` (from a ``--plugin`` module or the
    ``semcom.schemes`` entry-point group).

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
    >>> from experiments.schemes.registry import SCHEMES, register_scheme
    >>> _ = register_scheme("doc-ridge")(RidgeScheme)
    >>> from experiments.core.sources import load_source
    >>> from experiments.comparison import CompareConfig, run_comparison
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
    #: skipped there with the reason (:func:`~experiments.schemes.resources._mimo_skip`)
    supports_mimo = False
    #: whether the scheme runs over an OFDM resource grid (its symbols on the grid's data REs, charged the
    #: slots' pilots); the others are skipped there with the reason
    #: (:func:`~experiments.schemes.resources._grid_skip`)
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


class SchemeContext:
    """Everything a scheme needs at run time (shared by all schemes of one comparison): the public
    interface a scheme of your own reads (see :class:`Scheme`).

    The source's items are split once (``split_indices``, seeded): everything a scheme fits
    (KLT, quantiser ranges, codebooks, the fallback mean) is fitted on ``train``; the held-out
    ``test`` items are sent, and retrieved among *all* items (``features``).

    Notes
    -----
    The attributes a scheme may read:
    ``features`` ``[N, d]`` (all items: the retrieval bank), ``train`` / ``test`` ``[., d]`` and
    ``train_index`` / ``test_index`` (their rows), ``fallback`` ``[d]`` (training mean: the estimate
    without data), ``dim``, ``n_test``, ``budget`` (complex channel uses per example), ``matched``,
    ``device``, ``source`` (items and encoder for text schemes), ``channel`` / ``channel_name`` (the
    shared channel of the current channel kind), ``seed``, ``ideal_outage`` (``None``: the ideal code's payload
    is designed for the least expected distortion; a probability: a fixed outage target), and the fitted helpers ``klt``
    (:class:`phy.source.transform.KLT` of ``train``), ``coder(bits)`` and ``quantizer(bits, dims)``.

    Examples
    --------
    >>> from experiments.core.sources import load_source
    >>> ctx = SchemeContext(load_source("gaussian", n_items=20, dim=4), budget=2, matched=True, equalizer="mmse",
    ...                     device="cpu", bits=None, max_bits=8, ldpc_rate=0.5, ideal_outage=0.1, text_max_items=None)
    >>> ctx.dim, ctx.n_test, tuple(ctx.train.shape), tuple(ctx.fallback.shape)
    (4, 4, (16, 4), (4,))
    """

    def __init__(self, source, budget: int, matched: bool, equalizer: str, device, bits: Optional[int],
                 max_bits: int, ldpc_rate: float, ideal_outage: Optional[float], text_max_items: Optional[int],
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


def _fill(ctx: SchemeContext, head: torch.Tensor, dims: int) -> torch.Tensor:
    """Received first ``dims`` features + the fallback (source mean) for the rest."""
    out = ctx.fallback.expand(head.shape[0], ctx.dim).clone()
    out[:, :dims] = head
    return out


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


_PERCENTILES = (90.0, 95.0, 98.0, 99.0, 99.5, 99.9, 100.0)


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
