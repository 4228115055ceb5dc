"""Fixed-point (int8 / int16) layered offset-min-sum kernel for :class:`phy.ldpc_fast.LDPC5GFastDecoder`.

Inter-frame SIMD in the AFF3CT style: 64 codewords are decoded side by side, one per lane of a
``<64 x i8>`` (or ``<64 x i16>``) vector (:mod:`phy.simd_lanes`; on AVX-512BW one ``zmm``
register for int8, two for int16). Arrays are laid out ``[node, lane]``, so every edge update is a
handful of whole-vector instructions with saturating arithmetic:

* **input**: the channel logits are clipped to ``+-llr_max``, scaled by ``qscale`` quanta per LLR
  unit, rounded to the nearest integer and saturated to ``+-qclip`` (sign flipped to the internal
  ``log p(0)/p(1)``); punctured bits are 0, filler (known-zero) bits ``+qmax``;
* **messages**: posteriors and variable-to-check messages saturate symmetrically to
  ``[-qmax, qmax]`` (``qmax`` = 127 for int8, 32767 for int16), so ``abs`` and negation never
  overflow;
* **compressed check messages**: per check node only ``min1``, ``min2`` (after the offset), the
  index of ``min1`` and one sign bit per edge (a ``uint64`` of 64 lanes) are stored; the old
  check-to-variable message of edge ``j`` is rebuilt as ``+-(j == idx ? min2 : min1)``. During
  a row update the row state (``min1``, ``min2``, ``idx``, sign parity) lives in registers;
* **check rule**: offset min-sum, magnitude ``max(min - offset_q, 0)`` with
  ``offset_q = round(offset * qscale)`` quanta;
* **early termination per codeword**: after every iteration the syndrome of all 64 lanes is
  computed with mask operations (stopping as soon as every lane has an unsatisfied check); a lane
  whose codeword has a zero syndrome (or has run ``num_iter`` iterations) writes its decisions
  and takes the stream's next codeword, so the lanes stay full.

The kernel returns the posteriors divided by ``qscale`` (float32), or directly the hard decisions
(``<= 0`` -> bit 1, one byte each) when only those are wanted; the output layout is that of the
float kernel. Threads: one stream of codewords
per thread (``prange``), each with its own lanes and messages (about 0.25 MB for int8 at the
(512, 1024) code: L2-resident).

Only the compiled (numba) path exists; :class:`~phy.ldpc_fast.LDPC5GFastDecoder` selects it with
``precision="int8"`` or ``"int16"``.

Examples
--------
>>> import torch
>>> from sionna.phy.fec.ldpc import LDPC5GEncoder
>>> from phy.ldpc_fast import LDPC5GFastDecoder
>>> enc = LDPC5GEncoder(k=100, n=200)
>>> dec = LDPC5GFastDecoder(enc, num_iter=10, precision="int8")
>>> u = torch.randint(0, 2, (4, 100)).float()
>>> bool(torch.equal(dec(10.0 * (2.0 * enc(u) - 1.0)), u))
True
"""
from __future__ import annotations

from typing import Dict

import numpy as np

from . import simd_lanes as sl

__all__ = ["PRECISIONS", "FIXED_DEFAULTS", "fixed_kernel", "qmax"]

#: Decoder arithmetic: float32 (the float kernel of :mod:`phy.ldpc_fast`) or fixed point.
PRECISIONS = ("float32", "int16", "int8")

#: Default quantisation per precision: ``qscale`` quanta per LLR unit, the channel saturation ``qclip``
#: and the check-message saturation ``qmsg`` (quanta). int16: 64 quanta per unit, channel to +-20 LLR,
#: messages to +-128 LLR. int8: 4 quanta per unit (the default OMS offset 0.4 becomes 2 quanta = 0.5),
#: channel to +-15.75 LLR, messages to +-10 LLR, posteriors to +-31.75 LLR. ``qmsg`` stays well below
#: the posterior range ``qmax`` (see :class:`~phy.ldpc_fast.LDPC5GFastDecoder`); the int8 BLER at 1e-3
#: is within 0.05 dB of float32 (``benchmarks/bench_ber_curve.py --bler-loss``).
FIXED_DEFAULTS: Dict[str, Dict[str, float]] = {
    "int16": {"qscale": 64.0, "qclip": 1280, "qmsg": 8191},
    "int8": {"qscale": 4.0, "qclip": 63, "qmsg": 40},
}


def qmax(precision: str) -> int:
    """Largest message magnitude of ``precision`` (symmetric saturation).

    Examples
    --------
    >>> qmax("int8"), qmax("int16")
    (127, 32767)
    """
    return {"int8": 127, "int16": 32767}[precision]


def fixed_kernel():
    """The compiled fixed-point kernel (see the module docstring); compiled on first use, cached on disk.

    Users reach it through :class:`phy.ldpc_fast.LDPC5GFastDecoder` (``precision="int8"``/``"int16"``), as in:

    Examples
    --------
    >>> import torch
    >>> from sionna.phy.fec.ldpc import LDPC5GEncoder
    >>> from phy.ldpc_fast import LDPC5GFastDecoder
    >>> enc = LDPC5GEncoder(k=120, n=240)
    >>> dec = LDPC5GFastDecoder(enc, num_iter=10, precision="int16")
    >>> u = torch.randint(0, 2, (3, 120)).float()
    >>> llr = 4.0 * (2.0 * enc(u) - 1.0)            # noiseless logits (log p(1)/p(0)) of the codewords
    >>> dec(llr).shape, bool(torch.equal(dec(llr), u))
    (torch.Size([3, 120]), True)
    >>> callable(fixed_kernel())
    True
    """
    if not sl.available():
        raise RuntimeError("the fixed-point LDPC decoder needs the optional package numba")
    return _kernel


if sl.available():
    from numba import njit, prange

    @njit(cache=True, nogil=True, inline="always")
    def _quantise(qrow, llr, f, lmax, qscale, qclip, qm):  # pragma: no cover - compiled
        """``qrow[:n]`` <- quantised internal LLRs of codeword ``f``; ``qrow[n] = 0`` (what a punctured
        bit reads), ``qrow[n + 1] = qm`` (a filler bit)."""
        n = llr.shape[1]
        for j in range(n):   # contiguous: vectorises
            x = -min(max(np.float32(llr[f, j]), -lmax), lmax) * qscale
            q = np.floor(x + np.float32(0.5))
            qrow[j] = np.int32(min(max(q, np.float32(-qclip)), np.float32(qclip)))
        qrow[n] = 0
        qrow[n + 1] = qm

    @njit(cache=True, nogil=True)
    def _stream(llr, f0, f1, vmap, lmax, qscale, qclip, qm, rmax, offq, var_idx, layer_off, layer_deg, z,
                max_deg, num_iter, early_stop, hard, out, iters, proto):  # pragma: no cover - compiled
        """Decode codewords ``[f0, f1)`` through one set of 64 lanes (one thread) into ``out``: posteriors
        (float32 ``out``) or, with ``hard``, 0/1 decisions (int8 ``out``)."""
        nv = vmap.shape[0]
        nout = out.shape[1]
        ne = var_idx.shape[0]
        nl = layer_deg.shape[0]
        nrows = nl * z
        width = sl.LANES
        lv = sl.aligned_empty(nv, proto)        # posteriors [node, lane]
        cm1 = sl.aligned_empty(nrows, proto)    # per check node: min1 (after the offset)
        cm2 = sl.aligned_empty(nrows, proto)    # min2
        cix = sl.aligned_empty(nrows, proto)    # index (in the row) of min1
        tm = sl.aligned_empty(max_deg, proto)   # variable-to-check messages of the row
        csg = np.zeros(ne, dtype=np.uint64)     # sign bit of each check-to-variable message
        n = llr.shape[1]
        qrows = np.empty((width, n + 2), dtype=np.int32)   # quantised codewords waiting for their lanes
        dlane = np.empty(width, dtype=np.int64)
        dframe = np.empty(width, dtype=np.int64)
        cnt = np.zeros(width, dtype=np.int64)   # iterations of each lane's codeword
        frame = np.full(width, -1, dtype=np.int64)  # codeword in each lane (-1: idle)
        src = np.empty(nv, dtype=np.int64)                  # where variable v reads its channel value
        for v in range(nv):
            j = vmap[v]
            src[v] = j if j >= 0 else (n if j == -1 else n + 1)
        inv_scale = np.float32(1.0) / qscale
        fresh = np.uint64(0)                    # lanes in their codeword's first iteration (old messages 0)
        for r in range(nrows):
            for w in range(width):
                cix[r, w] = 0
                cm1[r, w] = 0
                cm2[r, w] = 0
        nxt = f0
        live = 0
        for w in range(width):
            fresh |= np.uint64(1) << np.uint64(w)
            if nxt < f1:
                _quantise(qrows[w], llr, nxt, lmax, qscale, qclip, qm)
                frame[w] = nxt
                nxt += 1
                live += 1
            else:  # an idle lane holds a confident all-zero codeword
                qrows[w, :] = qm
        for v in range(nv):
            j = src[v]
            for w in range(width):
                lv[v, w] = qrows[w, j]
        proto_v = sl.vload(lv, 0)
        vqm = sl.vsplat(proto_v, qm)
        vnqm = sl.vsplat(proto_v, -qm)
        voff = sl.vsplat(proto_v, offq)
        vzero = sl.vsplat(proto_v, 0)
        vrm = sl.vsplat(proto_v, rmax)
        while live > 0:
            for lay in range(nl):
                d = layer_deg[lay]
                e0 = layer_off[lay]
                for i in range(z):
                    row = lay * z + i
                    om1 = sl.vload(cm1, row)
                    om2 = sl.vload(cm2, row)
                    oix = sl.vload(cix, row)
                    m1 = vqm
                    m2 = vqm
                    ix = vzero
                    par = sl.mnone()
                    new = sl.bitsm(fresh)
                    for j in range(d):
                        e = e0 + j * z + i
                        vj = sl.vsplat(proto_v, j)
                        old = sl.vsel(sl.veq(oix, vj), om2, om1)
                        old = sl.vsel(sl.bitsm(csg[e]), sl.vneg(old), old)
                        old = sl.vsel(new, vzero, old)
                        t = sl.vmax(sl.vsubs(sl.vload(lv, var_idx[e]), old), vnqm)
                        sl.vstore(tm, j, t)
                        a = sl.vmax(t, sl.vneg(t))
                        lt = sl.vlt(a, m1)
                        m2 = sl.vsel(lt, m1, sl.vmin(m2, a))
                        ix = sl.vsel(lt, vj, ix)
                        m1 = sl.vsel(lt, a, m1)
                        par = sl.mxor(par, sl.vltz(t))
                    m1 = sl.vmin(sl.vmax(sl.vsubs(m1, voff), vzero), vrm)
                    m2 = sl.vmin(sl.vmax(sl.vsubs(m2, voff), vzero), vrm)
                    sl.vstore(cm1, row, m1)
                    sl.vstore(cm2, row, m2)
                    sl.vstore(cix, row, ix)
                    for j in range(d):
                        e = e0 + j * z + i
                        t = sl.vload(tm, j)
                        neg = sl.mxor(par, sl.vltz(t))   # sign of the new message
                        csg[e] = sl.mbits(neg)
                        mag = sl.vsel(sl.veq(ix, sl.vsplat(proto_v, j)), m2, m1)
                        r = sl.vsel(neg, sl.vneg(mag), mag)
                        sl.vstore(lv, var_idx[e], sl.vmax(sl.vadds(t, r), vnqm))
            for w in range(width):
                cnt[w] += 1
            fresh = np.uint64(0)
            # lanes with an unsatisfied check (idle lanes count as unsatisfied)
            badbits = np.uint64(0)
            for w in range(width):
                if frame[w] < 0:
                    badbits |= np.uint64(1) << np.uint64(w)
            if early_stop:
                bad = sl.bitsm(badbits)
                full = np.uint64(0xFFFFFFFFFFFFFFFF)
                for lay in range(nl):
                    d = layer_deg[lay]
                    e0 = layer_off[lay]
                    for i in range(z):
                        p = sl.mnone()
                        for j in range(d):
                            p = sl.mxor(p, sl.vle0(sl.vload(lv, var_idx[e0 + j * z + i])))
                        bad = sl.mor(bad, p)
                    if sl.mbits(bad) == full:
                        break
                badbits = sl.mbits(bad)
            # finished lanes: written out and refilled together, row by row (each row of lv is one cache
            # line: one pass over the rows serves all of them instead of one strided pass per lane)
            nd = 0
            for w in range(width):
                f = frame[w]
                ok = ((badbits >> np.uint64(w)) & np.uint64(1)) == 0
                if f >= 0 and (cnt[w] >= num_iter or (early_stop and ok)):
                    dlane[nd] = w
                    dframe[nd] = f
                    iters[f] = cnt[w]
                    cnt[w] = 0
                    fresh |= np.uint64(1) << np.uint64(w)
                    if nxt < f1:
                        _quantise(qrows[nd], llr, nxt, lmax, qscale, qclip, qm)
                        frame[w] = nxt
                        nxt += 1
                    else:  # no codeword left: the lane idles on a confident all-zero word
                        qrows[nd, :] = qm
                        frame[w] = -1
                        live -= 1
                    nd += 1
            if nd:
                if hard:  # bit 1 where the posterior is <= 0 (Sionna's rule), as 0/1 bytes
                    for v in range(nout):
                        for q in range(nd):
                            out[dframe[q], v] = 1 if lv[v, dlane[q]] <= 0 else 0
                else:
                    for v in range(nout):
                        for q in range(nd):
                            out[dframe[q], v] = np.float32(lv[v, dlane[q]]) * inv_scale
                for v in range(nv):
                    j = src[v]
                    for q in range(nd):
                        lv[v, dlane[q]] = qrows[q, j]

    @njit(parallel=True, cache=True, nogil=True)
    def _kernel(llr, vmap, lmax, qscale, qclip, qm, rmax, offq, var_idx, layer_off, layer_deg, z, max_deg,
                num_iter, nstreams, early_stop, hard, out, iters, proto):  # pragma: no cover - compiled
        # one stream of codewords per thread; the work is in a separate function so that numba's
        # parfor pass has nothing to hoist out of the loop (each stream owns its buffers)
        bsz = llr.shape[0]
        for stream in prange(nstreams):
            _stream(llr, stream * bsz // nstreams, (stream + 1) * bsz // nstreams, vmap, lmax, qscale, qclip, qm,
                    rmax, offq, var_idx, layer_off, layer_deg, z, max_deg, num_iter, early_stop, hard, out, iters,
                    proto)

