"""Fixed-point (int8 / int16) layered offset-min-sum kernel for :class:`phy.fec.ldpc_fast.LDPC5GFastDecoder`.

Inter-frame SIMD in the AFF3CT style: 64 codewords are decoded side by side, one per lane of a
``<64 x i8>`` (or ``<64 x i16>``) vector (:mod:`phy.fec.simd_lanes`; on AVX-512BW one ``zmm``
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
  and takes the stream's next codeword, so the lanes stay full;
* **lane refill**: each new codeword is quantised into a contiguous row and stored block-major (8
  positions of 8 lanes per 8- or 16-byte store); :func:`phy.fec.simd_lanes.transpose_blocks` turns the
  blocks into the ``[position, lane]`` layout, and one pass over the variables selects the refilled
  lanes' values (a refilled lane's check messages are cleared, so its old messages read 0).

The kernel returns the posteriors divided by ``qscale`` (float32), the hard decisions (``<= 0`` ->
bit 1, one byte each) when only those are wanted (the output layout is that of the float kernel), or,
for the scrambled all-zero trial, only the counts of decided 1s among the information bits: then the
codewords are not read from memory but computed in the stream by the chain's row function
(:func:`phy.fec.scrambled_chain._chain_row`), see
:meth:`~phy.fec.ldpc_fast.LDPC5GFastDecoder.scrambled_awgn_errors`. Threads: one stream of codewords
per thread (``prange``), each with its own lanes and messages (about 0.25 MB for int8 at the
(512, 1024) code: L2-resident).

Only the compiled (numba) path exists; :class:`~phy.fec.ldpc_fast.LDPC5GFastDecoder` selects it with
``precision="int8"`` or ``"int16"``.

Examples
--------
>>> import torch
>>> from sionna.phy.fec.ldpc import LDPC5GEncoder
>>> from phy.fec.ldpc_fast import LDPC5GFastDecoder
>>> enc = LDPC5GEncoder(k=100, n=200)
>>> dec = LDPC5GFastDecoder(enc, num_iter=10, precision="int8")
>>> u = torch.randint(0, 2, (4, 100)).float()
>>> bool(torch.equal(dec(10.0 * (2.0 * enc(u) - 1.0)), u))
True
"""
from __future__ import annotations

from typing import Dict

import numpy as np

from phy.fec import simd_lanes as sl

__all__ = ["PRECISIONS", "FIXED_DEFAULTS", "fixed_kernel", "no_chain", "qmax"]

#: Decoder arithmetic: float32 (the float kernel of :mod:`phy.fec.ldpc_fast`) or fixed point.
PRECISIONS = ("float32", "int16", "int8")

#: Default quantisation per precision: ``qscale`` quanta per LLR unit, the channel saturation ``qclip``
#: and the check-message saturation ``qmsg`` (quanta). int16: 64 quanta per unit, channel to +-20 LLR,
#: messages to +-128 LLR. int8: 2 quanta per unit (the default OMS offset 0.4 becomes 1 quantum = 0.5),
#: channel to +-31.5 LLR, messages to +-20 LLR, posteriors to +-63.5 LLR. ``qmsg`` stays well below
#: the posterior range ``qmax`` (see :class:`~phy.fec.ldpc_fast.LDPC5GFastDecoder`). Measured on the (512, 1024)
#: code with 16-QAM (the documentation's performance page): the int8 BLER is at or below float32's from 1e-3 down to
#: 3e-6; the earlier int8 default (4 quanta per unit, messages to +-10 LLR) was 0.05 dB better at 1e-3
#: but about 0.2 dB worse at 1e-5 (an error floor from the saturated messages).
FIXED_DEFAULTS: Dict[str, Dict[str, float]] = {
    "int16": {"qscale": 64.0, "qclip": 1280, "qmsg": 8191},
    "int8": {"qscale": 2.0, "qclip": 63, "qmsg": 40},
}


def qmax(precision: str) -> int:
    """Largest message magnitude of ``precision`` (symmetric saturation).

    Examples
    --------
    >>> qmax("int8"), qmax("int16")
    (127, 32767)
    """
    return {"int8": 127, "int16": 32767}[precision]


def no_chain() -> tuple:
    """The kernel's ``chain`` argument when it decodes given logits: the chain's argument types
    (:func:`phy.fec.scrambled_chain.chain_args`) with no rows.

    Examples
    --------
    >>> no_chain()[0].shape
    (0,)
    """
    z = np.zeros(0, np.float32)
    return (z, 0, 2, z, z, np.float32(0), np.float32(0), False, np.uint64(0), np.uint64(0))


def fixed_kernel():
    """The compiled fixed-point kernel (see the module docstring); compiled on first use, cached on disk.

    Users reach it through :class:`phy.fec.ldpc_fast.LDPC5GFastDecoder` (``precision="int8"``/``"int16"``), as in:

    Examples
    --------
    >>> import torch
    >>> from sionna.phy.fec.ldpc import LDPC5GEncoder
    >>> from phy.fec.ldpc_fast import LDPC5GFastDecoder
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


#: Output modes of the kernel: float32 posteriors, 0/1 hard-decision bytes, or only error counts.
_SOFT, _HARD, _COUNTS = 0, 1, 2

if sl.available():
    from numba import njit, prange

    from phy.fec.scrambled_chain import _chain_row, _chain_scratch, _label_steps

    #: the chain's flags (its row function is inlined into the stream; the decoder's integer code does
    #: not depend on them)
    _FM = dict(fastmath={"nsz", "contract"}, error_model="numpy", cache=True, nogil=True)

    @njit(**_FM)
    def _chain_one(row, r, chain, tables, y, met, l1, l0, inv, word):  # pragma: no cover - compiled
        """Row ``r`` of the chain into ``row``: a function of its own (compiled and optimised apart from
        the stream, like :func:`phy.fec.scrambled_chain._k_chain`'s row), so both give bit-identical logits."""
        no, nsym, m, re_lev, im_lev, c_re, c_im, maxlog, kscr, kn = chain
        _chain_row(row, r, no[r], nsym, m, re_lev, im_lev, c_re, c_im, maxlog, kscr, kn, tables, y, met, l1, l0,
                   inv, word)

    @njit(cache=True, nogil=True)
    def _quantise(qrow, row, lmax, qscale, qclip):  # pragma: no cover - compiled
        """``qrow[:n]`` <- the quantised internal LLRs (sign flipped) of the ``n`` logits ``row``."""
        for j in range(row.shape[0]):   # contiguous: vectorises
            x = -min(max(np.float32(row[j]), -lmax), lmax) * qscale
            q = np.floor(x + np.float32(0.5))
            qrow[j] = np.int32(min(max(q, np.float32(-qclip)), np.float32(qclip)))

    @njit(cache=True, nogil=True)
    def _place(stage, w, qrow):  # pragma: no cover - compiled
        """Lane ``w``'s values ``qrow`` (``8 * blocks`` of them) into ``stage`` block-major: positions
        ``8c .. 8c + 7`` into row ``8c + w % 8``, lanes ``8 (w // 8) ..`` (one 8- or 16-byte store per
        block); :func:`phy.fec.simd_lanes.transpose_blocks` then makes them column ``w`` of ``[position, lane]``."""
        isz = qrow.itemsize
        s64 = stage.view(np.uint64)
        q64 = qrow.view(np.uint64)
        r = w % 8
        g = isz * (w // 8)
        for c in range(qrow.shape[0] // 8):
            for u in range(isz):
                s64[8 * c + r, g + u] = q64[isz * c + u]

    @njit(inline="always", **_FM)
    def _refill(dlane, nd, nxt, f1, live, fresh, frame, llr, chain, from_chain, row, tables, y, met, l1, l0, inv,
                word, qrow, qidle, stage, npad, lmax, qscale, qclip, lv, src, cm1, cm2, vzero):  # pragma: no cover
        """Refill the finished lanes ``dlane[:nd]`` with the stream's next codewords (from ``chain`` or ``llr``) or,
        when none is left, idle all-zero words; load them into ``lv`` and clear their check messages.
        Returns ``(nxt, live, fresh)``."""
        for q in range(nd):
            w = dlane[q]
            fresh |= np.uint64(1) << np.uint64(w)
            if nxt < f1:
                if from_chain:
                    _chain_one(row, nxt, chain, tables, y, met, l1, l0, inv, word)
                    _quantise(qrow, row, lmax, qscale, qclip)
                else:
                    _quantise(qrow, llr[nxt], lmax, qscale, qclip)
                _place(stage, w, qrow)
                frame[w] = nxt
                nxt += 1
                live += 1
            else:  # no codeword left: the lane idles on a confident all-zero word
                _place(stage, w, qidle)
                frame[w] = -1
        # block-major -> [position, lane]; then one pass over the rows (each row of lv is one cache
        # line) serves every refilled lane
        sl.transpose_blocks(stage, npad // 8)
        rm = sl.bitsm(fresh)
        for v in range(src.shape[0]):
            sl.vstore(lv, v, sl.vsel(rm, sl.vload(stage, src[v]), sl.vload(lv, v)))
        for r in range(cm1.shape[0]):   # no old check messages in the refilled lanes
            sl.vstore(cm1, r, sl.vsel(rm, vzero, sl.vload(cm1, r)))
            sl.vstore(cm2, r, sl.vsel(rm, vzero, sl.vload(cm2, r)))
        return nxt, live, fresh

    @njit(inline="always", **_FM)
    def _iterate(lv, cm1, cm2, cix, tm, csg, var_idx, layer_off, layer_deg, z, proto_v, vqm, vnqm, voff, vzero,
                 vrm):  # pragma: no cover - compiled
        """One layered offset-min-sum iteration of every lane: per check row, the variable-to-check messages,
        the row's min1 / min2 / index of min1 / sign parity, then the new check messages into ``lv``."""
        for lay in range(layer_deg.shape[0]):
            d = layer_deg[lay]
            e0 = layer_off[lay]
            for i in range(z):
                r = lay * z + i
                om1 = sl.vload(cm1, r)
                om2 = sl.vload(cm2, r)
                oix = sl.vload(cix, r)
                m1 = vqm
                m2 = vqm
                ix = vzero
                par = vzero          # its sign bit: the parity of the signs of the row's messages
                for j in range(d):   # (a refilled lane's min1 = min2 = 0: its old messages are 0)
                    e = e0 + j * z + i
                    vj = sl.vsplat(proto_v, j)
                    old = sl.vsel(sl.veq(oix, vj), om2, om1)
                    old = sl.vsel(sl.bitsm(csg[e]), sl.vneg(old), old)
                    t = sl.vmax(sl.vsubs(sl.vload(lv, var_idx[e]), old), vnqm)
                    sl.vstore(tm, j, t)
                    a = sl.vabs(t)
                    ix = sl.vsel(sl.vlt(a, m1), vj, ix)
                    m2 = sl.vmin(m2, sl.vmax(m1, a))   # (mask-free: the second smallest of m1, m2, a)
                    m1 = sl.vmin(m1, a)
                    par = sl.vxor(par, t)
                m1 = sl.vmin(sl.vmax(sl.vsubs(m1, voff), vzero), vrm)
                m2 = sl.vmin(sl.vmax(sl.vsubs(m2, voff), vzero), vrm)
                sl.vstore(cm1, r, m1)
                sl.vstore(cm2, r, m2)
                sl.vstore(cix, r, ix)
                for j in range(d):
                    e = e0 + j * z + i
                    t = sl.vload(tm, j)
                    neg = sl.vltz(sl.vxor(par, t))   # sign of the new message
                    csg[e] = sl.mbits(neg)
                    mag = sl.vsel(sl.veq(ix, sl.vsplat(proto_v, j)), m2, m1)
                    rr = sl.vsel(neg, sl.vneg(mag), mag)
                    sl.vstore(lv, var_idx[e], sl.vmax(sl.vadds(t, rr), vnqm))

    @njit(inline="always", **_FM)
    def _unsatisfied(lv, frame, var_idx, layer_off, layer_deg, z, early_stop):  # pragma: no cover - compiled
        """Lanes with an unsatisfied check, one bit per lane (idle lanes count as unsatisfied; without
        ``early_stop`` only they are flagged). The scan ends once every lane has one."""
        full = np.uint64(0xFFFFFFFFFFFFFFFF)
        badbits = np.uint64(0)
        for w in range(sl.LANES):
            if frame[w] < 0:
                badbits |= np.uint64(1) << np.uint64(w)
        if early_stop:
            bad = sl.bitsm(badbits)
            for lay in range(layer_deg.shape[0]):
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
        return badbits

    @njit(inline="always", **_FM)
    def _retire(frame, cnt, badbits, num_iter, early_stop, dlane, dframe, iters, f0, live):  # pragma: no cover
        """Collect the lanes whose codeword is done (``num_iter`` iterations, or a zero syndrome with
        ``early_stop``) into ``dlane``/``dframe`` and record its iterations; returns ``(nd, live)``."""
        nd = 0
        for w in range(sl.LANES):
            f = frame[w]
            ok = ((badbits >> np.uint64(w)) & np.uint64(1)) == 0
            if f >= 0 and (cnt[w] >= num_iter or (early_stop and ok)):
                dlane[nd] = w
                dframe[nd] = f
                iters[f - f0] = cnt[w]
                cnt[w] = 0
                live -= 1
                nd += 1
        return nd, live

    @njit(inline="always", **_FM)
    def _write_out(mode, lv, nout, nd, dlane, dframe, f0, iters, ecnt, zero16, one16, counts, out,
                   inv_scale):  # pragma: no cover - compiled
        """The finished lanes' results (bit 1 where the posterior is <= 0: Sionna's rule): error counts,
        0/1 decisions or float32 posteriors of the first ``nout`` variables."""
        if mode == _COUNTS:  # decided 1s of the first nout variables, all lanes at once
            acc = zero16
            for v in range(nout):
                acc = sl.vadds(acc, sl.vsel(sl.vle0(sl.vload(lv, v)), one16, zero16))
            sl.vstore(ecnt, 0, acc)
            for q in range(nd):
                e = np.int64(ecnt[0, dlane[q]])
                counts[0] += e
                counts[1] += 1 if e > 0 else 0
                counts[2] += iters[dframe[q] - f0]
        elif mode == _HARD:
            for v in range(nout):
                for q in range(nd):
                    out[dframe[q], v] = 1 if lv[v, dlane[q]] <= 0 else 0
        else:
            for v in range(nout):
                for q in range(nd):
                    out[dframe[q], v] = np.float32(lv[v, dlane[q]]) * inv_scale

    @njit(**_FM)
    def _stream(llr, chain, f0, f1, vmap, lmax, qscale, qclip, qm, rmax, offq, var_idx, layer_off, layer_deg, z,
                max_deg, num_iter, early_stop, mode, out, nout, iters, counts, proto):  # pragma: no cover - compiled
        """Decode codewords ``[f0, f1)`` through one set of 64 lanes (one thread).

        The codewords are the rows of ``llr`` or, when ``chain`` holds keys (``chain[0]`` has one noise
        power per codeword), rows of :func:`phy.fec.scrambled_chain._chain_row`. ``mode``: float32 posteriors
        or 0/1 decisions of the first ``nout`` variables into ``out``, or (``_COUNTS``) only the decided 1s
        among them: ``counts += (bit errors, block errors, iterations)``."""
        no, nsym, m = chain[0], chain[1], chain[2]   # the rest goes to _chain_one as it is
        from_chain = no.shape[0] > 0
        nv = vmap.shape[0]
        ne = var_idx.shape[0]
        nl = layer_deg.shape[0]
        nrows = nl * z
        width = sl.LANES
        n = nsym * m if from_chain else llr.shape[1]
        npad = -(-n // 8) * 8                   # positions, padded to whole 8 x 8 blocks
        lv = sl.aligned_empty(nv, proto)        # posteriors [node, lane]
        stage = sl.aligned_empty(npad + 2, proto)  # the next codeword of each lane, by transmitted position
        qrow = np.zeros(npad, dtype=proto.dtype)   # one quantised codeword (zero padding)
        qidle = np.full(npad, qm, dtype=proto.dtype)  # an idle lane's confident all-zero word
        cm1 = sl.aligned_empty(nrows, proto)    # per check node: min1 (after the offset)
        cm2 = sl.aligned_empty(nrows, proto)    # min2
        cix = sl.aligned_empty(nrows, proto)    # index (in the row) of min1
        tm = sl.aligned_empty(max_deg, proto)   # variable-to-check messages of the row
        ecnt = sl.aligned_empty(1, np.zeros(1, np.int16))   # decided 1s per lane (_COUNTS)
        csg = np.zeros(ne, dtype=np.uint64)     # sign bit of each check-to-variable message
        row = np.empty(n if from_chain else 0, dtype=np.float32)
        y, met, l1, l0, inv, word = _chain_scratch(nsym if from_chain else 0, m if from_chain else 2)
        tables = _label_steps(m if from_chain else 2)
        dlane = np.empty(width, dtype=np.int64)
        dframe = np.empty(width, dtype=np.int64)
        cnt = np.zeros(width, dtype=np.int64)   # iterations of each lane's codeword
        frame = np.full(width, -1, dtype=np.int64)  # codeword in each lane (-1: idle)
        src = np.empty(nv, dtype=np.int64)      # the stage row variable v reads
        for v in range(nv):
            j = vmap[v]
            src[v] = j if j >= 0 else (npad if j == -1 else npad + 1)
        inv_scale = np.float32(1.0) / qscale
        for w in range(width):
            stage[npad, w] = 0
            stage[npad + 1, w] = qm
        for r in range(nrows):
            for w in range(width):
                cix[r, w] = 0
                cm1[r, w] = 0
                cm2[r, w] = 0
        proto_v = sl.vload(lv, 0)
        vqm = sl.vsplat(proto_v, qm)
        vnqm = sl.vsplat(proto_v, -qm)
        voff = sl.vsplat(proto_v, offq)
        vzero = sl.vsplat(proto_v, 0)
        vrm = sl.vsplat(proto_v, rmax)
        e16 = sl.vload(ecnt, 0)
        zero16 = sl.vsplat(e16, 0)
        one16 = sl.vsplat(e16, 1)
        nxt = f0
        live = 0
        fresh = np.uint64(0)  # lanes in their codeword's first iteration (old messages 0)
        nd = 0
        for w in range(width):  # every lane starts as a finished one: the refill below loads it
            dlane[nd] = w
            nd += 1
        while True:
            if nd:
                nxt, live, fresh = _refill(dlane, nd, nxt, f1, live, fresh, frame, llr, chain, from_chain, row,
                                           tables, y, met, l1, l0, inv, word, qrow, qidle, stage, npad, lmax,
                                           qscale, qclip, lv, src, cm1, cm2, vzero)
            if live == 0:
                break
            _iterate(lv, cm1, cm2, cix, tm, csg, var_idx, layer_off, layer_deg, z, proto_v, vqm, vnqm, voff, vzero,
                     vrm)
            for w in range(width):
                cnt[w] += 1
            fresh = np.uint64(0)
            badbits = _unsatisfied(lv, frame, var_idx, layer_off, layer_deg, z, early_stop)
            nd, live = _retire(frame, cnt, badbits, num_iter, early_stop, dlane, dframe, iters, f0, live)
            if nd:
                _write_out(mode, lv, nout, nd, dlane, dframe, f0, iters, ecnt, zero16, one16, counts, out, inv_scale)

    @njit(parallel=True, cache=True, nogil=True)
    def _kernel(llr, chain, bsz, vmap, lmax, qscale, qclip, qm, rmax, offq, var_idx, layer_off, layer_deg, z,
                max_deg, num_iter, nstreams, early_stop, mode, out, nout, iters, counts,
                proto):  # pragma: no cover - compiled
        # one stream of codewords per thread; the work is in a separate function so that numba's
        # parfor pass has nothing to hoist out of the loop (each stream owns its buffers)
        for stream in prange(nstreams):
            f0 = stream * bsz // nstreams
            f1 = (stream + 1) * bsz // nstreams
            _stream(llr, chain, f0, f1, vmap, lmax, qscale, qclip, qm, rmax, offq, var_idx, layer_off, layer_deg,
                    z, max_deg, num_iter, early_stop, mode, out, nout, iters[f0:f1], counts[stream], proto)
