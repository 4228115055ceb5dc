"""The scrambled all-zero QAM chain over AWGN in one compiled pass: map, noise, exact demap, descramble.

:class:`phy.sim.trials.ScrambledZeroTrial` on CPU runs three compiled kernels per batch --
:func:`phy.mapping.qam_kernels.scrambled_symbols`, :func:`phy.channel.kernels.awgn` and
:func:`phy.mapping.qam_kernels.demap` -- and each writes a fresh tensor (symbols, noisy symbols, logits):
three passes over memory and, for fresh allocations, a page fault every 4 KiB. For a plain AWGN
channel with a zero-forcing (identity) equaliser, :func:`scrambled_awgn_logits` computes the same
logits in one pass per codeword: the symbols and noisy symbols of a row live in a small per-thread
buffer, only the logits are written, and they can go to a reused output buffer.

The values are those of the three-kernel path for the same keys (the same counter-based scrambling
words :func:`phy.mapping.qam_kernels._label`, the same complex normals :func:`phy.channel.kernels._cn` of
noise key ``split_key(channel_key, 0)`` and the same per-row demapper :func:`phy.mapping.qam_kernels._demap_row`),
up to float32 rounding (``tests/test_scrambled_chain.py`` compares them).

Example
-------
>>> import torch
>>> from phy.fec.scrambled_chain import scrambled_awgn_logits
>>> llr = scrambled_awgn_logits(4, 256, "16qam", torch.full((4,), 1e-3), scrambling_key=1, noise_key=2)
>>> llr.shape, bool((llr < 0).float().mean() > 0.99)    # descrambled: almost every bit a confident 0
(torch.Size([4, 1024]), True)
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from phy.channel import kernels as ck
from phy.mapping import qam_kernels as qk
from phy.utils.threads import numba_threads

__all__ = ["available", "scrambled_awgn_logits", "chain_args", "ROWS_PER_TASK"]

#: Codewords (rows) per parallel work item.
ROWS_PER_TASK = 16


def available() -> bool:
    """Whether the compiled chain can run (numba importable).

    Examples
    --------
    >>> available()
    True
    """
    return qk.available() and ck.available()


_AFFINE = {}


def _pam_units(bits) -> int:
    """Sionna's (3GPP TS 38.211) Gray PAM level of label bits ``b_0 .. b_{h-1}`` in odd units:
    ``(1 - 2 b_0) (2**(h-1) - (1 - 2 b_1) (2**(h-2) - ... (1 - 2 b_{h-1})))``."""
    h = len(bits)
    t = 1
    for j in range(h - 1, 0, -1):
        t = 2 ** (h - j) - (1 - 2 * bits[j]) * t
    return (1 - 2 * bits[0]) * t


def _gray_affine(modulation: str):
    """``(c_re, c_im)`` with ``re_lev[l] = c_re * units(l)`` (:func:`_pam_units` of the ``h`` bits of ``l``,
    MSB first; likewise ``im``), so the kernel computes a level with a few multiply-adds instead of a
    table gather (a gather stops LLVM from vectorising the loop); ``None`` when the tables are not of
    that form."""
    if modulation not in _AFFINE:
        re, im = qk.pam_tables(modulation)
        nl = re.shape[0]
        h = nl.bit_length() - 1
        units = np.array([_pam_units([(l >> (h - 1 - j)) & 1 for j in range(h)]) for l in range(nl)], dtype=np.float64)
        out = []
        for lev in (re, im):
            c = float(lev[0] / units[0])
            out.append(c if np.allclose(c * units, lev, rtol=0, atol=1e-6) else None)
        _AFFINE[modulation] = None if None in out else (np.float32(out[0]), np.float32(out[1]))
    return _AFFINE[modulation]


def _kernel():
    return _k_chain


if available():
    from numba import njit, prange

    _demap_row, _lse, _cn, _word, _pam4_app = qk._demap_row, qk._lse, ck._cn, ck._word, qk._pam4_app
    gamma, m1, m2 = ck._GAMMA, ck._M1, ck._M2

    _FM = dict(fastmath={"nsz", "contract"}, error_model="numpy", cache=True)

    @njit(inline="always", **_FM)
    def _pam4_metrics(yy, lev, iv, maxlog):  # pragma: no cover - compiled
        """Logits of the two label bits of one 4-PAM dimension at ``yy`` (levels ``lev``, ``iv = 1 / N0``) by
        log-sum-exp (``maxlog``: max). Level index bits (MSB first): bit 0 is set for levels 2, 3; bit 1 for
        levels 1, 3."""
        d0 = -((yy - lev[0]) * (yy - lev[0])) * iv
        d1 = -((yy - lev[1]) * (yy - lev[1])) * iv
        d2 = -((yy - lev[2]) * (yy - lev[2])) * iv
        d3 = -((yy - lev[3]) * (yy - lev[3])) * iv
        return _lse(d2, d3, maxlog) - _lse(d0, d1, maxlog), _lse(d1, d3, maxlog) - _lse(d0, d2, maxlog)

    @njit(inline="always", **_FM)
    def _label_steps(m):  # pragma: no cover - compiled
        """Shift and weight tables of the arithmetic Gray PAM level (see :func:`_chain_row`)."""
        h = m // 2
        # the PAM level of the label bits b_j of a dimension (real: label bit 2j = bit m-1-2j of the word,
        # imaginary: m-2-2j): t = 1, t = 2**(h-j) - (1 - 2 b_j) t for j = h-1 .. 1, level = (1 - 2 b_0) t.
        # Three fixed steps (h <= 4) with `act` 0 past h, so the symbol loop has no inner loop and vectorises
        sr = np.zeros(4, dtype=np.uint64)
        si = np.zeros(4, dtype=np.uint64)
        pw = np.zeros(4, dtype=np.float32)
        act = np.zeros(4, dtype=np.float32)
        for j in range(h):
            sr[j] = m - 1 - 2 * j
            si[j] = m - 2 - 2 * j
            pw[j] = np.float32(2 ** (h - j))
            act[j] = np.float32(1.0) if j > 0 else np.float32(0.0)
        return sr, si, pw, act

    @njit(inline="always", **_FM)
    def _chain_row(o, r, n0, n, m, re_lev, im_lev, c_re, c_im, maxlog, kscr, kn, tables, y, met, l1, l0, inv,
                   word):  # pragma: no cover - compiled
        """Descrambled logits ``o[:n * m]`` of row ``r`` (noise power ``n0``): labels, noise and demapping
        of its ``n`` symbols, with ``y, met, l1, l0, inv, word`` as scratch (per thread). One function for
        :func:`_k_chain` and the fused LDPC trial of :mod:`phy.fec.ldpc_fixed`, so both see the same values."""
        sr, si, pw, act = tables
        one = np.uint64(1)
        f1 = np.float32(1.0)
        f2 = np.float32(2.0)
        s = np.float32(math.sqrt(n0))
        iv = np.float32(1.0) / n0
        wn = _word(kn, np.uint64(r * n))
        wl = _word(kscr, np.uint64(r * n))
        if m == 4:  # 16-QAM: the levels c (1 - 2 b0)(1 + 2 b1) directly (the steps below give the same values)
            for i in range(n):
                z = (wl ^ (wl >> np.uint64(30))) * m1
                z = (z ^ (z >> np.uint64(27))) * m2
                w = z ^ (z >> np.uint64(31))
                wl += gamma
                tr = f1 + f2 * np.float32(np.int32((w >> np.uint64(1)) & one))
                ti = f1 + f2 * np.float32(np.int32(w & one))
                ar = c_re * (f1 - f2 * np.float32(np.int32((w >> np.uint64(3)) & one))) * tr
                ai = c_im * (f1 - f2 * np.float32(np.int32((w >> np.uint64(2)) & one))) * ti
                nr, ni = _cn(wn)
                wn += gamma
                y[0, i] = ar + s * nr
                y[1, i] = ai + s * ni
                word[i] = w
        for i in range(n if m != 4 else 0):
            z = (wl ^ (wl >> np.uint64(30))) * m1      # qam_kernels._label of symbol r*n+i
            z = (z ^ (z >> np.uint64(27))) * m2
            w = z ^ (z >> np.uint64(31))
            wl += gamma
            tr = f1
            ti = f1
            for j in range(3, 0, -1):  # constant trip count: unrolled
                br = f1 - f2 * np.float32(np.int32((w >> sr[j]) & one))
                bi = f1 - f2 * np.float32(np.int32((w >> si[j]) & one))
                tr = tr + act[j] * (pw[j] - br * tr - tr)
                ti = ti + act[j] * (pw[j] - bi * ti - ti)
            ar = c_re * (f1 - f2 * np.float32(np.int32((w >> sr[0]) & one))) * tr
            ai = c_im * (f1 - f2 * np.float32(np.int32((w >> si[0]) & one))) * ti
            nr, ni = _cn(wn)
            wn += gamma
            y[0, i] = ar + s * nr
            y[1, i] = ai + s * ni
            word[i] = w
        if m == 4 and not maxlog:  # 16-QAM, exact APP: two exp and two log per dimension (_pam4_app)
            kr = np.float32(math.exp(-8.0 * c_re * c_re * iv))
            ki = np.float32(math.exp(-8.0 * c_im * c_im * iv))
            for i in range(n):
                b0, b2 = _pam4_app(y[0, i], c_re, iv, kr)
                b1, b3 = _pam4_app(y[1, i], c_im, iv, ki)
                met[0, i] = b0
                met[1, i] = b1
                met[2, i] = b2
                met[3, i] = b3
            for i in range(n):
                w = word[i]
                for t in range(4):
                    v = met[t, i]
                    o[i * 4 + t] = -v if (w >> np.uint64(3 - t)) & one else v
        elif m == 4:  # 16-QAM, max-log: the four logits of a symbol from its 2 x 4 metrics, then interleaved
            for i in range(n):
                met[0, i], met[2, i] = _pam4_metrics(y[0, i], re_lev, iv, maxlog)   # label bits 0 and 2
                met[1, i], met[3, i] = _pam4_metrics(y[1, i], im_lev, iv, maxlog)   # label bits 1 and 3
            for i in range(n):
                w = word[i]
                for t in range(4):
                    v = met[t, i]
                    o[i * 4 + t] = -v if (w >> np.uint64(3 - t)) & one else v
        else:
            for i in range(n):
                inv[i] = iv
            _demap_row(y, inv, word, True, o, m, re_lev, im_lev, maxlog, met, l1, l0)

    @njit(inline="always", **_FM)
    def _chain_scratch(n, m):  # pragma: no cover - compiled
        """Per-thread scratch of :func:`_chain_row` for rows of ``n`` symbols of ``m`` bits."""
        nl = 1 << (m // 2)
        return (np.empty((2, n), dtype=np.float32), np.empty((nl, n), dtype=np.float32), np.empty(n, dtype=np.float32),
                np.empty(n, dtype=np.float32), np.empty(n, dtype=np.float32), np.empty(n, dtype=np.uint64))

    @njit(parallel=True, **_FM)
    def _k_chain(out, no, n, m, re_lev, im_lev, c_re, c_im, maxlog, kscr, kn, block):  # pragma: no cover
        rows = no.shape[0]
        tables = _label_steps(m)
        ntask = (rows + block - 1) // block
        for task in prange(ntask):
            y, met, l1, l0, inv, word = _chain_scratch(n, m)
            for r in range(task * block, min(rows, (task + 1) * block)):
                _chain_row(out[r], r, no[r], n, m, re_lev, im_lev, c_re, c_im, maxlog, kscr, kn, tables, y, met,
                           l1, l0, inv, word)


def scrambled_awgn_logits(rows: int, num_symbols: int, modulation: str, no: torch.Tensor, scrambling_key: int,
                          noise_key: int, method: str = "app", out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Descrambled logits ``[rows, num_symbols * m]`` float32 of the all-zero bits sent over AWGN.

    Row ``r`` is one example: symbols ``r * num_symbols + i`` of the scrambling stream
    (:func:`phy.mapping.qam_kernels.scrambled_symbols` with ``scrambling_key``), plus ``sqrt(N0_r) CN(0, 1)``
    noise of stream ``noise_key`` (as :func:`phy.channel.kernels.awgn` adds with
    ``split_key(key, 0) = noise_key``), demapped (:func:`phy.mapping.qam_kernels.demap`, ``method``) and
    descrambled.

    Parameters
    ----------
    rows, num_symbols : int
        Examples and QAM symbols per example.
    modulation : str
        Square Gray QAM (``"qpsk"``, ``"16qam"``, ...).
    no : Tensor ``[rows]`` (or broadcastable), float
        Noise power ``N0 > 0`` per row.
    scrambling_key, noise_key : int
        64-bit stream keys.
    method : ``"app"`` or ``"maxlog"``
    out : Tensor ``[rows, num_symbols * m]`` float32, optional
        Reused output buffer (no fresh pages); a new tensor when ``None``.

    Examples
    --------
    >>> import torch
    >>> lg = scrambled_awgn_logits(4, 1000, "16qam", torch.full((4,), 1e-3), scrambling_key=1, noise_key=2)
    >>> lg.shape, bool((lg < 0).all())     # descrambled: every bit reads as the 0 sent (logit < 0) at 30 dB
    (torch.Size([4, 4000]), True)
    """
    args = chain_args(rows, num_symbols, modulation, no, scrambling_key, noise_key, method)
    no_r, m = args[0], args[2]
    shape = (rows, num_symbols * m)
    if out is None:
        out = torch.empty(shape, dtype=torch.float32)
    elif out.shape != shape or out.dtype != torch.float32 or not out.is_contiguous() or out.device.type != "cpu":
        raise ValueError(f"out must be a contiguous float32 CPU tensor of shape {shape}, got "
                         f"{out.dtype} {tuple(out.shape)} on {out.device}")
    if rows and num_symbols:
        with numba_threads():
            _kernel()(out.numpy(), *args, ROWS_PER_TASK)
    return out


def chain_args(rows: int, num_symbols: int, modulation: str, no, scrambling_key: int, noise_key: int,
               method: str = "app") -> tuple:
    """Validated arguments of the compiled chain (:func:`scrambled_awgn_logits`, and the fused LDPC trial
    of :meth:`phy.fec.ldpc_fast.LDPC5GFastDecoder.scrambled_awgn_errors`): ``(no, num_symbols, m, re_lev,
    im_lev, c_re, c_im, maxlog, scrambling_key, noise_key)`` with ``no`` a float32 array ``[rows]``.

    Raises ``ValueError`` (naming the argument) for a bad ``method``, ``rows``, ``num_symbols``, key or
    noise power, and ``RuntimeError`` without numba.

    Examples
    --------
    >>> args = chain_args(3, 256, "16qam", 0.1, scrambling_key=1, noise_key=2)
    >>> args[0].shape, args[1], args[2]      # N0 per row, symbols per row, bits per symbol
    ((3,), 256, 4)
    """
    if not available():
        raise RuntimeError("phy.fec.scrambled_chain needs the optional package numba")
    affine = _gray_affine(modulation)
    if affine is None:  # pragma: no cover - every Sionna QAM table is of this form
        raise ValueError(f"{modulation}: the PAM levels are not an affine function of the Gray index")
    if method not in qk.METHODS:
        raise ValueError(f"method must be one of {qk.METHODS}, got {method!r}")
    for name, v in (("rows", rows), ("num_symbols", num_symbols)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{name} must be an int >= 0, got {v!r}")
    kscr, kn = qk._check_key(scrambling_key), qk._check_key(noise_key)
    re, im = qk.pam_tables(modulation)
    m = 2 * int(math.log2(re.shape[0]))
    no_r = torch.as_tensor(no, dtype=torch.float32).reshape(-1)
    try:
        no_r = no_r.expand(rows).contiguous() if no_r.numel() == 1 else no_r.reshape(rows).contiguous()
    except RuntimeError:
        raise ValueError(f"no must have one value per row ({rows}), got {tuple(torch.as_tensor(no).shape)}") from None
    if rows and not bool(((no_r > 0) & torch.isfinite(no_r)).all()):
        raise ValueError("no (noise power) must be finite and > 0")
    return (no_r.numpy(), num_symbols, m, re, im, affine[0], affine[1], method == "maxlog", np.uint64(kscr),
            np.uint64(kn))
