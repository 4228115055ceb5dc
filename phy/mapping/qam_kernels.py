"""Compiled CPU kernels for Gray square QAM: scrambled mapping and exact APP / max-log demapping.

Sionna's ``Demapper("app")`` evaluates ``|y - c|^2`` for all ``M`` points and two masked
log-sum-exps per bit. A square Gray QAM is a product of two Gray PAMs (Sionna's labelling: the even
bits ``b0, b2, ...`` of a label choose the real part, the odd bits the imaginary part; checked
when the tables are built), and with circular Gaussian noise of variance ``N0`` (``N0/2`` per real
dimension) the imaginary factor cancels from every real-part bit's likelihood ratio (and vice
versa). So the exact logit of bit ``b_{2j}`` is

    LLR = LSE_{a: bit j of a = 1} (-(Re y - a)^2 / N0) - LSE_{a: bit j of a = 0} (-(Re y - a)^2 / N0)

over the ``sqrt(M)`` PAM levels ``a``: 4 terms per bit for 16-QAM instead of 16, one pass over
``y``, no temporaries. ``method="maxlog"`` replaces each LSE by a max (Sionna's ``"maxlog"``).
``LSE`` is accumulated pairwise as ``max(a, b) + log1p(exp(-|a - b|))`` with ``exp`` and
``log1p`` written as short float32 polynomials (no libm call, so LLVM vectorises the loop);
their absolute error is below ``1e-6``, and the tests compare the logits with Sionna's
``Demapper`` outputs.

Scrambling (the all-zero codeword trick): symbol ``i`` of stream ``key`` carries the ``m`` bits of
the counter-based word ``splitmix64(key + (i + 1) * gamma)`` (bit ``t`` of the label is bit
``m - 1 - t`` of the word), so :func:`scrambled_symbols` maps these pseudo-random bits to points and
:func:`demap` (given the same ``key``) flips the sign of each logit whose scrambling bit is 1.
The result is the logit of the *all-zero* codeword's bit, while the channel saw uniformly random
symbols: for a channel and demapper that are symmetric under this flip (AWGN, fading with
perfect-CSI ZF, Gray QAM with exact or max-log LLRs) and a decoder that is symmetric under
codeword translation (BP, min-sum, syndrome decoding of a linear code), the error statistics
equal those of random codewords, with no encoder in the loop.

Example
-------
>>> import torch
>>> from phy.mapping import qam_kernels as qk
>>> x = qk.scrambled_symbols((2, 8), "16qam", key=7)
>>> llr = qk.demap(x, torch.tensor([[1e-3], [1e-3]]), "16qam", key=7)  # almost noiseless
>>> bool((llr < -50).all())   # every descrambled bit is a confident 0
True
"""
from __future__ import annotations

import math
import numbers
from typing import Dict, Tuple, Union

import numpy as np
import torch

from phy.utils.threads import numba_threads

__all__ = ["available", "pam_tables", "scrambled_symbols", "scrambling_bits", "demap", "METHODS"]

#: Demapping methods of :func:`demap`: exact APP or max-log.
METHODS = ("app", "maxlog")
_MASK64 = (1 << 64) - 1

try:
    from numba import njit, prange

    _HAVE_NUMBA = True
except ImportError:  # pragma: no cover - numba is optional
    _HAVE_NUMBA = False


def available() -> bool:
    """Whether the compiled kernels can run (numba importable).

    Examples
    --------
    >>> available()        # numba is a dependency of the package
    True
    """
    return _HAVE_NUMBA


_TABLES: Dict[str, Tuple[np.ndarray, np.ndarray]] = {}


def pam_tables(modulation: str) -> Tuple[np.ndarray, np.ndarray]:
    """``(re_levels, im_levels)``, float32 ``[sqrt(M)]`` each, read from Sionna's constellation.

    ``re_levels[l]`` is the real part of every point whose even label bits ``(b0, b2, ...)`` read
    ``l`` (MSB first); ``im_levels`` likewise for the odd bits. Raises ``ValueError`` if the
    constellation is not separable that way.

    Examples
    --------
    >>> re_levels, im_levels = pam_tables("16qam")
    >>> re_levels.shape, sorted((re_levels * 10 ** 0.5).round().tolist())   # levels -3, -1, 1, 3 over sqrt(10)
    ((4,), [-3.0, -1.0, 1.0, 3.0])
    """
    from sionna.phy.mapping import Constellation

    from phy.mapping.constellations import MODULATIONS, _canonical

    name = _canonical(modulation)
    if name not in MODULATIONS:
        raise ValueError(f"modulation must be one of {sorted(MODULATIONS)}, got {modulation!r}")
    if name in _TABLES:
        return _TABLES[name]
    m = MODULATIONS[name]
    if m % 2:
        raise ValueError(f"{name}: the kernels need a square QAM (even bits per symbol), got m={m}")
    pts = Constellation("qam", m, precision="double", device="cpu").points.detach().cpu().numpy()
    h = m // 2
    re = np.full(1 << h, np.nan)
    im = np.full(1 << h, np.nan)
    for idx, p in enumerate(pts):
        bits = [(idx >> (m - 1 - t)) & 1 for t in range(m)]
        lr = sum(b << (h - 1 - j) for j, b in enumerate(bits[0::2]))
        li = sum(b << (h - 1 - j) for j, b in enumerate(bits[1::2]))
        for table, l, v in ((re, lr, p.real), (im, li, p.imag)):
            if math.isnan(table[l]):
                table[l] = v
            elif abs(table[l] - v) > 1e-9:
                raise ValueError(f"{name}: Sionna's constellation is not a product of two PAMs")
    _TABLES[name] = (re.astype(np.float32), im.astype(np.float32))
    return _TABLES[name]


def _check_key(key) -> int:
    if isinstance(key, bool) or not isinstance(key, numbers.Integral) or not 0 <= key <= _MASK64:
        raise ValueError(f"key must be an int in [0, 2**64), got {key!r}")
    return int(key)


if _HAVE_NUMBA:
    _JIT = dict(fastmath={"nsz", "contract"}, error_model="numpy", cache=True)
    _GAMMA = np.uint64(0x9E3779B97F4A7C15)
    _M1 = np.uint64(0xBF58476D1CE4E5B9)
    _M2 = np.uint64(0x94D049BB133111EB)

    @njit(inline="always", **_JIT)
    def _label(key, i):  # pragma: no cover - compiled
        """SplitMix64 word of symbol ``i`` of stream ``key`` (its low ``m`` bits are the label)."""
        z = key + (np.uint64(i) + np.uint64(1)) * _GAMMA
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))

    @njit(inline="always", **_JIT)
    def _exp_neg(d):  # pragma: no cover - compiled
        """``exp(-min(d, 17))`` for ``d >= 0`` in float32 arithmetic (relative error < 1e-6)."""
        x = min(d, np.float32(17.0)) * np.float32(1.0 / 16.0)   # exp(-d) = exp(-x)^16, x in [0, 1.07]
        p = np.float32(1.0 / 362880.0)
        p = np.float32(1.0 / 40320.0) - x * p
        p = np.float32(1.0 / 5040.0) - x * p
        p = np.float32(1.0 / 720.0) - x * p
        p = np.float32(1.0 / 120.0) - x * p
        p = np.float32(1.0 / 24.0) - x * p
        p = np.float32(1.0 / 6.0) - x * p
        p = np.float32(0.5) - x * p
        p = np.float32(1.0) - x * p
        e = np.float32(1.0) - x * p                                # exp(-x), Taylor to x^9
        e = e * e
        e = e * e
        e = e * e
        return e * e                                               # exp(-d)

    @njit(inline="always", **_JIT)
    def _log1p_mid(t):  # pragma: no cover - compiled
        """``log1p(t)`` for ``-0.5 <= t <= 1`` in float32 arithmetic: ``2 atanh(s)``, ``s = t / (2 + t)``,
        ``|s| <= 1/3`` (absolute error < 1e-7)."""
        s = t / (np.float32(2.0) + t)
        s2 = s * s
        q = np.float32(1.0 / 13.0)
        q = np.float32(1.0 / 11.0) + s2 * q
        q = np.float32(1.0 / 9.0) + s2 * q
        q = np.float32(1.0 / 7.0) + s2 * q
        q = np.float32(1.0 / 5.0) + s2 * q
        q = np.float32(1.0 / 3.0) + s2 * q
        q = np.float32(1.0) + s2 * q
        return np.float32(2.0) * s * q

    @njit(inline="always", **_JIT)
    def _softplus_neg(d):  # pragma: no cover - compiled
        """``log1p(exp(-d))`` for ``d >= 0`` in float32 arithmetic, absolute error < 1e-6."""
        r = _log1p_mid(_exp_neg(d))
        return r if d < np.float32(17.0) else np.float32(0.0)

    @njit(inline="always", **_JIT)
    def _pam4_app(y, c, iv, kq):  # pragma: no cover - compiled
        """Exact APP logits ``log p(1)/p(0)`` of the two label bits of one dimension of Gray 16-QAM with
        levels ``c * (1, 3, -1, -3)`` (labels 00, 01, 10, 11), at ``y`` with ``iv = 1 / N0`` and
        ``kq = exp(-8 c^2 / N0)``. With ``p = 4 c y / N0``, ``P = |p|``, ``q = 8 c^2 / N0``, ``E = exp(-P)``,
        ``F = exp(-|P - q|)``: bit 0 is ``sign(p) (-P - max(P - q, 0) + log((1 + E kq) / (1 + F)))`` and
        bit 1 is ``P - q + log(1 - E + E^2)`` (``log cosh 3u - log cosh u = log(2 cosh 2u - 1)``): two
        exponentials and two logarithms instead of the four of each that two log-sum-exps per bit take."""
        p = np.float32(4.0) * c * y * iv
        q = np.float32(8.0) * c * c * iv
        pa = abs(p)
        e = _exp_neg(pa)
        f = _exp_neg(abs(pa - q))
        l0 = -pa - max(pa - q, np.float32(0.0)) + _log1p_mid((e * kq - f) / (np.float32(1.0) + f))
        l1 = pa - q + _log1p_mid(-e * (np.float32(1.0) - e))
        return (l0 if p >= np.float32(0.0) else -l0), l1

    @njit(inline="always", **_JIT)
    def _lse(a, b, maxlog):  # pragma: no cover - compiled
        hi = max(a, b)
        if maxlog:
            return hi
        return hi + _softplus_neg(abs(a - b))

    @njit(parallel=True, **_JIT)
    def _k_map(out, key, m, re_lev, im_lev):  # pragma: no cover - compiled
        """``out`` ``[R, n, 2]`` float32: point of symbol ``r * n + i`` of stream ``key``."""
        rows, n = out.shape[0], out.shape[1]
        h = m // 2
        for r in prange(rows):
            for i in range(n):
                w = _label(key, r * n + i)
                lr = 0
                li = 0
                for j in range(h):
                    lr = (lr << 1) | int((w >> np.uint64(m - 1 - 2 * j)) & np.uint64(1))
                    li = (li << 1) | int((w >> np.uint64(m - 2 - 2 * j)) & np.uint64(1))
                out[r, i, 0] = re_lev[lr]
                out[r, i, 1] = im_lev[li]

    @njit(inline="always", **_JIT)
    def _demap_row(y, inv, word, scrambled, out, m, re_lev, im_lev, maxlog, met, l1, l0):  # pragma: no cover
        """Logits ``out`` ``[n * m]`` of one row ``y`` ``[2, n]`` (real parts, imaginary parts) with ``inv = 1 / N0`` ``[n]``; with
        ``scrambled`` the sign of bit ``t`` of symbol ``i`` is flipped where bit ``m - 1 - t`` of
        ``word[i]`` is 1. Scratch: ``met`` ``[2**(m/2), n]``, ``l1``, ``l0`` ``[n]``. The inner loops
        run over the symbols of the row, so they vectorise."""
        n = y.shape[1]
        h = m // 2
        nl = 1 << h
        for dim in range(2):
            lev = re_lev if dim == 0 else im_lev
            for l in range(nl):
                a = lev[l]
                for i in range(n):
                    dd = y[dim, i] - a
                    met[l, i] = -(dd * dd) * inv[i]
            for j in range(h):
                sh = h - 1 - j  # bit j (MSB first) of a level index
                first1 = True
                first0 = True
                for l in range(nl):
                    if (l >> sh) & 1:
                        if first1:
                            for i in range(n):
                                l1[i] = met[l, i]
                            first1 = False
                        else:
                            for i in range(n):
                                l1[i] = _lse(l1[i], met[l, i], maxlog)
                    else:
                        if first0:
                            for i in range(n):
                                l0[i] = met[l, i]
                            first0 = False
                        else:
                            for i in range(n):
                                l0[i] = _lse(l0[i], met[l, i], maxlog)
                t = 2 * j + dim
                sb = np.uint64(m - 1 - t)
                if scrambled:
                    for i in range(n):
                        v = l1[i] - l0[i]
                        flip = (word[i] >> sb) & np.uint64(1)
                        out[i * m + t] = -v if flip else v
                else:
                    for i in range(n):
                        out[i * m + t] = l1[i] - l0[i]

    @njit(parallel=True, **_JIT)
    def _k_demap(y, no, per_symbol, out, m, re_lev, im_lev, maxlog, scrambled, key):  # pragma: no cover
        """Logits ``out`` ``[R, n * m]`` of ``y`` ``[R, n, 2]``; ``no`` ``[R, n]`` (``per_symbol``)
        or ``[R, 1]``; with ``scrambled`` the sign of bit ``t`` of symbol ``r * n + i`` is flipped
        where bit ``m - 1 - t`` of its word is 1 (:func:`_demap_row` per row)."""
        rows, n = y.shape[0], y.shape[1]
        nl = 1 << (m // 2)
        for r in prange(rows):
            met = np.empty((nl, n), dtype=np.float32)
            l1 = np.empty(n, dtype=np.float32)
            l0 = np.empty(n, dtype=np.float32)
            inv = np.empty(n, dtype=np.float32)
            word = np.zeros(n, dtype=np.uint64)
            yt = np.empty((2, n), dtype=np.float32)
            for i in range(n):
                inv[i] = np.float32(1.0) / (no[r, i] if per_symbol else no[r, 0])
                yt[0, i] = y[r, i, 0]
                yt[1, i] = y[r, i, 1]
            if scrambled:
                for i in range(n):
                    word[i] = _label(key, r * n + i)
            _demap_row(yt, inv, word, scrambled, out[r], m, re_lev, im_lev, maxlog, met, l1, l0)


def _require():
    if not _HAVE_NUMBA:
        raise RuntimeError("phy.mapping.qam_kernels needs the optional package numba (pip install numba)")


def scrambled_symbols(shape, modulation: str, key: int) -> torch.Tensor:
    """Symbols ``[*shape]`` complex64 of uniformly random (counter-based, stream ``key``) labels.

    Symbol ``i`` (flat index) carries the label of :func:`scrambling_bits` ``[..., i * m : (i + 1) * m]``.

    Examples
    --------
    >>> x = scrambled_symbols((2, 1000), "qpsk", key=5)
    >>> x.shape, x.dtype, round(x.abs().pow(2).mean().item(), 3)     # unit mean energy
    (torch.Size([2, 1000]), torch.complex64, 1.0)
    """
    _require()
    key = _check_key(key)
    re, im = pam_tables(modulation)
    m = 2 * int(math.log2(re.shape[0]))
    shape = tuple(int(s) for s in shape)
    if not shape or any(s < 0 for s in shape):
        raise ValueError(f"shape must be a non-empty tuple of sizes >= 0, got {shape}")
    n = shape[-1]
    out = torch.empty(shape, dtype=torch.complex64)
    if out.numel():
        arr = torch.view_as_real(out).numpy().reshape(-1, n, 2)
        with numba_threads():
            _k_map(arr, np.uint64(key), m, re, im)
    return out


def scrambling_bits(shape, modulation: str, key: int) -> torch.Tensor:
    """The label bits ``[*shape[:-1], shape[-1] * m]`` (float 0/1) that :func:`scrambled_symbols`
    sends for the same ``shape`` and ``key`` (a slow reference, for tests and checks).

    Examples
    --------
    >>> bits = scrambling_bits((2, 3), "16qam", key=5)
    >>> bits.shape                                        # 3 symbols x 4 bits
    torch.Size([2, 12])
    >>> y = scrambled_symbols((2, 3), "16qam", key=5)
    >>> torch.equal((demap(y, 1e-3, "16qam") > 0).float(), bits)   # noiseless demapping recovers them
    True
    """
    key = _check_key(key)
    m = int(2 * math.log2(pam_tables(modulation)[0].shape[0]))
    shape = tuple(int(s) for s in shape)
    total = math.prod(shape)
    gamma, m1, m2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
    out = np.empty((total, m), dtype=np.float32)
    for i in range(total):
        z = (key + (i + 1) * gamma) & _MASK64
        z = ((z ^ (z >> 30)) * m1) & _MASK64
        z = ((z ^ (z >> 27)) * m2) & _MASK64
        z ^= z >> 31
        out[i] = [(z >> (m - 1 - t)) & 1 for t in range(m)]
    return torch.from_numpy(out).reshape(*shape[:-1], shape[-1] * m)


def demap(y: torch.Tensor, no: Union[float, torch.Tensor], modulation: str, method: str = "app",
          key: Union[int, None] = None) -> torch.Tensor:
    """Logits ``log p(b=1|y)/p(b=0|y)`` ``[..., n * m]`` float32 of Gray-QAM symbols ``y`` ``[..., n]``.

    Parameters
    ----------
    y : Tensor, ``[..., n]``, complex64 (CPU)
        Received (equalised) symbols.
    no : float or Tensor
        Noise power ``N0 > 0``: a number, one value per example ``[..., 1]``, or one per symbol
        ``[..., n]`` (``N0 / |h|^2`` after ZF).
    modulation : str
        ``"qpsk"``, ``"16qam"``, ``"64qam"`` or ``"256qam"`` (Sionna's Gray labelling).
    method : ``"app"`` (exact, default) or ``"maxlog"``
    key : int, optional
        Scrambling stream of :func:`scrambled_symbols`: the logits are returned descrambled (the
        sign flipped where the scrambling bit is 1).

    Returns
    -------
    Tensor ``[..., n * m]`` float32; equals Sionna's ``Demapper(method, "qam", m)(y, no)`` within
    float32 tolerance (``key=None``).

    Examples
    --------
    >>> y = torch.tensor([[1 + 1j, -1 - 1j]], dtype=torch.complex64) / 2 ** 0.5
    >>> (demap(y, 0.1, "qpsk") > 0).int()                  # Sionna's QPSK: bit 1 <-> negative component
    tensor([[0, 0, 1, 1]], dtype=torch.int32)
    """
    _require()
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not isinstance(y, torch.Tensor) or y.dtype != torch.complex64 or y.device.type != "cpu":
        raise TypeError(f"y must be a complex64 CPU tensor, got {getattr(y, 'dtype', type(y).__name__)} "
                        f"on {getattr(y, 'device', '-')}")
    if y.dim() == 0:
        raise ValueError("y must have at least one dimension (the symbols)")
    re, im = pam_tables(modulation)
    m = 2 * int(math.log2(re.shape[0]))
    n = y.shape[-1]
    lead = y.shape[:-1]
    rows = math.prod(lead)
    no_t = torch.as_tensor(no, dtype=torch.float32)
    if no_t.dim() and no_t.shape[-1] == n and n != 1:
        per_symbol = True
        no2 = no_t.expand(*lead, n).reshape(rows, n)
    else:
        per_symbol = False
        try:
            no2 = no_t.reshape(*no_t.shape[:-1], 1) if no_t.dim() else no_t.reshape(1)
            no2 = no2.expand(*lead, 1).reshape(rows, 1)
        except RuntimeError:
            raise ValueError(f"no of shape {tuple(no_t.shape)} must be a number, [..., 1] or [..., n] "
                             f"for y of shape {tuple(y.shape)}") from None
    no2 = no2.contiguous()
    if not bool((no2 > 0).all()) or not bool(torch.isfinite(no2).all()):
        raise ValueError("no (noise power) must be finite and > 0")
    out = torch.empty(*lead, n * m, dtype=torch.float32)
    if out.numel() == 0:
        return out
    yy = torch.view_as_real(y.resolve_conj().contiguous()).numpy().reshape(rows, n, 2)
    scrambled = key is not None
    k = np.uint64(_check_key(key) if scrambled else 0)
    with numba_threads():
        _k_demap(yy, no2.numpy(), per_symbol, out.numpy().reshape(rows, n * m), m, re, im,
                 method == "maxlog", scrambled, k)
    return out
