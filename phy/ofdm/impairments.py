"""Receiver phase noise and CFO on an OFDM resource grid, exactly, with inter-carrier interference (ICI).

The oscillator of :mod:`phy.channel.impairments` acts on time samples. On a frequency-domain grid
(:class:`phy.ofdm.channel.OFDMChannel`) each received OFDM symbol ``Y[r, s, :]`` (``F = fft_size`` subcarriers, all
used, in Sionna's centred order: index ``f`` is subcarrier ``f - F // 2``, the order of Sionna's
``OFDMModulator``) is taken to its ``F`` time samples, rotated sample by sample and taken back::

    y_s[n]  = IDFT_F( ifftshift(Y[r, s, :]) )[n]                n = 0 .. F-1   (unitary, norm="ortho")
    Y'[r, s, :] = fftshift( DFT_F( exp(j theta[s L + cp + n]) y_s[n] ) )       L = cp + F

``theta`` is :func:`phy.channel.impairments.phase_trajectory` at the grid's **sample rate** ``fft_size *
subcarrier_spacing`` (``Ts`` = one time sample), run over every sample of an example's OFDM symbols in time
order, the ``cp = cyclic_prefix`` samples of each symbol included (they are generated and discarded by the
receiver but advance the walk), restarting at every example, common to all receive antennas. A CFO of
``eps = cfo / subcarrier_spacing`` subcarriers spreads subcarrier ``k`` over ``l`` with the Dirichlet kernel
``|sin(pi (l - k + eps)) / (F sin(pi (l - k + eps) / F))|`` and turns it by a common phase that grows from
symbol to symbol by ``2 pi eps (cp + F) / F``; Wiener phase noise gives the direct coefficient
``E|Y'[k]|^2 = (1 / F^2) sum_{m,n} exp(-sigma^2 |m - n| / 2)`` (``sigma^2 = 2 pi linewidth / sample_rate``),
the rest of the power going to the other subcarriers as ICI. The transform is unitary per OFDM symbol, so the
energy of every received OFDM symbol is unchanged (Parseval) and white noise ``CN(0, N0)`` per RE stays
``CN(0, N0)`` per RE: the SNR convention is untouched.

Example
-------
>>> import torch
>>> Y = torch.zeros(1, 1, 8, dtype=torch.complex64); Y[..., 4] = 1          # one OFDM symbol, subcarrier 0
>>> th = 2 * torch.pi * 0.5 * torch.arange(8, dtype=torch.float64) / 8        # CFO of half a subcarrier
>>> out = apply_grid_phase(Y, th, cyclic_prefix=0)
>>> round(float(out.abs()[0, 0, 4]), 4), round(float(out.abs().square().sum()), 4)   # 1 / (8 sin(pi / 16))
(0.6407, 1.0)
"""
from __future__ import annotations

import math
import numbers
from typing import Optional

import torch

from phy.channel.impairments import PhaseImpairment, phase_trajectory

__all__ = ["grid_sample_rate", "apply_grid_phase", "impair_grid"]


def grid_sample_rate(fft_size: int, subcarrier_spacing: float) -> float:
    """The time-sample rate ``fft_size * subcarrier_spacing`` [Hz] of a grid (the ``symbol_rate`` on a grid).

    Examples
    --------
    >>> grid_sample_rate(72, 30e3)
    2160000.0
    """
    if isinstance(fft_size, bool) or not isinstance(fft_size, numbers.Integral) or fft_size < 1:
        raise ValueError(f"fft_size must be a positive int, got {fft_size!r}")
    if isinstance(subcarrier_spacing, bool) or not isinstance(subcarrier_spacing, numbers.Real) \
            or not (0 < subcarrier_spacing < math.inf):
        raise ValueError(f"subcarrier_spacing must be a positive finite number [Hz], got {subcarrier_spacing!r}")
    return float(fft_size) * float(subcarrier_spacing)


def apply_grid_phase(y: torch.Tensor, theta: torch.Tensor, cyclic_prefix: int = 0) -> torch.Tensor:
    """Rotate the time samples of every OFDM symbol of a grid by ``theta`` (see the module docstring).

    Parameters
    ----------
    y : Tensor ``[..., S, F]`` complex64/complex128
        ``S`` OFDM symbols in time order, ``F`` subcarriers in Sionna's centred order.
    theta : Tensor ``[..., S * (cyclic_prefix + F)]`` real
        Phase [rad] of every time sample, cyclic prefixes included; its leading dimensions broadcast against
        those of ``y`` (e.g. ``[examples, 1, S L]`` for ``y [examples, num_rx, S, F]``).
    cyclic_prefix : int
        Samples of cyclic prefix before each OFDM symbol (their phases are skipped).

    Returns
    -------
    Tensor ``[..., S, F]``, the dtype of ``y``.

    Examples
    --------
    >>> y = torch.zeros(1, 8, dtype=torch.complex64); y[0, 4] = 1       # one OFDM symbol, one subcarrier
    >>> out = apply_grid_phase(y, torch.full((8,), 0.3))                # a constant phase: no ICI
    >>> torch.allclose(out, y * torch.polar(torch.tensor(1.0), torch.tensor(0.3)), atol=1e-6)
    True
    >>> out = apply_grid_phase(y, 2 * torch.pi * 0.5 * torch.arange(8.0) / 8)   # CFO of half a spacing: ICI
    >>> round(float(out[0, 4].abs()), 4), round(float(out.abs().pow(2).sum()), 4)   # |Dirichlet(0.5)|, Parseval
    (0.6407, 1.0)
    """
    if not torch.is_complex(y) or y.dim() < 2:
        raise ValueError(f"y must be a complex tensor [..., S, F], got dtype {y.dtype} shape {tuple(y.shape)}")
    if isinstance(cyclic_prefix, bool) or not isinstance(cyclic_prefix, numbers.Integral) or cyclic_prefix < 0:
        raise ValueError(f"cyclic_prefix must be an int >= 0, got {cyclic_prefix!r}")
    S, F = y.shape[-2:]
    L = int(cyclic_prefix) + F
    if theta.dim() < 1 or theta.shape[-1] != S * L:
        raise ValueError(f"theta must have S * (cyclic_prefix + F) = {S * L} samples on its last dimension, got "
                         f"shape {tuple(theta.shape)}")
    th = theta.reshape(*theta.shape[:-1], S, L)[..., int(cyclic_prefix):]
    rot = torch.polar(torch.ones_like(th), th).to(y.dtype)
    t = torch.fft.ifft(torch.fft.ifftshift(y, dim=-1), dim=-1, norm="ortho")
    return torch.fft.fftshift(torch.fft.fft(t * rot, dim=-1, norm="ortho"), dim=-1)


def impair_grid(y: torch.Tensor, impairment: PhaseImpairment, cyclic_prefix: int,
                generator: Optional[torch.Generator]) -> torch.Tensor:
    """Apply the receiver oscillator ``impairment`` to received grids, one phase walk per example.

    Parameters
    ----------
    y : Tensor ``[*examples, num_rx, S, F]`` complex
        Each example's ``S`` OFDM symbols (all its slots) in time order.
    impairment : PhaseImpairment
        Its ``symbol_rate`` is the grid's sample rate (:func:`grid_sample_rate`).
    cyclic_prefix : int
    generator : torch.Generator or None
        The channel's random stream (needed for phase noise or a random initial phase).

    Returns
    -------
    Tensor ``[*examples, num_rx, S, F]``; ``y`` itself when the impairment is off.

    Example
    -------
    >>> y = torch.ones(2, 1, 3, 4, dtype=torch.complex64)                # 2 examples, 3 OFDM symbols of 4
    >>> imp = PhaseImpairment(phase_noise_linewidth=1e3, symbol_rate=grid_sample_rate(4, 15e3))
    >>> out = impair_grid(y, imp, cyclic_prefix=1, generator=torch.Generator().manual_seed(0))
    >>> out.shape, bool(torch.allclose(out.abs().square().sum(-1), torch.full((2, 1, 3), 4.0)))
    (torch.Size([2, 1, 3, 4]), True)
    """
    if not impairment.active:
        return y
    S, F = y.shape[-2:]
    theta = phase_trajectory((*y.shape[:-3], 1), S * (int(cyclic_prefix) + F), impairment, generator,
                             dtype=y.real.dtype, device=y.device)                  # common to the rx antennas
    return apply_grid_phase(y, theta, cyclic_prefix)
