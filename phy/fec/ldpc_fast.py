"""Fast layered min-sum decoding of Sionna's 5G NR LDPC codes.

Sionna's :class:`~sionna.phy.fec.ldpc.LDPC5GDecoder` is a generic flooding belief-propagation
decoder: every iteration gathers and scatters all edge messages through index tensors and
evaluates ``phi(x) = -log(tanh(x/2))`` twice per edge. This module decodes the *same* codes
(same parity-check matrix, lifting size ``Z``, puncturing, shortening/filler and output
interleaver, all read from the :class:`~sionna.phy.fec.ldpc.LDPC5GEncoder` object) with a
**layered** schedule and a **min-sum** check-node rule that exploits the quasi-cyclic structure:

* one layer = one row of the base graph = ``Z`` check nodes that touch disjoint variables, so
  the ``Z`` rows of a layer are updated together; a nonzero block ``(r, c)`` with shift ``s``
  connects row ``r*Z + i`` to variable ``c*Z + (i + s) mod Z`` (a cyclic shift of a ``[Z]`` block);
* check-node rule: offset min-sum (``cn_update="oms"``, default, outgoing magnitude
  ``max(min - offset, 0)``) or normalised min-sum (``"nms"``, ``scale * min``);
* a layered schedule converges in about half the iterations of flooding, so at equal
  ``num_iter`` it matches or beats Sionna's flooding boxplus-phi decoder (see
  ``tests/test_ldpc_fast.py`` and ``benchmarks/bench_ldpc.py`` for measured BLER and speed).

Two interchangeable backends compute exactly the same algorithm:

``"numba"``  (CPU) a compiled kernel, vectorised over the batch (codewords are the SIMD lanes)
             and parallel over chunks of the batch with ``torch.get_num_threads()`` threads.
             With ``early_stop=True`` each thread streams its codewords through 64 lanes and a
             lane whose codeword reaches a zero syndrome takes the next one at once, so early
             termination is per codeword and the lanes stay full. The kernel reads the channel
             logits itself (puncturing, filler bits, clipping, output interleaver).
             Needs the optional ``numba`` package (compiled on first use, cached on disk).
``"torch"``  (any device, the GPU path) the same layered schedule as ~12 tensor ops per layer on
             ``[deg, Z, batch]`` blocks (batch last, so gathers move contiguous rows).

``backend="auto"`` uses numba for CPU tensors when it is installed and torch otherwise.

``precision="int16"`` / ``"int8"`` (CPU, numba) selects the fixed-point kernel of :mod:`phy.fec.ldpc_fixed`
(64 codewords per SIMD vector, saturating arithmetic, compressed check messages, per-codeword early
termination): about 3x / 5x the float kernel's edge updates per second per core, BLER within 0.05 dB.

Conventions (identical to Sionna's decoder)
-------------------------------------------
* Input: channel *logits* ``log p(b=1)/p(b=0)`` of the ``n`` transmitted bits, ``[..., n]``
  (the output of Sionna's ``Demapper``). Internally the decoder works with
  ``LLR = log p(0)/p(1) = -logit``.
* The first ``2Z`` systematic bits are punctured (LLR 0), the ``k_ldpc - k`` filler bits are
  known zeros, bits beyond the transmitted part of the mother code are punctured, and
  degree-1 punctured parity bits are pruned from the graph together with their check nodes
  (as ``LDPC5GDecoder(prune_pcm=True)`` does; the result is mathematically identical).
* Channel logits are clipped to ``[-llr_max, llr_max]`` (Sionna's default ``llr_max=20``).
* Hard decision: bit ``1`` where the posterior LLR ``<= 0`` (Sionna's rule).
* Output: the ``k`` information bits (``return_infobits=True``) or the ``n`` codeword bits in
  transmission order, as float 0/1 (``hard_out=True``) or posterior logits (not clipped).
* Internally float32 on every backend (float64 inputs are decoded in float32 and returned as
  float64); no gradients (decoding runs under ``torch.no_grad``).

Example
-------
>>> import torch
>>> from sionna.phy.fec.ldpc import LDPC5GEncoder
>>> enc = LDPC5GEncoder(k=100, n=200)
>>> dec = LDPC5GFastDecoder(enc, num_iter=10)
>>> u = torch.randint(0, 2, (4, 100)).float()
>>> llr = 10.0 * (2.0 * enc(u) - 1.0)          # noiseless logits log p(1)/p(0)
>>> bool(torch.equal(dec(llr), u))
True
"""
from __future__ import annotations

import math
import numbers
from typing import Optional, Tuple, Union

import numpy as np
import torch
from torch import nn

from phy.utils.threads import numba_threads
from phy.fec.ldpc_structure import qc_structure
from phy.fec.ldpc_torch import _layered_minsum_torch

__all__ = ["LDPC5GFastDecoder", "numba_available", "CN_UPDATES", "BACKENDS"]


#: Check-node updates of the layered decoder: normalised or offset min-sum.
CN_UPDATES = ("nms", "oms")
#: Decoder backends: ``auto`` (numba when installed, on CPU), ``numba`` or ``torch``.
BACKENDS = ("auto", "numba", "torch")

#: Internal LLR of a filler (known-zero) bit: large enough never to be the minimum of a check.
_FILLER_LLR = 1.0e4

try:  # numba is optional: the torch backend computes the same thing without it
    import numba as _numba

    _HAVE_NUMBA = True
except Exception:  # pragma: no cover - depends on the environment
    _numba = None
    _HAVE_NUMBA = False


#: The most edge updates (codewords x iterations x edges) one compiled call does: a larger batch is decoded in
#: slices, so the interpreter runs between them and Ctrl-C / SIGTERM stop a run within seconds whatever the
#: batch or ``num_iter`` (a signal is handled only when a compiled call returns).
WORK_PER_CALL = 1 << 30
_GAMMA64 = 0x9E3779B97F4A7C15


def _shift_key(key: int, samples: int) -> int:
    """The counter key whose sample ``i`` is sample ``samples + i`` of ``key`` (``key + (i + 1) gamma``)."""
    return (int(key) + int(samples) * _GAMMA64) & ((1 << 64) - 1)


def numba_available() -> bool:
    """Whether the compiled CPU backend can be used.

    Examples
    --------
    >>> numba_available()        # numba is a dependency of the package
    True
    """
    return _HAVE_NUMBA


# ------------------------------------------------------------------------------------------
# numba kernel (CPU)
# ------------------------------------------------------------------------------------------
def _numba_kernel():
    """Compile (once, cached on disk) and return the numba layered min-sum kernel.

    The SIMD block (``width`` codewords, one per lane) is a run-time argument. LLVM vectorises the
    lane loops for 64 lanes or more; below that they run mostly scalar (16 lanes: about 7x slower
    per codeword, also when ``width`` is made a compile-time constant, because the loops are then
    fully unrolled and not re-vectorised), hence the 64-codeword default of ``early_stop_group``.
    """
    if not _HAVE_NUMBA:
        raise RuntimeError("backend='numba' needs the optional package numba "
                           "(pip install numba); use backend='torch'")
    return _kernel


# compiled at module level (not in a closure) so that numba's disk cache finds them in the next process
if _HAVE_NUMBA:
    njit, prange = _numba.njit, _numba.prange

    @njit(cache=True, fastmath=False, nogil=True, inline="always")
    def _load(lv, w, llr, f, vmap, llr_max):  # pragma: no cover - compiled
        """Lane ``w`` <- internal LLRs of codeword ``f`` (what :meth:`LDPC5GFastDecoder.mother_llr` gives)."""
        for v in range(vmap.shape[0]):
            j = vmap[v]
            if j >= 0:
                lv[v, w] = -min(max(np.float32(llr[f, j]), -llr_max), llr_max)
            elif j == -1:
                lv[v, w] = np.float32(0.0)
            else:
                lv[v, w] = np.float32(_FILLER_LLR)

    @njit(cache=True, fastmath=False, nogil=True, inline="always")
    def _check_rows(lv, rm, tm, keep, m1, m2, im, sg, var_idx, layer_off, layer_deg, z, use_offset, scale, offset,
                    width):  # pragma: no cover - compiled
        """One layered min-sum iteration of every lane: per check row, the variable-to-check messages (the stale
        check messages of a codeword's first iteration weighted by ``keep = 0``), min1 / min2 / index of min1 /
        sign (offset or scaled), then the new check messages into ``rm`` and ``lv``."""
        # Every per-lane quantity is read into a local before it is combined and written back
        # unconditionally: written as `m2[w] = m1[w] if lt else ...` LLVM emits masked stores and
        # gathers and the loop runs 1.2-1.7x slower (same arithmetic, bit-identical output).
        for lay in range(layer_deg.shape[0]):
            d = layer_deg[lay]
            e0 = layer_off[lay]
            for i in range(z):
                for w in range(width):
                    m1[w] = np.float32(np.inf)
                    m2[w] = np.float32(np.inf)
                    im[w] = np.float32(-1.0)
                    sg[w] = np.float32(1.0)
                for j in range(d):
                    e = e0 + j * z + i
                    v = var_idx[e]
                    fj = np.float32(j)
                    for w in range(width):
                        t = lv[v, w] - rm[e, w] * keep[w]
                        tm[j, w] = t
                        a = abs(t)
                        a1 = m1[w]
                        a2 = m2[w]
                        i1 = im[w]
                        s0 = sg[w]
                        lt = a < a1
                        m2[w] = a1 if lt else min(a2, a)
                        im[w] = fj if lt else i1
                        m1[w] = a if lt else a1
                        sg[w] = -s0 if t < 0 else s0
                for w in range(width):
                    a1 = m1[w]
                    a2 = m2[w]
                    if use_offset:
                        m1[w] = max(a1 - offset, np.float32(0.0))
                        m2[w] = max(a2 - offset, np.float32(0.0))
                    else:
                        m1[w] = a1 * scale
                        m2[w] = a2 * scale
                for j in range(d):
                    e = e0 + j * z + i
                    v = var_idx[e]
                    fj = np.float32(j)
                    for w in range(width):
                        t = tm[j, w]
                        a1 = m1[w]
                        a2 = m2[w]
                        i1 = im[w]
                        s0 = sg[w]
                        mag = a2 if i1 == fj else a1
                        r = (-s0 if t < 0 else s0) * mag
                        rm[e, w] = r
                        lv[v, w] = t + r

    @njit(cache=True, fastmath=False, nogil=True, inline="always")
    def _syndrome(lv, bad, par, var_idx, layer_off, layer_deg, z, width):  # pragma: no cover - compiled
        """``bad[w]`` <- 1 where lane ``w``'s hard decisions (bit 1 where LLR <= 0) violate a check (lanes
        already at 1 stay); the scan ends once every lane has an unsatisfied check."""
        for lay in range(layer_deg.shape[0]):
            d = layer_deg[lay]
            e0 = layer_off[lay]
            for i in range(z):
                for w in range(width):
                    par[w] = np.float32(0.0)
                for j in range(d):
                    v = var_idx[e0 + j * z + i]
                    for w in range(width):
                        p0 = par[w]
                        par[w] = np.float32(1.0) - p0 if lv[v, w] <= 0 else p0
                for w in range(width):
                    bad[w] = max(bad[w], par[w])
            least = np.float32(1.0)
            for w in range(width):
                least = min(least, bad[w])
            if least > 0:
                break

    @njit(cache=True, fastmath=False, nogil=True, inline="always")
    def _retire(lv, llr, out, iters, frame, cnt, keep, bad, vmap, llr_max, num_iter, early_stop, nxt, f1, live,
                width):  # pragma: no cover - compiled
        """Write out every lane whose codeword is finished (``num_iter`` iterations, or a zero syndrome with
        ``early_stop``) and load the stream's next codeword into it (else it goes idle); ``(nxt, live)``."""
        for w in range(width):
            f = frame[w]
            if f >= 0 and (cnt[w] >= num_iter or (early_stop and bad[w] == 0)):
                for v in range(out.shape[1]):
                    out[f, v] = lv[v, w]
                iters[f] = cnt[w]
                if nxt < f1:
                    _load(lv, w, llr, nxt, vmap, llr_max)
                    frame[w] = nxt
                    nxt += 1
                    cnt[w] = 0
                    keep[w] = np.float32(0.0)
                else:
                    frame[w] = -1
                    live -= 1
        return nxt, live

    @njit(cache=True, fastmath=False, nogil=True)
    def _stream(llr, vmap, llr_max, var_idx, layer_off, layer_deg, z, max_deg, num_iter, use_offset, scale, offset,
                width, early_stop, out, iters, f0, f1):  # pragma: no cover - compiled
        """Decode the frames ``[f0, f1)`` through ``width`` SIMD lanes (one stream, one thread)."""
        nv = vmap.shape[0]
        ne = var_idx.shape[0]
        lv = np.empty((nv, width), dtype=np.float32)      # posterior LLRs, batch innermost
        rm = np.zeros((ne, width), dtype=np.float32)      # check-to-variable messages
        tm = np.empty((max_deg, width), dtype=np.float32)  # variable-to-check of one row
        m1 = np.empty(width, dtype=np.float32)
        m2 = np.empty(width, dtype=np.float32)
        im = np.empty(width, dtype=np.float32)
        sg = np.empty(width, dtype=np.float32)
        par = np.empty(width, dtype=np.float32)
        bad = np.empty(width, dtype=np.float32)
        keep = np.zeros(width, dtype=np.float32)
        cnt = np.zeros(width, dtype=np.int64)
        frame = np.full(width, -1, dtype=np.int64)
        nxt = f0
        live = 0
        for w in range(width):
            if nxt < f1:
                _load(lv, w, llr, nxt, vmap, llr_max)
                frame[w] = nxt
                nxt += 1
                live += 1
            else:  # an idle lane holds the all-zero codeword
                for v in range(nv):
                    lv[v, w] = np.float32(_FILLER_LLR)
        while live > 0:
            _check_rows(lv, rm, tm, keep, m1, m2, im, sg, var_idx, layer_off, layer_deg, z, use_offset, scale, offset,
                        width)
            for w in range(width):
                cnt[w] += 1
                keep[w] = np.float32(1.0)
                bad[w] = np.float32(0.0) if frame[w] >= 0 else np.float32(1.0)
            if early_stop:
                _syndrome(lv, bad, par, var_idx, layer_off, layer_deg, z, width)
            nxt, live = _retire(lv, llr, out, iters, frame, cnt, keep, bad, vmap, llr_max, num_iter, early_stop, nxt,
                                f1, live, width)

    @njit(parallel=True, cache=True, fastmath=False, nogil=True)
    def _kernel(llr, vmap, llr_max, var_idx, layer_off, layer_deg, z, max_deg, num_iter, use_offset, scale,
                offset, width, nstreams, early_stop, out, iters):  # pragma: no cover - compiled; run by the tests
        # The frames [f0, f1) of a stream flow through `width` SIMD lanes, one codeword per lane.
        # A lane whose codeword is finished (num_iter iterations, or a zero syndrome with
        # early_stop) writes it out and takes the stream's next codeword at the next iteration, so
        # early termination is per codeword and the lanes stay busy. In a codeword's first
        # iteration its lane's stale check messages are multiplied by keep = 0.
        # llr: channel logits [B, n]; variable v of the kept mother code reads llr[f, vmap[v]]
        # (clipped to +-llr_max, sign flipped to an internal LLR), or is punctured (vmap -1: 0) or
        # a filler bit (vmap -2: known zero). out [B, nout] receives the first nout posteriors.
        # The stream is a function of its own, so numba's parfor pass has nothing to hoist out of the
        # loop (each stream owns its buffers).
        bsz = llr.shape[0]
        for stream in prange(nstreams):
            f0 = stream * bsz // nstreams
            f1 = (stream + 1) * bsz // nstreams
            _stream(llr, vmap, llr_max, var_idx, layer_off, layer_deg, z, max_deg, num_iter, use_offset, scale, offset,
                    width, early_stop, out, iters, f0, f1)


# ------------------------------------------------------------------------------------------
# The decoder block
# ------------------------------------------------------------------------------------------
def _check_precision(precision, qscale, qclip, qmsg, cn_update, backend):
    """Validate the fixed-point options; returns ``(precision, qscale, qclip, qmsg)`` with defaults filled."""
    from phy.fec.ldpc_fixed import FIXED_DEFAULTS, PRECISIONS, qmax

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "float32":
        if qscale is not None or qclip is not None or qmsg is not None:
            raise ValueError("qscale/qclip/qmsg apply to precision='int8' or 'int16' only")
        return precision, None, None, None
    if cn_update != "oms":
        raise ValueError(f"precision={precision!r} supports cn_update='oms' only, got {cn_update!r}")
    if backend == "torch":
        raise ValueError(f"precision={precision!r} needs the numba backend (CPU), got backend='torch'")
    if not _HAVE_NUMBA:
        raise RuntimeError(f"precision={precision!r} needs the optional package numba")
    defaults = FIXED_DEFAULTS[precision]
    qscale = defaults["qscale"] if qscale is None else qscale
    qclip = defaults["qclip"] if qclip is None else qclip
    qmsg = defaults["qmsg"] if qmsg is None else qmsg
    if isinstance(qscale, bool) or not isinstance(qscale, numbers.Real) or not 0.0 < qscale < math.inf:
        raise ValueError(f"qscale must be a positive finite number, got {qscale!r}")
    if isinstance(qclip, bool) or not isinstance(qclip, numbers.Integral) or not 1 <= qclip <= qmax(precision):
        raise ValueError(f"qclip must be an int in [1, {qmax(precision)}] for precision={precision!r}, got {qclip!r}")
    if isinstance(qmsg, bool) or not isinstance(qmsg, numbers.Integral) or not 1 <= qmsg <= qmax(precision) // 2:
        raise ValueError(f"qmsg must be an int in [1, {qmax(precision) // 2}] for precision={precision!r}, "
                         f"got {qmsg!r}")
    return precision, float(qscale), int(qclip), int(qmsg)


def _check_pos_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


class LDPC5GFastDecoder(nn.Module):
    """Layered min-sum decoder for a Sionna :class:`LDPC5GEncoder` (drop-in for ``LDPC5GDecoder``).

    Parameters
    ----------
    encoder : sionna.phy.fec.ldpc.LDPC5GEncoder
        The encoder whose code (``pcm``, ``z``, rate matching, interleaver) is decoded.
    num_iter : int
        Layered iterations (each visits every layer once). Default 20, like Sionna.
    cn_update : ``"oms"`` (default) or ``"nms"``
        Offset min-sum (magnitude ``max(min - offset, 0)``) or normalised min-sum (``scale * min``).
    scale : float
        NMS scaling factor in ``(0, 1]`` (default 0.75).
    offset : float
        OMS offset ``>= 0`` in LLR units (default 0.4: best of 0.3..0.6 and of NMS 0.7..0.8 for
        the (512,1024) and (400,600) codes with 16-QAM/AWGN, 4000-6000 blocks per point, measured
        before early termination; with early termination a later, larger run (155k paired blocks per
        point, the documentation's performance page) found 0.5 ahead by 0.076 dB at BLER 1e-3 -- kept at 0.4 so
        that existing CSVs stay valid; Sionna's ``offset-minsum`` uses 0.5).
    hard_out : bool
        Return hard-decided bits (float 0/1) instead of posterior logits ``log p(1)/p(0)``.
    return_infobits : bool
        Return the ``k`` info bits (default) or the ``n`` codeword bits in transmission order.
    llr_max : float or None
        Clip the channel logits to ``[-llr_max, llr_max]`` (Sionna's default 20); ``None``: no clip.
    backend : ``"auto"`` (default), ``"numba"`` or ``"torch"``
        ``auto`` = numba for CPU inputs when installed, torch otherwise (GPU inputs always torch).
    chunk : int
        numba backend: at most this many codewords per SIMD block (default 128; smaller blocks
        are used when the batch is too small to give every thread a block).
    early_stop : bool
        Stop decoding a codeword after the first iteration at which its hard decisions satisfy
        every parity check (zero syndrome, checked after each iteration). Default ``False``
        (always ``num_iter`` iterations, like Sionna). numba backend: per codeword (a SIMD lane
        that finishes takes the next codeword at once); torch backend: per call (the batch stops
        when every codeword has a zero syndrome; one host synchronisation per iteration).
        :attr:`mean_iterations` and :attr:`last_iterations` report the iterations actually run.
    early_stop_group : int
        numba backend with ``early_stop``: SIMD lanes per thread (default 64; LLVM vectorises the
        lane loops for 64 lanes or more, see :func:`_numba_kernel`).
    precision : ``"float32"`` (default), ``"int16"`` or ``"int8"``
        Decoder arithmetic. The fixed-point kernels (:mod:`phy.fec.ldpc_fixed`: 64 codewords per SIMD
        vector, saturating arithmetic, compressed check messages, per-codeword early termination
        when ``early_stop``) run on CPU with numba only and support ``cn_update="oms"`` only.
    qscale, qclip, qmsg : float, int, int, optional
        Fixed point: quanta per LLR unit, the channel-LLR saturation and the check-message
        saturation in quanta (defaults :data:`phy.fec.ldpc_fixed.FIXED_DEFAULTS`). The OMS offset is
        rounded to ``round(offset * qscale)`` quanta. ``qmsg`` must stay well below the posterior
        range (``qmax``): a saturated posterior minus a large old message underestimates the
        extrinsic value, and with ``qmsg`` near ``qmax`` that error snowballs (measured: int8 with
        ``qmsg=63`` loses converged codewords after 10 iterations, ``qmsg=127`` all of them).

    Input
    -----
    llr_ch : Tensor, ``[..., n]``, float32/float64
        Channel logits ``log p(1)/p(0)`` (Sionna's demapper output).

    Output
    ------
    Tensor, ``[..., k]`` (or ``[..., n]``), dtype of ``llr_ch``, on its device.

    Example
    -------
    >>> import torch
    >>> from sionna.phy.fec.ldpc import LDPC5GEncoder
    >>> enc = LDPC5GEncoder(k=512, n=1024)
    >>> dec = LDPC5GFastDecoder(enc, num_iter=20)
    >>> dec(torch.full((2, 1024), -20.0)).sum().item()   # all-zero codeword
    0.0
    """

    def __init__(self, encoder, num_iter: int = 20, cn_update: str = "oms", scale: float = 0.75,
                 offset: float = 0.4, hard_out: bool = True, return_infobits: bool = True,
                 llr_max: Optional[float] = 20.0, backend: str = "auto", chunk: int = 128,
                 early_stop: bool = False, early_stop_group: int = 64, precision: str = "float32",
                 qscale: Optional[float] = None, qclip: Optional[int] = None, qmsg: Optional[int] = None):
        super().__init__()
        self.structure = qc_structure(encoder)
        self.encoder = encoder
        self.num_iter = _check_pos_int(num_iter, "num_iter")
        if cn_update not in CN_UPDATES:
            raise ValueError(f"cn_update must be one of {CN_UPDATES}, got {cn_update!r}")
        if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not 0.0 < scale <= 1.0:
            raise ValueError(f"scale must be a number in (0, 1], got {scale!r}")
        if isinstance(offset, bool) or not isinstance(offset, numbers.Real) or not 0.0 <= offset < math.inf:
            raise ValueError(f"offset must be a finite number >= 0, got {offset!r}")
        if llr_max is not None and (isinstance(llr_max, bool) or not isinstance(llr_max, numbers.Real)
                                    or not 0.0 < llr_max < math.inf):
            raise ValueError(f"llr_max must be a positive finite number or None, got {llr_max!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if backend == "numba" and not _HAVE_NUMBA:
            raise RuntimeError("backend='numba' needs the optional package numba; use backend='torch' or 'auto'")
        for name, val in (("hard_out", hard_out), ("return_infobits", return_infobits)):
            if not isinstance(val, bool):
                raise TypeError(f"{name} must be bool, got {type(val).__name__}")
        self.cn_update, self.scale, self.offset = cn_update, float(scale), float(offset)
        self.hard_out, self.return_infobits = hard_out, return_infobits
        self.llr_max = None if llr_max is None else float(llr_max)
        self.backend = backend
        self.chunk = _check_pos_int(chunk, "chunk")
        if not isinstance(early_stop, bool):
            raise TypeError(f"early_stop must be bool, got {type(early_stop).__name__}")
        self.early_stop = early_stop
        self.early_stop_group = _check_pos_int(early_stop_group, "early_stop_group")
        self.precision, self.qscale, self.qclip, self.qmsg = _check_precision(precision, qscale, qclip, qmsg,
                                                                              cn_update, backend)
        self.frames_decoded = 0    # codewords decoded so far (numba and torch backends)
        self.iterations_run = 0    # sum over those codewords of the iterations run for them
        self.last_iterations = torch.zeros(0, dtype=torch.int64)  # per codeword of the last call (flattened)
        st = self.structure
        self._max_deg = int(st.layer_deg.max())
        nbps = encoder.num_bits_per_symbol
        self._out_int_inv = None if nbps is None else np.asarray(encoder.out_int_inv.cpu(), dtype=np.int64)
        self._out_int = None if nbps is None else np.asarray(encoder.out_int.cpu(), dtype=np.int64)
        self._torch_layers = {}
        self._vmap = self._variable_map()
        self._scratch = None  # numba backend: output buffer reused across calls

    # -- properties ----------------------------------------------------------------------
    @property
    def k(self) -> int:
        return self.structure.k

    @property
    def n(self) -> int:
        return self.structure.n

    @property
    def num_edges(self) -> int:
        return self.structure.num_edges

    def resolve_backend(self, device: Union[str, torch.device]) -> str:
        """The backend used for inputs on ``device``."""
        dev = torch.device(device)
        if self.precision != "float32" and (dev.type != "cpu" or not _HAVE_NUMBA):
            raise ValueError(f"precision={self.precision!r} runs on CPU with numba only; got llr_ch on {dev}"
                             + ("" if _HAVE_NUMBA else " and numba is not installed"))
        if self.backend == "auto":
            return "numba" if (_HAVE_NUMBA and dev.type == "cpu") else "torch"
        if self.backend == "numba" and dev.type != "cpu":
            raise ValueError(f"backend='numba' runs on CPU only; got llr_ch on {dev}")
        return self.backend

    # -- helpers -------------------------------------------------------------------------
    def _layers_on(self, device):
        key = str(device)
        if key not in self._torch_layers:
            st = self.structure
            layers = []
            for l in range(st.num_layers):
                d = int(st.layer_deg[l])
                idx = torch.as_tensor(st.var_idx[st.layer_off[l]:st.layer_off[l + 1]], device=device)
                jcol = torch.arange(d, device=device).view(d, 1, 1)
                layers.append((idx, d, st.z, jcol))
            self._torch_layers[key] = layers
        return self._torch_layers[key]

    def _variable_map(self) -> np.ndarray:
        """For each kept mother-code variable: the transmitted position whose logit it reads
        (after the output interleaver), ``-1`` if punctured, ``-2`` if a filler bit."""
        st = self.structure
        z, k, k_ldpc = st.z, st.k, st.k_ldpc
        vmap = np.full(st.num_vns, -1, dtype=np.int64)
        nsys = k - 2 * z
        pos = np.concatenate([np.arange(nsys), nsys + np.arange(st.tx_end - k_ldpc)])
        if self._out_int_inv is not None:
            pos = self._out_int_inv[pos]
        vmap[2 * z:k] = pos[:nsys]
        vmap[k:k_ldpc] = -2
        vmap[k_ldpc:st.tx_end] = pos[nsys:]
        return vmap

    def mother_llr(self, llr_ch: torch.Tensor) -> torch.Tensor:
        """Map transmitted logits ``[B, n]`` to internal LLRs ``[B, num_vns]`` of the kept mother code.

        Punctured positions get 0, filler (known-zero) bits a large positive LLR.
        """
        st = self.structure
        z, k, k_ldpc = st.z, st.k, st.k_ldpc
        if self._out_int_inv is not None:
            llr_ch = llr_ch[:, torch.as_tensor(self._out_int_inv, device=llr_ch.device)]
        if self.llr_max is not None:
            llr_ch = llr_ch.clamp(-self.llr_max, self.llr_max)
        bsz = llr_ch.shape[0]
        full = torch.zeros(bsz, st.num_vns, dtype=torch.float32, device=llr_ch.device)
        nsys = k - 2 * z
        full[:, 2 * z:k] = -llr_ch[:, :nsys]
        full[:, k:k_ldpc] = _FILLER_LLR
        full[:, k_ldpc:st.tx_end] = -llr_ch[:, nsys:]
        return full

    def _check_input(self, llr_ch):
        if not isinstance(llr_ch, torch.Tensor):
            raise TypeError(f"llr_ch must be a torch.Tensor, got {type(llr_ch).__name__}")
        if not llr_ch.is_floating_point():
            raise TypeError(f"llr_ch must be a real floating tensor (logits), got dtype {llr_ch.dtype}")
        if llr_ch.dim() < 1 or llr_ch.shape[-1] != self.n:
            raise ValueError(f"llr_ch must have last dimension n={self.n}, got shape {tuple(llr_ch.shape)}")
        # one reduction: a finite sum proves every value finite, a non-NaN sum proves no NaN (a NaN
        # or inf + -inf makes it NaN); only then the exact elementwise checks. On CUDA the check
        # runs on the device (torch._assert_async, no host synchronisation).
        if llr_ch.device.type != "cpu":
            total = llr_ch.sum()
            torch._assert_async(~torch.isnan(total) if self.llr_max is not None else torch.isfinite(total),
                                "llr_ch must be finite (no NaN; no +-inf when llr_max=None)")
            return
        total = float(llr_ch.sum()) if llr_ch.numel() else 0.0
        if math.isfinite(total) or (self.llr_max is not None and not math.isnan(total)):
            return
        if torch.isnan(llr_ch).any():
            raise ValueError("llr_ch must not contain NaN")
        if self.llr_max is None and torch.isinf(llr_ch).any():
            raise ValueError("llr_ch contains +-inf and llr_max=None (no clipping); give finite logits "
                             "or set llr_max")

    # -- forward -------------------------------------------------------------------------
    @torch.no_grad()
    def forward(self, llr_ch: torch.Tensor, num_iter: Optional[int] = None) -> torch.Tensor:
        """Decode channel logits ``[..., n]`` -> bits (or logits) ``[..., k]`` / ``[..., n]``."""
        self._check_input(llr_ch)
        iters = self.num_iter if num_iter is None else _check_pos_int(num_iter, "num_iter")
        st = self.structure
        lead = llr_ch.shape[:-1]
        flat = llr_ch.reshape(-1, self.n)
        backend = self.resolve_backend(flat.device)
        use_offset = self.cn_update == "oms"
        bsz = flat.shape[0]
        if bsz == 0:
            post = torch.zeros(0, st.num_vns)
        elif backend == "numba":
            # the kernel reads the transmitted logits itself (no mother_llr pass); its output
            # buffer is scratch reused across calls (fresh pages fault on every call otherwise)
            src = flat.detach().to(torch.float32).contiguous().numpy()
            nout = st.k if self.return_infobits else st.num_vns
            # fixed point with hard output: the kernel writes 0/1 bytes, else float32 posteriors
            hard_bytes = self.precision != "float32" and self.hard_out
            dtype = np.int8 if hard_bytes else np.float32
            if self._scratch is None or self._scratch.dtype != dtype or self._scratch.shape[0] < bsz * nout:
                self._scratch = np.empty(bsz * nout, dtype=dtype)
            out = self._scratch[: bsz * nout].reshape(bsz, nout)
            lmax = np.float32(np.inf if self.llr_max is None else self.llr_max)
            if self.precision != "float32":
                used = np.concatenate([self._decode_fixed(src[a:b], out[a:b], lmax, iters)
                                       for a, b in self._slices(bsz, iters)])
                self._count_iterations(used)
                x = torch.from_numpy(out)
                if hard_bytes:
                    x = x if self.return_infobits else self._codeword_order(x)
                    return x.to(llr_ch.dtype).reshape(*lead, x.shape[-1]).to(llr_ch.device)
                post = x
            else:
                used = np.concatenate([self._decode_float(src[a:b], out[a:b], lmax, iters, b - a, use_offset)
                                       for a, b in self._slices(bsz, iters)])
                self._count_iterations(used)
                post = torch.from_numpy(out)
        else:
            full = self.mother_llr(flat)
            post, used = _layered_minsum_torch(full.t().contiguous(), self._layers_on(full.device), iters,
                                               use_offset, self.scale, self.offset, self.early_stop)
            post = post.t()
            self._count_iterations(np.full(full.shape[0], used, dtype=np.int64))
        x = post[:, :st.k] if self.return_infobits else self._codeword_order(post)
        if self.hard_out:
            x = (x <= 0).to(llr_ch.dtype)
        else:
            x = (-x).to(llr_ch.dtype)
        return x.reshape(*lead, x.shape[-1]).to(llr_ch.device)

    def _slices(self, rows: int, iters: int):
        """``[(start, stop), ...]`` of ``rows`` codewords, each slice at most :data:`WORK_PER_CALL` edge updates
        (and at least 64 codewords, one SIMD vector)."""
        per = max(64, WORK_PER_CALL // max(1, int(iters) * self.num_edges))
        return [(a, min(rows, a + per)) for a in range(0, rows, per)]

    def _codeword_order(self, post: torch.Tensor) -> torch.Tensor:
        """The ``n`` transmitted positions of mother-code values ``[B, num_vns]``, in transmission order."""
        st = self.structure
        x = torch.cat([post[:, 2 * st.z:st.k], post[:, st.k_ldpc:st.tx_end]], dim=1)
        if self._out_int is not None:
            x = x[:, torch.as_tensor(self._out_int, device=x.device)]
        return x

    def _decode_fixed(self, src: np.ndarray, out: np.ndarray, lmax, iters: int) -> np.ndarray:
        """The fixed-point kernel (:mod:`phy.fec.ldpc_fixed`) on logits ``src`` ``[B, n]`` -> posteriors in ``out``."""
        from phy.fec import ldpc_fixed

        mode = ldpc_fixed._HARD if out.dtype == np.int8 else ldpc_fixed._SOFT
        used, _ = self._run_fixed(src, ldpc_fixed.no_chain(), src.shape[0], mode, out, lmax, iters)
        return used

    def _run_fixed(self, src, chain, bsz, mode, out, lmax, iters):
        """One call of the fixed-point kernel: ``(iterations per codeword, counts [streams, 3])``."""
        from phy.fec import ldpc_fixed

        st = self.structure
        used = np.zeros(bsz, dtype=np.int64)
        proto = np.zeros(1, dtype=np.int8 if self.precision == "int8" else np.int16)
        qm = ldpc_fixed.qmax(self.precision)
        offq = int(round(self.offset * self.qscale))
        nout = st.k if mode == ldpc_fixed._COUNTS else out.shape[1]
        with numba_threads() as nthr:
            nstreams = max(1, min(nthr, -(-bsz // 64)))
            counts = np.zeros((nstreams, 3), dtype=np.int64)
            ldpc_fixed.fixed_kernel()(src, chain, bsz, self._vmap, lmax, np.float32(self.qscale), int(self.qclip), qm,
                                      int(self.qmsg), offq, st.var_idx, st.layer_off, st.layer_deg, st.z,
                                      self._max_deg, iters, nstreams, self.early_stop, mode, out, nout, used,
                                      counts, proto)
        return used, counts

    def scrambled_awgn_errors(self, rows: int, modulation: str, no, scrambling_key: int, noise_key: int,
                              method: str = "app") -> Tuple[int, int]:
        """Errors of ``rows`` scrambled all-zero codewords over AWGN, decoded in the same compiled pass.

        Row ``r`` is the codeword of :func:`phy.fec.scrambled_chain.scrambled_awgn_logits` (the same keys,
        ``num_symbols = n / m``): its logits are computed, quantised into a SIMD lane and decoded by
        the fixed-point kernel, and only the decided 1s among the ``k`` information bits are counted
        (every one is an error), so no logits or decisions are written to memory. The counts equal
        those of ``scrambled_awgn_logits`` followed by this decoder (``tests/test_ldpc_fixed.py``).
        Needs ``precision="int8"`` or ``"int16"``, no output interleaver (``num_bits_per_symbol=None``
        in the encoder) and ``n`` a multiple of the bits per symbol. :attr:`mean_iterations` counts the
        codewords.

        Parameters
        ----------
        rows : int
            Codewords.
        modulation, no, scrambling_key, noise_key, method
            As for :func:`phy.fec.scrambled_chain.scrambled_awgn_logits` (``no``: one ``N0`` or one per row).

        Returns
        -------
        (bit_errors, block_errors) : tuple of int
            Over ``rows * k`` information bits and ``rows`` blocks.

        Examples
        --------
        >>> import torch
        >>> from sionna.phy.fec.ldpc import LDPC5GEncoder
        >>> dec = LDPC5GFastDecoder(LDPC5GEncoder(k=512, n=1024), precision="int8", early_stop=True)
        >>> dec.scrambled_awgn_errors(2000, "16qam", 10 ** (-12 / 10), scrambling_key=1, noise_key=2)
        (0, 0)
        >>> bit_err, blk_err = dec.scrambled_awgn_errors(500, "16qam", 10 ** (-5 / 10), 1, 2)
        >>> blk_err > 400 and bit_err > 20 * blk_err     # far below the waterfall: most blocks wrong
        True
        """
        from phy.fec import ldpc_fixed
        from phy.fec.scrambled_chain import chain_args

        if self.precision == "float32":
            raise ValueError("scrambled_awgn_errors needs precision='int8' or 'int16' (the fixed-point kernel), "
                             "got precision='float32'")
        if self._out_int is not None:
            raise ValueError("scrambled_awgn_errors needs an encoder without output interleaver "
                             "(num_bits_per_symbol=None)")
        from phy.mapping.constellations import bits_per_symbol

        m = bits_per_symbol(modulation)
        if self.n % m:
            raise ValueError(f"n={self.n} must be a multiple of the {m} bits per symbol of {modulation!r}")
        ns = self.n // m
        chain_args(rows, ns, modulation, no, scrambling_key, noise_key, method)  # checks every argument
        if rows == 0:
            return 0, 0
        lmax = np.float32(np.inf if self.llr_max is None else self.llr_max)
        no_r = torch.as_tensor(no, dtype=torch.float32).reshape(-1)
        used_all, total = [], np.zeros(3, dtype=np.int64)
        for a, b in self._slices(rows, self.num_iter):  # rows a.. b: the same counter samples as one call
            chain = chain_args(b - a, ns, modulation, no_r if no_r.numel() == 1 else no_r[a:b],
                               _shift_key(scrambling_key, a * ns), _shift_key(noise_key, a * ns), method)
            used, counts = self._run_fixed(np.zeros((0, 0), np.float32), chain, b - a, ldpc_fixed._COUNTS,
                                           np.zeros((0, 0), np.int8), lmax, self.num_iter)
            used_all.append(used)
            total += counts.sum(axis=0)
        self._count_iterations(np.concatenate(used_all))
        return int(total[0]), int(total[1])

    def _decode_float(self, src, out, lmax, iters, bsz, use_offset) -> np.ndarray:
        """The float32 numba kernel on logits ``src`` ``[B, n]`` -> posteriors in ``out``."""
        st = self.structure
        with numba_threads() as nthr:  # torch's thread count (and torch's setting kept)
            # codewords per SIMD block: at most `chunk`, but small enough to give every thread work
            per_thread = -(-bsz // nthr)
            if self.early_stop:  # one stream of codewords per thread through `width` lanes
                width = int(min(self.early_stop_group, max(8, -(-per_thread // 8) * 8)))
                nstreams = min(nthr, bsz)
            else:  # one block of `width` codewords per stream
                width = int(min(self.chunk, max(8, -(-per_thread // 8) * 8)))
                nstreams = -(-bsz // width)
            used = np.zeros(bsz, dtype=np.int64)
            _numba_kernel()(src, self._vmap, lmax, st.var_idx, st.layer_off, st.layer_deg, st.z,
                            self._max_deg, iters, use_offset, np.float32(self.scale), np.float32(self.offset),
                            width, nstreams, self.early_stop, out, used)
        return used

    def _count_iterations(self, used: np.ndarray) -> None:
        """Add one call's iteration counts (``used[f]`` iterations run for codeword ``f``)."""
        self.last_iterations = torch.from_numpy(used)
        self.frames_decoded += int(used.shape[0])
        self.iterations_run += int(used.sum())

    @property
    def mean_iterations(self) -> float:
        """Iterations per codeword over every call so far (``num_iter`` without ``early_stop``)."""
        return self.iterations_run / self.frames_decoded if self.frames_decoded else math.nan

    def extra_repr(self) -> str:
        return (f"k={self.k}, n={self.n}, z={self.structure.z}, layers={self.structure.num_layers}, "
                f"edges={self.num_edges}, num_iter={self.num_iter}, cn_update={self.cn_update!r}, "
                f"backend={self.backend!r}")
