"""MIMO capacities (bits per channel use = per resource element) with receiver CSI, no transmitter CSI.

Convention (:mod:`phy.mimo.detection`): Es/N0 ``snr`` is the total transmitted energy per channel use over N0 per
receive antenna; without CSIT the input is ``CN(0, (Es / num_tx) I)`` (equal power on every antenna), so a
realised channel ``H [num_rx, num_tx]`` carries ``log2 det(I + (snr / num_tx) H H^H)`` bits.

* :func:`mimo_instantaneous_capacity`: that mutual information summed over the channel uses of ``h``.
* :func:`mimo_ergodic_capacity`: its expectation over i.i.d. ``CN(0, 1)`` entries (Telatar 1999, Thm. 2)::

      C = integral_0^inf log2(1 + snr lam / num_tx) sum_{k=0}^{m-1} k! / (k + n - m)! [L_k^{n-m}(lam)]^2
          lam^{n-m} e^{-lam} d lam,          m = min(num_tx, num_rx), n = max(num_tx, num_rx)

  (``L_k^a`` the generalised Laguerre polynomials), evaluated by adaptive quadrature. ``1 x 1`` is
  :func:`phy.theory.capacity.rayleigh_ergodic_capacity`.
* :func:`mimo_channel_rate_bits`: :func:`phy.theory.capacity.channel_rate_bits` for MIMO channels (the
  Telatar integral for i.i.d. Rayleigh with per-symbol fading; fading draws of the channel otherwise).

Example
-------
>>> round(mimo_ergodic_capacity(10.0, 1, 1), 4)     # = rayleigh_ergodic_capacity(10 dB)
2.9065
>>> round(mimo_ergodic_capacity(10.0, 2, 2), 3)
5.549
"""
from __future__ import annotations

import math
import numbers

import numpy as np
import torch

__all__ = ["mimo_ergodic_capacity", "mimo_instantaneous_capacity", "mimo_channel_rate_bits"]


def _antennas(num_tx, num_rx):
    for name, v in (("num_tx", num_tx), ("num_rx", num_rx)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or not 1 <= v <= 64:
            raise ValueError(f"{name} must be an int in [1, 64], got {v!r}")
    return int(num_tx), int(num_rx)


def mimo_ergodic_capacity(snr_db, num_tx: int, num_rx: int):
    """Ergodic capacity [bits per channel use] of the i.i.d. Rayleigh ``num_rx x num_tx`` channel, equal
    power, receiver CSI (the Telatar integral of the module docstring). ``snr_db``: a number (-> float)
    or an array (-> ndarray).

    Examples
    --------
    >>> import numpy as np
    >>> c = mimo_ergodic_capacity(10.0, 1, 2)                       # 1 x 2: E log2(1 + snr chi^2_4 / 2)
    >>> g = np.random.default_rng(0).standard_normal((200000, 4))
    >>> bool(abs(c - np.log2(1 + 10 * (g ** 2).sum(1) / 2).mean()) < 0.01)
    True
    >>> bool(mimo_ergodic_capacity(10.0, 2, 2) > 2 * mimo_ergodic_capacity(10.0, 1, 1) * 0.9)   # ~2x SISO
    True
    """
    from scipy import integrate
    from scipy.special import eval_genlaguerre, gammaln

    nt, nr = _antennas(num_tx, num_rx)
    m, n = min(nt, nr), max(nt, nr)
    a = n - m
    arr = np.asarray(snr_db, dtype=float)
    if isinstance(snr_db, bool) or np.isnan(arr).any():
        raise ValueError(f"snr_db must be a real number or array without NaN, got {snr_db!r}")
    coef = [math.exp(gammaln(k + 1) - gammaln(k + a + 1)) for k in range(m)]

    def density(lam):  # m times the density of an unordered eigenvalue of H H^H (Wishart)
        return sum(c * eval_genlaguerre(k, a, lam) ** 2 for k, c in enumerate(coef)) * lam ** a * math.exp(-lam)

    def one(snr):
        rho = 10.0 ** (snr / 10.0) / nt
        f = lambda lam: math.log2(1.0 + rho * lam) * density(lam)  # noqa: E731
        return sum(integrate.quad(f, lo, hi, limit=200, epsabs=1e-12, epsrel=1e-10)[0]
                   for lo, hi in ((0.0, 4.0 * n), (4.0 * n, np.inf)))

    out = np.vectorize(one, otypes=[float])(arr)
    return float(out) if isinstance(snr_db, numbers.Real) else out


def mimo_instantaneous_capacity(h: torch.Tensor, snr_db, num_tx: int = None) -> torch.Tensor:
    """``sum_k log2 det(I + (snr / num_tx) H_k H_k^H)`` over the channel uses ``k`` of ``h [..., num_rx,
    num_tx, n]`` (float64 ``[...]``); ``snr_db`` a number or one value per example (shape ``h.shape[:-3]``).

    Examples
    --------
    >>> h = torch.eye(2, dtype=torch.complex64).reshape(2, 2, 1)
    >>> float(mimo_instantaneous_capacity(h, 0.0))     # two parallel channels at snr 1/2 each
    1.1699250014423124
    """
    if not isinstance(h, torch.Tensor) or not h.is_complex() or h.dim() < 3:
        raise ValueError(f"h must be a complex tensor [..., num_rx, num_tx, n], got "
                         f"{type(h).__name__} {tuple(getattr(h, 'shape', ()))}")
    nt = h.shape[-2] if num_tx is None else num_tx
    snr = torch.pow(10.0, torch.as_tensor(snr_db, dtype=torch.float64, device=h.device) / 10.0) / nt
    ht = h.to(torch.complex128).movedim(-1, -3)              # [..., n, M, N]
    # the eigenvalues of H^H H (N x N) or H H^H (M x M), whichever is smaller, give the same det
    gram = ht.conj().transpose(-1, -2) @ ht if ht.shape[-1] <= ht.shape[-2] else ht @ ht.conj().transpose(-1, -2)
    ev = torch.linalg.eigvalsh(gram).clamp_min(0)            # [..., n, K]
    if snr.dim():
        snr = snr[..., None, None]
    return torch.log2(1.0 + snr * ev).sum((-1, -2))


def mimo_channel_rate_bits(channel, uses: int, snr_db: float, draws: int = 2000):
    """:func:`phy.theory.capacity.channel_rate_bits` for a MIMO channel (``num_tx``/``num_rx``): ``("ergodic",
    [uses C])`` with the Telatar integral for i.i.d. Rayleigh per-symbol fading (no correlation, K = 0),
    the mean of ``draws`` fading draws for other per-symbol fading, and ``("block", one mutual information
    per draw)`` when a fade is held over several uses. The channel's random stream advances.

    Examples
    --------
    >>> from phy.channel.flat import Rayleigh
    >>> mode, rates = mimo_channel_rate_bits(Rayleigh(num_tx=2, num_rx=2, seed=0), 10, 10.0)
    >>> mode, round(float(rates[0]) / 10, 3) == round(mimo_ergodic_capacity(10.0, 2, 2), 3)
    ('ergodic', True)
    >>> mode, rates = mimo_channel_rate_bits(Rayleigh(num_tx=2, num_rx=2, block_length=10, seed=0), 10, 10.0,
    ...                                      draws=5)
    >>> mode, rates.shape                                             # one mutual information per fade
    ('block', (5,))
    """
    from phy.utils.conventions import snr_db_to_no

    if isinstance(uses, bool) or not isinstance(uses, numbers.Integral) or uses < 1:
        raise ValueError(f"uses must be a positive int, got {uses!r}")
    if isinstance(draws, bool) or not isinstance(draws, numbers.Integral) or draws < 1:
        raise ValueError(f"draws must be a positive int, got {draws!r}")
    nt, nr = int(channel.num_tx), int(channel.num_rx)
    block = getattr(channel, "block_length", 1)
    iid = (getattr(channel, "k_factor", None) == 0.0 and not getattr(channel, "corr_tx", 0.0)
           and not getattr(channel, "corr_rx", 0.0))
    if block == 1 and iid:
        return "ergodic", np.array([uses * mimo_ergodic_capacity(float(snr_db), nt, nr)])
    x = torch.zeros(int(draws), nt, int(uses), dtype=torch.complex64)
    h = channel(x, snr_db_to_no(float(snr_db))).h
    mi = mimo_instantaneous_capacity(h, float(snr_db), nt).cpu().numpy()
    if block == 1:
        return "ergodic", np.array([float(mi.mean())])
    return "block", mi
