"""Pure functions for the package's SNR, power and bandwidth conventions.

* SNR is Es/N0 per complex channel use; with mean symbol energy ``P`` (default 1) the noise power is
  ``N0 = P / 10**(snr_db/10)`` and the noise is ``CN(0, N0)`` (``N0/2`` per real dimension).
* ``Eb/N0 = Es/N0 / (bits_per_symbol * coderate)``.
* Power normalisation is per example over the last dimension (channel uses).
* The bandwidth compression ratio counts complex channel uses by default.

Example
-------
>>> from phy.utils.conventions import snr_db_to_no, ebno_db_to_esno_db
>>> round(snr_db_to_no(10.0), 6)
0.1
>>> round(ebno_db_to_esno_db(4.0, bits_per_symbol=4, coderate=0.5), 4)
7.0103
"""
from __future__ import annotations

import math
import numbers
from typing import Sequence, Tuple, Union

import torch

__all__ = [
    "db_to_lin",
    "lin_to_db",
    "snr_db_to_no",
    "no_to_snr_db",
    "ebno_db_to_esno_db",
    "esno_db_to_ebno_db",
    "normalize_power",
    "normalize_power_batchwide",
    "bandwidth_compression_ratio",
    "check_snr",
    "check_no",
    "check_no_type",
    "check_complex",
    "check_real",
    "check_finite",
    "device_checks",
    "device_assert",
    "check_device",
]

Number = Union[int, float]
TensorLike = Union[Number, torch.Tensor]


# --------------------------------------------------------------------------------------------
# Argument checks (shared by every block; they raise, naming the argument)
# --------------------------------------------------------------------------------------------
def check_snr(snr_db, name: str = "snr_db") -> TensorLike:
    """Validate an SNR in dB: a real number or a real tensor without NaN.

    Returns ``snr_db`` unchanged (a tensor of any shape ``[...]``).

    Raises ``TypeError`` for strings, lists, complex values; ``ValueError`` for NaN.

    Examples
    --------
    >>> check_snr(3.0)
    3.0
    >>> check_snr(float("nan"))
    Traceback (most recent call last):
    ...
    ValueError: snr_db must not be NaN...
    """
    if isinstance(snr_db, bool) or not isinstance(snr_db, (numbers.Real, torch.Tensor)):
        raise TypeError(
            f"{name} must be a real number or a torch.Tensor, got {type(snr_db).__name__}: {snr_db!r}"
        )
    if isinstance(snr_db, torch.Tensor):
        if snr_db.is_complex() or snr_db.dtype == torch.bool:
            raise TypeError(f"{name} must be a real tensor, got dtype {snr_db.dtype}")
        if torch.isnan(snr_db).any():
            raise ValueError(f"{name} must not contain NaN, got {snr_db}")
    elif math.isnan(snr_db):
        raise ValueError(f"{name} must not be NaN")
    return snr_db


def check_no_type(no, name: str = "no") -> TensorLike:
    """The type half of :func:`check_no`: a real number or a real tensor (no value checks).

    Returns ``no`` unchanged (a tensor of any shape ``[...]``).

    Examples
    --------
    >>> check_no_type(-1.0)   # only the type is checked
    -1.0
    >>> check_no_type("0.1")
    Traceback (most recent call last):
    ...
    TypeError: no (noise power N0) must be a real number or tensor, got str
    """
    if isinstance(no, bool) or not isinstance(no, (numbers.Real, torch.Tensor)):
        raise TypeError(f"{name} (noise power N0) must be a real number or tensor, got {type(no).__name__}")
    if isinstance(no, torch.Tensor) and no.is_complex():
        raise TypeError(f"{name} (noise power N0) must be real, got dtype {no.dtype}")
    return no


def check_no(no, name: str = "no", finite: bool = False) -> TensorLike:
    """Validate a noise power N0: a real number/tensor, >= 0, no NaN (and finite with ``finite``).

    Returns ``no`` unchanged (a tensor of any shape ``[...]``).

    One ``aminmax`` reduction for a tensor; the exact reason is looked up only on failure.

    Examples
    --------
    >>> check_no(torch.tensor([0.1, 0.0]))
    tensor([0.1000, 0.0000])
    >>> check_no(-1.0)
    Traceback (most recent call last):
    ...
    ValueError: no (noise power N0) must be >= 0, got min -1.0
    """
    check_no_type(no, name)
    if isinstance(no, torch.Tensor):
        if not no.numel():
            return no
        if device_checks(no):  # no host synchronisation (see device_checks)
            lo_t, hi_t = torch.aminmax(no.detach())
            ok = (lo_t >= 0) & ~torch.isnan(hi_t) & ~torch.isnan(lo_t)
            if finite:
                ok = ok & (hi_t < math.inf)
            device_assert(ok, f"{name} (noise power N0) must be >= 0 and not NaN" + (" and finite" if finite else ""))
            return no
        lo, hi = (float(v) for v in torch.aminmax(no.detach()))  # NaN anywhere -> lo (or hi) NaN
        if lo >= 0 and (hi < math.inf or not finite) and not math.isnan(hi):
            return no
        if torch.isnan(no).any():
            raise ValueError(f"{name} (noise power N0) must not be NaN, got {no}")
    else:
        lo = hi = float(no)
        if math.isnan(lo):
            raise ValueError(f"{name} (noise power N0) must not be NaN, got {no}")
    if lo < 0:
        raise ValueError(f"{name} (noise power N0) must be >= 0, got min {lo}")
    if finite and hi == math.inf:
        raise ValueError(f"{name} (noise power N0) must be finite; use a large finite value for 'no signal'")
    return no


def check_device(device, name: str = "device") -> torch.device:
    """``torch.device`` of ``device`` (a str or a device; ``"auto"`` is CUDA when available, else the
    CPU); ``ValueError`` naming ``name`` for a bad name or an accelerator this machine does not have
    (an explicit ``cuda`` never falls back silently to the CPU).

    Examples
    --------
    >>> check_device("cpu")
    device(type='cpu')
    >>> check_device("tpu")
    Traceback (most recent call last):
    ...
    ValueError: device ...
    """
    if isinstance(device, torch.device):
        dev = device
    elif device == "auto":  # the rule of every command: CUDA when there is one, else the CPU
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    elif isinstance(device, str):
        try:
            dev = torch.device(device)
        except RuntimeError as exc:
            raise ValueError(f"{name} {device!r} is not a torch device ({' '.join(str(exc).split())})") from None
    else:
        raise TypeError(f"{name} must be a str or a torch.device, got {type(device).__name__}: {device!r}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name} {str(device)!r}: CUDA is not available on this machine; use 'cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"{name} {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"{name} {str(device)!r}: MPS is not available on this machine; use 'cpu'")
    elif dev.type == "xpu" and not (getattr(torch, "xpu", None) and torch.xpu.is_available()):
        raise ValueError(f"{name} {str(device)!r}: XPU is not available on this machine; use 'cpu'")
    elif dev.type not in ("cpu", "cuda", "mps", "xpu"):  # meta, ...: no data, nothing can be computed there
        raise ValueError(f"{name} {str(device)!r}: not a device that computes (expected cpu, cuda, cuda:N or mps)")
    return dev


def check_complex(x, name: str = "x") -> torch.Tensor:
    """``x`` itself when it is a complex tensor of any shape ``[...]``; ``TypeError`` naming ``name``
    otherwise (a real tensor or not a tensor).

    Examples
    --------
    >>> check_complex(torch.zeros(2, dtype=torch.complex64)).dtype
    torch.complex64
    >>> check_complex(torch.zeros(2), name="y")
    Traceback (most recent call last):
    ...
    TypeError: y must be ...
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of complex dtype, got {type(x).__name__}")
    if not x.is_complex():
        raise TypeError(f"{name} must be complex (complex64/complex128) channel symbols, got dtype {x.dtype}")
    return x


def check_real(x, name: str = "x") -> torch.Tensor:
    """``x`` itself when it is a real floating-point tensor of any shape ``[...]``; ``TypeError`` naming
    ``name`` otherwise (a complex or integer tensor, or not a tensor).

    Examples
    --------
    >>> check_real(torch.zeros(3)).shape
    torch.Size([3])
    >>> check_real(torch.zeros(3, dtype=torch.complex64), name="features")
    Traceback (most recent call last):
    ...
    TypeError: features must be ...
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a real torch.Tensor, got {type(x).__name__}")
    if x.is_complex() or not x.is_floating_point():
        raise TypeError(f"{name} must be a real floating-point tensor, got dtype {x.dtype}")
    return x


def device_checks(t: torch.Tensor) -> bool:
    """Whether value checks on ``t`` run on its device without a host synchronisation.

    True for every non-CPU tensor (CUDA ...): :func:`check_finite`, :func:`check_no` and the links'
    0/1 bit check then reduce on the device and queue a device-side assertion
    (``torch._assert_async``) with the same message, instead of reading a result on the host (one
    device-to-host synchronisation per check, several per link call). A bad value then raises at
    the next synchronisation (a CUDA device-side assertion, fatal for the CUDA context) rather than
    as a ``ValueError`` at once; on CPU nothing changes (exact checks, ``ValueError``).

    ``t`` is any tensor ``[...]``; only its device matters.

    Examples
    --------
    >>> device_checks(torch.zeros(3)), device_checks(torch.zeros(3, device="meta"))
    (False, True)
    """
    return t.device.type != "cpu"


def device_assert(cond: torch.Tensor, message: str) -> None:
    """Queue the assertion that the 0-d bool tensor ``cond`` is true, without a host synchronisation
    (``torch._assert_async``; on a CPU tensor it raises ``RuntimeError(message)`` at once).
    ``cond`` has shape ``[]`` (one element).

    Examples
    --------
    >>> device_assert(torch.tensor(True), "never shown")
    >>> device_assert(torch.tensor(False), "x must be finite")
    Traceback (most recent call last):
    ...
    RuntimeError: x must be finite
    """
    torch._assert_async(cond, message)


def check_finite(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    """``x`` itself (any shape ``[...]``) when every element is finite; ``ValueError`` naming ``name``
    otherwise (on an accelerator, a device-side assertion instead: :func:`device_checks`).

    Examples
    --------
    >>> check_finite(torch.tensor([1.0, 2.0]))
    tensor([1., 2.])
    >>> check_finite(torch.tensor([1.0, float("inf")]))
    Traceback (most recent call last):
    ...
    ValueError: x must be finite...
    """
    if device_checks(x):  # no host synchronisation: one fused reduction and a device-side assertion
        if x.numel():
            device_assert(torch.isfinite(x).all(), f"{name} must be finite, got NaN/Inf value(s) in a tensor of "
                                                   f"shape {tuple(x.shape)}")
        return x
    # Fast path: a finite sum proves every element finite (NaN/Inf propagate through the sum); a
    # one-pass reduction instead of an elementwise mask (~1.5x faster AWGN channel on CPU). Only
    # when the sum is not finite (a bad value, or an overflow of huge finite values) check exactly.
    if x.numel() and bool(torch.isfinite(x.sum())):
        return x
    if not torch.isfinite(x).all():
        bad = (~torch.isfinite(x)).sum().item()
        raise ValueError(f"{name} must be finite, got {bad} NaN/Inf value(s) in a tensor of shape {tuple(x.shape)}")
    return x


# --------------------------------------------------------------------------------------------
# dB and SNR
# --------------------------------------------------------------------------------------------
def db_to_lin(x_db: TensorLike) -> TensorLike:
    """``10**(x_db/10)`` for a number or a tensor.

    Elementwise: a tensor keeps its shape.

    Examples
    --------
    >>> db_to_lin(10.0)
    10.0
    >>> db_to_lin(torch.tensor([0.0, 20.0]))
    tensor([  1., 100.])
    """
    if isinstance(x_db, torch.Tensor):
        return torch.pow(10.0, x_db / 10.0)
    return 10.0 ** (x_db / 10.0)


def lin_to_db(x: TensorLike) -> TensorLike:
    """``10*log10(x)`` for a number or a tensor.

    Elementwise: a tensor keeps its shape.

    Examples
    --------
    >>> lin_to_db(100.0)
    20.0
    """
    if isinstance(x, torch.Tensor):
        return 10.0 * torch.log10(x)
    return 10.0 * math.log10(x) if x > 0 else -math.inf


def snr_db_to_no(snr_db: TensorLike, power: float = 1.0) -> TensorLike:
    """Noise power ``N0 = P / 10**(snr_db/10)`` for an Es/N0 in dB per complex channel use.

    Elementwise: a tensor ``snr_db`` gives ``N0`` of the same shape.

    Parameters
    ----------
    snr_db : float or Tensor
        Es/N0 in dB. ``+inf`` gives ``N0 = 0`` (noiseless), ``-inf`` gives ``N0 = inf`` (so do
        values beyond the float range, instead of an overflow error).
    power : float
        Mean symbol energy ``P`` after normalisation (default 1).

    Examples
    --------
    >>> snr_db_to_no(10.0)
    0.1
    >>> snr_db_to_no(torch.tensor([0.0, float("inf")]), power=2.0)
    tensor([2., 0.])
    """
    check_snr(snr_db)
    if isinstance(snr_db, torch.Tensor):
        return power / db_to_lin(snr_db)
    try:
        lin = db_to_lin(snr_db)
    except OverflowError:  # above ~3083 dB: N0 is below the smallest float, i.e. 0 (noiseless)
        return 0.0 * power
    return power / lin if lin > 0 else math.inf  # -inf dB (or below ~-3240 dB): no signal, N0 = inf


def no_to_snr_db(no: TensorLike, power: float = 1.0) -> TensorLike:
    """Inverse of :func:`snr_db_to_no`.

    Elementwise: a tensor ``no`` gives an SNR of the same shape.

    Examples
    --------
    >>> no_to_snr_db(0.1)
    10.0
    """
    check_no(no)
    if isinstance(no, torch.Tensor):
        return lin_to_db(power / no)
    return lin_to_db(power / no) if no > 0 else math.inf


def _check_rate(bits_per_symbol, coderate):
    if not isinstance(bits_per_symbol, numbers.Real) or bits_per_symbol <= 0:
        raise ValueError(f"bits_per_symbol must be a positive number, got {bits_per_symbol!r}")
    if not isinstance(coderate, numbers.Real) or not 0 < coderate <= 1:
        raise ValueError(f"coderate must be in (0, 1], got {coderate!r}")


def ebno_db_to_esno_db(ebno_db: TensorLike, bits_per_symbol: float, coderate: float = 1.0) -> TensorLike:
    """Es/N0 [dB] = Eb/N0 [dB] + 10 log10(bits_per_symbol * coderate).

    Examples
    --------
    >>> ebno_db_to_esno_db(0.0, bits_per_symbol=4, coderate=0.5)
    3.0102999566...
    """
    check_snr(ebno_db, "ebno_db")
    _check_rate(bits_per_symbol, coderate)
    return ebno_db + 10.0 * math.log10(bits_per_symbol * coderate)


def esno_db_to_ebno_db(esno_db: TensorLike, bits_per_symbol: float, coderate: float = 1.0) -> TensorLike:
    """Eb/N0 [dB] = Es/N0 [dB] - 10 log10(bits_per_symbol * coderate).

    Examples
    --------
    >>> round(esno_db_to_ebno_db(10.0, bits_per_symbol=2), 4)
    6.9897
    """
    check_snr(esno_db, "esno_db")
    _check_rate(bits_per_symbol, coderate)
    return esno_db - 10.0 * math.log10(bits_per_symbol * coderate)


# --------------------------------------------------------------------------------------------
# Power normalisation
# --------------------------------------------------------------------------------------------
def normalize_power(x: torch.Tensor, power: float = 1.0, eps: float = 1e-12) -> Tuple[torch.Tensor, torch.Tensor]:
    """Scale each example so that its block of symbols has mean ``|x|^2 = power``.

    The mean is taken over the last dimension only, so an example's power never depends on the
    other examples in the batch.

    Parameters
    ----------
    x : Tensor, ``[..., n]``, complex
    power : float
        Target mean symbol energy ``P`` (> 0).

    Returns
    -------
    x_norm : Tensor, ``[..., n]``, same dtype as ``x``
    scale : Tensor, ``[..., 1]``, real
        ``x == x_norm * scale``; an all-zero example gets ``scale = 0`` and stays zero.

    Example
    -------
    >>> import torch
    >>> x = torch.randn(3, 8, dtype=torch.complex64) * torch.tensor([[1.], [5.], [0.1]])
    >>> xn, s = normalize_power(x)
    >>> torch.allclose(xn.abs().pow(2).mean(-1), torch.ones(3))
    True
    """
    check_complex(x, "x")
    if not isinstance(power, numbers.Real) or not power > 0:
        raise ValueError(f"power must be a positive number, got {power!r}")
    ms = x.real.square().mean(-1, keepdim=True) + x.imag.square().mean(-1, keepdim=True)
    if not bool(torch.isfinite(ms).all()):  # |x|^2 overflowed x's precision (or x is not finite)
        return _normalize_power_rescaled(x, power, eps)
    # mask *before* the sqrt: sqrt'(0) = inf would give NaN gradients to an all-zero example
    keep = ms > power * eps * eps
    scale = torch.sqrt(torch.where(keep, ms, torch.ones_like(ms)) / power)
    x_norm = torch.where(keep, x / scale, torch.zeros_like(x))
    return x_norm, torch.where(keep, scale, torch.zeros_like(scale))


def _max_abs(x: torch.Tensor, dim=None) -> torch.Tensor:
    """The largest real or imaginary magnitude (over ``dim``, kept; over everything when ``None``)."""
    if dim is None:
        return torch.maximum(x.real.abs().amax(), x.imag.abs().amax())
    return torch.maximum(x.real.abs().amax(dim, keepdim=True), x.imag.abs().amax(dim, keepdim=True))


def _check_scale(scale: torch.Tensor, x: torch.Tensor) -> None:
    if not bool(torch.isfinite(scale).all()):
        raise ValueError(f"x has an example whose RMS amplitude exceeds the range of {x.dtype} (max "
                         f"{torch.finfo(x.real.dtype).max:.3g}); the power scale cannot be represented: scale the "
                         "features down, or pass them in double precision")


def _normalize_power_rescaled(x: torch.Tensor, power: float, eps: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """:func:`normalize_power` for values whose squares overflow: each example is first divided by
    its largest magnitude ``m`` (so the mean square is at most 2), ``scale = m * rms(x / m)``."""
    check_finite(x.real, "x (real part)")
    check_finite(x.imag, "x (imaginary part)")
    m = _max_abs(x, -1)
    nonzero = m > 0
    m = torch.where(nonzero, m, torch.ones_like(m))
    y = x / m
    ms = y.real.square().mean(-1, keepdim=True) + y.imag.square().mean(-1, keepdim=True)
    keep = nonzero & (ms * m * m > power * eps * eps)  # inf > threshold where m^2 overflows: kept
    r = torch.sqrt(torch.where(keep, ms, torch.ones_like(ms)) / power)
    scale = torch.where(keep, m * r, torch.zeros_like(r))
    _check_scale(scale, x)
    return torch.where(keep, y / r, torch.zeros_like(x)), scale


def normalize_power_batchwide(x: torch.Tensor, power: float = 1.0) -> Tuple[torch.Tensor, torch.Tensor]:
    """Batch-wide normalisation (the mean is over *every* element of ``x``).

    Returns ``(x scaled, scale)``: ``x`` of any shape ``[...]`` complex, and a 0-d scale.

    Provided only to reproduce public code that does this; an example's power then depends on the
    rest of the batch. Prefer :func:`normalize_power`.

    Examples
    --------
    >>> x = torch.tensor([[1.0, 1.0], [3.0, 3.0]], dtype=torch.complex64)
    >>> y, scale = normalize_power_batchwide(x)
    >>> y.abs().pow(2).mean(dim=-1)   # only the batch mean is 1: example 0 gets 0.2
    tensor([0.2000, 1.8000])
    """
    check_complex(x, "x")
    if not isinstance(power, numbers.Real) or not power > 0:
        raise ValueError(f"power must be a positive number, got {power!r}")
    scale = torch.sqrt((x.real.square().mean() + x.imag.square().mean()) / power)
    if not bool(torch.isfinite(scale)):  # the squares overflowed: the same in a safe scale (see normalize_power)
        check_finite(x.real, "x (real part)")
        check_finite(x.imag, "x (imaginary part)")
        m = _max_abs(x)
        y = x / m
        scale = m * torch.sqrt((y.real.square().mean() + y.imag.square().mean()) / power)
        _check_scale(scale, x)
    if not scale > 0:  # an all-zero batch stays zero (x / 0 would be NaN), as in normalize_power
        return torch.zeros_like(x), torch.zeros_like(scale).reshape([1] * x.dim())
    return x / scale, scale.reshape([1] * x.dim())


# --------------------------------------------------------------------------------------------
# Bandwidth
# --------------------------------------------------------------------------------------------
def bandwidth_compression_ratio(
    channel_uses: Number, source_shape: Union[Sequence[int], int], convention: str = "complex"
) -> float:
    """Bandwidth compression ratio of a source of ``C*H*W`` real values.

    ``BCR = n_ch / (C*H*W)`` with ``n_ch`` complex channel uses (``convention="complex"``, the
    default), or ``2*n_ch / (C*H*W)`` counting real channel uses (``convention="real"``).
    For a 32x768 VLF (12288 complex uses) and a 256x256 RGB image this gives 1/16 (complex) and
    1/8 (real), the two numbers the VLF-MSC paper quotes for the same system.

    Example
    -------
    >>> bandwidth_compression_ratio(32 * 768 // 2, (3, 256, 256))
    0.0625
    >>> bandwidth_compression_ratio(32 * 768 // 2, (3, 256, 256), convention="real")
    0.125
    """
    if isinstance(channel_uses, bool) or not isinstance(channel_uses, numbers.Real) or not channel_uses >= 0 \
            or not math.isfinite(channel_uses):
        raise ValueError(f"channel_uses must be a finite non-negative number, got {channel_uses!r}")
    dims = (source_shape,) if isinstance(source_shape, numbers.Integral) else tuple(source_shape)
    if len(dims) == 0 or any((not isinstance(d, numbers.Integral)) or d <= 0 for d in dims):
        raise ValueError(f"source_shape must be positive integers such as (C, H, W), got {source_shape!r}")
    size = math.prod(int(d) for d in dims)
    if convention == "complex":
        return channel_uses / size
    if convention == "real":
        return 2 * channel_uses / size
    raise ValueError(f"convention must be 'complex' or 'real', got {convention!r}")
