"""PNG figures for experiments: attention heat maps and learning curves.

Figures are built as `matplotlib.figure.Figure` objects and rendered by the Agg canvas directly,
without pyplot: this works headless, never opens a window, leaves no figure registered with
pyplot (nothing to leak), and does not change the global matplotlib backend of a program or
notebook that imports this module.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# Per-token cell size and the largest figure side, in inches; beyond the limit cells shrink.
_CELL_INCHES = 0.35
_MAX_SIDE_INCHES = 16.0
_MIN_SIDE_INCHES = 3.0


def _token_fontsize(n: int) -> float:
    """Font size (points) for `n` tick labels along one axis: readable, shrinking past ~25."""
    return float(np.clip(250.0 / max(n, 1), 4.0, 10.0))


def _save(fig: Figure, path: str | os.PathLike) -> None:
    """Render `fig` to a PNG file at `path`, creating the parent directory. Written to a
    temporary file and renamed, so a reader never sees half an image."""
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    FigureCanvasAgg(fig)
    tmp = f"{path}.tmp{os.getpid()}"
    fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    os.replace(tmp, path)


def plot_attention(
    weights: np.ndarray,
    src_tokens: Sequence[str],
    tgt_tokens: Sequence[str],
    path: str | os.PathLike,
    title: str | None = None,
) -> None:
    """Save a heat map of attention `weights` [T, S] as a PNG at `path`.

    Row t holds the attention of target step t over the S source positions, so source tokens
    label the x axis (top to bottom reads the target in order) and target tokens the y axis.
    The colour scale is fixed to [0, 1] so maps from different models compare directly.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 2:
        raise ValueError(f"weights must be a [T, S] matrix, got shape {weights.shape}")
    t, s = weights.shape
    if t == 0 or s == 0:
        raise ValueError(f"weights must be non-empty, got shape {weights.shape}")
    if len(src_tokens) != s or len(tgt_tokens) != t:
        raise ValueError(
            f"weights shape {weights.shape} does not match {len(tgt_tokens)} target and "
            f"{len(src_tokens)} source tokens"
        )

    def side(n: int) -> float:
        return float(np.clip(n * _CELL_INCHES, _MIN_SIDE_INCHES, _MAX_SIDE_INCHES))

    # Extra width for the colorbar, extra height for the title.
    fig = Figure(figsize=(side(s) + 1.2, side(t) + (0.5 if title else 0.0)))
    ax = fig.add_subplot()
    image = ax.imshow(
        weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest"
    )
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(np.arange(s), [str(x) for x in src_tokens], rotation=90)
    ax.set_yticks(np.arange(t), [str(y) for y in tgt_tokens])
    ax.tick_params(axis="x", labelsize=_token_fontsize(s))
    ax.tick_params(axis="y", labelsize=_token_fontsize(t))
    ax.set_xlabel("source")
    ax.set_ylabel("target")
    if title:
        ax.set_title(title)
    _save(fig, path)


def plot_curves(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | os.PathLike,
    ylabel: str,
    title: str | None = None,
    bands: Mapping[str, Sequence[float]] | None = None,
    xlabel: str = "step",
    vline: float | None = None,
    log: bool = False,
) -> None:
    """Save a line plot of learning curves as a PNG at `path`.

    `series` maps a legend label to `(steps, values)` of equal length; the x axis is the step.
    `bands` optionally maps a label to half-widths drawn as a shaded band `values ± band`
    (e.g. the standard error over seeds). `vline` draws a dashed vertical line at that x
    (e.g. the longest training length). `log`: both axes logarithmic (cost against size).
    """
    fig = Figure(figsize=(7.0, 4.5))
    ax = fig.add_subplot()
    for label, (steps, values) in series.items():
        steps, values = np.asarray(steps), np.asarray(values, dtype=np.float64)
        if steps.shape != values.shape or steps.ndim != 1:
            raise ValueError(
                f"series {label!r}: steps {steps.shape} and values {values.shape} must be "
                "1-D and of equal length"
            )
        # A lone point draws no line segment; a marker keeps it visible.
        (line,) = ax.plot(steps, values, label=str(label), marker="o" if steps.size == 1 else None)
        if bands and label in bands:
            half = np.asarray(bands[label], dtype=np.float64)
            ax.fill_between(steps, values - half, values + half, color=line.get_color(), alpha=0.2)
    if vline is not None:
        ax.axvline(vline, color="gray", linestyle="--", linewidth=1)
    if log:
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if len(series) > 1:
        ax.legend()
    if title:
        ax.set_title(title)
    _save(fig, path)


def plot_attention_grid(
    panels: Sequence[tuple[str, np.ndarray, Sequence[str], Sequence[str]]],
    path: str | os.PathLike,
    columns: int = 4,
) -> None:
    """Several attention maps side by side: `panels` holds `(title, weights [T, S], source
    tokens, target tokens)`, e.g. the same validation example under each variant."""
    if not panels:
        raise ValueError("plot_attention_grid needs at least one panel")
    columns = min(columns, len(panels))
    rows = -(-len(panels) // columns)
    fig = Figure(figsize=(3.6 * columns, 3.4 * rows))
    for i, (title, weights, src, tgt) in enumerate(panels):
        weights = np.asarray(weights, dtype=np.float64)
        ax = fig.add_subplot(rows, columns, i + 1)
        ax.imshow(weights, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
        size = _token_fontsize(max(weights.shape))
        ax.set_xticks(range(len(src)), [str(t) for t in src], rotation=90, fontsize=size)
        ax.set_yticks(range(len(tgt)), [str(t) for t in tgt], fontsize=size)
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def plot_tradeoff(
    points: Mapping[str, tuple[float, float]],
    path: str | os.PathLike,
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    log_x: bool = True,
) -> None:
    """One labelled point per variant, e.g. a cost (x) against an accuracy (y)."""
    if not points:
        raise ValueError("plot_tradeoff needs at least one point")
    fig = Figure(figsize=(6.5, 4.5))
    ax = fig.add_subplot()
    for label, (x, y) in points.items():
        ax.scatter([x], [y])
        ax.annotate(str(label), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(title)
    _save(fig, path)
