"""Layered min-sum decoding with torch operations (any device): the backend of
:class:`phy.fec.ldpc_fast.LDPC5GFastDecoder` off the CPU or without numba.
"""
from __future__ import annotations

from typing import Tuple

import torch


__all__ = []


# ------------------------------------------------------------------------------------------
# torch backend (any device)
# ------------------------------------------------------------------------------------------
def _syndrome_ok(L: torch.Tensor, layers) -> bool:
    """Whether the hard decisions (bit 1 where LLR <= 0) of every codeword satisfy all checks
    (one device-to-host synchronisation)."""
    hard = (L <= 0).to(torch.int32)
    bad = torch.zeros((), dtype=torch.int32, device=L.device)
    for (idx, d, z, _j) in layers:
        bad = bad + (hard.index_select(0, idx).view(d, z, -1).sum(dim=0) & 1).amax()
    return int(bad) == 0


def _layered_minsum_torch(llr: torch.Tensor, layers, num_iter: int, use_offset: bool, scale: float,
                          offset: float, early_stop: bool = False) -> Tuple[torch.Tensor, int]:
    """Layered min-sum on ``llr`` ``[num_vns, batch]`` (internal LLRs, batch last).

    Returns the posteriors and the iterations run (fewer than ``num_iter`` when ``early_stop``
    and the whole batch reached a zero syndrome)."""
    L = llr.clone()
    bsz = llr.shape[1]
    R = [torch.zeros(d, z, bsz, dtype=llr.dtype, device=llr.device) for (_idx, d, z, _j) in layers]
    for it in range(num_iter):
        for li, (idx, d, z, jcol) in enumerate(layers):
            T = L.index_select(0, idx).view(d, z, bsz).sub_(R[li])
            A = T.abs()
            m1, im = A.min(dim=0, keepdim=True)
            A.scatter_(0, im, float("inf"))
            m2 = A.amin(dim=0, keepdim=True)
            neg = T < 0
            par = neg.sum(dim=0, keepdim=True, dtype=torch.int32) & 1
            if use_offset:
                m1 = (m1 - offset).clamp_(min=0.0)
                m2 = (m2 - offset).clamp_(min=0.0)
            else:
                m1 = m1 * scale
                m2 = m2 * scale
            mag = torch.where(jcol == im, m2, m1)
            flip = neg ^ par.bool()
            Rn = torch.where(flip, -mag, mag)
            R[li] = Rn
            L.index_copy_(0, idx, (T + Rn).view(d * z, bsz))
        if early_stop and _syndrome_ok(L, layers):
            return L, it + 1
    return L, num_iter
