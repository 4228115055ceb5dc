"""The quasi-cyclic structure of a (rate-matched) 5G LDPC code, read from Sionna's encoder.

:func:`qc_structure` turns an ``LDPC5GEncoder`` into a :class:`QCStructure`: the lifting size, the base
graph's shifts, the layers and the variable-node index of every edge, in the order the layered decoders of
:mod:`phy.fec.ldpc_fast` and :mod:`phy.fec.ldpc_fixed` walk them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


__all__ = ["QCStructure", "qc_structure"]


# ------------------------------------------------------------------------------------------
# Code structure taken from Sionna's encoder
# ------------------------------------------------------------------------------------------
@dataclass
class QCStructure:
    """Quasi-cyclic structure of a (rate-matched) 5G LDPC code, as used by the decoder.

    Attributes
    ----------
    z : int
        Lifting size ``Z``.
    base : np.ndarray, ``[rows, cols]``, int
        Base matrix of the kept (pruned) graph: shift ``0..Z-1`` or ``-1`` for an all-zero block.
    k, n, k_ldpc, n_ldpc : int
        Info bits, transmitted bits, info bits incl. filler, mother code length.
    tx_end : int
        End (exclusive) of the transmitted parity part in the mother codeword.
    num_vns : int
        Variable nodes kept (``cols * Z``).
    var_idx : np.ndarray, ``[num_edges]``, int64
        Variable node of each edge; edges are ordered layer by layer, and inside a layer block
        by block (``[deg, Z]``), so edge ``off[l] + j*Z + i`` is row ``i`` of block ``j`` of layer ``l``.
    layer_off : np.ndarray, ``[rows + 1]``, int64
        Edge offset of each layer.
    layer_deg : np.ndarray, ``[rows]``, int64
        Number of nonzero blocks (check-node degree) of each layer.

    Examples
    --------
    >>> from sionna.phy.fec.ldpc import LDPC5GEncoder
    >>> qc = qc_structure(LDPC5GEncoder(k=100, n=200))
    >>> qc.k, qc.n, qc.z, qc.base.shape[1] - qc.base.shape[0] == qc.k_ldpc // qc.z
    (100, 200, 18, True)
    """

    z: int
    base: np.ndarray
    k: int
    n: int
    k_ldpc: int
    n_ldpc: int
    tx_end: int
    num_vns: int
    var_idx: np.ndarray
    layer_off: np.ndarray
    layer_deg: np.ndarray

    @property
    def num_edges(self) -> int:
        return int(self.var_idx.shape[0])

    @property
    def num_layers(self) -> int:
        return int(self.base.shape[0])


def _base_from_pcm(pcm, z: int) -> np.ndarray:
    """Recover the base matrix (shifts) from a lifted parity-check matrix and check it."""
    import scipy.sparse as sp

    pcm = sp.csr_matrix(pcm)
    m, n = pcm.shape
    if m % z or n % z:
        raise ValueError(f"parity-check matrix shape {pcm.shape} is not a multiple of Z={z}")
    rb, cb = m // z, n // z
    base = -np.ones((rb, cb), dtype=np.int64)
    for r in range(rb):
        cols = pcm.indices[pcm.indptr[r * z]:pcm.indptr[r * z + 1]]
        for col in cols:
            base[r, col // z] = col % z
    # Rebuild the lifted matrix from (base, Z) and compare: proves the QC reading is exact.
    rr, cc = np.nonzero(base >= 0)
    i = np.arange(z)
    rows = (rr[:, None] * z + i[None, :]).ravel()
    colsl = (cc[:, None] * z + (i[None, :] + base[rr, cc][:, None]) % z).ravel()
    lifted = sp.csr_matrix((np.ones(rows.size), (rows, colsl)), shape=pcm.shape)
    if (lifted != (pcm != 0).astype(np.float64)).nnz:
        raise ValueError("parity-check matrix is not quasi-cyclic with lifting size Z="
                         f"{z}; the fast decoder supports Sionna's 5G NR codes only")
    return base


def qc_structure(encoder) -> QCStructure:
    """Read the decoding graph of a Sionna :class:`LDPC5GEncoder` (``pcm``, ``z``, ``k``, ``n``...).

    The base matrix is recovered from ``encoder.pcm`` (and verified block by block), the
    punctured degree-1 parity columns past the transmitted part are pruned with their rows.

    Examples
    --------
    >>> from sionna.phy.fec.ldpc import LDPC5GEncoder
    >>> qc = qc_structure(LDPC5GEncoder(k=40, n=120))
    >>> qc.k, qc.n, qc.k_ldpc, qc.n_ldpc
    (40, 120, ..., ...)
    """
    try:
        from sionna.phy.fec.ldpc import LDPC5GEncoder
    except Exception as exc:  # pragma: no cover - sionna is a hard dependency
        raise ImportError("phy.fec.ldpc_fast needs sionna (sionna-no-rt)") from exc
    if not isinstance(encoder, LDPC5GEncoder):
        raise TypeError(f"encoder must be a sionna LDPC5GEncoder, got {type(encoder).__name__}")
    z, k, n = int(encoder.z), int(encoder.k), int(encoder.n)
    k_ldpc, n_ldpc = int(encoder.k_ldpc), int(encoder.n_ldpc)
    base = _base_from_pcm(encoder.pcm, z)
    rb, cb = base.shape
    tx_end = k_ldpc + n - (k - 2 * z)  # rate matching: [2Z, k) then [k_ldpc, tx_end)
    if tx_end > n_ldpc:
        raise ValueError(f"n={n} needs repetition (tx_end={tx_end} > n_ldpc={n_ldpc}); not supported")

    # Prune trailing degree-1 columns that carry no transmitted bit, with their check rows.
    deg = (base >= 0).sum(axis=0)
    first_deg1 = cb
    for c in range(cb - 1, -1, -1):
        if deg[c] == 1:
            first_deg1 = c
        else:
            break
    keep_cols = max(first_deg1, -(-tx_end // z))
    drop = cb - keep_cols
    keep_rows = rb - drop
    if drop:
        dropped_rows = {int(np.nonzero(base[:, c] >= 0)[0][0]) for c in range(keep_cols, cb)}
        if dropped_rows != set(range(keep_rows, rb)):
            raise ValueError("unexpected base graph: pruned columns do not map to the last rows")
    base = base[:keep_rows, :keep_cols].copy()

    var_idx, off, degs = [], [0], []
    i = np.arange(z)
    for r in range(keep_rows):
        cols = np.nonzero(base[r] >= 0)[0]
        for c in cols:
            var_idx.append(c * z + (i + base[r, c]) % z)
        degs.append(len(cols))
        off.append(off[-1] + len(cols) * z)
    return QCStructure(z=z, base=base, k=k, n=n, k_ldpc=k_ldpc, n_ldpc=n_ldpc, tx_end=tx_end,
                       num_vns=keep_cols * z, var_idx=np.concatenate(var_idx).astype(np.int64),
                       layer_off=np.asarray(off, dtype=np.int64), layer_deg=np.asarray(degs, dtype=np.int64))
