"""Small helpers of the ``semcom compare`` tests: a Gaussian feature source with a given spectrum, and
``run_comparison``'s rows keyed by (scheme, channel, snr_db)."""
import torch

from experiments.comparison import CompareConfig, run_comparison
from experiments.core.sources import FeatureSource


def gaussian_source(n, lam, seed=0):
    """``n`` items of independent ``N(0, lam_i)`` components (``lam`` the variances, one per dimension)."""
    g = torch.Generator().manual_seed(seed)
    return FeatureSource("gauss", torch.randn(n, len(lam), generator=g) * torch.as_tensor(lam).sqrt().float())


def compare_rows(src, **kw):
    """``run_comparison(src, CompareConfig(**kw))`` as ``{(scheme, channel, snr_db): row}``."""
    return {(r["scheme"], r["channel"], r["snr_db"]): r for r in run_comparison(src, CompareConfig(**kw),
                                                                                progress=False)}
