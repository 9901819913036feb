"""Matplotlib without a display, and figures saved atomically: shared by every module that draws."""

from __future__ import annotations

from xvertnet.io.atomic import atomic_path


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed, safe in batch jobs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path, *, dpi: int, title: str = "") -> None:
    """Give ``figure`` its title, write it as PNG to ``path`` atomically and close it."""
    if title:
        figure.suptitle(title, fontsize=10)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=dpi, format="png")
    pyplot().close(figure)
