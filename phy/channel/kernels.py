"""Compiled CPU kernels of the channel: noise, fading and equalisation in one pass over memory.

The torch path of :class:`phy.channel.base.Channel` draws the noise into a buffer, scales it and adds
it to ``x``: three passes over memory plus the RNG, about a third of the copy roofline on a
2-core CPU (``benchmarks/bench_channel.py``). These numba kernels read ``x`` once and write ``y``
once, drawing the random numbers in registers; with perfect CSI the Rayleigh channel and the ZF/MMSE
equaliser are fused too, so ``h`` never goes to memory.

Random numbers
--------------
A counter-based generator: complex normal number ``i`` of a stream with key ``k`` is a function of
``(k, i)`` only, so the output does not depend on the thread count or on how the work is split.

* Word: the SplitMix64 output function of ``k + (i + 1) * 0x9E3779B97F4A7C15`` (Steele, Lea, Flood,
  "Fast splittable pseudorandom number generators", OOPSLA 2014); 64 bits per complex sample.
* Box-Muller: radius from the high 40 bits, ``u = (2a + 1) / 2**41`` in ``(0, 1)`` and
  ``r = sqrt(-ln u)`` (so ``|z|^2 ~ Exp(1)``, ``E|z|^2 = 1``); angle from the low 24 bits (2 bits of
  quadrant + 22 bits inside it). ``ln`` uses an exact integer range reduction and an ``atanh``
  series, ``sin``/``cos`` Taylor polynomials on ``[-pi/4, pi/4]``: both accurate to float32
  rounding (checked against a float64 reference in ``tests/test_channel_kernels.py``).
* Lanes: after the 64-bit hash everything is 32-bit integer or float32 arithmetic, written as LLVM
  IR (:func:`_radius_bits`, :func:`_angle`, :func:`_rotate`): numba widens small integers to 64
  bits, which halves the SIMD width. The range reduction takes the 32-bit window of ``u`` from its
  leading one (``ctlz``), keeping full relative precision of ``-ln u`` near ``u = 1`` (small
  ``|h|^2``, deep fades) and near ``0`` (the tail). Consecutive samples' counter words differ by the
  constant ``gamma``, so the loops step them by addition.
* Tails: the largest radius is ``sqrt(41 ln 2) = 5.33``, i.e. 7.5 standard deviations per real
  dimension (a probability of ``2**-41`` is cut), far below any simulated error rate; no sample is
  exactly zero, so a drawn fading coefficient is never ``0``.
* Keys: :func:`draw_key` takes 64 bits from the channel's seeded ``torch.Generator`` per call, so
  a channel seed still fixes every output; noise and fading use two keys derived from that draw.

Layout
------
Complex tensors are passed as interleaved float32 (``torch.view_as_real``, flattened). ``N0`` (or
the noise standard deviation) is one value per *row* of ``row_len`` consecutive symbols: a scalar is
one row of all symbols, the links' ``[..., 1]`` layout is one row per example. Threads: as many as
``torch.get_num_threads()`` (numba's own pool).

Example
-------
>>> import torch
>>> from phy.channel import kernels as ck
>>> x = torch.zeros(2, 4096, dtype=torch.complex64)
>>> y, finite = ck.awgn(x, torch.tensor([[1.0], [0.01]]), key=123)
>>> finite, round(float(y[0].abs().square().mean()), 1), round(float(y[1].abs().square().mean()), 2)
(True, 1.0, 0.01)
"""
from __future__ import annotations

import math
import numbers
from typing import Optional, Tuple

import torch

from phy.utils.threads import numba_threads

__all__ = ["available", "draw_key", "split_key", "noise_rows", "complex_normal", "awgn", "flat_fading",
           "flat_fading_equalized", "BLOCK"]

try:  # numba is optional here: the channels fall back to torch without it
    import numpy as np
    from llvmlite import ir as _ir
    from numba import njit, prange
    from numba.core import types as _types
    from numba.extending import intrinsic

    _HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only where numba is missing
    _HAVE_NUMBA = False

#: Symbols per parallel work item (128 KiB of complex64 input).
BLOCK = 16384
_MASK64 = (1 << 64) - 1


def available() -> bool:
    """Whether the compiled kernels can run (numba importable).

    Examples
    --------
    >>> available()   # numba is a dependency of the package
    True
    """
    return _HAVE_NUMBA


# --------------------------------------------------------------------------------------------
# Keys (pure Python, 64-bit)
# --------------------------------------------------------------------------------------------
def _splitmix(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def draw_key(generator: torch.Generator) -> int:
    """64 random bits from ``generator`` (one small draw; advances its stream).

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> draw_key(g) == draw_key(torch.Generator().manual_seed(0))
    True
    """
    lo, hi = torch.randint(0, 1 << 32, (2,), generator=generator, dtype=torch.int64,
                           device=generator.device).tolist()
    return (hi << 32) | lo


def _check_key(key) -> int:
    if isinstance(key, bool) or not isinstance(key, numbers.Integral) or not 0 <= key <= _MASK64:
        raise ValueError(f"key must be an int in [0, 2**64), got {key!r}")
    return int(key)


def split_key(key: int, index: int) -> int:
    """Key of sub-stream ``index`` of ``key`` (noise ``0``, fading ``1``), well mixed.

    Examples
    --------
    >>> split_key(7, 0) != split_key(7, 1), split_key(7, 0) == split_key(7, 0)
    (True, True)
    """
    return _splitmix((_check_key(key) ^ _splitmix(index)) & _MASK64)


def noise_rows(no: torch.Tensor, shape: torch.Size) -> Optional[Tuple[torch.Tensor, int]]:
    """``N0`` as ``(rows [R] float32, row_len)`` for symbols of ``shape``, or ``None`` when ``no``
    varies along the last (symbol) dimension (the kernels then do not apply).

    Examples
    --------
    >>> rows, row_len = noise_rows(torch.tensor([[0.1], [0.2]]), torch.Size([2, 8]))
    >>> rows.tolist() == [torch.tensor(0.1).item(), torch.tensor(0.2).item()], row_len
    (True, 8)
    >>> noise_rows(torch.full((2, 8), 0.1), torch.Size([2, 8])) is None   # N0 per symbol
    True
    """
    n = shape[-1] if len(shape) else 1
    total = math.prod(shape)
    if no.numel() == 1:
        return no.reshape(1).to(torch.float32), max(total, 1)
    lead = (1,) * (len(shape) - no.dim()) + tuple(no.shape)
    if lead[-1] != 1 or n == 0:
        return None
    rows = no.reshape(lead).expand(*shape[:-1], 1).reshape(-1)
    return rows.to(torch.float32).contiguous(), n


# --------------------------------------------------------------------------------------------
# numba kernels
# --------------------------------------------------------------------------------------------
if _HAVE_NUMBA:
    # Floating-point licence: reassociation (vectorised sums), fast reciprocals and approximate
    # functions, but NOT no-NaN/no-Inf (the kernels detect non-finite inputs) and NOT contraction:
    # with "contract" LLVM fuses multiply-adds differently when it compiles a kernel and when numba
    # loads the same kernel from its cache, so a fresh clone's first run would differ from its
    # second in the last bits (the Rayleigh MMSE path by ~1e-7); without it, ~2% slower here.
    _FM = {"nsz", "arcp", "afn", "reassoc"}
    _JIT = dict(fastmath=_FM, error_model="numpy", cache=True)

    _GAMMA = np.uint64(0x9E3779B97F4A7C15)
    _M1 = np.uint64(0xBF58476D1CE4E5B9)
    _M2 = np.uint64(0x94D049BB133111EB)
    _LN2 = np.float32(math.log(2.0))
    _ANG = np.float32(2.0 ** -22 * math.pi / 2.0)
    _QPI = np.float32(math.pi / 4.0)
    _ZERO = np.float32(0.0)
    _HALF = np.float32(0.5)
    _ONE = np.float32(1.0)
    _TWO = np.float32(2.0)

    @intrinsic
    def _radius_bits(typingctx, z):
        """A 64-bit word ``z`` -> ``(k, d, t)``: ``u = (2 (z >> 24) + 1) / 2**41 = (1 + d) 2**-k`` with
        ``d`` in ``[-0.293, 0.414)`` exact to float32 rounding, and the low 24 bits ``t``. All in 32-bit lanes:
        the top 32 bits of the 41-bit odd ``w`` from its leading one (``ctlz``), an integer fold to
        ``[0.707, 1.414)``; so ``-ln u = k ln2 - ln(1 + d)`` keeps full relative precision at both ends."""
        if z != _types.uint64:
            return None

        def codegen(context, builder, sig, args):
            i32, f32 = _ir.IntType(32), _ir.FloatType()

            def c(v):
                return _ir.Constant(i32, v)

            word = args[0]
            hi = builder.trunc(builder.lshr(word, _ir.Constant(_ir.IntType(64), 32)), i32)
            lo = builder.trunc(word, i32)
            low = builder.or_(builder.and_(lo, c(0xFF000000)), c(0x00800000))  # the 9 low bits of w, on top
            nz = builder.icmp_unsigned("!=", hi, c(0))
            src = builder.select(nz, hi, low)
            lz = builder.ctlz(src, _ir.Constant(_ir.IntType(1), 0))
            tail = builder.lshr(builder.lshr(low, c(1)), builder.sub(c(31), lz))
            window = builder.or_(builder.shl(src, lz), builder.select(nz, tail, c(0)))  # in [2**31, 2**32)
            fold = builder.icmp_unsigned("<", window, c(0xB504F334))  # window / 2**32 < 1 / sqrt(2)
            di = builder.select(fold, builder.xor(window, c(0x80000000)), window)  # 2m - 1 or m - 1 (int)
            scale = builder.select(fold, _ir.Constant(f32, 2.0 ** -31), _ir.Constant(f32, 2.0 ** -32))
            # with lz = 0 the window drops w's 9 low bits: add them back (d is small, and -ln u ~ -d, only
            # there); elsewhere the dropped bits are below 2**-31 of u next to -ln u >= ln 2
            low9 = builder.select(builder.icmp_unsigned("==", lz, c(0)), builder.lshr(low, c(23)), c(0))
            exact = builder.fadd(builder.sitofp(di, f32), builder.fmul(builder.uitofp(low9, f32),
                                                                       _ir.Constant(f32, 2.0 ** -9)))
            d = builder.fmul(exact, scale)
            k = builder.add(builder.add(lz, builder.select(nz, c(0), c(32))), builder.zext(fold, i32))
            kf = builder.uitofp(k, f32)
            t = builder.and_(lo, c(0xFFFFFF))
            return context.make_tuple(builder, sig.return_type, (kf, d, t))

        return _types.Tuple((_types.float32, _types.float32, _types.uint32))(z), codegen

    @njit(inline="always", **_JIT)
    def _word(key, i):  # pragma: no cover - compiled
        """SplitMix64 counter word of sample ``i`` of stream ``key``; consecutive samples differ by
        ``gamma``, so the loops step it by addition (a vector induction, no multiply)."""
        return key + (i + np.uint64(1)) * _GAMMA

    @njit(inline="always", **_JIT)
    def _polar(w):  # pragma: no cover - compiled
        """Sample ``i`` of stream ``key`` in polar form, from its counter word ``w = key + (i + 1) gamma``
        (:func:`_word`): ``(E, t)`` with ``E = |z|^2 ~ Exp(1)`` and the 24-bit phase index ``t`` (phase
        ``2 pi (t + 1/2) / 2**24 - pi/4``, see :func:`_unit`)."""
        z = (w ^ (w >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return _exp1(z ^ (z >> np.uint64(31)))

    @njit(inline="always", **_JIT)
    def _exp1(z):  # pragma: no cover - compiled
        """A random 64-bit word ``z`` -> ``(E, t)``: ``E = -ln u``, ``u = (2 (z >> 24) + 1) / 2**41``
        (so ``E ~ Exp(1)``), and the low 24 bits ``t``."""
        k, d, t = _radius_bits(z)
        s = d / (_TWO + d)  # ln(1 + d) = 2 atanh(s), |s| <= 0.172
        s2 = s * s
        ln_m = _TWO * s * (_ONE + s2 * (np.float32(1 / 3) + s2 * (np.float32(1 / 5) + s2 * (
            np.float32(1 / 7) + s2 * np.float32(1 / 9)))))
        return k * _LN2 - ln_m, t

    @intrinsic
    def _angle(typingctx, t, half):
        """24-bit phase index ``t`` -> ``(phi, q)``: ``phi = 2 pi (t22 + half) / 2**24 - pi/4`` in
        ``[-pi/4, pi/4)`` from the low 22 bits and the quadrant ``q = t >> 22`` (32-bit lanes)."""
        if t != _types.uint32 or half != _types.float32:
            return None

        def codegen(context, builder, sig, args):
            i32, f32 = _ir.IntType(32), _ir.FloatType()
            tt, hh = args
            idx = builder.sitofp(builder.and_(tt, _ir.Constant(i32, 0x3FFFFF)), f32)
            ang = _ir.Constant(f32, float(_ANG))
            off = builder.fsub(builder.fmul(hh, ang), _ir.Constant(f32, float(_QPI)))
            ph = builder.fadd(builder.fmul(idx, ang), off)
            q = builder.lshr(tt, _ir.Constant(i32, 22))
            return context.make_tuple(builder, sig.return_type, (ph, q))

        return _types.Tuple((_types.float32, _types.uint32))(t, half), codegen

    @intrinsic
    def _rotate(typingctx, q, c, s):
        """``(c, s)`` rotated by ``q pi / 2``: ``(c, s) (-s, c) (-c, -s) (s, -c)`` for ``q = 0..3``
        (a swap and two sign flips on the float bits)."""
        if q != _types.uint32 or c != _types.float32 or s != _types.float32:
            return None

        def codegen(context, builder, sig, args):
            i32, f32 = _ir.IntType(32), _ir.FloatType()
            qq, cc, ss = args
            one = _ir.Constant(i32, 1)
            odd = builder.trunc(qq, _ir.IntType(1))
            re = builder.bitcast(builder.select(odd, ss, cc), i32)
            im = builder.bitcast(builder.select(odd, cc, ss), i32)
            flip_re = builder.shl(builder.and_(builder.xor(qq, builder.lshr(qq, one)), one), _ir.Constant(i32, 31))
            flip_im = builder.shl(builder.lshr(qq, one), _ir.Constant(i32, 31))
            re = builder.bitcast(builder.xor(re, flip_re), f32)
            im = builder.bitcast(builder.xor(im, flip_im), f32)
            return context.make_tuple(builder, sig.return_type, (re, im))

        return _types.Tuple((_types.float32, _types.float32))(q, c, s), codegen

    @intrinsic
    def _phase_diff(typingctx, a, b):
        """``(a - b + 2**21) mod 2**24`` of two 24-bit phase indices (32-bit lanes)."""
        if a != _types.uint32 or b != _types.uint32:
            return None

        def codegen(context, builder, sig, args):
            i32 = _ir.IntType(32)
            d = builder.add(builder.sub(args[0], args[1]), _ir.Constant(i32, 1 << 21))
            return builder.and_(d, _ir.Constant(i32, 0xFFFFFF))

        return _types.uint32(a, b), codegen

    @njit(inline="always", **_JIT)
    def _unit(t, half):  # pragma: no cover - compiled
        """``(cos, sin)`` of ``2 pi (t + half) / 2**24 - pi/4`` for a 24-bit ``t``: quadrant ``q`` (2 bits)
        and ``phi`` in ``[-pi/4, pi/4)`` (22 bits), Taylor polynomials, then a rotation by ``q pi/2``."""
        ph, q = _angle(t, half)
        p2 = ph * ph
        sn = ph * (_ONE + p2 * (np.float32(-1 / 6) + p2 * (np.float32(1 / 120) + p2 * (
            np.float32(-1 / 5040) + p2 * np.float32(1 / 362880)))))
        cs = _ONE + p2 * (np.float32(-0.5) + p2 * (np.float32(1 / 24) + p2 * (np.float32(-1 / 720) + p2 * (
            np.float32(1 / 40320) + p2 * np.float32(-1 / 3628800)))))
        return _rotate(q, cs, sn)

    @njit(inline="always", **_JIT)
    def _cn(w):  # pragma: no cover - compiled
        """CN(0, 1) sample of counter word ``w`` (:func:`_word`) -> (re, im) float32."""
        e, t = _polar(w)
        r = math.sqrt(e)
        c, s = _unit(t, _HALF)
        return r * c, r * s

    @njit(inline="always", **_JIT)
    def _quotient(wn, wh):  # pragma: no cover - compiled
        """For ``n = CN(wn)`` and ``g = CN(wh)`` (the samples :func:`_cn` gives): ``(|g|^2, |n|^2,
        cos, sin)`` of the phase of ``n conj(g)``, i.e. ``2 pi (t_n - t_g) / 2**24`` -- exact, with one
        polynomial evaluation instead of two (the pure-Rayleigh equalisers need only this)."""
        en, tn = _polar(wn)
        eg, tg = _polar(wh)
        td = _phase_diff(tn, tg)  # (tn - tg + 2**21) mod 2**24: the + pi/4 cancels _unit's - pi/4
        co, si = _unit(td, _ZERO)
        return eg, en, co, si

    @njit(inline="always", **_JIT)
    def _hn(wh, wn, a, cr, ci):  # pragma: no cover - compiled
        """Fading ``h = a * CN(0, 1) + (cr + j ci)`` and unit noise ``CN(0, 1)`` of one symbol (its
        counter words in the fading and noise streams)."""
        gr, gi = _cn(wh)
        nr, ni = _cn(wn)
        return a * gr + cr, a * gi + ci, nr, ni

    # ---- segments: one row (one N0) of symbols [i0, i1); views keep indices provably in bounds
    @njit(**_JIT)
    def _seg_noise(out, s, key, i0, i1):  # pragma: no cover - compiled
        o = out[2 * i0:2 * i1]
        wn = _word(key, np.uint64(i0))
        for j in range(i1 - i0):
            nr, ni = _cn(wn)
            wn += _GAMMA
            o[2 * j] = s * nr
            o[2 * j + 1] = s * ni

    @njit(**_JIT)
    def _seg_awgn(x, y, s, key, i0, i1):  # pragma: no cover - compiled
        xs = x[2 * i0:2 * i1]
        ys = y[2 * i0:2 * i1]
        wn = _word(key, np.uint64(i0))
        bad = _ZERO
        for j in range(i1 - i0):
            nr, ni = _cn(wn)
            wn += _GAMMA
            xr = xs[2 * j]
            xi = xs[2 * j + 1]
            bad += xr * _ZERO + xi * _ZERO  # NaN iff some input is NaN/Inf
            ys[2 * j] = xr + s * nr
            ys[2 * j + 1] = xi + s * ni
        return bad

    @njit(**_JIT)
    def _seg_flat(x, y, h, s, kh, kn, a, cr, ci, i0, i1):  # pragma: no cover - compiled
        xs = x[2 * i0:2 * i1]
        ys = y[2 * i0:2 * i1]
        hs = h[2 * i0:2 * i1]
        wn = _word(kn, np.uint64(i0))
        wh = _word(kh, np.uint64(i0))
        bad = _ZERO
        for j in range(i1 - i0):
            hr, hi, nr, ni = _hn(wh, wn, a, cr, ci)
            wh += _GAMMA
            wn += _GAMMA
            xr = xs[2 * j]
            xi = xs[2 * j + 1]
            bad += xr * _ZERO + xi * _ZERO
            ys[2 * j] = hr * xr - hi * xi + s * nr
            ys[2 * j + 1] = hr * xi + hi * xr + s * ni
            hs[2 * j] = hr
            hs[2 * j + 1] = hi
        return bad

    @njit(**_JIT)
    def _seg_flat_eq(x, xh, ne, no, kh, kn, a, cr, ci, mmse, p, i0, i1):  # pragma: no cover - compiled
        xs = x[2 * i0:2 * i1]
        xo = xh[2 * i0:2 * i1]
        eo = ne[i0:i1]
        wn = _word(kn, np.uint64(i0))
        wh = _word(kh, np.uint64(i0))
        s = math.sqrt(no)  # n = sqrt(N0) * CN(0, 1)
        bad = _ZERO
        a2 = a * a
        if cr == _ZERO and ci == _ZERO:
            # Rayleigh (no line of sight), h = a g: with g = r_g e^{j t_g}, n = r_n e^{j t_n} the equalisers
            # need only |g|^2, |n|^2 and the phase of n conj(g) (:func:`_quotient`): the same values as
            # equalising (y, h) from :func:`_seg_flat`, up to float rounding, at half the trigonometry
            if mmse:  # x_hat = P g (a^2 |g|^2 x + s a |g| |n| e^{j phi}),  g = 1 / (P a^2 |g|^2 + N0)
                for j in range(i1 - i0):
                    eg, en, co, si = _quotient(wn, wh)
                    wh += _GAMMA
                    wn += _GAMMA
                    xr = xs[2 * j]
                    xi = xs[2 * j + 1]
                    bad += xr * _ZERO + xi * _ZERO
                    h2 = a2 * eg
                    g = p / (p * h2 + no)
                    m = s * a * math.sqrt(eg * en)
                    xo[2 * j] = (h2 * xr + m * co) * g
                    xo[2 * j + 1] = (h2 * xi + m * si) * g
                    eo[j] = no * g
            else:  # ZF: x_hat = x + n / h = x + s sqrt(|n|^2 / (a^2 |g|^2)) e^{j phi}, variance N0 / |h|^2
                for j in range(i1 - i0):
                    eg, en, co, si = _quotient(wn, wh)
                    wh += _GAMMA
                    wn += _GAMMA
                    xr = xs[2 * j]
                    xi = xs[2 * j + 1]
                    bad += xr * _ZERO + xi * _ZERO
                    inv = _ONE / (a2 * eg)
                    m = s * math.sqrt(en * inv)
                    xo[2 * j] = xr + m * co
                    xo[2 * j + 1] = xi + m * si
                    eo[j] = no * inv
        elif mmse:  # x_hat = P conj(h) y / (P |h|^2 + N0), error variance P N0 / (P |h|^2 + N0)
            for j in range(i1 - i0):
                hr, hi, nr, ni = _hn(wh, wn, a, cr, ci)
                wh += _GAMMA
                wn += _GAMMA
                xr = xs[2 * j]
                xi = xs[2 * j + 1]
                bad += xr * _ZERO + xi * _ZERO
                yr = hr * xr - hi * xi + s * nr
                yi = hr * xi + hi * xr + s * ni
                g = p / (p * (hr * hr + hi * hi) + no)
                xo[2 * j] = (hr * yr + hi * yi) * g
                xo[2 * j + 1] = (hr * yi - hi * yr) * g
                eo[j] = no * g
        else:  # ZF: x_hat = y / h = x + n / h, noise variance N0 / |h|^2
            for j in range(i1 - i0):
                hr, hi, nr, ni = _hn(wh, wn, a, cr, ci)
                wh += _GAMMA
                wn += _GAMMA
                xr = xs[2 * j]
                xi = xs[2 * j + 1]
                bad += xr * _ZERO + xi * _ZERO
                inv = _ONE / (hr * hr + hi * hi)
                tr = s * nr
                ti = s * ni
                xo[2 * j] = xr + (tr * hr + ti * hi) * inv
                xo[2 * j + 1] = xi + (ti * hr - tr * hi) * inv
                eo[j] = no * inv
        return bad

    # ---- one driver: parallel over blocks of BLOCK symbols; each block walks the rows (one N0 each)
    # it overlaps and runs the segment of ``mode`` (a branch outside the vectorised loops). One
    # signature for every mode (unused arrays are empty), so one compilation serves all.
    @njit(parallel=True, **_JIT)
    def _k_run(mode, x, out, h, ne, rows, row_len, kh, kn, a, cr, ci, mmse, p, block):  # pragma: no cover
        n = out.size // 2
        nblk = (n + block - 1) // block
        bad = np.zeros(nblk, np.float32)
        for b in prange(nblk):
            i = b * block
            stop = min(i + block, n)
            acc = _ZERO
            while i < stop:
                r = i // row_len
                e = min(stop, (r + 1) * row_len)
                v = rows[r]
                if mode == 0:
                    _seg_noise(out, v, kn, i, e)
                elif mode == 1:
                    acc += _seg_awgn(x, out, v, kn, i, e)
                elif mode == 2:
                    acc += _seg_flat(x, out, h, v, kh, kn, a, cr, ci, i, e)
                else:
                    acc += _seg_flat_eq(x, out, ne, v, kh, kn, a, cr, ci, mmse, p, i, e)
                i = e
            bad[b] = acc
        return bad.sum()


_NOISE, _AWGN, _FLAT, _FLAT_EQ = 0, 1, 2, 3


def _run(mode: int, out: torch.Tensor, rows: torch.Tensor, row_len: int, *, x=None, h=None, ne=None,
         kh: int = 0, kn: int = 0, scale: float = 1.0, los: complex = 0j, mmse: bool = False,
         power: float = 1.0) -> bool:
    """Run the driver in ``mode`` with torch's thread count; ``True`` when every input was finite."""
    empty = np.empty(0, np.float32)
    with numba_threads():
        bad = _k_run(mode, _flat(x) if x is not None else empty, _flat(out), _flat(h) if h is not None else empty,
                     ne.reshape(-1).numpy() if ne is not None else empty, rows.numpy(), row_len, np.uint64(kh),
                     np.uint64(kn), np.float32(scale), np.float32(los.real), np.float32(los.imag), bool(mmse),
                     np.float32(power), BLOCK)
    return math.isfinite(bad)


# --------------------------------------------------------------------------------------------
# torch-facing wrappers
# --------------------------------------------------------------------------------------------
def _require():
    if not _HAVE_NUMBA:
        raise RuntimeError("the compiled channel kernels need the optional package numba (pip install numba); "
                           "use backend='torch'")


def _flat(t: torch.Tensor):
    """Interleaved float32 numpy view of a contiguous complex64 CPU tensor (no copy)."""
    return t.detach().numpy().reshape(-1).view(np.float32)


def _check_x(x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dtype != torch.complex64 or x.device.type != "cpu":
        raise TypeError(f"x must be a complex64 CPU tensor, got {getattr(x, 'dtype', type(x).__name__)} on "
                        f"{getattr(x, 'device', '-')}")
    return x.resolve_conj().contiguous()


def _rows(no, x: torch.Tensor, name: str) -> Tuple[torch.Tensor, int]:
    no_t = torch.as_tensor(no, dtype=torch.float32)
    rows = noise_rows(no_t, x.shape)
    if rows is None:
        raise ValueError(f"{name} of shape {tuple(no_t.shape)} must be a scalar or one value per example "
                         f"([..., 1]) for symbols of shape {tuple(x.shape)}")
    return rows[0].cpu().contiguous(), rows[1]


def complex_normal(shape, key: int, scale=1.0) -> torch.Tensor:
    """``scale * CN(0, 1)`` samples of stream ``key`` (complex64 CPU tensor of ``shape``).

    ``scale`` is a number or one value per row (``[..., 1]``), like ``N0`` for :func:`awgn`.

    Examples
    --------
    >>> z = complex_normal((1000, 100), key=1, scale=0.5)
    >>> z.dtype, round(z.abs().pow(2).mean().item(), 1)   # E|z|^2 = scale**2
    (torch.complex64, 0.2)
    """
    _require()
    key = _check_key(key)
    out = torch.empty(shape, dtype=torch.complex64)
    std, row_len = _rows(scale, out, "scale")
    _run(_NOISE, out, std, row_len, kn=key)
    return out


def awgn(x: torch.Tensor, no, key: int) -> Tuple[torch.Tensor, bool]:
    """``y = x + n``, ``n ~ CN(0, N0)`` in one pass.

    Parameters
    ----------
    x : Tensor ``[..., n]`` complex64 (CPU)
    no : float or Tensor ``[..., 1]`` (one ``N0`` per example) or scalar
    key : int (64-bit stream key)

    Returns
    -------
    y : Tensor ``[..., n]`` complex64
    finite : bool, whether every element of ``x`` was finite

    Examples
    --------
    >>> x = torch.zeros(2, 4000, dtype=torch.complex64)
    >>> y, finite = awgn(x, torch.tensor([[0.1], [1.0]]), key=3)
    >>> y.shape, finite, [round(v, 1) for v in y.abs().pow(2).mean(-1).tolist()]
    (torch.Size([2, 4000]), True, [0.1, 1.0])
    """
    _require()
    x = _check_x(x)
    rows, row_len = _rows(no, x, "no")
    y = torch.empty_like(x)
    finite = _run(_AWGN, y, torch.sqrt(rows), row_len, x=x, kn=split_key(key, 0))  # n = sqrt(N0) CN(0, 1)
    return y, finite


def flat_fading(x: torch.Tensor, no, key: int, scale: float = 1.0, los: complex = 0j
                ) -> Tuple[torch.Tensor, torch.Tensor, bool]:
    """``y = h x + n`` with per-symbol ``h = scale * CN(0, 1) + los`` and ``n ~ CN(0, N0)``.

    Shapes as in :func:`awgn`: ``x [..., n]`` complex64 (CPU), ``no`` a number or ``[..., 1]``; ``y`` and
    ``h`` ``[..., n]`` complex64.

    Returns ``(y, h, finite)``; ``h`` is the same draw as :func:`flat_fading_equalized` makes with the
    same key, and the noise is the same as :func:`awgn`'s with that key.

    Examples
    --------
    >>> x = torch.ones(1, 4, dtype=torch.complex64)
    >>> y, h, finite = flat_fading(x, 0.0, key=3)
    >>> torch.equal(y, h), h.shape                # no noise: y = h x = h
    (True, torch.Size([1, 4]))
    """
    _require()
    x = _check_x(x)
    rows, row_len = _rows(no, x, "no")
    y, h = torch.empty_like(x), torch.empty_like(x)
    finite = _run(_FLAT, y, torch.sqrt(rows), row_len, x=x, h=h, kh=split_key(key, 1), kn=split_key(key, 0),
                  scale=scale, los=los)
    return y, h, finite


def flat_fading_equalized(x: torch.Tensor, no, key: int, method: str = "zf", power: float = 1.0,
                          scale: float = 1.0, los: complex = 0j) -> Tuple[torch.Tensor, torch.Tensor, bool]:
    """:func:`flat_fading` followed by ZF or MMSE equalisation with perfect CSI, in one pass.

    Returns ``(x_hat, no_eff, finite)`` with ``no_eff`` ``[..., n]`` float32: ``N0 / |h|^2`` (ZF) or
    ``P N0 / (P |h|^2 + N0)`` (MMSE), as :func:`phy.mimo.equalization.equalize` computes from ``(y, h)``.

    Examples
    --------
    >>> x = torch.ones(1, 4, dtype=torch.complex64)
    >>> x_hat, no_eff, finite = flat_fading_equalized(x, 0.0, key=3)
    >>> torch.allclose(x_hat, x), no_eff.shape     # ZF undoes h exactly without noise
    (True, torch.Size([1, 4]))
    """
    _require()
    if method not in ("zf", "mmse"):
        raise ValueError(f"method must be 'zf' or 'mmse', got {method!r}")
    x = _check_x(x)
    rows, row_len = _rows(no, x, "no")
    x_hat = torch.empty_like(x)
    no_eff = torch.empty(x.shape, dtype=torch.float32)
    finite = _run(_FLAT_EQ, x_hat, rows, row_len, x=x, ne=no_eff, kh=split_key(key, 1), kn=split_key(key, 0),
                  scale=scale, los=los, mmse=method == "mmse", power=power)
    return x_hat, no_eff, finite
