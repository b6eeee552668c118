"""Figures as PNG bytes, for the reports components write beside their artifacts."""

from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def figure_png(figure: Figure) -> bytes:
    """The figure as PNG bytes (Agg canvas, 100 dpi; no pyplot state, no display)."""
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()
