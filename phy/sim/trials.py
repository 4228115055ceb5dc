"""Trials: what the Monte Carlo engine runs at one SNR point (``trial(batch_size, esno_db) -> (bits, bits_hat)``).

* :class:`BitTrial`: the protocol.
* :class:`FunctionTrial`: a plain function as a trial.
* :class:`LinkTrial`: random information bits through a link (e.g. :class:`phy.link.digital.DigitalLink`).
* :class:`ScrambledZeroTrial`: the all-zero codeword with a scrambled QAM labelling (no encoder run), the
  fast path of LDPC BER/BLER curves.

Example
-------
>>> import torch
>>> from phy.sim.trials import FunctionTrial
>>> trial = FunctionTrial(lambda batch_size, esno_db: (torch.zeros(batch_size, 4), torch.zeros(batch_size, 4)), k=4)
>>> trial.k
4
"""
from __future__ import annotations

import math
from typing import (Callable, Optional, Protocol, Sequence, Tuple, Union, runtime_checkable)

import torch

from phy.utils.conventions import check_device, check_snr
from phy.sim.points import _check_pos_int, _count_errors, point_seed

__all__ = ["BitTrial", "FunctionTrial", "LinkTrial", "ScrambledZeroTrial"]


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
    >>> from phy.sim import simulate_ber
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

    ``link(bits [batch, k] float, snr_db=esno_db)`` must return a ``phy.link.base.LinkOutput`` whose
    ``x_hat`` holds hard bit estimates of ``bits``' shape (or a tensor directly). The source bits
    come from the trial's own ``torch.Generator``; :meth:`reset` reseeds it and the link's channel
    (``link.channel.reset``) from sub-seeds of the point seed, so every scheme sees the same
    channel realisation statistics and a point is reproducible on its own.

    :meth:`batched` sends ``bits [S, batch_size, k]`` in one call
    ``link(bits, snr_db=esno[S, 1], batch_dims=2)`` (for ``simulate_ber(..., snr_batch=S)``); the
    link must accept ``batch_dims`` and a tensor ``snr_db``, as every ``phy.link`` link does.

    Parameters
    ----------
    link : nn.Module
        E.g. ``phy.link.digital.DigitalLink``.
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
    >>> from phy.sim import simulate_ber
    >>> from phy.channel.flat import AWGN
    >>> from phy.link.digital import DigitalLink
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
    through ``link.channel`` with ``link.equalizer`` (as :class:`phy.link.digital.DigitalLink` does),
    demapped, and the logits' signs are flipped back where ``s = 1``; ``link.code.decode`` then
    decodes the all-zero codeword and every decided 1 is an error.

    Why this is exact: with the scrambler and descrambler on both sides, the channel the decoder
    sees is symmetric (the sent symbols are uniform whatever the codeword), so for a linear code and
    a decoder that commutes with adding a codeword (BP, min-sum, layered min-sum, syndrome and ML
    decoding of Hamming codes; every decoder of :mod:`phy.fec.codes`) the error statistics do not
    depend on the codeword: the all-zero one gives the same BER/BLER as random codewords through the
    scrambled link. The scrambled link differs from the plain one only in that the bits sharing a
    QAM symbol are independent instead of bits of one codeword, which changes nothing measurable
    (``tests/test_montecarlo.py`` compares it with :class:`LinkTrial` within Monte Carlo error).

    On CPU the scrambling, Gray mapping and exact APP / max-log demapping with descrambling are
    the compiled kernels of :mod:`phy.mapping.qam_kernels` (the scrambling bits are a counter-based
    function of a per-call key, never stored); on other devices the same steps run as torch ops
    (``link.qam``'s Sionna mapper and demapper).

    Parameters
    ----------
    link : phy.link.digital.DigitalLink
        Supplies ``code``, ``qam`` (modulation and demapping method), ``channel``, ``equalizer``,
        ``interleave`` and the block/padding accounting (``num_blocks``, ``pad_bits``).
    k : int, optional
        Information bits per block (default ``link.k``); a multiple of ``link.k``.
    device : str or torch.device
        Where the chain runs.

    Examples
    --------
    >>> from phy.sim import simulate_ber
    >>> from phy.channel.flat import AWGN
    >>> from phy.link.digital import DigitalLink
    >>> trial = ScrambledZeroTrial(DigitalLink(AWGN(), code="none", modulation="qpsk"), k=16)
    >>> res = simulate_ber(trial, [0.0], batch_size=1000, max_bits=16000, target_errors=None)
    >>> abs(res[0].ber - 0.1587) < 0.01    # the same BER as random codewords
    True
    """

    def __init__(self, link, k: Optional[int] = None, device: Union[str, torch.device] = "cpu"):
        for attr in ("code", "qam", "channel", "equalizer", "num_blocks", "pad_bits"):
            if not hasattr(link, attr):
                raise TypeError(f"link must be a phy.link.digital.DigitalLink (it has no {attr!r}), got "
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
        """Whether :func:`phy.fec.scrambled_chain.scrambled_awgn_logits` computes this link's logits: CPU, the
        compiled kernels, a channel with the base class's noise path, no fading (AWGN) and nothing that
        transforms its output (no impairment, no hook: :meth:`phy.channel.base.Channel.output_transformed`),
        and a perfect-CSI zero-forcing equaliser (the identity without fading)."""
        from phy.fec import scrambled_chain
        from phy.channel.base import Channel

        ch, eq = self.link.channel, self.link.equalizer
        return (self.device.type == "cpu" and scrambled_chain.available() and isinstance(ch, Channel)
                and not ch.output_transformed()  # an impairment or a hook: the chain would drop it
                and type(ch).forward is Channel.forward and type(ch).forward_equalized is Channel.forward_equalized
                and ch.backend != "torch" and ch.kernel_fading() is None
                and getattr(eq, "method", None) == "zf" and getattr(eq, "csi", None) == "perfect")

    def _llr(self, shape: Tuple[int, ...], esno, reuse: bool = False) -> torch.Tensor:
        """Descrambled logits ``[*shape, nb * n]`` of the all-zero coded bits (with ``reuse``, on the fused
        AWGN path, written into a buffer that the next call overwrites)."""
        from phy.mapping import qam_kernels as qk
        from phy.utils.conventions import snr_db_to_no

        link, key, m = self.link, self._next_key(), self.bits_per_symbol
        sym_shape = (*shape, self._nsym)
        no = snr_db_to_no(torch.as_tensor(esno, dtype=torch.float32, device=self.device)).reshape(*shape[:-1], -1, 1)
        no = no.expand(*shape, 1)
        if self._fused():
            from phy.channel import kernels as ck
            from phy.fec.scrambled_chain import scrambled_awgn_logits

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
        return self._fused_counts and self._fused()  # the channel is checked on every call (hooks may come later)

    def _counts_fused(self) -> bool:
        code = self.link.code
        return (self._fused() and self._nb == 1 and self._nsym * self.bits_per_symbol == self._coded
                and not getattr(self.link, "interleave", False) and hasattr(code, "scrambled_awgn_errors")
                and code.scrambled_awgn_errors(0, self.modulation, 1.0, 0, 0, self.method) is not None)

    def count_errors(self, batch_size: int, esno_db: float) -> Tuple[int, int, int, int]:
        """``(bit_errors, bits, block_errors, blocks)`` of one call of ``batch_size`` blocks: the counts of
        ``self(batch_size, esno_db)`` (the same keys, so the same numbers), computed without writing
        logits or decisions where :attr:`counts_in_one_pass` holds (:meth:`phy.fec.codes.LDPC5G.scrambled_awgn_errors`).

        Examples
        --------
        >>> from phy.channel.flat import AWGN
        >>> from phy.fec.codes import LDPC5G
        >>> from phy.link.digital import DigitalLink
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
        from phy.channel import kernels as ck
        from phy.utils.conventions import snr_db_to_no

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
