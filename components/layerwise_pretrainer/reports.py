"""Reports of layer-wise pretraining: loss curves per layer and reconstructions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from components.common.plots import figure_png
from components.layerwise_pretrainer.stack import LayerResult


def loss_curves_png(layers: Sequence[LayerResult]) -> bytes:
    """One panel per layer: reconstruction loss (MSE) per epoch, train and held out."""
    figure = Figure(figsize=(4 * len(layers), 3.5), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(layers)))
    for ax, layer in zip(axes, layers, strict=True):
        epochs = np.arange(1, len(layer.loss) + 1)
        ax.plot(epochs, layer.loss, "-", marker=".", label="train")
        if layer.val_loss:
            ax.plot(epochs, layer.val_loss, "--", marker=".", label="held out")
        ax.set_title(f"{layer.name}: {layer.input_shape} -> {layer.code_shape}", fontsize="small")
        ax.set_xlabel("epoch")
        ax.set_ylabel("reconstruction MSE")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return figure_png(figure)


def _displayable(image: np.ndarray) -> np.ndarray:
    """Min-max scales one image to [0, 1] (any input scaling: unit, symmetric, caffe)."""
    low, high = float(image.min()), float(image.max())
    return np.clip((image - low) / (high - low), 0, 1) if high > low else np.zeros_like(image)


def reconstruction_grid_png(originals: np.ndarray, rows: Sequence[tuple[str, np.ndarray]]) -> bytes:
    """A grid: the original images on top, one row per reconstruction depth below."""
    all_rows = [("original", originals), *rows]
    count = len(originals)
    figure = Figure(figsize=(1.2 * count + 1.5, 1.3 * len(all_rows)), layout="constrained")
    axes = np.array(figure.subplots(len(all_rows), count, squeeze=False))
    for r, (label, images) in enumerate(all_rows):
        for c in range(count):
            ax = axes[r, c]
            ax.imshow(_displayable(np.asarray(images[c], np.float32)))
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize="small")
    return figure_png(figure)
