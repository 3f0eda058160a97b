"""Glimpse paths drawn over their images (PNG, matplotlib's Agg canvas, atomic writes)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from attnlab.plots import _save
from attnlab.ram.glimpse import patch_widths


def glimpse_boxes(loc, size: tuple[int, int], patch: int, scales: int) -> list[tuple]:
    """`(top, left, width)` in pixels of each patch of a glimpse at `loc [2]` (the sensor's own
    rounding: `glimpse.patch_starts`), for an image of `size = (H, W)`."""
    loc = np.clip(np.asarray(loc, np.float64), -1.0, 1.0)
    centre = (loc + 1.0) / 2.0 * np.asarray(size, np.float64)
    boxes = []
    for w in patch_widths(patch, scales):
        top, left = np.floor(centre - w / 2.0 + 0.5).astype(int)
        boxes.append((int(top), int(left), w))
    return boxes


def plot_glimpse_paths(
    images: np.ndarray,
    locations: np.ndarray,
    patch: int,
    scales: int,
    path: str | os.PathLike,
    titles: Sequence[str] | None = None,
    columns: int = 4,
) -> None:
    """Images `[n, H, W]` with their glimpses `locations [n, N, 2]` (row, col in [-1, 1]):
    per glimpse its `scales` square patches (the smallest solid, wider ones dashed), its
    centre numbered 1..N in order, and a line joining the centres. One panel per image."""
    images, locations = np.asarray(images), np.asarray(locations)
    n, num_glimpses = locations.shape[:2]
    columns = min(columns, n)
    rows = -(-n // columns)
    fig = Figure(figsize=(3.2 * columns, 3.4 * rows))
    colours = [_colour(t, num_glimpses) for t in range(num_glimpses)]
    for i in range(n):
        ax = fig.add_subplot(rows, columns, i + 1)
        size = images[i].shape[:2]
        ax.imshow(images[i], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        # pixel (r, c) is drawn centred on (c, r): a pixel-edge coordinate x is x - 0.5
        centres = (locations[i] + 1.0) / 2.0 * np.asarray(size) - 0.5
        ax.plot(centres[:, 1], centres[:, 0], color="white", linewidth=0.8, alpha=0.7)
        for t in range(num_glimpses):
            for s, (top, left, w) in enumerate(glimpse_boxes(locations[i, t], size, patch, scales)):
                ax.add_patch(
                    Rectangle(
                        (left - 0.5, top - 0.5),
                        w,
                        w,
                        fill=False,
                        edgecolor=colours[t],
                        linewidth=1.2 if s == 0 else 0.7,
                        linestyle="-" if s == 0 else "--",
                    )
                )
            ax.text(
                centres[t, 1],
                centres[t, 0],
                str(t + 1),
                color=colours[t],
                fontsize=9,
                fontweight="bold",
                ha="center",
                va="center",
            )
        ax.set_xlim(-0.5, size[1] - 0.5)
        ax.set_ylim(size[0] - 0.5, -0.5)
        ax.set_xticks([])
        ax.set_yticks([])
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def _colour(t: int, n: int):
    from matplotlib import colormaps

    return colormaps["autumn"](t / max(n - 1, 1))
