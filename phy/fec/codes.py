"""Channel codes behind one small interface: uncoded, Hamming(7,4) and 5G NR LDPC (Sionna).

Interface (:class:`Code`)
-------------------------
``k`` information bits, ``n`` code bits, ``rate = k / n``;
``encode(bits [..., k]) -> [..., n]`` and ``decode(llr [..., n]) -> bits [..., k]``.
Bits are 0/1 tensors (float or int); decoded bits are returned as 0/1 in the LLR's real dtype.

**LLR sign convention** (Sionna's): ``LLR = ln P(c = 1 | y) / P(c = 0 | y)``; a *positive* LLR
favours ``1`` and the hard decision is ``c_hat = 1`` iff ``LLR > 0`` (``LLR == 0`` decides 0).
:class:`phy.mapping.modulation.QAM` produces LLRs with this sign.

Codes
-----
* :class:`Uncoded` (``"none"``): ``n = k``; decode = hard decisions.
* :class:`Hamming74` (``"hamming74"``): Sionna's example (7,4) Hamming parity-check matrix
  (``load_parity_check_examples(0)``) encoded by Sionna's ``LinearEncoder``. Its systematic generator
  does *not* put the information bits first; the positions are found by encoding unit vectors
  (:attr:`Hamming74.info_positions`). ``decoder="syndrome"`` (default): hard decisions, syndrome
  table, corrects every single error; ``decoder="ml"``: exact soft maximum likelihood over the 16
  codewords (maximises ``sum_i c_i LLR_i``).
* :class:`LDPC5G` (``"ldpc5g"``): Sionna's ``LDPC5GEncoder`` / ``LDPC5GDecoder`` (belief
  propagation, ``num_iter`` iterations, rate matching to any ``n`` allowed by 38.212, rates below the
  1/5 mother rate included: the circular buffer is read on, and repeated, as TS 38.212 5.4.2.1 does).

Example
-------
>>> import torch
>>> code = make_code("hamming74")
>>> u = torch.tensor([[1., 0., 1., 1.]])
>>> c = code.encode(u)
>>> llr = 10.0 * (2 * c - 1)          # perfect LLRs, positive = 1
>>> llr[0, 2] *= -1                    # one channel error
>>> bool((code.decode(llr) == u).all())
True
"""
from __future__ import annotations

import itertools
import numbers
from typing import Dict, Optional, Tuple, Type

import numpy as np
import torch
from torch import nn

from phy.mapping.modulation import sionna_device

__all__ = ["Code", "layered_precision", "Uncoded", "Hamming74", "LDPC5G", "Repetition", "CODES", "register_code", "make_code",
           "hard_decisions", "circular_buffer_length",
           "LDPC5G_MAX_K", "LDPC5G_MAX_N", "LDPC5G_BG2_MAX_K"]

#: Largest information length ``k`` of the 5G LDPC code (base graph 1).
LDPC5G_MAX_K = 8448
LDPC5G_MIN_K = 12
#: Largest codeword length ``n`` of the 5G LDPC code (``316 Z`` with the largest lifting size 384).
LDPC5G_MAX_N = 316 * 384
#: Largest information length ``k`` of base graph 2, the graph of every rate at or below 1/4 (TS 38.212 5.2.2).
LDPC5G_BG2_MAX_K = 3840
#: The mother rate of base graph 2: below it the rate matching reads on around the circular buffer.
LDPC5G_MIN_RATE = 1 / 5
LDPC5G_MAX_RATE = 0.95


def hard_decisions(llr: torch.Tensor) -> torch.Tensor:
    """``1`` where ``llr > 0`` else ``0``, in ``llr``'s dtype.

    Elementwise: ``llr [..., n]`` -> bits ``[..., n]``.

    Examples
    --------
    >>> hard_decisions(torch.tensor([2.0, -0.5, 0.0]))
    tensor([1., 0., 0.])
    """
    return (llr > 0).to(llr.dtype)


def _check_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _float_dtype(t: torch.Tensor) -> torch.dtype:
    return t.dtype if t.is_floating_point() else torch.float32


class Code(nn.Module):
    """Base class: ``k``, ``n``, ``rate``, shape checks, ``encode`` / ``decode``.

    Subclasses implement ``_encode(bits [B, k] float) -> [B, n]`` and
    ``_decode(llr [B, n] float) -> [B, k]``; the base handles arbitrary leading dimensions.

    ``symmetric``: the code is linear and its decoder symmetric under codeword translation, so the
    all-zero codeword with a scrambling sequence has the error statistics of random codewords
    (``semcom ber --codeword scrambled-zero``); a code that does not say so is simulated with random
    codewords. :meth:`from_options` builds a code from the command line's options.

    Examples
    --------
    >>> code = make_code("hamming74")
    >>> bits = torch.tensor([[1.0, 0.0, 1.0, 1.0]])
    >>> c = code.encode(bits)
    >>> c.shape, code.rate, bool((code.decode(2.0 * c - 1.0) == bits).all())   # LLR > 0: bit 1
    (torch.Size([1, 7]), 0.5714285714285714, True)
    """

    name = "code"
    symmetric = False

    @classmethod
    def from_options(cls, **options) -> "Code":
        """Build from ``semcom ber``'s options (``k``, ``n``, ``num_iter``, ``ldpc_decoder``,
        ``hamming_decoder``, ...): the constructor's parameters are taken from them by name."""
        import inspect

        params = inspect.signature(cls.__init__).parameters
        return cls(**{name: options[name] for name in params if name != "self" and name in options})

    def __init__(self, k: int, n: int):
        super().__init__()
        self.k = _check_int(k, "k")
        self.n = _check_int(n, "n")
        if self.k > self.n:
            raise ValueError(f"k (information bits) must be <= n (code bits), got k={self.k} > n={self.n}")

    @property
    def rate(self) -> float:
        """Code rate ``k / n``."""
        return self.k / self.n

    def encode(self, bits: torch.Tensor) -> torch.Tensor:
        """Information bits ``[..., k]`` (0/1) -> codewords ``[..., n]`` (0/1, float dtype)."""
        if not isinstance(bits, torch.Tensor):
            raise TypeError(f"bits must be a torch.Tensor, got {type(bits).__name__}")
        if bits.dim() == 0 or bits.shape[-1] != self.k:
            raise ValueError(f"bits must have last dimension k={self.k} for {self.name}, got shape "
                             f"{tuple(bits.shape)}")
        dt = _float_dtype(bits)
        flat = bits.reshape(-1, self.k).to(dt)
        if flat.shape[0] == 0:
            return flat.new_zeros(*bits.shape[:-1], self.n)
        return self._encode(flat).to(dt).reshape(*bits.shape[:-1], self.n)

    def decode(self, llr: torch.Tensor) -> torch.Tensor:
        """Channel LLRs ``[..., n]`` (positive favours 1) -> information bits ``[..., k]`` (0/1)."""
        if not isinstance(llr, torch.Tensor) or not llr.is_floating_point():
            raise TypeError(f"llr must be a real floating-point torch.Tensor, got "
                            f"{getattr(llr, 'dtype', type(llr).__name__)}")
        if llr.dim() == 0 or llr.shape[-1] != self.n:
            raise ValueError(f"llr must have last dimension n={self.n} for {self.name}, got shape "
                             f"{tuple(llr.shape)}")
        flat = llr.reshape(-1, self.n)
        if flat.shape[0] == 0:
            return flat.new_zeros(*llr.shape[:-1], self.k)
        if not bool(torch.isfinite(flat.sum())) and bool(torch.isnan(flat).any()):  # one reduction when clean
            raise ValueError(f"llr must not contain NaN ({int(torch.isnan(flat).sum())} NaN value(s) in a tensor of "
                             f"shape {tuple(llr.shape)}): a NaN LLR says nothing about its bit; fix its source")
        return self._decode(flat).to(llr.dtype).reshape(*llr.shape[:-1], self.k)

    def _encode(self, bits):  # pragma: no cover - abstract
        raise NotImplementedError

    def _decode(self, llr):  # pragma: no cover - abstract
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"k={self.k}, n={self.n}"


class Uncoded(Code):
    """No coding: ``n = k``; decoding is the hard decision ``LLR > 0``.

    ``k`` only sets the block size (default 1: any number of bits is a whole number of blocks).

    Examples
    --------
    >>> code = Uncoded(k=2)
    >>> code.encode(torch.tensor([[1.0, 0.0]])), code.decode(torch.tensor([[3.0, -1.0]]))
    (tensor([[1., 0.]]), tensor([[1., 0.]]))
    """

    name = "none"
    symmetric = True

    def __init__(self, k: int = 1):
        super().__init__(k, k)

    def _encode(self, bits):
        return bits.clone()

    def _decode(self, llr):
        return hard_decisions(llr)


class Hamming74(Code):
    """(7,4) Hamming code from Sionna's example parity-check matrix.

    Parameters
    ----------
    decoder : ``"syndrome"`` (default) or ``"ml"``
        ``"syndrome"``: hard decisions then syndrome-table correction of one error (a pattern with
        two errors is always mis-corrected). ``"ml"``: exact soft-decision maximum likelihood
        (``argmax_c sum_i c_i LLR_i`` over all 16 codewords).

    Attributes
    ----------
    pcm : ndarray ``[3, 7]``  parity-check matrix
    gm : ndarray ``[4, 7]``   generator matrix used by Sionna's ``LinearEncoder``
    info_positions : tuple of 4 ints
        Codeword position of information bit ``i`` (``c[info_positions[i]] == u[i]``).

    Examples
    --------
    >>> code = Hamming74()
    >>> c = code.encode(torch.tensor([[1.0, 0.0, 1.0, 1.0]]))
    >>> llr = 4.0 * (2.0 * c - 1.0)            # LLR > 0 for a 1 (see hard_decisions)
    >>> llr[0, 2] = -llr[0, 2]                  # one bit flipped: corrected
    >>> code.decode(llr)
    tensor([[1., 0., 1., 1.]])
    """

    name = "hamming74"
    symmetric = True

    @classmethod
    def from_options(cls, **options) -> "Hamming74":
        return cls(decoder=options.get("hamming_decoder", "syndrome"))
    DECODERS = ("syndrome", "ml")

    def __init__(self, decoder: str = "syndrome"):
        super().__init__(4, 7)
        if decoder not in self.DECODERS:
            raise ValueError(f"decoder must be one of {self.DECODERS}, got {decoder!r}")
        self.decoder = decoder
        from sionna.phy.fec.coding import load_parity_check_examples
        from sionna.phy.fec.linear import LinearEncoder

        pcm, k, n, _ = load_parity_check_examples(0)
        if (k, n) != (4, 7):  # pragma: no cover - guards a Sionna change
            raise RuntimeError(f"Sionna's example code 0 is no longer the (7,4) Hamming code: ({n},{k})")
        self.pcm = np.asarray(pcm, dtype=np.int64)
        self._encoders: Dict[Tuple[str, str], LinearEncoder] = {}
        self._make_encoder = lambda dev, prec: LinearEncoder(self.pcm, is_pcm=True, precision=prec,
                                                             device=dev)
        enc = self._encoder("cpu", torch.float32)
        self.gm = enc.gm.cpu().numpy().astype(np.int64)
        # Information positions: encode unit vectors; bit i appears alone at a systematic column.
        eye = torch.eye(4)
        cw = enc(eye).cpu().numpy().astype(np.int64)  # [4, 7], row i = codeword of e_i
        positions = []
        for i in range(4):
            cols = [j for j in range(7) if cw[i, j] == 1 and cw[:, j].sum() == 1]
            if not cols:  # pragma: no cover
                raise RuntimeError("Hamming(7,4) generator is not systematic")
            positions.append(cols[0])
        self.info_positions = tuple(positions)
        # Syndrome table: syndrome (as int, row 0 = MSB) -> error position (-1 for zero syndrome).
        table = np.full(8, -1, dtype=np.int64)
        for j in range(7):
            s = int("".join(str(int(b)) for b in self.pcm[:, j]), 2)
            table[s] = j
        self._table = table
        msgs = np.array(list(itertools.product([0, 1], repeat=4)), dtype=np.int64)
        self._messages = msgs
        self._codebook = (msgs @ self.gm) % 2  # [16, 7]

    def _encoder(self, device, dtype):
        key = (sionna_device(device), "double" if dtype == torch.float64 else "single")
        if key not in self._encoders:
            self._encoders[key] = self._make_encoder(*key)
        return self._encoders[key]

    def _encode(self, bits):
        return self._encoder(bits.device, bits.dtype)(bits)

    def _decode(self, llr):
        dev, dt = llr.device, llr.dtype
        pos = torch.as_tensor(self.info_positions, device=dev)
        if self.decoder == "ml":
            cb = torch.as_tensor(self._codebook, dtype=dt, device=dev)
            best = (llr @ cb.T).argmax(-1)
            return cb[best][:, pos]
        c = (llr > 0).to(torch.int64)
        H = torch.as_tensor(self.pcm, device=dev)
        syn = (c.unsqueeze(-2) * H).sum(-1) % 2  # [B, 3]; no integer matmul (unsupported on CUDA)
        syn_int = syn[:, 0] * 4 + syn[:, 1] * 2 + syn[:, 2]
        err_pos = torch.as_tensor(self._table, device=dev)[syn_int]  # [B]
        flip = torch.nn.functional.one_hot(err_pos.clamp(min=0), 7) * (err_pos >= 0).unsqueeze(-1)
        c = c ^ flip
        return c[:, pos].to(dt)

    def extra_repr(self) -> str:
        return f"k=4, n=7, decoder={self.decoder!r}, info_positions={self.info_positions}"


def _check_ldpc_params(k, n, num_iter):
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise ValueError(f"k must be an int, got {k!r}")
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise ValueError(f"n must be an int, got {n!r}")
    k, n = int(k), int(n)
    if k > n:
        raise ValueError(f"k (information bits) must be <= n (codeword length), got k={k} > n={n}")
    if not LDPC5G_MIN_K <= k <= LDPC5G_MAX_K:
        raise ValueError(f"k={k} is not a valid 5G NR LDPC information length: expected "
                         f"{LDPC5G_MIN_K} <= k <= {LDPC5G_MAX_K}")
    if n > LDPC5G_MAX_N:
        raise ValueError(f"n={n} is not a valid 5G NR LDPC codeword length: expected n <= {LDPC5G_MAX_N}")
    rate = k / n
    if rate > LDPC5G_MAX_RATE:
        raise ValueError(f"k={k}, n={n} give rate {rate:.4f}, above the 5G NR LDPC maximum {LDPC5G_MAX_RATE} "
                         f"(n must be at least {int(np.ceil(k / LDPC5G_MAX_RATE))} for k={k})")
    if rate < LDPC5G_MIN_RATE and k > LDPC5G_BG2_MAX_K:
        raise ValueError(f"k={k}, n={n} give rate {rate:.4f} < 1/5, which needs base graph 2 (k <= "
                         f"{LDPC5G_BG2_MAX_K}); larger blocks are segmented into several codewords in 5G, not here "
                         f"(n <= {5 * k} for k={k})")
    if isinstance(num_iter, bool) or not isinstance(num_iter, numbers.Integral) or num_iter < 1:
        raise ValueError(f"num_iter must be a positive int, got {num_iter!r}")
    return k, n, int(num_iter)


def _sionna_encoder(k: int, n: int, precision: str, device: str):
    """Sionna's ``LDPC5GEncoder`` for ``k`` information bits and ``min(n, circular buffer)`` output bits.

    Sionna refuses rates below 1/5 (it has no repetition); for ``5 k < n`` the encoder is built at
    ``n = 5 k`` (base graph 2, the lifting size and filler bits depend on ``k`` only) and then reads on
    around the circular buffer to ``min(n, n_cb_comp)`` bits: its output is then the buffer's first
    ``min(n, n_cb_comp)`` bits, filler bits skipped, exactly as for smaller ``n``. The decoders read the
    same ``n`` from it (fewer punctured parity bits)."""
    from sionna.phy.fec.ldpc import LDPC5GEncoder

    if n <= 5 * k:
        return LDPC5GEncoder(k, n, precision=precision, device=device)
    enc = LDPC5GEncoder(k, 5 * k, precision=precision, device=device)
    n_out = min(int(n), int(enc.n_cb_comp))
    enc._n, enc._coderate = n_out, k / n_out   # Sionna's own fields: the buffer read to n_out bits
    return enc


def circular_buffer_length(k: int) -> int:
    """Distinct code bits of the rate-1/5-and-below 5G LDPC code for ``k`` information bits: the
    circular buffer of base graph 2 without its filler bits, ``N_cb - (10 Z - k) = 40 Z + k``
    (TS 38.212 5.4.2.1, no limited-buffer rate matching). Rate matching to ``E`` bits reads the buffer
    from position 0; beyond this length it wraps around and repeats.

    Examples
    --------
    >>> circular_buffer_length(135)      # Z = 24: 40 * 24 + 135
    1095
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not LDPC5G_MIN_K <= k <= LDPC5G_BG2_MAX_K:
        raise ValueError(f"k must be an int in [{LDPC5G_MIN_K}, {LDPC5G_BG2_MAX_K}] (base graph 2), got {k!r}")
    return int(_sionna_encoder(int(k), 5 * int(k), "single", "cpu").n_cb_comp)


def layered_precision(device, decoder_kwargs: Optional[dict] = None) -> str:
    """The arithmetic of ``LDPC5G(decoder="layered")`` on ``device``: ``"int8"`` (the fixed-point kernel of
    :mod:`phy.fec.ldpc_fixed`) on CPU when numba is installed and the decoder options allow it (offset
    min-sum, numba backend), else ``"float32"``.

    Examples
    --------
    >>> layered_precision("cpu"), layered_precision("cpu", {"backend": "torch"})
    ('int8', 'float32')
    >>> layered_precision("cuda")
    'float32'
    """
    from phy.fec.ldpc_fast import numba_available

    kw = decoder_kwargs or {}
    ok = (str(device).startswith("cpu") and numba_available() and kw.get("cn_update", "oms") == "oms"
          and kw.get("backend", "auto") in ("auto", "numba") and "precision" not in kw)
    return "int8" if ok else kw.get("precision", "float32")


class LDPC5G(Code):
    """5G NR LDPC code (3GPP TS 38.212) with rate matching, Sionna's encoder and BP decoder.

    Parameters
    ----------
    k : int
        Information bits, ``12 <= k <= 8448``.
    n : int
        Codeword length after rate matching, ``k/0.95 <= n <= 121344``. Above ``5 k`` (rates below the
        1/5 mother rate, base graph 2, ``k <= 3840``) the rate matching reads on around the circular
        buffer (:func:`circular_buffer_length` distinct bits) and, once it is exhausted, repeats it
        cyclically, as TS 38.212 5.4.2.1 does for ``E > N_cb``; the decoder sums the LLRs of the copies of
        each buffer bit (the exact LLR of independent observations) before decoding.
    num_iter : int
        Belief-propagation iterations (default 20).
    cn_update : str
        Sionna check-node rule (``"boxplus-phi"`` default, ``"minsum"``, ...) for ``decoder="bp"``.
    decoder : ``"bp"`` (default), ``"layered"``, ``"layered-float32"``, ``"layered-int16"`` or ``"layered-int8"``
        ``"bp"``: Sionna's flooding ``LDPC5GDecoder``. ``"layered-float32"``: the layered offset
        min-sum :class:`phy.fec.ldpc_fast.LDPC5GFastDecoder` on the same Sionna encoder (faster); the
        ``-int16`` / ``-int8`` variants run it in fixed point (:mod:`phy.fec.ldpc_fixed`, CPU with numba
        only). ``"layered"``: the fastest of them on the device, :func:`layered_precision` (int8 on CPU
        with numba: its BLER is within 0.05 dB of float32, the documentation's performance page; float32 elsewhere).
    decoder_kwargs : dict, optional
        Extra arguments for the layered decoder (``cn_update="nms"``, ``scale``, ``backend`` ...).

    Example
    -------
    >>> import torch
    >>> code = LDPC5G(64, 128)
    >>> u = torch.randint(0, 2, (3, 64)).float()
    >>> bool((code.decode(20.0 * (2 * code.encode(u) - 1)) == u).all())
    True
    >>> low = LDPC5G(135, 2304)                         # rate 0.059: the buffer of 1095 bits read 2.1 times
    >>> low.buffer_length, round(low.repetitions, 3)
    (1095, 2.104)
    >>> c = low.encode(u[:, :1].repeat(1, 135))
    >>> bool(torch.equal(c[:, 1095:2190], c[:, :1095]))    # cyclic repetition of the circular buffer
    True
    """

    name = "ldpc5g"
    symmetric = True

    @classmethod
    def from_options(cls, **options) -> "LDPC5G":
        """``k``, ``n``, ``num_iter`` and ``ldpc_decoder``; the layered decoder stops each codeword at
        its first zero syndrome."""
        decoder = options.get("ldpc_decoder", "bp")
        return cls(options["k"], options["n"], num_iter=options.get("num_iter", 20), decoder=decoder,
                   decoder_kwargs={"early_stop": True} if decoder.startswith("layered") else None)

    DECODERS = ("bp", "layered", "layered-float32", "layered-int16", "layered-int8")

    def __init__(self, k: int, n: int, num_iter: int = 20, cn_update: str = "boxplus-phi",
                 decoder: str = "bp", decoder_kwargs: Optional[dict] = None):
        k, n, num_iter = _check_ldpc_params(k, n, num_iter)
        super().__init__(k, n)
        if decoder not in self.DECODERS:
            raise ValueError(f"decoder must be one of {self.DECODERS}, got {decoder!r}")
        self.num_iter = num_iter
        self.cn_update = cn_update
        self.decoder = decoder
        self.decoder_kwargs = dict(decoder_kwargs or {})
        self._blocks: Dict[Tuple[str, str], tuple] = {}
        enc, _ = self._get("cpu", torch.float32)  # fail early (Sionna's own checks) at construction
        #: distinct code bits sent (``min(n, circular buffer)``); ``n`` beyond it repeats them cyclically
        self.buffer_length = int(enc.n)
        self._repeat = None if self.buffer_length == self.n else torch.arange(self.n) % self.buffer_length

    @property
    def repetitions(self) -> float:
        """How many times the rate matching reads the circular buffer: ``n / buffer_length`` (1 without repetition)."""
        return self.n / self.buffer_length

    def _get(self, device, dtype):
        from sionna.phy.fec.ldpc import LDPC5GDecoder

        key = (sionna_device(device), "double" if dtype == torch.float64 else "single")
        if key not in self._blocks:
            try:
                enc = _sionna_encoder(self.k, self.n, precision=key[1], device=key[0])
            except (AssertionError, ValueError) as e:
                raise ValueError(f"invalid 5G NR LDPC parameters k={self.k}, n={self.n}: {e}") from e
            if self.decoder.startswith("layered"):
                from phy.fec.ldpc_fast import LDPC5GFastDecoder

                kwargs = dict(self.decoder_kwargs)
                kwargs["precision"] = self.decoder.split("-")[1] if self.decoder != "layered" else \
                    layered_precision(key[0], kwargs)
                dec = LDPC5GFastDecoder(enc, num_iter=self.num_iter, hard_out=True, return_infobits=True, **kwargs)
            else:
                dec = LDPC5GDecoder(enc, cn_update=self.cn_update, num_iter=self.num_iter, hard_out=True,
                                    return_infobits=True, precision=key[1], device=key[0])
            self._blocks[key] = (enc, dec)
        return self._blocks[key]

    def _encode(self, bits):
        enc, _ = self._get(bits.device, bits.dtype)
        c = enc(bits)
        if self._repeat is not None:   # E > N: the circular buffer read on cyclically
            c = c[:, self._repeat.to(c.device)]
        return c

    def scrambled_awgn_errors(self, rows: int, modulation: str, no, scrambling_key: int, noise_key: int,
                              method: str = "app") -> Optional[Tuple[int, int]]:
        """``(bit_errors, block_errors)`` of ``rows`` scrambled all-zero codewords over AWGN, with the
        chain and the decoder in one compiled pass (:meth:`phy.fec.ldpc_fast.LDPC5GFastDecoder.scrambled_awgn_errors`),
        or ``None`` where that pass does not exist for this code (a float32 or Sionna decoder, an ``n``
        that is not a multiple of the bits per symbol). CPU.

        Examples
        --------
        >>> code = LDPC5G(512, 1024, decoder="layered-int8")
        >>> code.scrambled_awgn_errors(100, "16qam", 0.01, scrambling_key=1, noise_key=2)
        (0, 0)
        >>> LDPC5G(512, 1024, decoder="bp").scrambled_awgn_errors(100, "16qam", 0.01, 1, 2) is None
        True
        """
        from phy.mapping.constellations import bits_per_symbol

        if not self.decoder.startswith("layered") or self.n % bits_per_symbol(modulation) or self._repeat is not None:
            return None
        _, dec = self._get(torch.device("cpu"), torch.float32)
        if dec.precision == "float32":
            return None
        return dec.scrambled_awgn_errors(rows, modulation, no, scrambling_key, noise_key, method)

    def _decode(self, llr):
        _, dec = self._get(llr.device, llr.dtype)
        if self._repeat is not None:   # soft combining: the LLRs of a buffer bit's copies add
            llr = llr.new_zeros(llr.shape[0], self.buffer_length).index_add_(1, self._repeat.to(llr.device), llr)
        return dec(llr)

    def extra_repr(self) -> str:
        rep = f", buffer_length={self.buffer_length}" if self._repeat is not None else ""
        return f"k={self.k}, n={self.n}{rep}, num_iter={self.num_iter}, decoder={self.decoder!r}"


class Repetition(Code):
    """A base code whose codeword is sent ``r`` times; the receiver sums the ``r`` LLRs of each code bit
    (soft combining) before the base decoder.

    ``k = base.k``, ``n = r * base.n``, ``rate = base.rate / r``. The codeword is repeated as a whole
    (``[c, c, ..., c]``), so the copies of one bit are ``base.n`` code bits apart: with ``base.n`` at least
    the bits per symbol they ride different QAM symbols (diversity on per-symbol fading). Summing LLRs of
    independent observations is the exact LLR of all of them; for Gray QPSK (and BPSK) the sum is the
    single-copy LLR at ``r`` times the SNR, so the BER is the base code's at ``r x Es/N0`` (a
    ``10 log10 r`` dB gain for ``r`` times the channel uses).

    Parameters
    ----------
    base : Code or str
        The inner code (a name is built by :func:`make_code` with ``base_kwargs``).
    r : int
        Copies of each codeword (``r >= 1``; ``1`` is the base code).

    Example
    -------
    >>> code = Repetition("hamming74", r=3)
    >>> code.k, code.n
    (4, 21)
    >>> u = torch.tensor([[1., 0., 1., 1.]])
    >>> llr = 4.0 * (2 * code.encode(u) - 1)  # perfect LLRs, positive = 1
    >>> llr[0, 7:14] *= -1                     # the second copy all wrong: 4 - 4 + 4 keeps every sign
    >>> bool((code.decode(llr) == u).all())
    True
    """

    name = "repetition"

    def __init__(self, base="none", r: int = 1, **base_kwargs):
        inner = make_code(base, **base_kwargs)
        r = _check_int(r, "r")
        super().__init__(inner.k, inner.n * r)
        self.base, self.r = inner, r
        self.symmetric = inner.symmetric

    def _encode(self, bits):
        c = self.base.encode(bits)                                       # [B, n0]
        return c.repeat(1, self.r)                                       # [B, r * n0]: whole codeword r times

    def _decode(self, llr):
        combined = llr.reshape(llr.shape[0], self.r, self.base.n).sum(1)  # soft combining: LLRs add
        return self.base.decode(combined)

    def extra_repr(self) -> str:
        return f"r={self.r}, base={self.base.name!r}, k={self.k}, n={self.n}"


#: Code registry: name -> :class:`Code` subclass (:func:`register_code` adds to it).
CODES: Dict[str, Type[Code]] = {"none": Uncoded, "hamming74": Hamming74, "ldpc5g": LDPC5G}


def register_code(name: str, override: bool = False):
    """Class decorator: make ``make_code(name, ...)`` (and ``semcom ber --code name``) build this
    :class:`Code` subclass; what a plug-in uses (:mod:`experiments.core.plugins`). A name already registered
    to another class (a built-in such as ``ldpc5g``) is refused (``ValueError``) unless ``override``.

    Examples
    --------
    >>> @register_code("doc-uncoded")
    ... class DocUncoded(Uncoded):
    ...     pass
    >>> make_code("doc-uncoded", k=4).k
    4
    >>> del CODES["doc-uncoded"]
    """
    if not isinstance(name, str) or not name.strip() or name != name.strip().lower():
        raise ValueError(f"a code name must be a non-empty lower-case str without spaces, got {name!r}")

    def deco(cls):
        if not (isinstance(cls, type) and issubclass(cls, Code)):
            raise TypeError(f"code {name!r}: expected a phy.fec.codes.Code subclass, got {cls!r}")
        old = CODES.get(name)
        if old is not None and old is not cls and not override:
            raise ValueError(f"code {name!r} is already registered ({getattr(old, '__qualname__', old)}); a plug-in "
                             "may not replace it silently: register it under another name, or pass override=True "
                             "to replace it on purpose")
        CODES[name] = cls
        return cls

    return deco


def make_code(name, **kwargs) -> Code:
    """Build a code by name: ``"none"`` (``k=``), ``"hamming74"`` (``decoder=``), ``"ldpc5g"``
    (``k=, n=, num_iter=``). A :class:`Code` instance is returned unchanged.

    Examples
    --------
    >>> make_code("ldpc5g", k=100, n=200).rate
    0.5
    """
    if isinstance(name, Code):
        if kwargs:
            raise ValueError("keyword arguments are only accepted with a code name, not a Code instance")
        return name
    if not isinstance(name, str):
        raise TypeError(f"code must be a name or a phy.fec.codes.Code, got {type(name).__name__}: {name!r}")
    key = name.lower()
    if key in ("uncoded", "identity"):
        key = "none"
    if key not in CODES:
        raise ValueError(f"unknown code {name!r}; expected one of {sorted(CODES)}")
    if key == "ldpc5g" and not {"k", "n"} <= set(kwargs):
        raise ValueError(f"code 'ldpc5g' needs k= and n=, got {sorted(kwargs)}")
    return CODES[key](**kwargs)
