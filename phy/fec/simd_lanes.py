"""Explicit SIMD values for numba kernels: 64 integer lanes as one LLVM vector (int8 or int16).

numba widens small integers to 64 bits and vectorises loops only when LLVM proves it safe and
profitable, so a kernel that wants 64 ``int8`` lanes per instruction (the inter-frame SIMD of
fixed-point LDPC decoders: one codeword per lane) cannot rely on auto-vectorisation. This module
adds two numba types whose LLVM representation *is* a vector register:

* :data:`LaneVec` ``<64 x i8>`` or ``<64 x i16>`` -- 64 lanes of signed integers;
* :data:`LaneMask` ``<64 x i1>`` -- a lane mask (a comparison result, 64 bits).

and intrinsics on them (all inlined by LLVM, no call overhead): rows of a 2-D ``[rows, 64]``
array are loaded and stored as one vector (:func:`vload`, :func:`vstore`); saturating add/sub
(``llvm.sadd.sat`` / ``llvm.ssub.sat``, i.e. ``vpaddsb``/``vpaddsw``), min/max, compare, select,
mask logic and mask <-> ``uint64`` bit packing. On a CPU with AVX-512BW a ``<64 x i8>`` operation
is one ``zmm`` instruction; elsewhere LLVM splits it into the widest registers there are (AVX2:
two ``ymm``; SSE2: four ``xmm``), so the kernels stay portable and give identical results.

Only usable inside ``@njit`` functions (the intrinsics have no Python implementation).

Examples
--------
>>> import numpy as np
>>> from numba import njit
>>> from phy.fec import simd_lanes as sl
>>> @njit
... def sat_sum(a, b, out):
...     sl.vstore(out, 0, sl.vadds(sl.vload(a, 0), sl.vload(b, 0)))
>>> a = np.full((1, 64), 100, np.int8); b = np.full((1, 64), 100, np.int8); out = np.empty_like(a)
>>> sat_sum(a, b, out); int(out[0, 0])   # saturates at 127 instead of wrapping to -56
127
"""
from __future__ import annotations

# The numba types (``LaneVec``, ``LaneMask``) and intrinsics (``vload``, ``vstore``, ``vsplat``, ``vadds``,
# ``vsubs``, ``vmin``, ``vmax``, ``vneg``, ``vabs``, ``vxor``, ``vlt``, ``veq``, ``vle0``, ``vltz``, ``vsel``, ``mxor``, ``mor``,
# ``mbits``, ``bitsm``, ``mnone``) exist only inside compiled code: they are this module's attributes for
# kernels (``sl.vadds(...)``), documented above and by the tests against numpy, not Python API.
__all__ = ["LANES", "available", "aligned_empty", "transpose_blocks"]

#: Lanes per vector (one AVX-512 register of int8).
LANES = 64

try:
    import numpy as np
    from llvmlite import ir
    from numba import njit
    from numba.core import cgutils, types
    from numba.extending import intrinsic, models, register_model

    _HAVE_NUMBA = True
except ImportError:  # pragma: no cover - numba is optional
    _HAVE_NUMBA = False


def available() -> bool:
    """Whether numba is importable (the intrinsics need it).

    Examples
    --------
    >>> available()
    True
    """
    return _HAVE_NUMBA


if _HAVE_NUMBA:
    class LaneVecType(types.Type):
        """``LANES`` signed integers of ``bits`` bits in one LLVM vector."""

        def __init__(self, bits: int):
            self.bits = bits
            super().__init__(name=f"LaneVec(i{bits}x{LANES})")

    class LaneMaskType(types.Type):
        """A ``LANES``-bit lane mask ``<LANES x i1>``."""

        def __init__(self):
            super().__init__(name=f"LaneMask(x{LANES})")

    @register_model(LaneVecType)
    class _LaneVecModel(models.PrimitiveModel):
        def __init__(self, dmm, fe_type):
            super().__init__(dmm, fe_type, ir.VectorType(ir.IntType(fe_type.bits), LANES))

    @register_model(LaneMaskType)
    class _LaneMaskModel(models.PrimitiveModel):
        def __init__(self, dmm, fe_type):
            super().__init__(dmm, fe_type, ir.VectorType(ir.IntType(1), LANES))

    LaneVec = {8: LaneVecType(8), 16: LaneVecType(16)}
    LaneMask = LaneMaskType()
    _BITS = {types.int8: 8, types.int16: 16}

    def _vec_of_array(arr):
        if isinstance(arr, types.Array) and arr.ndim == 2 and arr.layout == "C" and arr.dtype in _BITS:
            return LaneVec[_BITS[arr.dtype]]
        return None

    def _row_ptr(context, builder, aryty, ary, row, bits):
        a = context.make_array(aryty)(context, builder, value=ary)
        row = context.cast(builder, row, types.intp, types.intp) if row.type == ir.IntType(64) else \
            builder.sext(row, ir.IntType(64))
        off = builder.mul(row, ir.Constant(ir.IntType(64), LANES))
        p = builder.gep(a.data, [off])
        return builder.bitcast(p, ir.VectorType(ir.IntType(bits), LANES).as_pointer())

    @intrinsic
    def vload(typingctx, arr, row):
        """Row ``row`` of a C-contiguous ``[rows, 64]`` int8/int16 array as one vector (no bounds check)."""
        vt = _vec_of_array(arr)
        if vt is None or not isinstance(row, types.Integer):
            return None

        def codegen(context, builder, sig, args):
            ptr = _row_ptr(context, builder, sig.args[0], args[0], args[1], vt.bits)
            return builder.load(ptr, align=vt.bits // 8)

        return vt(arr, row), codegen

    @intrinsic
    def vstore(typingctx, arr, row, v):
        """Store vector ``v`` into row ``row`` of a ``[rows, 64]`` array of its element type."""
        vt = _vec_of_array(arr)
        if vt is None or v != vt or not isinstance(row, types.Integer):
            return None

        def codegen(context, builder, sig, args):
            ptr = _row_ptr(context, builder, sig.args[0], args[0], args[1], vt.bits)
            builder.store(args[2], ptr, align=vt.bits // 8)
            return context.get_dummy_value()

        return types.none(arr, row, v), codegen

    @intrinsic
    def vsplat(typingctx, like, x):
        """A vector of the type of ``like`` with every lane ``x`` (an integer, truncated)."""
        if not isinstance(like, LaneVecType) or not isinstance(x, types.Integer):
            return None

        def codegen(context, builder, sig, args):
            et = ir.IntType(like.bits)
            xv = args[1]
            xv = builder.trunc(xv, et) if xv.type.width > like.bits else builder.sext(xv, et) \
                if xv.type.width < like.bits else xv
            vec = ir.VectorType(et, LANES)
            undef = ir.Constant(vec, ir.Undefined)
            one = builder.insert_element(undef, xv, ir.Constant(ir.IntType(32), 0))
            return builder.shuffle_vector(one, undef, ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES))

        return like(like, x), codegen

    def _binary(name):
        def typer(typingctx, a, b):
            if not isinstance(a, LaneVecType) or a != b:
                return None

            def codegen(context, builder, sig, args):
                vec = ir.VectorType(ir.IntType(a.bits), LANES)
                fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec]),
                                                    f"llvm.{name}.v{LANES}i{a.bits}")
                return builder.call(fn, args)

            return a(a, b), codegen
        return typer

    vadds = intrinsic(_binary("sadd.sat"))
    vadds.__doc__ = "Lane-wise saturating signed add."
    vsubs = intrinsic(_binary("ssub.sat"))
    vsubs.__doc__ = "Lane-wise saturating signed subtract."
    vmin = intrinsic(_binary("smin"))
    vmin.__doc__ = "Lane-wise signed minimum."
    vmax = intrinsic(_binary("smax"))
    vmax.__doc__ = "Lane-wise signed maximum."

    @intrinsic
    def vneg(typingctx, a):
        """Lane-wise ``-a`` (wrapping: keep lanes in ``[-max, max]`` so that it never overflows)."""
        if not isinstance(a, LaneVecType):
            return None

        def codegen(context, builder, sig, args):
            return builder.sub(ir.Constant(args[0].type, None), args[0])

        return a(a), codegen

    @intrinsic
    def vxor(typingctx, a, b):
        """Lane-wise bitwise exclusive or (the sign bit of ``vxor(a, b)`` is ``sign(a) xor sign(b)``)."""
        if not isinstance(a, LaneVecType) or a != b:
            return None

        def codegen(context, builder, sig, args):
            return builder.xor(args[0], args[1])

        return a(a, b), codegen

    @intrinsic
    def vabs(typingctx, a):
        """Lane-wise ``|a|`` (``llvm.abs``; keep lanes in ``[-max, max]``)."""
        if not isinstance(a, LaneVecType):
            return None

        def codegen(context, builder, sig, args):
            vec = args[0].type
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, ir.IntType(1)]),
                                                f"llvm.abs.v{LANES}i{a.bits}")
            return builder.call(fn, [args[0], ir.Constant(ir.IntType(1), 0)])

        return a(a), codegen

    def _cmp(op):
        def typer(typingctx, a, b):
            if not isinstance(a, LaneVecType) or a != b:
                return None

            def codegen(context, builder, sig, args):
                return builder.icmp_signed(op, args[0], args[1])

            return LaneMask(a, b), codegen
        return typer

    vlt = intrinsic(_cmp("<"))
    vlt.__doc__ = "Lane mask ``a < b`` (signed)."
    veq = intrinsic(_cmp("=="))
    veq.__doc__ = "Lane mask ``a == b``."

    def _cmp0(op):
        def typer(typingctx, a):
            if not isinstance(a, LaneVecType):
                return None

            def codegen(context, builder, sig, args):
                return builder.icmp_signed(op, args[0], ir.Constant(args[0].type, None))

            return LaneMask(a), codegen
        return typer

    vltz = intrinsic(_cmp0("<"))
    vltz.__doc__ = "Lane mask ``a < 0``."
    vle0 = intrinsic(_cmp0("<="))
    vle0.__doc__ = "Lane mask ``a <= 0``."

    @intrinsic
    def vsel(typingctx, m, a, b):
        """Lane-wise ``a if m else b``."""
        if m != LaneMask or not isinstance(a, LaneVecType) or a != b:
            return None

        def codegen(context, builder, sig, args):
            return builder.select(args[0], args[1], args[2])

        return a(m, a, b), codegen

    def _mlogic(op):
        def typer(typingctx, a, b):
            if a != LaneMask or b != LaneMask:
                return None

            def codegen(context, builder, sig, args):
                return getattr(builder, op)(args[0], args[1])

            return LaneMask(a, b), codegen
        return typer

    mxor = intrinsic(_mlogic("xor"))
    mxor.__doc__ = "Mask exclusive or."
    mor = intrinsic(_mlogic("or_"))
    mor.__doc__ = "Mask or."

    @intrinsic
    def mnone(typingctx):
        """The all-false mask."""
        def codegen(context, builder, sig, args):
            return ir.Constant(ir.VectorType(ir.IntType(1), LANES), None)

        return LaneMask(), codegen

    @intrinsic
    def mbits(typingctx, m):
        """Mask -> ``uint64`` (bit ``w`` = lane ``w``)."""
        if m != LaneMask:
            return None

        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], ir.IntType(LANES))

        return types.uint64(m), codegen

    @intrinsic
    def bitsm(typingctx, b):
        """``uint64`` -> mask (lane ``w`` = bit ``w``)."""
        if not isinstance(b, types.Integer) or b.bitwidth != 64:
            return None

        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], ir.VectorType(ir.IntType(1), LANES))

        return LaneMask(b), codegen

    def _transpose_mask(s: int, hi: bool):
        """Indices into ``concat(a, b)`` of one butterfly of the 8 x 8 block transpose (see :func:`_shuffle`):
        within each group of 8 lanes, rows ``i`` and ``i + s`` exchange the off-diagonal ``s x s`` blocks."""
        out = []
        for k in range(LANES):
            b = k % 8
            if not hi:
                out.append(k if b & s == 0 else LANES + k - s)
            else:
                out.append(k + s if b & s == 0 else LANES + k)
        return out

    def _shuffle(s: int, hi: bool):
        mask = _transpose_mask(s, hi)

        def typer(typingctx, a, b):
            if not isinstance(a, LaneVecType) or a != b:
                return None

            def codegen(context, builder, sig, args):
                return builder.shuffle_vector(args[0], args[1], ir.Constant(ir.VectorType(ir.IntType(32), LANES), mask))

            return a(a, b), codegen
        return intrinsic(typer)

    # butterflies of the 8 x 8 transpose within each group of 8 lanes (rows i and i + s, s = 1, 2, 4): the
    # "lo" result replaces row i, the "hi" result row i + s; the three stages in any order transpose the block
    vtr_lo1, vtr_hi1 = _shuffle(1, False), _shuffle(1, True)
    vtr_lo2, vtr_hi2 = _shuffle(2, False), _shuffle(2, True)
    vtr_lo4, vtr_hi4 = _shuffle(4, False), _shuffle(4, True)

    @njit(cache=True, nogil=True)
    def transpose_blocks(stage, nblocks):  # pragma: no cover - compiled
        """In place, for each block ``c < nblocks`` of 8 rows ``8c .. 8c + 7`` of a ``[rows, 64]`` int8/int16
        array: the 8 x 8 transpose within every group of 8 lanes, i.e. element ``(8c + r, 8g + b)`` moves to
        ``(8c + b, 8g + r)``. With lane ``8g + r``'s values at positions ``8c .. 8c + 7`` stored in row
        ``8c + r``, lanes ``8g .. 8g + 7`` (one 8-byte or 16-byte store per lane and block), this turns
        codeword-major rows into the lane-major layout ``[position, lane]`` with 24 shuffles per block.

        Examples
        --------
        >>> import numpy as np
        >>> a = np.arange(16 * 64, dtype=np.int16).reshape(16, 64)
        >>> b = a.copy(); transpose_blocks(b, 2)
        >>> ref = a.reshape(2, 8, 8, 8).transpose(0, 3, 2, 1).reshape(16, 64)
        >>> bool((b == ref).all())
        True
        """
        if nblocks < 0 or 8 * nblocks > stage.shape[0]:
            raise ValueError("transpose_blocks: nblocks must be in [0, rows // 8] of stage [rows, 64]")
        for c in range(nblocks):
            o = 8 * c
            x0 = vload(stage, o)
            x1 = vload(stage, o + 1)
            x2 = vload(stage, o + 2)
            x3 = vload(stage, o + 3)
            x4 = vload(stage, o + 4)
            x5 = vload(stage, o + 5)
            x6 = vload(stage, o + 6)
            x7 = vload(stage, o + 7)
            x0, x1 = vtr_lo1(x0, x1), vtr_hi1(x0, x1)
            x2, x3 = vtr_lo1(x2, x3), vtr_hi1(x2, x3)
            x4, x5 = vtr_lo1(x4, x5), vtr_hi1(x4, x5)
            x6, x7 = vtr_lo1(x6, x7), vtr_hi1(x6, x7)
            x0, x2 = vtr_lo2(x0, x2), vtr_hi2(x0, x2)
            x1, x3 = vtr_lo2(x1, x3), vtr_hi2(x1, x3)
            x4, x6 = vtr_lo2(x4, x6), vtr_hi2(x4, x6)
            x5, x7 = vtr_lo2(x5, x7), vtr_hi2(x5, x7)
            x0, x4 = vtr_lo4(x0, x4), vtr_hi4(x0, x4)
            x1, x5 = vtr_lo4(x1, x5), vtr_hi4(x1, x5)
            x2, x6 = vtr_lo4(x2, x6), vtr_hi4(x2, x6)
            x3, x7 = vtr_lo4(x3, x7), vtr_hi4(x3, x7)
            vstore(stage, o, x0)
            vstore(stage, o + 1, x1)
            vstore(stage, o + 2, x2)
            vstore(stage, o + 3, x3)
            vstore(stage, o + 4, x4)
            vstore(stage, o + 5, x5)
            vstore(stage, o + 6, x6)
            vstore(stage, o + 7, x7)

    @intrinsic
    def _address(typingctx, arr):
        if not isinstance(arr, types.Array):
            return None

        def codegen(context, builder, sig, args):
            a = context.make_array(sig.args[0])(context, builder, value=args[0])
            return builder.ptrtoint(a.data, ir.IntType(64))

        return types.uint64(arr), codegen

    @njit(cache=True)
    def aligned_empty(rows, dtype_example):  # pragma: no cover - compiled
        """An uninitialised C-contiguous ``[rows, 64]`` array of ``dtype_example``'s type whose rows
        start on 64-byte boundaries (one cache line per int8 row, so no load splits a line).

        Not inlined on purpose: inside a ``prange`` body numba's parfor pass would hoist an inlined
        ``np.empty`` out of the loop (the writes go through the reshaped view, not ``buf``), and the
        threads would then share one buffer.

        Examples
        --------
        >>> import numpy as np
        >>> a = aligned_empty(3, np.zeros(1, np.int8))
        >>> a.shape, a.dtype, a.ctypes.data % 64
        ((3, 64), dtype('int8'), 0)
        """
        buf = np.empty(rows * LANES + 64, dtype_example.dtype)
        skip = np.int64(((np.uint64(64) - _address(buf) % np.uint64(64)) % np.uint64(64))
                        // np.uint64(dtype_example.itemsize))
        return buf[skip:skip + rows * LANES].reshape((rows, LANES))
else:  # pragma: no cover - numba missing
    LaneVec = LaneMask = None
