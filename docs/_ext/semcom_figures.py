"""A sphinx-gallery image scraper for the figures the package's plotting functions return.

:mod:`experiments.core.plots` draws on Agg canvases without pyplot (no global state, safe without a
display), so sphinx-gallery's own matplotlib scraper, which collects pyplot's open figures, does not see
them. :func:`scrape_returned_figures` shows, after each cell of a tutorial, every
:class:`matplotlib.figure.Figure` that the cell left in a variable of the tutorial's namespace and that was
not shown before. Figures managed by pyplot are left to sphinx-gallery's ``"matplotlib"`` scraper.
"""
from __future__ import annotations

from pathlib import Path


def scrape_returned_figures(block, block_vars, gallery_conf, **kwargs) -> str:
    """Save the new figures of the tutorial's namespace as the cell's images; return their reST."""
    from matplotlib.figure import Figure
    from sphinx_gallery.scrapers import figure_rst

    seen = block_vars.setdefault("_semcom_figures_seen", [])  # the figures themselves: ids can be reused
    paths = []
    for value in list(block_vars["example_globals"].values()):
        candidates = value if isinstance(value, (tuple, list)) else (value,)
        for fig in candidates:
            if not isinstance(fig, Figure) or any(fig is s for s in seen):
                continue
            if getattr(fig.canvas, "manager", None) is not None:  # pyplot's: the matplotlib scraper shows it
                continue
            seen.append(fig)
            path = Path(next(block_vars["image_path_iterator"]))
            fig.savefig(path, dpi=fig.dpi)
            paths.append(str(path))
    return figure_rst(paths, gallery_conf["src_dir"])
