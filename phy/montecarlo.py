"""Monte Carlo BER/BLER engine with error-count stopping, SNR early stop and resumable CSV output.

The engine runs a *trial* over a list of SNR points. A trial is anything that follows the small
:class:`BitTrial` protocol::

    trial.k                              # information bits per block (int)
    trial(batch_size, esno_db)           # -> (bits, bits_hat), both [batch_size, k] (or [..., k])
    trial.reset(seed)                    # optional: restart every random stream from ``seed``
    trial.batched(batch_size, esno_dbs)  # optional (``snr_batch > 1``): S SNR points in one pass,
                                         # -> (bits, bits_hat), both [S, batch_size, k]

:class:`FunctionTrial` turns a plain function into a trial and :class:`LinkTrial` wraps a link
(``link(bits, snr_db=esno_db).x_hat`` -> hard bit estimates), e.g. ``phy.links.DigitalLink``.
The trial always receives Es/N0 per complex channel use (the package's SNR convention); the
engine converts Eb/N0 inputs with ``Es/N0 = Eb/N0 + 10 log10(bits_per_symbol * coderate)``.

Per SNR point the engine draws batches until ``target_errors`` bit errors (or
``target_block_errors`` block errors) are counted or the ``max_bits`` information-bit budget is
spent. Each point gets its own seed, derived deterministically from ``(seed, scheme, channel,
snr_type, snr_db)`` by :func:`point_seed`, and ``trial.reset`` is called with it before the point
starts, so a point's result does not depend on which points ran before it: an interrupted run
that is resumed gives exactly the rows of an uninterrupted one.

Confidence intervals are exact two-sided 95 % **Clopper-Pearson** intervals for a binomial
proportion (:func:`phy.intervals.clopper_pearson`). For BLER the blocks are independent, so the interval is
exact; for BER of a coded scheme the bit errors inside a block are correlated, so the BER interval
is optimistic (too narrow) and should be read as indicative.

Early stop over SNR: once a point ends with zero bit errors after the full bit budget, every
later point of that (scheme, channel) sweep with a higher SNR is *not simulated*; it is reported
with ``ber = bler = NaN``, zero counts and ``status = "skipped: no errors at previous point"``
(never as a BER of 0, unlike Sionna's ``sim_ber``). A point that was simulated and saw no errors
has ``ber = 0`` and ``status = "no_errors"``; its CI upper bound (about ``3.7 / bits``) is the
meaningful number.

Results are appended point by point to a :class:`phy.resultstore.ResumableCSV` (write + flush + fsync
per row, header written atomically); already finished keys are skipped on the next run. That store is
the only CSV-resume implementation in the package; the intervals come from :mod:`phy.intervals`.

Batched SNR points (``snr_batch > 1``): the points still to compute (not stored in the CSV, not
skipped) are taken in groups of up to ``snr_batch`` consecutive points, and each iteration calls
``trial.batched(batch_size, esno_dbs)`` once for all still-active points of the group (the links
take ``bits [S, B, k]`` with ``snr_db`` of shape ``[S, 1]`` and ``batch_dims=2``; memory grows
with ``snr_batch * batch_size``). Every point keeps its own counters and stopping rule
(``target_errors``, ``target_block_errors``, ``max_bits`` with the last batch shortened, exactly
as when points run one by one); it leaves the group when its rule fires and its row is written at
once. Early stop inside a group: when a point ends with ``no_errors``, every group point after it
in ``snr_dbs`` with a higher SNR is reported as skipped (the same row as in a sequential run; a
point that had already finished keeps its row). Since all points of a group draw the same number
of bits per iteration, such points reach the budget in the same iteration, so that work is spent
and discarded -- the price of batching. Points are written as they finish, so the CSV row order
can differ from ``snr_dbs``; the returned list is in ``snr_dbs`` order. A group of one point runs
exactly like a sequential point.

The random streams of a group are reset (``trial.reset``) from ``point_seed(seed, scheme,
channel, snr_type, "snr_group", *group_snrs)``, so a batched run is reproducible (same seed and
same points to compute -> same rows). Batched draws are **statistically equivalent to, but not
bit-identical with**, sequential ones (the S points share one random stream). The ``seed`` column
still holds the point seed :func:`point_seed`, which the resume check compares (resuming with
another master seed is refused). A point interrupted in the middle of its group was never written
and is recomputed on resume, possibly in a different group, hence with different random numbers:
only the finished rows are kept as they were, so a resumed batched CSV is statistically, not
byte-for-byte, equal to an uninterrupted one.

Example
-------
>>> import torch
>>> def trial(batch_size, esno_db):  # a toy binary symmetric channel with p = 0.1
...     g = torch.Generator().manual_seed(int(esno_db))
...     b = torch.randint(0, 2, (batch_size, 8), generator=g)
...     flip = (torch.rand(batch_size, 8, generator=g) < 0.1).long()
...     return b, b ^ flip
>>> res = simulate_ber(FunctionTrial(trial, k=8), [0.0], target_errors=50, max_bits=10_000,
...                    batch_size=100, progress=False)
>>> res[0].status, 0.05 < res[0].ber < 0.15
('target_errors', True)
>>> def batched(batch_size, esno_dbs):  # the same channel, S = len(esno_dbs) points in one call
...     g = torch.Generator().manual_seed(len(esno_dbs))
...     b = torch.randint(0, 2, (len(esno_dbs), batch_size, 8), generator=g)
...     flip = (torch.rand(b.shape, generator=g) < 0.1).long()
...     return b, b ^ flip
>>> res = simulate_ber(FunctionTrial(trial, k=8, batched_fn=batched), [0.0, 1.0], target_errors=50,
...                    max_bits=10_000, batch_size=100, progress=False, snr_batch=2)
>>> [r.status for r in res]
['target_errors', 'target_errors']
"""
from __future__ import annotations

import hashlib
import math
import numbers
import os
import sys
from dataclasses import asdict, dataclass, fields
from typing import (Any, Callable, Dict, Iterable, List, Mapping, Optional, Protocol, Sequence, Set,
                    Tuple, Union, runtime_checkable)

import torch

from .conventions import check_device, check_snr, ebno_db_to_esno_db, esno_db_to_ebno_db
from .intervals import clopper_pearson
from .resultstore import ResumableCSV, format_value

__all__ = [
    "BitTrial",
    "FunctionTrial",
    "LinkTrial",
    "ScrambledZeroTrial",
    "PointResult",
    "BER_COLUMNS",
    "BER_KEY_COLUMNS",
    "STATUS_TARGET",
    "STATUS_BUDGET",
    "STATUS_NO_ERRORS",
    "STATUS_SKIPPED",
    "simulate_ber",
    "simulate_ber_adaptive",
    "curve_resolution",
    "point_seed",
]

#: ``status`` of a point that stopped on its target number of errors.
STATUS_TARGET = "target_errors"
#: ``status`` of a point that stopped on its bit budget (``max_bits``).
STATUS_BUDGET = "max_bits"
#: ``status`` of a point whose whole budget saw no error.
STATUS_NO_ERRORS = "no_errors"
#: ``status`` of a point skipped after an error-free point at a lower SNR (early stop).
STATUS_SKIPPED = "skipped: no errors at previous point"

SNR_TYPES = ("esno", "ebno")


# --------------------------------------------------------------------------------------------
# Small pure helpers
# --------------------------------------------------------------------------------------------
def point_seed(seed: int, *parts: Any) -> int:
    """A 63-bit seed derived from ``seed`` and ``parts`` (hash of their canonical text).

    Example
    -------
    >>> point_seed(0, "ldpc5g", "awgn", "ebno", 2.0) == point_seed(0, "ldpc5g", "awgn", "ebno", 2)
    True
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}: {seed!r}")
    text = "|".join([str(int(seed))] + [
        format_value(float(p)) if isinstance(p, numbers.Real) and not isinstance(p, bool) else format_value(p)
        for p in parts
    ])
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


# --------------------------------------------------------------------------------------------
# Trials
# --------------------------------------------------------------------------------------------
@runtime_checkable
class BitTrial(Protocol):
    """What the engine needs: ``k`` and ``__call__(batch_size, esno_db) -> (bits, bits_hat)``.

    ``reset(seed)`` (optional) restarts every random stream the trial uses; the engine calls it
    with the point's seed before each SNR point (with the group's seed before each group of
    batched points). ``coderate`` and ``bits_per_symbol`` (optional) let the engine convert
    Eb/N0 <-> Es/N0 when they are not given to :func:`simulate_ber`.

    ``batched(batch_size, esno_dbs) -> (bits, bits_hat)`` (optional, needed for
    ``simulate_ber(..., snr_batch > 1)``) runs ``S = len(esno_dbs)`` SNR points in one pass;
    both outputs have shape ``[S, batch_size, k]`` (or ``[S, batch_size, ..., k]``), slice ``s``
    at Es/N0 ``esno_dbs[s]``.

    Examples
    --------
    >>> trial = FunctionTrial(lambda b, esno_db: (torch.zeros(b, 8), torch.zeros(b, 8)), k=8)
    >>> isinstance(trial, BitTrial), trial.k
    (True, 8)
    """

    k: int

    def __call__(self, batch_size: int, esno_db: float) -> Tuple[torch.Tensor, torch.Tensor]:
        ...


class FunctionTrial:
    """Wrap ``fn(batch_size, esno_db) -> (bits, bits_hat)`` as a :class:`BitTrial`.

    Parameters
    ----------
    fn : callable
    k : int
        Information bits per block (last dimension of ``bits``).
    reset : callable, optional
        ``reset(seed)`` restarting ``fn``'s random streams.
    coderate, bits_per_symbol : float, optional
        For Eb/N0 conversion.
    batched_fn : callable, optional
        ``batched_fn(batch_size, esno_dbs) -> (bits, bits_hat)``, both ``[S, batch_size, k]``
        with ``S = len(esno_dbs)``; becomes the trial's ``batched`` method (the attribute exists
        only when it is given), needed for ``simulate_ber(..., snr_batch > 1)``.

    Examples
    --------
    >>> def noisy(batch, esno_db):          # flips each bit with probability 0.1
    ...     bits = torch.randint(0, 2, (batch, 16)).float()
    ...     return bits, (bits + (torch.rand(batch, 16) < 0.1).float()) % 2
    >>> res = simulate_ber(FunctionTrial(noisy, k=16), [0.0], batch_size=1000, max_bits=32000,
    ...                    target_errors=None)
    >>> round(res[0].ber, 2), res[0].bits
    (0.1, 32000)
    """

    def __init__(self, fn: Callable[[int, float], Tuple[torch.Tensor, torch.Tensor]], k: int,
                 reset: Optional[Callable[[int], None]] = None, coderate: Optional[float] = None,
                 bits_per_symbol: Optional[float] = None,
                 batched_fn: Optional[Callable[[int, Sequence[float]], Tuple[torch.Tensor, torch.Tensor]]] = None):
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        _check_pos_int(k, "k")
        if reset is not None and not callable(reset):
            raise TypeError(f"reset must be callable or None, got {type(reset).__name__}")
        if batched_fn is not None and not callable(batched_fn):
            raise TypeError(f"batched_fn must be callable or None, got {type(batched_fn).__name__}")
        self.fn = fn
        self.k = int(k)
        self._reset = reset
        self.coderate = coderate
        self.bits_per_symbol = bits_per_symbol
        if batched_fn is not None:
            self.batched = batched_fn

    def reset(self, seed: int) -> None:
        if self._reset is not None:
            self._reset(seed)

    def __call__(self, batch_size: int, esno_db: float):
        return self.fn(batch_size, esno_db)


class LinkTrial:
    """Random information bits through a bit-in/bit-out link.

    ``link(bits [batch, k] float, snr_db=esno_db)`` must return a ``phy.links.LinkOutput`` whose
    ``x_hat`` holds hard bit estimates of ``bits``' shape (or a tensor directly). The source bits
    come from the trial's own ``torch.Generator``; :meth:`reset` reseeds it and the link's channel
    (``link.channel.reset``) from sub-seeds of the point seed, so every scheme sees the same
    channel realisation statistics and a point is reproducible on its own.

    :meth:`batched` sends ``bits [S, batch_size, k]`` in one call
    ``link(bits, snr_db=esno[S, 1], batch_dims=2)`` (for ``simulate_ber(..., snr_batch=S)``); the
    link must accept ``batch_dims`` and a tensor ``snr_db``, as every ``phy.links`` link does.

    Parameters
    ----------
    link : nn.Module
        E.g. ``phy.links.DigitalLink``.
    k : int, optional
        Information bits per block; read from ``link.k`` when omitted.
    device : str or torch.device
        Device of the source bits (the link must run there).
    dtype : torch.dtype
        Dtype of the source bits (default float32, Sionna's convention).
    coderate, bits_per_symbol : float, optional
        Read from ``link.coderate`` / ``link.bits_per_symbol`` (or ``link.num_bits_per_symbol``)
        when omitted.

    Examples
    --------
    >>> from phy.channels import AWGN
    >>> from phy.links import DigitalLink
    >>> trial = LinkTrial(DigitalLink(AWGN(), code="none", modulation="qpsk"), k=16)
    >>> res = simulate_ber(trial, [0.0], batch_size=1000, max_bits=16000, target_errors=None)
    >>> abs(res[0].ber - 0.1587) < 0.01    # QPSK at Es/N0 = 0 dB: Q(1)
    True
    """

    def __init__(self, link, k: Optional[int] = None, device: Union[str, torch.device] = "cpu",
                 dtype: torch.dtype = torch.float32, coderate: Optional[float] = None,
                 bits_per_symbol: Optional[float] = None):
        if not callable(link):
            raise TypeError(f"link must be callable (an nn.Module), got {type(link).__name__}")
        k = k if k is not None else getattr(link, "k", None)
        if k is None:
            raise ValueError("k (information bits per block) is required: the link has no attribute 'k'")
        _check_pos_int(k, "k")
        self.link = link
        self.k = int(k)
        self.device = check_device(device)
        self.dtype = dtype
        self.coderate = coderate if coderate is not None else getattr(link, "coderate", None)
        if bits_per_symbol is None:
            bits_per_symbol = getattr(link, "bits_per_symbol", getattr(link, "num_bits_per_symbol", None))
        self.bits_per_symbol = bits_per_symbol
        self._gen = torch.Generator(device=self.device)
        self._gen.manual_seed(0)

    def reset(self, seed: int) -> None:
        self._gen = torch.Generator(device=self.device)
        self._gen.manual_seed(point_seed(seed, "source"))
        channel = getattr(self.link, "channel", None)
        if channel is not None and hasattr(channel, "reset"):
            channel.reset(point_seed(seed, "channel"))
        link_reset = getattr(self.link, "reset", None)
        if callable(link_reset):
            link_reset(point_seed(seed, "link"))

    def __call__(self, batch_size: int, esno_db: float):
        bits = torch.randint(0, 2, (batch_size, self.k), generator=self._gen, device=self.device,
                             dtype=self.dtype)
        out = self.link(bits, snr_db=esno_db)
        bits_hat = getattr(out, "x_hat", out)
        return bits, bits_hat

    def batched(self, batch_size: int, esno_dbs: Sequence[float]):
        """``S = len(esno_dbs)`` SNR points in one pass: ``(bits, bits_hat)``, both ``[S, batch_size, k]``."""
        S = len(esno_dbs)
        bits = torch.randint(0, 2, (S, batch_size, self.k), generator=self._gen, device=self.device,
                             dtype=self.dtype)
        snr = torch.tensor([float(e) for e in esno_dbs], dtype=torch.float64, device=self.device).reshape(S, 1)
        out = self.link(bits, snr_db=snr, batch_dims=2)
        bits_hat = getattr(out, "x_hat", out)
        return bits, bits_hat


class ScrambledZeroTrial:
    """The all-zero codeword, scrambled, through a digital link's channel: no encoder in the loop.

    Per block, the ``nb * n`` coded bits of the all-zero codeword(s) are XORed with a uniformly
    random scrambling sequence ``s`` (so the channel sees uniformly random QAM symbols), sent
    through ``link.channel`` with ``link.equalizer`` (as :class:`phy.links.DigitalLink` does),
    demapped, and the logits' signs are flipped back where ``s = 1``; ``link.code.decode`` then
    decodes the all-zero codeword and every decided 1 is an error.

    Why this is exact: with the scrambler and descrambler on both sides, the channel the decoder
    sees is symmetric (the sent symbols are uniform whatever the codeword), so for a linear code and
    a decoder that commutes with adding a codeword (BP, min-sum, layered min-sum, syndrome and ML
    decoding of Hamming codes; every decoder of :mod:`phy.codes`) the error statistics do not
    depend on the codeword: the all-zero one gives the same BER/BLER as random codewords through the
    scrambled link. The scrambled link differs from the plain one only in that the bits sharing a
    QAM symbol are independent instead of bits of one codeword, which changes nothing measurable
    (``tests/test_montecarlo.py`` compares it with :class:`LinkTrial` within Monte Carlo error).

    On CPU the scrambling, Gray mapping and exact APP / max-log demapping with descrambling are
    the compiled kernels of :mod:`phy.qam_kernels` (the scrambling bits are a counter-based
    function of a per-call key, never stored); on other devices the same steps run as torch ops
    (``link.qam``'s Sionna mapper and demapper).

    Parameters
    ----------
    link : phy.links.DigitalLink
        Supplies ``code``, ``qam`` (modulation and demapping method), ``channel``, ``equalizer``,
        ``interleave`` and the block/padding accounting (``num_blocks``, ``pad_bits``).
    k : int, optional
        Information bits per block (default ``link.k``); a multiple of ``link.k``.
    device : str or torch.device
        Where the chain runs.

    Examples
    --------
    >>> from phy.channels import AWGN
    >>> from phy.links import DigitalLink
    >>> trial = ScrambledZeroTrial(DigitalLink(AWGN(), code="none", modulation="qpsk"), k=16)
    >>> res = simulate_ber(trial, [0.0], batch_size=1000, max_bits=16000, target_errors=None)
    >>> abs(res[0].ber - 0.1587) < 0.01    # the same BER as random codewords
    True
    """

    def __init__(self, link, k: Optional[int] = None, device: Union[str, torch.device] = "cpu"):
        for attr in ("code", "qam", "channel", "equalizer", "num_blocks", "pad_bits"):
            if not hasattr(link, attr):
                raise TypeError(f"link must be a phy.links.DigitalLink (it has no {attr!r}), got "
                                f"{type(link).__name__}")
        k = int(link.k) if k is None else k
        _check_pos_int(k, "k")
        self.link = link
        self.k = int(k)
        self.device = torch.device(device)
        self.coderate = getattr(link, "coderate", None)
        self.bits_per_symbol = int(link.qam.bits_per_symbol)
        self.modulation = link.qam.modulation
        self.method = link.qam.demapping
        self._nb = link.num_blocks(self.k)
        self._coded = self._nb * int(link.code.n)
        self._nsym = (self._coded + link.pad_bits(self.k)) // self.bits_per_symbol
        self._key = 0
        self._calls = 0
        self._buffer: Optional[torch.Tensor] = None  # the fused path's reused logits
        self._fused_counts: Optional[bool] = None      # count_errors in one compiled pass (decided on first use)

    def reset(self, seed: int) -> None:
        self._key = point_seed(seed, "scrambling")
        self._calls = 0
        channel = getattr(self.link, "channel", None)
        if channel is not None and hasattr(channel, "reset"):
            channel.reset(point_seed(seed, "channel"))

    def _next_key(self) -> int:
        self._calls += 1
        return point_seed(self._key, self._calls)

    def _fused(self) -> bool:
        """Whether :func:`phy.scrambled_chain.scrambled_awgn_logits` computes this link's logits: CPU, the
        compiled kernels, a channel with the base class's noise path and no fading (AWGN), and a
        perfect-CSI zero-forcing equaliser (the identity without fading)."""
        from . import scrambled_chain
        from .channels import Channel

        ch, eq = self.link.channel, self.link.equalizer
        return (self.device.type == "cpu" and scrambled_chain.available() and isinstance(ch, Channel)
                and type(ch).forward is Channel.forward and type(ch).forward_equalized is Channel.forward_equalized
                and ch.backend != "torch" and ch.kernel_fading() is None
                and getattr(eq, "method", None) == "zf" and getattr(eq, "csi", None) == "perfect")

    def _llr(self, shape: Tuple[int, ...], esno, reuse: bool = False) -> torch.Tensor:
        """Descrambled logits ``[*shape, nb * n]`` of the all-zero coded bits (with ``reuse``, on the fused
        AWGN path, written into a buffer that the next call overwrites)."""
        from . import qam_kernels as qk
        from .conventions import snr_db_to_no

        link, key, m = self.link, self._next_key(), self.bits_per_symbol
        sym_shape = (*shape, self._nsym)
        no = snr_db_to_no(torch.as_tensor(esno, dtype=torch.float32, device=self.device)).reshape(*shape[:-1], -1, 1)
        no = no.expand(*shape, 1)
        if self._fused():
            from . import channel_kernels as ck
            from .scrambled_chain import scrambled_awgn_logits

            rows = math.prod(shape)
            out = None
            if reuse:
                size = rows * self._nsym * m
                if self._buffer is None or self._buffer.numel() < size:
                    self._buffer = torch.empty(size, dtype=torch.float32)
                out = self._buffer[:size].view(rows, self._nsym * m)
            noise_key = ck.split_key(ck.draw_key(link.channel.generator(self.device)), 0)
            llr = scrambled_awgn_logits(rows, self._nsym, self.modulation, no.reshape(rows), key, noise_key,
                                        self.method, out=out).view(*shape, self._nsym * m)
            llr = llr[..., : self._coded]
            if getattr(link, "interleave", False):
                _, inv = link._permutation(self._coded, llr.device)
                llr = llr[..., inv]
            return llr
        fast = self.device.type == "cpu" and qk.available()
        if fast:
            x = qk.scrambled_symbols(sym_shape, self.modulation, key)
        else:
            # Sionna's mapper and demapper directly: s is 0/1 and no_eff comes from the channel, so
            # QAM.modulate/demodulate's input checks (host synchronisations on a GPU) are skipped
            mapper, demapper = link.qam._get(self.device, torch.complex64)
            gen = torch.Generator(device=self.device).manual_seed(key & (2**63 - 1))
            s = torch.randint(0, 2, (*shape, self._nsym * m), generator=gen, device=self.device,
                              dtype=torch.float32)
            x = mapper(s).to(torch.complex64)
        x_eq, no_eff, _ = link.equalizer.transmit(link.channel, x, no)
        if fast:
            llr = qk.demap(x_eq, no_eff, self.modulation, self.method, key=key)
        else:
            no_sym = torch.as_tensor(no_eff, dtype=torch.float32, device=self.device).expand(x.shape)
            llr = demapper(x_eq, no_sym).to(torch.float32) * (1.0 - 2.0 * s)
        llr = llr[..., : self._coded]
        if getattr(link, "interleave", False):
            _, inv = link._permutation(self._coded, llr.device)
            llr = llr[..., inv]
        return llr

    @property
    def counts_in_one_pass(self) -> bool:
        """Whether :meth:`count_errors` runs chain, decoder and count in one compiled pass (no logits or
        decisions in memory, so large batches cost nothing extra): the fused AWGN chain applies, one block
        per row without padding or interleaver, and the code has that pass (``LDPC5G`` with a fixed-point
        layered decoder)."""
        if self._fused_counts is None:
            self._fused_counts = self._counts_fused()
        return self._fused_counts

    def _counts_fused(self) -> bool:
        code = self.link.code
        return (self._fused() and self._nb == 1 and self._nsym * self.bits_per_symbol == self._coded
                and not getattr(self.link, "interleave", False) and hasattr(code, "scrambled_awgn_errors")
                and code.scrambled_awgn_errors(0, self.modulation, 1.0, 0, 0, self.method) is not None)

    def count_errors(self, batch_size: int, esno_db: float) -> Tuple[int, int, int, int]:
        """``(bit_errors, bits, block_errors, blocks)`` of one call of ``batch_size`` blocks: the counts of
        ``self(batch_size, esno_db)`` (the same keys, so the same numbers), computed without writing
        logits or decisions where :attr:`counts_in_one_pass` holds (:meth:`phy.codes.LDPC5G.scrambled_awgn_errors`).

        Examples
        --------
        >>> from phy.channels import AWGN
        >>> from phy.codes import LDPC5G
        >>> from phy.links import DigitalLink
        >>> trial = ScrambledZeroTrial(DigitalLink(AWGN(seed=1), code=LDPC5G(512, 1024, decoder="layered-int8"),
        ...                                        modulation="16qam"))
        >>> trial.reset(3)
        >>> trial.count_errors(1000, 12.0)        # (bit errors, bits, block errors, blocks)
        (0, 512000, 0, 1000)
        """
        _check_pos_int(batch_size, "batch_size")
        esno_db = float(check_snr(esno_db, "esno_db"))
        if not math.isfinite(esno_db):
            raise ValueError(f"esno_db must be finite, got {esno_db}")
        if not self.counts_in_one_pass:
            return _count_errors(*self(batch_size, esno_db))
        from . import channel_kernels as ck
        from .conventions import snr_db_to_no

        key = self._next_key()   # the order of _llr: scrambling key, then the channel's noise key
        noise_key = ck.split_key(ck.draw_key(self.link.channel.generator(self.device)), 0)
        no = snr_db_to_no(torch.as_tensor(float(esno_db), dtype=torch.float32))
        bit_err, blk_err = self.link.code.scrambled_awgn_errors(batch_size, self.modulation, no, key, noise_key,
                                                                 self.method)
        return bit_err, batch_size * self.k, blk_err, batch_size

    def _decode(self, llr: torch.Tensor) -> torch.Tensor:
        code = self.link.code
        u_hat = code.decode(llr.reshape(*llr.shape[:-1], self._nb, code.n))
        return u_hat.reshape(*llr.shape[:-1], self.k)

    def __call__(self, batch_size: int, esno_db: float):
        u_hat = self._decode(self._llr((batch_size,), float(esno_db), reuse=True))
        return torch.zeros_like(u_hat), u_hat

    def batched(self, batch_size: int, esno_dbs: Sequence[float]):
        """``S = len(esno_dbs)`` SNR points in one pass: ``(bits, bits_hat)``, both ``[S, batch_size, k]``."""
        esno = torch.tensor([float(e) for e in esno_dbs], dtype=torch.float32).reshape(-1, 1)
        u_hat = self._decode(self._llr((len(esno_dbs), batch_size), esno, reuse=True))
        return torch.zeros_like(u_hat), u_hat


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------
@dataclass(eq=False)
class PointResult:
    """One SNR point of one (scheme, channel) sweep; also one CSV row (see :data:`BER_COLUMNS`).

    ``ber``/``bler`` and the CI bounds are NaN for skipped points. CIs are 95 % Clopper-Pearson.

    Examples
    --------
    >>> trial = FunctionTrial(lambda b, e: (torch.zeros(b, 4), torch.zeros(b, 4)), k=4)
    >>> p = simulate_ber(trial, [3.0], batch_size=10, max_bits=40)[0]
    >>> p.esno_db, p.ber, p.bits, p.ber_ci_high > 0      # no error seen: BER 0, CI upper bound > 0
    (3.0, 0.0, 40, True)
    """

    scheme: str
    channel: str
    snr_db: float
    snr_type: str
    esno_db: float
    ebno_db: float
    ber: float
    bler: float
    bit_errors: int
    bits: int
    block_errors: int
    blocks: int
    ber_ci_low: float
    ber_ci_high: float
    bler_ci_low: float
    bler_ci_high: float
    seed: int
    status: str

    def to_row(self) -> Dict[str, Any]:
        return asdict(self)

    def __eq__(self, other) -> bool:
        """Equal when every CSV cell is equal (so NaN == NaN, as in the file)."""
        if not isinstance(other, PointResult):
            return NotImplemented
        return all(format_value(getattr(self, f.name)) == format_value(getattr(other, f.name))
                   for f in fields(self))

    __hash__ = None

    @classmethod
    def from_row(cls, row: Mapping[str, str]) -> "PointResult":
        """Parse a CSV row (strings) back into a result."""
        kw = {}
        for f in fields(cls):
            if f.name not in row:
                raise ValueError(f"CSV row lacks column {f.name!r}: {dict(row)}")
            v = row[f.name]
            try:
                if f.type in ("int", int):
                    kw[f.name] = int(v)
                elif f.type in ("float", float):
                    kw[f.name] = float(v) if v != "" else math.nan
                else:
                    kw[f.name] = v
            except (TypeError, ValueError):
                raise ValueError(f"CSV cell {f.name!r} must be {'an int' if f.type in ('int', int) else 'a number'}, "
                                 f"got {v!r}") from None
        return cls(**kw)

    @property
    def finished(self) -> bool:
        return self.status != STATUS_SKIPPED


#: The CSV columns of a BER sweep: the fields of :class:`PointResult`, in order.
BER_COLUMNS: Tuple[str, ...] = tuple(f.name for f in fields(PointResult))
#: The columns that identify a point (resuming a CSV matches rows on them).
BER_KEY_COLUMNS: Tuple[str, ...] = ("scheme", "channel", "snr_type", "snr_db")


# --------------------------------------------------------------------------------------------
# Engine
# --------------------------------------------------------------------------------------------
def _check_pos_int(v, name):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0:
        raise ValueError(f"{name} must be a positive int, got {v!r}")


def _check_pos_number(v, name):
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not (v > 0) or not math.isfinite(v):
        raise ValueError(f"{name} must be a positive finite number, got {v!r}")


def _use_progress(progress: Optional[bool]) -> bool:
    if progress is not None:
        return bool(progress)
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _check_pair(bits, bits_hat) -> None:
    if not isinstance(bits, torch.Tensor) or not isinstance(bits_hat, torch.Tensor):
        raise TypeError(f"a trial must return two tensors (bits, bits_hat), got "
                        f"{type(bits).__name__}, {type(bits_hat).__name__}")
    if bits.shape != bits_hat.shape:
        raise ValueError(f"bits_hat shape {tuple(bits_hat.shape)} must equal bits shape {tuple(bits.shape)}")
    if bits.dim() < 1 or bits.shape[-1] == 0:
        raise ValueError(f"bits must be [..., k] with k > 0, got shape {tuple(bits.shape)}")


def _check_blocks(bits, batch_size: int, k: int, lead: int = 0) -> None:
    """A trial returned ``batch_size`` blocks of ``k`` bits (dim ``lead`` counts blocks): more blocks or
    other widths would be counted silently (a wrong BER)."""
    if isinstance(bits, torch.Tensor) and bits.dim() > lead and (
            bits.shape[lead] != batch_size or bits.shape[-1] != k):
        want = ("[S, " if lead else "[") + f"batch_size={batch_size}, ..., k={k}]"
        raise ValueError(f"the trial returned bits of shape {tuple(bits.shape)}, expected {want} (trial.k = {k})")


def _count_errors(bits: torch.Tensor, bits_hat: torch.Tensor) -> Tuple[int, int, int, int]:
    """(bit_errors, bits, block_errors, blocks) of one batch; one device sync."""
    _check_pair(bits, bits_hat)
    err = bits_hat.to(bits.dtype) != bits
    counts = torch.stack([err.sum(), err.any(dim=-1).sum()]).tolist()
    n_bits = err.numel()
    return int(counts[0]), n_bits, int(counts[1]), n_bits // bits.shape[-1]


def _count_errors_batched(bits: torch.Tensor, bits_hat: torch.Tensor, num_points: int
                          ) -> List[Tuple[int, int, int, int]]:
    """Per SNR slice ``s`` of ``[S, batch, ..., k]`` outputs: (bit_errors, bits, block_errors,
    blocks); one device sync for all slices."""
    _check_pair(bits, bits_hat)
    if bits.dim() < 2 or bits.shape[0] != num_points or bits.numel() == 0:
        raise ValueError(f"a batched trial must return bits of shape [S={num_points}, batch_size, ..., k] "
                         f"(non-empty), got shape {tuple(bits.shape)}")
    k = bits.shape[-1]
    err = (bits_hat.to(bits.dtype) != bits).reshape(num_points, -1, k)
    counts = torch.stack([err.sum(dim=(1, 2)), err.any(dim=-1).sum(dim=1)]).tolist()
    n_bits = err.shape[1] * k
    return [(int(counts[0][s]), n_bits, int(counts[1][s]), err.shape[1]) for s in range(num_points)]


def _stop_status(bit_err: int, n_bits: int, blk_err: int, target_errors: Optional[int],
                 target_block_errors: Optional[int], max_bits: int) -> Optional[str]:
    """The status a point ends with after these counts, or ``None`` while it must go on."""
    if target_errors is not None and bit_err >= target_errors:
        return STATUS_TARGET
    if target_block_errors is not None and blk_err >= target_block_errors:
        return STATUS_TARGET
    if n_bits >= max_bits:
        return STATUS_NO_ERRORS if bit_err == 0 else STATUS_BUDGET
    return None


def _counts_result(bit_err: int, n_bits: int, blk_err: int, n_blk: int, esno: float, pseed: int,
                   status: str) -> PointResult:
    """An unlabelled result (scheme, channel, snr are filled in by :func:`simulate_ber`)."""
    ber_lo, ber_hi = clopper_pearson(bit_err, n_bits)
    bler_lo, bler_hi = clopper_pearson(blk_err, n_blk)
    return PointResult("", "", math.nan, "", esno, math.nan, bit_err / n_bits, blk_err / n_blk, bit_err,
                       n_bits, blk_err, n_blk, ber_lo, ber_hi, bler_lo, bler_hi, pseed, status)


def _resolve_rate(trial, coderate, bits_per_symbol):
    coderate = coderate if coderate is not None else getattr(trial, "coderate", None)
    bps = bits_per_symbol if bits_per_symbol is not None else getattr(trial, "bits_per_symbol", None)
    return coderate, bps


def simulate_ber(
    trial: BitTrial,
    snr_dbs: Union[Sequence[float], torch.Tensor],
    *,
    snr_type: str = "esno",
    coderate: Optional[float] = None,
    bits_per_symbol: Optional[float] = None,
    batch_size: int = 1000,
    target_errors: Optional[int] = 200,
    target_block_errors: Optional[int] = None,
    max_bits: Union[int, float] = 10**7,
    seed: int = 0,
    scheme: str = "scheme",
    channel: str = "channel",
    early_stop: bool = True,
    csv_file: Union[None, str, os.PathLike, ResumableCSV] = None,
    progress: Optional[bool] = None,
    callback: Optional[Callable[[PointResult], None]] = None,
    snr_batch: int = 1,
    max_batch_size: Optional[int] = None,
) -> List[PointResult]:
    """Monte Carlo BER/BLER of ``trial`` over ``snr_dbs``.

    Parameters
    ----------
    trial : BitTrial
        ``trial(batch_size, esno_db) -> (bits, bits_hat)`` (hard decisions, same shape
        ``[batch_size, k]``), attribute ``k``; optional ``reset(seed)``, ``coderate``,
        ``bits_per_symbol``, and ``batched(batch_size, esno_dbs)`` (needed for ``snr_batch > 1``).
    snr_dbs : sequence of float
        SNR points in dB, of type ``snr_type``. Sweeps are normally ascending; early stop skips
        only points with a *higher* SNR than an earlier error-free point.
    snr_type : ``"esno"`` (Es/N0 per complex channel use, default) or ``"ebno"``
        Eb/N0 needs ``coderate`` and ``bits_per_symbol`` (here or on the trial); with them both
        ``esno_db`` and ``ebno_db`` are reported, without them ``ebno_db`` is NaN.
    batch_size : int
        Blocks per batch (the last batch of a point is shortened to respect ``max_bits``).
    target_errors, target_block_errors : int or None
        A point stops once either count is reached (``None`` disables that criterion).
    max_bits : int or float
        Information-bit budget per point (``1e7`` accepted).
    seed : int
        Master seed; the point seed is ``point_seed(seed, scheme, channel, snr_type, snr_db)``.
    scheme, channel : str
        Labels written to the rows (and part of the key and of the seed).
    early_stop : bool
        Skip higher-SNR points after a point with zero errors at the full budget. With
        ``early_stop=False``, stored ``skipped`` rows (from an earlier early-stopping run into the
        same CSV) are removed and simulated.
    csv_file : path or ResumableCSV, optional
        Rows are appended point by point; points already in the file are not recomputed (their
        stored rows are returned).
    progress : bool or None
        tqdm progress bar; ``None``: only when stderr is a terminal.
    callback : callable, optional
        ``callback(result)`` after each point is written (e.g. logging); with ``snr_batch > 1``
        in the order the points finish.
    snr_batch : int
        ``1`` (default): points run one after the other. ``S > 1``: up to ``S`` consecutive points
        still to compute run together, one ``trial.batched`` call per iteration for all active
        points (see the module docstring: statistically equivalent to, not bit-identical with,
        the sequential run). A trial without ``batched`` raises ``ValueError``.
    max_batch_size : int, optional
        ``snr_batch=1``: a point's batch doubles after each batch, from ``batch_size`` up to this
        many blocks (fewer calls at low error rates, where a point needs many blocks, without
        overshooting the error target at high ones). Default: no growth.

    Returns
    -------
    list of PointResult, one per SNR point, in ``snr_dbs`` order.

    Examples
    --------
    >>> trial = FunctionTrial(lambda b, e: (torch.zeros(b, 4), torch.ones(b, 4) * (e < 1)), k=4)
    >>> [(p.snr_db, p.ber) for p in simulate_ber(trial, [0.0, 2.0], batch_size=10, max_bits=40)]
    [(0.0, 1.0), (2.0, 0.0)]
    """
    if not callable(trial):
        raise TypeError(f"trial must be callable (a BitTrial), got {type(trial).__name__}")
    k = getattr(trial, "k", None)
    _check_pos_int(k, "trial.k")
    if snr_type not in SNR_TYPES:
        raise ValueError(f"snr_type must be one of {SNR_TYPES}, got {snr_type!r}")
    if isinstance(snr_dbs, torch.Tensor):
        snr_dbs = snr_dbs.detach().cpu().reshape(-1).tolist()
    if isinstance(snr_dbs, (str, bytes)) or not isinstance(snr_dbs, Iterable):
        raise TypeError(f"snr_dbs must be a sequence of numbers, got {type(snr_dbs).__name__}")
    snr_list = [float(check_snr(s, "snr_dbs")) if not isinstance(s, torch.Tensor) else float(s)
                for s in snr_dbs]
    if not snr_list:
        raise ValueError("snr_dbs must contain at least one SNR point, got an empty list")
    if any(not math.isfinite(s) for s in snr_list):
        raise ValueError(f"snr_dbs must be finite, got {snr_list}")
    if len(set(snr_list)) != len(snr_list):
        raise ValueError(f"snr_dbs must not repeat a point (each is one CSV row), got {snr_list}")
    _check_pos_int(batch_size, "batch_size")
    if target_errors is not None:
        _check_pos_int(target_errors, "target_errors")
    if target_block_errors is not None:
        _check_pos_int(target_block_errors, "target_block_errors")
    _check_pos_number(max_bits, "max_bits")
    max_bits = int(math.ceil(max_bits))
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}: {seed!r}")
    if not isinstance(scheme, str) or not isinstance(channel, str) or not scheme or not channel:
        raise TypeError(f"scheme and channel must be non-empty strings, got {scheme!r}, {channel!r}")
    _check_pos_int(snr_batch, "snr_batch")
    if max_batch_size is not None:
        _check_pos_int(max_batch_size, "max_batch_size")
        if max_batch_size < batch_size:
            raise ValueError(f"max_batch_size={max_batch_size} must be >= batch_size={batch_size}")
    if snr_batch > 1 and not callable(getattr(trial, "batched", None)):
        raise ValueError(f"snr_batch={snr_batch} needs a trial with a batched(batch_size, esno_dbs) method "
                         f"(LinkTrial has one; FunctionTrial takes batched_fn=...), got "
                         f"{type(trial).__name__} without it; use snr_batch=1")

    coderate, bps = _resolve_rate(trial, coderate, bits_per_symbol)
    have_rate = coderate is not None and bps is not None
    if snr_type == "ebno" and not have_rate:
        raise ValueError("snr_type='ebno' needs coderate and bits_per_symbol (arguments or trial attributes)")

    table = None
    if csv_file is not None:
        table = csv_file if isinstance(csv_file, ResumableCSV) else \
            ResumableCSV(csv_file, BER_COLUMNS, BER_KEY_COLUMNS)

    # per point: Es/N0, Eb/N0, point seed and the stored row (checked before anything runs)
    n = len(snr_list)
    esnos, ebnos, pseeds, stored = [], [], [], []
    for snr in snr_list:
        if snr_type == "esno":
            esnos.append(snr)
            ebnos.append(esno_db_to_ebno_db(snr, bps, coderate) if have_rate else math.nan)
        else:
            ebnos.append(snr)
            esnos.append(ebno_db_to_esno_db(snr, bps, coderate))
        pseed = point_seed(seed, scheme, channel, snr_type, snr)
        pseeds.append(pseed)
        key = (scheme, channel, snr_type, snr)
        row = table.get(key) if table is not None else None
        try:
            res = PointResult.from_row(row) if row is not None else None
        except ValueError as exc:
            raise ValueError(f"{table.path}: the row {key} is unreadable ({exc}); repair or delete the file") from None
        if res is not None and res.status == STATUS_SKIPPED and not early_stop and res.seed == pseed:
            table.discard(key)  # skipped by an early-stopping run: with early stop off it is simulated now
            res = None
        if res is not None and res.seed != pseed:  # same key, other master seed: never return another run's row
            raise ValueError(
                f"{table.path} already holds {key} with point seed {res.seed}, but seed={seed} gives "
                f"{pseed}; resume with the seed that wrote the file, or write to a new file")
        stored.append(res)

    use_bar = _use_progress(progress)
    bar = None
    if use_bar:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc=f"{scheme}/{channel}", unit="pt", leave=False)

    results: List[Optional[PointResult]] = [None] * n

    def is_skipped(i: int) -> bool:
        """The sequential early-stop rule: an earlier point with a lower SNR ended error-free."""
        return early_stop and any(results[q] is not None and results[q].status == STATUS_NO_ERRORS
                                  and snr_list[q] < snr_list[i] for q in range(i))

    def labelled(i: int, res: PointResult) -> PointResult:
        res.scheme, res.channel, res.snr_db, res.snr_type = scheme, channel, snr_list[i], snr_type
        res.esno_db, res.ebno_db = esnos[i], ebnos[i]
        return res

    def skipped_row(i: int) -> PointResult:
        return PointResult(scheme, channel, snr_list[i], snr_type, esnos[i], ebnos[i], math.nan, math.nan, 0, 0,
                           0, 0, math.nan, math.nan, math.nan, math.nan, pseeds[i], STATUS_SKIPPED)

    def finish(i: int, res: PointResult, write: bool) -> None:
        if write and table is not None:
            table.append(res.to_row())
        results[i] = res
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"{snr_list[i]:g} dB: BER {res.ber:.3g} ({res.status})")
        if callback is not None:
            callback(res)

    def resolve_known(i: int) -> bool:
        """Finish point ``i`` if it is stored or skipped; ``False`` if it must be simulated."""
        if stored[i] is not None:
            finish(i, stored[i], write=False)
        elif is_skipped(i):
            finish(i, skipped_row(i), write=True)
        else:
            return False
        return True

    stop = dict(target_errors=target_errors, target_block_errors=target_block_errors, max_bits=max_bits)
    try:
        i = 0
        while i < n:
            group: List[int] = []
            while i < n and len(group) < snr_batch:
                if not resolve_known(i):
                    group.append(i)
                i += 1
            if len(group) == 1:  # one point: exactly the sequential run
                j = group[0]
                finish(j, labelled(j, _run_point(trial, k, esnos[j], batch_size, target_errors,
                                                 target_block_errors, max_bits, pseeds[j], bar,
                                                 max_batch_size or batch_size)), write=True)
            elif group:
                gseed = point_seed(seed, scheme, channel, snr_type, "snr_group", *[snr_list[j] for j in group])
                _run_group(trial, k, group, esnos, pseeds, gseed, batch_size, stop, is_skipped,
                           lambda j, res: finish(j, labelled(j, res) if res is not None else skipped_row(j), True))
    finally:
        if bar is not None:
            bar.close()
    return results


def _run_point(trial, k, esno, batch_size, target_errors, target_block_errors, max_bits, pseed, bar,
               max_batch_size: int) -> PointResult:
    reset = getattr(trial, "reset", None)
    if callable(reset):
        reset(pseed)
    counter = trial.count_errors if isinstance(trial, ScrambledZeroTrial) else None
    bit_err = n_bits = blk_err = n_blk = 0
    while True:
        remaining_blocks = max(1, -(-(max_bits - n_bits) // k))
        bs = min(batch_size, remaining_blocks)
        batch_size = min(2 * batch_size, max_batch_size)
        with torch.no_grad():
            if counter is not None:   # the trial counts its own errors (ScrambledZeroTrial)
                e, nb, be, nblk = counter(bs, esno)
            else:
                bits, bits_hat = trial(bs, esno)
                _check_blocks(bits, bs, k)
                e, nb, be, nblk = _count_errors(bits, bits_hat)
        bit_err += e
        n_bits += nb
        blk_err += be
        n_blk += nblk
        status = _stop_status(bit_err, n_bits, blk_err, target_errors, target_block_errors, max_bits)
        if status is not None:
            return _counts_result(bit_err, n_bits, blk_err, n_blk, esno, pseed, status)


def _run_group(trial, k: int, group: List[int], esnos: List[float], pseeds: List[int], gseed: int,
               batch_size: int, stop: Dict[str, Any], is_skipped: Callable[[int], bool],
               finish: Callable[[int, Optional[PointResult]], None]) -> None:
    """Run the points ``group`` (indices into ``esnos``, list order) with one ``trial.batched``
    call per iteration over the still-active ones.

    After each iteration the active and just-finished points are visited in list order: a point
    that ``is_skipped`` (an earlier point ended error-free at a lower SNR, possibly in this same
    visit) is dropped and finished as skipped (``finish(i, None)``), a point whose own stopping
    rule fired is finished with its counts (``finish(i, result)``), the others go on.
    """
    reset = getattr(trial, "reset", None)
    if callable(reset):
        reset(gseed)
    counts = {i: [0, 0, 0, 0] for i in group}  # bit errors, bits, block errors, blocks
    active = list(group)
    max_bits = stop["max_bits"]
    while active:
        # every active point has drawn the same number of bits so far; shorten the last batch alike
        remaining_blocks = min(max(1, -(-(max_bits - counts[i][1]) // k)) for i in active)
        bs = min(batch_size, remaining_blocks)
        with torch.no_grad():
            bits, bits_hat = trial.batched(bs, [esnos[i] for i in active])
        _check_blocks(bits, bs, k, lead=1)
        finished: Dict[int, str] = {}
        for i, c in zip(active, _count_errors_batched(bits, bits_hat, len(active))):
            acc = counts[i]
            for m in range(4):
                acc[m] += c[m]
            status = _stop_status(acc[0], acc[1], acc[2], stop["target_errors"], stop["target_block_errors"],
                                  max_bits)
            if status is not None:
                finished[i] = status
        for i in list(active):  # list order; active is kept in list order
            if is_skipped(i):
                active.remove(i)
                finish(i, None)
            elif i in finished:
                active.remove(i)
                be, nb, blk, nblk = counts[i]
                finish(i, _counts_result(be, nb, blk, nblk, esnos[i], pseeds[i], finished[i]))


# --------------------------------------------------------------------------------------------
# Adaptive SNR grid
# --------------------------------------------------------------------------------------------
def _rate_of(res: PointResult, metric: str) -> float:
    """The point's error rate (``ber`` or ``bler``); NaN for skipped points."""
    return float(getattr(res, metric))


def _predict_step(pts: Sequence[Tuple[float, float]], target: float) -> Optional[float]:
    """SNR step from the last of ``pts`` (``(snr, rate)``, ascending) to where ``log10(rate)``
    reaches ``target``: the parabola through the last three points when it bends down (a
    waterfall steepens, and a straight line then overshoots), else the line through the last two;
    ``None`` when the curve does not fall."""
    (s1, v1), (s2, v2) = pts[-2], pts[-1]
    y1, y2 = math.log10(v1), math.log10(v2)
    slope = (y1 - y2) / (s2 - s1)  # decades per dB, > 0 when falling
    if not slope > 0:
        return None
    linear = (y2 - target) / slope
    if len(pts) < 3:
        return linear
    (s0, v0) = pts[0]
    y0 = math.log10(v0)
    # y(s) = y2 + b (s - s2) + c (s - s2)^2 through the three points
    d1, d0 = s1 - s2, s0 - s2
    c = ((y1 - y2) / d1 - (y0 - y2) / d0) / (d1 - d0)
    b = (y1 - y2) / d1 - c * d1
    if not c < 0 or not b < 0:
        return linear
    disc = b * b - 4 * c * (y2 - target)  # c h^2 + b h + (y2 - target) = 0, smallest h > 0
    if disc < 0:
        return linear
    h = (-b - math.sqrt(disc)) / (2 * c)
    return h if 0 < h < linear else linear


#: The final step of the march aims at this fraction of the floor (a point's cost grows as 1 / rate, and a
#: point that lands just above the floor costs nearly as much as the final one and needs another).
_FINAL_AIM = 0.8
#: The final step is taken from a point at most ``_FINAL_REACH * max_decades`` above ``_FINAL_AIM * floor``;
#: from higher up the march aims no lower than ``_PRE * max_decades`` above it: the cheapest point from
#: which the final step stays within ``max_decades``.
_FINAL_REACH = 1.25
_PRE = 1.0
#: The final step extrapolates the least-squares line through this many last points (the line through
#: two points near the floor scatters with their Monte Carlo error).
_FINAL_FIT = 3
#: The refine pass fills the gap that crosses the floor only when it exceeds this many times ``max_decades``:
#: a final step that lands a little past its aim is kept (there a midpoint costs as much as the final point).
_REFINE_SLACK = 1.5
# (chosen by replaying the grid 300 times on measured LDPC curves with the scatter of 100-error points,
# benchmarks/bench_grid_replay.py: 1.8e7-2.0e7 codewords on average to reach BLER 1e-5 on three curves of
# the int8 decoder, against 2.3e7-8.5e7 for the previous rule; README's issue-18 section)


def _fit_step(pts: Sequence[Tuple[float, float]], target: float) -> Optional[float]:
    """SNR step from the last of ``pts`` (``(snr, rate)``, ascending) to where the least-squares line of
    ``log10(rate)`` on SNR reaches ``target`` (the line through two points; three average out some of the
    Monte Carlo scatter of a slope); ``None`` when the line does not fall."""
    xs = [p[0] for p in pts]
    ys = [math.log10(p[1]) for p in pts]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = -sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx > 0 else math.nan
    if not slope > 0:
        return None
    return (ys[-1] - target) / slope


def simulate_ber_adaptive(
    trial: BitTrial,
    start: float,
    stop: float,
    *,
    min_ber: Optional[float] = None,
    min_bler: Optional[float] = None,
    coarse_step: float = 1.0,
    max_decades: float = 1.0,
    min_step: float = 0.05,
    max_points: int = 40,
    snr_type: str = "esno",
    csv_file: Union[None, str, os.PathLike, ResumableCSV] = None,
    **kwargs: Any,
) -> List[PointResult]:
    """Monte Carlo BER/BLER on an SNR grid chosen as the curve unfolds, from ``start`` up to ``stop``.

    1. **March up** from ``start``. While the error rate is near saturation (``>= 0.5``) the step
       is ``coarse_step``; after that, the step is the one that the last points (saturated ones
       included) predict to lower the rate by ``max_decades`` (``log10(rate)`` extrapolated by the
       parabola through the last three points when it bends down, else by the line through the
       last two), between ``min_step`` and ``coarse_step`` (``coarse_step / 2`` while only one
       point is below 0.5). Near the floor (``min_bler`` or ``min_ber``), where a point's cost
       (``~ 1 / rate``) dominates the run: the march first aims no lower than ``max_decades``
       above ``0.8 x floor``, and from a point within ``1.25 * max_decades`` of ``0.8 x floor`` it
       takes the final step to ``0.8 x floor``, on the least-squares line through the last (up to
       three) points below 0.5 (a point that lands just above the floor would cost almost as much
       as the final one and need another). The march ends at the first point **below the floor** (the Sionna-style
       stop: no higher SNR is simulated), at a point without errors, or at ``stop``.
    2. **Refine**: while two neighbouring points differ by more than ``max_decades`` decades
       (``1.5 * max_decades`` for the step across the floor, whose midpoint would cost as much as
       the final point) and lie more than ``2 * min_step`` apart, the lower one not below the
       floor, the midpoint is simulated (lowest SNR first).

    The rate that steers the grid is the BLER when ``min_bler`` is given, else the BER. Every
    point is an ordinary :func:`simulate_ber` point (same stopping rules, point seed and CSV row),
    and the grid depends only on the points' results, so a rerun into the same CSV reproduces
    the same grid from the stored rows and resumes where it stopped (rows are appended in the
    order they are simulated, which is itself reproducible). SNR points are rounded to 0.001 dB.
    At most ``max_points`` points are simulated.

    Parameters
    ----------
    trial : BitTrial
    start, stop : float
        SNR range in dB (of ``snr_type``), ``start < stop``.
    min_ber, min_bler : float, optional
        The floor (at most one of them; ``None``: march to ``stop``).
    coarse_step, max_decades, min_step : float
        Grid steering (dB, decades, dB).
    max_points : int
        Upper bound on the number of SNR points.
    snr_type, csv_file, **kwargs
        As for :func:`simulate_ber` (``batch_size``, ``target_errors``, ``target_block_errors``,
        ``max_bits``, ``seed``, ``scheme``, ``channel``, ``progress``, ``callback``...).
        ``early_stop`` and ``snr_batch`` are not accepted (the grid has its own stop).

    Returns
    -------
    list of PointResult, sorted by SNR.

    Example
    -------
    >>> import torch
    >>> from phy.modulation import qam_ber_awgn
    >>> def bpsk_like(batch_size, esno_db):   # independent bit errors with the QPSK BER
    ...     p = float(qam_ber_awgn(esno_db, "qpsk"))
    ...     return torch.zeros(batch_size, 100), (torch.rand(batch_size, 100) < p).float()
    >>> res = simulate_ber_adaptive(FunctionTrial(bpsk_like, k=100), 0.0, 14.0, min_ber=1e-4,
    ...                             target_errors=100, max_bits=1e7, batch_size=1000, progress=False)
    >>> res[-1].ber < 1e-4 <= res[-2].ber
    True
    """
    for name in ("early_stop", "snr_batch", "snr_dbs"):
        if name in kwargs:
            raise TypeError(f"simulate_ber_adaptive() does not take {name!r}")
    start = float(check_snr(start, "start"))
    stop = float(check_snr(stop, "stop"))
    if not (math.isfinite(start) and math.isfinite(stop) and start < stop):
        raise ValueError(f"the SNR range needs finite start < stop, got start={start}, stop={stop}")
    if min_ber is not None and min_bler is not None:
        raise ValueError("give at most one of min_ber and min_bler")
    floor = min_bler if min_bler is not None else min_ber
    if floor is not None:
        _check_pos_number(floor, "min_bler" if min_bler is not None else "min_ber")
        if not floor < 1:
            raise ValueError(f"the floor (min_ber/min_bler) must be < 1, got {floor}")
    for name, val in (("coarse_step", coarse_step), ("max_decades", max_decades), ("min_step", min_step)):
        _check_pos_number(val, name)
    if min_step > coarse_step:
        raise ValueError(f"min_step={min_step} must be <= coarse_step={coarse_step}")
    _check_pos_int(max_points, "max_points")
    metric = "bler" if min_bler is not None else "ber"
    table = None
    if csv_file is not None:
        table = csv_file if isinstance(csv_file, ResumableCSV) else \
            ResumableCSV(csv_file, BER_COLUMNS, BER_KEY_COLUMNS)

    done: Dict[float, PointResult] = {}
    show = _use_progress(kwargs.pop("progress", None))  # one line per point instead of a bar per point
    label = f"{kwargs.get('scheme', 'scheme')}/{kwargs.get('channel', 'channel')}"

    def run(snr: float) -> PointResult:
        snr = round(snr, 3) + 0.0
        if snr not in done:
            done[snr] = res = simulate_ber(trial, [snr], snr_type=snr_type, csv_file=table, early_stop=False,
                                           progress=False, **kwargs)[0]
            if show:
                print(f"{label} {snr:g} dB: BER {res.ber:.3g}, BLER {res.bler:.3g} ({res.block_errors} block "
                      f"errors in {res.blocks}; {res.status})", file=sys.stderr, flush=True)
        return done[snr]

    def below_floor(v: float) -> bool:
        return floor is not None and v < floor

    # 1. march up
    snr = start
    while len(done) < max_points:
        v = _rate_of(run(snr), metric)
        if not v > 0 or below_floor(v) or snr >= stop:
            break
        known = [(s, _rate_of(r, metric)) for s, r in sorted(done.items()) if _rate_of(r, metric) > 0]
        falling = sum(1 for _, x in known if x < 0.5)
        if v >= 0.5 or len(known) < 2:
            step = coarse_step
        else:
            lv = math.log10(v)
            final = floor is not None and lv - math.log10(_FINAL_AIM * floor) <= _FINAL_REACH * max_decades
            if final:  # the jump across the floor, on the least-squares line through the last (up to) three
                # points of the falling part (a saturated point would flatten the line)
                fall = [p for p in known if p[1] < 0.5][-_FINAL_FIT:]
                step = _fit_step(fall, math.log10(_FINAL_AIM * floor)) if len(fall) >= 2 else \
                    _predict_step(known[-3:], math.log10(_FINAL_AIM * floor))
            else:
                want = max_decades
                if floor is not None:  # land no lower than the furthest point the final jump starts from
                    want = min(want, lv - (math.log10(_FINAL_AIM * floor) + _PRE * max_decades))
                # saturated points take part: their flat log-rate bends the parabola down, which keeps
                # the first step into a waterfall short (a point far below the floor costs ~1/rate)
                step = _predict_step(known[-3:], lv - want)
            cap = coarse_step if falling >= 2 else coarse_step / 2
            step = min(max(step, min_step), cap) if step is not None else cap
        snr = min(round(snr + step, 3), stop)

    # 2. refine where neighbours differ by more than max_decades
    while len(done) < max_points:
        pts = [(s, _rate_of(r, metric)) for s, r in sorted(done.items())]
        gap = None
        for (s0, v0), (s1, v1) in zip(pts, pts[1:]):
            slack = _REFINE_SLACK if below_floor(v1) else 1.0
            if (v0 > 0 and v1 > 0 and not below_floor(v0) and math.log10(v0 / v1) > slack * max_decades
                    and s1 - s0 > 2 * min_step):
                gap = (s0 + s1) / 2
                break
        if gap is None:
            break
        run(gap)
    return [done[s] for s in sorted(done)]


def curve_resolution(results: Sequence[PointResult], floor: float, metric: str = "bler",
                     top: float = 0.2) -> Dict[str, Any]:
    """How well a simulated curve is resolved between ``top`` and ``floor`` (pure function).

    Returns ``points_between`` (points with ``floor <= rate <= top``), ``max_step_decades`` (the
    largest ``|log10|`` ratio between neighbouring points with errors, over the points from the last
    one above ``top`` to the first one at or below ``floor``), ``floor_snr_db`` and
    ``floor_errors`` (the first point at or below ``floor``: its SNR and error count; ``None`` if
    no point got there) and ``rates`` (``(snr_db, rate, errors)`` of every point, by SNR).

    Example
    -------
    >>> pts = [PointResult("s", "c", s, "esno", s, math.nan, math.nan, b, 0, 0, e, 10**7, 0, 0, 0, 0, 0, "x")
    ...        for s, b, e in [(1, 0.5, 9), (2, 0.1, 9), (3, 1e-3, 9), (4, 5e-6, 101)]]
    >>> r = curve_resolution(pts, 1e-5)
    >>> r["points_between"], r["max_step_decades"], r["floor_snr_db"], r["floor_errors"]
    (2, 2.3010299956639813, 4, 101)
    """
    if metric not in ("ber", "bler"):
        raise ValueError(f"metric must be 'ber' or 'bler', got {metric!r}")
    count = "bit_errors" if metric == "ber" else "block_errors"
    pts = sorted(((r.snr_db, float(getattr(r, metric)), int(getattr(r, count))) for r in results
                  if not math.isnan(float(getattr(r, metric)))), key=lambda p: p[0])
    between = [p for p in pts if floor <= p[1] <= top]
    floor_pt = next((p for p in pts if p[1] <= floor and p[2] > 0), None)
    lo = max([i for i, p in enumerate(pts) if p[1] > top], default=0)
    hi = next((i for i, p in enumerate(pts) if p[1] <= floor), len(pts) - 1)
    span = [p for p in pts[lo:hi + 1] if p[1] > 0]
    steps = [abs(math.log10(a[1] / b[1])) for a, b in zip(span, span[1:])]
    return {"points_between": len(between), "max_step_decades": max(steps, default=math.nan),
            "floor_snr_db": floor_pt[0] if floor_pt else None, "floor_errors": floor_pt[2] if floor_pt else None,
            "rates": pts}
