"""PNG figures for experiments: attention heat maps, learning curves, and the faceted figures
of `compare` (curves, mean ± CI dots, attention grids) with one fixed colour per name.

Figures are built as `matplotlib.figure.Figure` objects and rendered by the Agg canvas directly,
without pyplot: this works headless, never opens a window, leaves no figure registered with
pyplot (nothing to leak), and does not change the global matplotlib backend of a program or
notebook that imports this module.
"""

from __future__ import annotations

import dataclasses
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


def _save(fig: Figure, path: str | os.PathLike | None) -> None:
    """Render `fig` to a PNG file at `path`, creating the parent directory. Written to a
    temporary file and renamed, so a reader never sees half an image. `path=None` writes
    nothing: the figure is only returned (a notebook shows it)."""
    FigureCanvasAgg(fig)
    if path is None:
        return
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    os.replace(tmp, path)


def plot_attention(
    weights: np.ndarray,
    src_tokens: Sequence[str],
    tgt_tokens: Sequence[str],
    path: str | os.PathLike | None = None,
    title: str | None = None,
) -> Figure:
    """A heat map of attention `weights` [T, S], saved as a PNG at `path` (unless None) and
    returned (a notebook shows the returned figure).

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
    return fig


MAX_LEGEND_INSIDE = 4  # plot_curves: more series than this put the legend right of the axes


def plot_curves(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | os.PathLike | None,
    ylabel: str,
    title: str | None = None,
    bands: Mapping[str, Sequence[float]] | None = None,
    xlabel: str = "step",
    vline: float | None = None,
    log: bool = False,
    log_y: bool = False,
) -> Figure:
    """A line plot of learning curves, saved as a PNG at `path` (unless None) and returned.

    `series` maps a legend label to `(steps, values)` of equal length; the x axis is the step.
    `bands` optionally maps a label to half-widths drawn as a shaded band `values ± band`
    (e.g. the standard error over seeds). `vline` draws a dashed vertical line at that x
    (e.g. the longest training length). `log`: both axes logarithmic (cost against size);
    `log_y`: the y axis alone (errors that differ by orders of magnitude).
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
    if log or log_y:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if len(series) > MAX_LEGEND_INSIDE:  # many lines: a legend inside would cover some
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    elif len(series) > 1:
        ax.legend()
    if title:
        ax.set_title(title)
    _save(fig, path)
    return fig


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


# Distinct colours: the names a family lists take them in its order (so each keeps its colour
# in every figure), the other names the ones after them.
COLORS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#000000", "#e6ab02", "#1b9e77", "#a6761d", "#e7298a", "#66a61e",
    "#7570b3", "#d95f02",
)  # fmt: skip
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D")


class Palette:
    """A colour per name: `fixed` names take `COLORS` in their order, whatever else a figure
    shows; `others` (sorted) take the colours after them."""

    def __init__(self, fixed: Sequence[str] = (), others: Sequence[str] = ()):
        self._colors = {name: COLORS[i % len(COLORS)] for i, name in enumerate(fixed)}
        extra = [n for n in sorted(others) if n not in self._colors]
        start = len(self._colors)
        for i, name in enumerate(extra):
            self._colors[name] = COLORS[(start + i) % len(COLORS)]

    def rank(self, name: str) -> int:
        """The name's place in the palette (fixed names first, in their order)."""
        self.color(name)
        return list(self._colors).index(name)

    def color(self, name: str) -> str:
        if name not in self._colors:
            self._colors[name] = COLORS[len(self._colors) % len(COLORS)]
        return self._colors[name]


@dataclasses.dataclass
class Series:
    """One curve: its panel (title), legend label, colour, x, mean and optional band."""

    panel: str
    label: str
    color: str
    x: Sequence[float]
    y: Sequence[float]
    band: Sequence[float] | None = None
    linestyle: str = "-"


@dataclasses.dataclass
class Point:
    """One variant's mean and CI half-width in a panel (`plot_intervals`)."""

    panel: str
    label: str
    color: str
    mean: float
    half: float
    marker: str = "o"


@dataclasses.dataclass
class Map:
    """One attention map of a grid: panel (row), label, weights `[T, S]`, source and output."""

    panel: str
    label: str
    weights: Sequence
    source: Sequence[str]
    output: Sequence[str]


def _panels(items) -> list[str]:
    return list(dict.fromkeys(item.panel for item in items))


def plot_faceted_curves(
    series: Sequence[Series],
    path: str | os.PathLike,
    ylabel: str,
    xlabel: str = "step",
    title: str | None = None,
    vline: float | None = None,
    legend_title: str = "",
) -> Figure:
    """Curves in one panel per `Series.panel` (shared y axis), each label in its colour, the
    legend outside the axes on the right (one entry per label). Returns the figure."""
    panels = _panels(series)
    fig = Figure(figsize=(4.6 * len(panels) + 0.4, 3.9), layout="constrained")
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    handles = {}
    for ax, panel in zip(axes, panels, strict=True):
        for s in (s for s in series if s.panel == panel):
            x, y = np.asarray(s.x), np.asarray(s.y, dtype=np.float64)
            marker = "o" if x.size == 1 else None
            (line,) = ax.plot(x, y, color=s.color, linestyle=s.linestyle, marker=marker, lw=1.6)
            if s.band is not None:
                half = np.asarray(s.band, dtype=np.float64)
                ax.fill_between(x, y - half, y + half, color=s.color, alpha=0.15, lw=0)
            handles.setdefault(s.label, line)
        if vline is not None:
            ax.axvline(vline, color="gray", linestyle="--", linewidth=1)
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
        if panel:
            ax.set_title(panel, fontsize=10)
    axes[0].set_ylabel(ylabel)
    if len(handles) > 1:
        fig.legend(
            list(handles.values()), list(handles), loc="outside right center",
            title=legend_title or None, fontsize=8, title_fontsize=9, frameon=False,
        )  # fmt: skip
    if title:
        fig.suptitle(title, fontsize=11)
    _save(fig, path)
    return fig


def plot_intervals(
    points: Sequence[Point], path: str | os.PathLike, xlabel: str, descending: bool = True
) -> Figure:
    """The figure for a paper: per variant its mean as a dot with 95% CI whiskers, one panel
    per `Point.panel` (shared x axis), variants sorted best on top (`descending`: higher is
    better)."""
    panels = _panels(points)
    rows = max(sum(p.panel == panel for p in points) for panel in panels)
    fig = Figure(figsize=(3.9 * len(panels) + 1.6, 0.9 + 0.3 * rows), layout="constrained")
    axes = fig.subplots(1, len(panels), sharex=True, squeeze=False)[0]
    for ax, panel in zip(axes, panels, strict=True):
        mine = sorted((p for p in points if p.panel == panel), key=lambda p: p.mean)
        if not descending:
            mine = mine[::-1]
        for y, p in enumerate(mine):
            half = p.half if np.isfinite(p.half) else 0.0
            ax.errorbar(
                p.mean, y, xerr=half, fmt=p.marker, color=p.color, ecolor=p.color,
                elinewidth=1.4, capsize=3, markersize=5,
            )  # fmt: skip
        ax.set_yticks(range(len(mine)), [p.label for p in mine], fontsize=8)
        ax.set_ylim(-0.6, len(mine) - 0.4)
        ax.grid(True, axis="x", alpha=0.3)
        if panel:
            ax.set_title(panel, fontsize=10)
    fig.supxlabel(xlabel, fontsize=9)
    _save(fig, path)
    return fig


def plot_attention_grid(maps: Sequence[Map], path: str | os.PathLike, columns: int = 8) -> Figure:
    """The same example's attention under several variants: one row per `Map.panel` (wrapped
    after `columns` maps, fewer when the maps are wide), each map titled by its label, token
    labels on both axes, and one colour bar on the fixed 0-1 scale for all of them."""
    if not maps:
        raise ValueError("plot_attention_grid needs at least one map")
    # each map sized by its tokens; as many per row as fit in about 16 inches
    map_w = max(np.asarray(m.weights).shape[1] for m in maps) * 0.16 + 0.9
    map_h = max(np.asarray(m.weights).shape[0] for m in maps) * 0.16 + 0.9
    columns = max(1, min(columns, int(16 // map_w)))
    rows = []
    for panel in _panels(maps):
        mine = [m for m in maps if m.panel == panel]
        rows += [mine[i : i + columns] for i in range(0, len(mine), columns)]
    width = max(len(r) for r in rows)
    fig = Figure(figsize=(map_w * width + 1.2, (map_h + 0.35) * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), width, squeeze=False)
    image = None
    for r, row in enumerate(rows):
        for c in range(width):
            ax = axes[r][c]
            if c >= len(row):
                ax.set_axis_off()
                continue
            m = row[c]
            weights = np.asarray(m.weights, dtype=np.float64)
            image = ax.imshow(weights, vmin=0.0, vmax=1.0, cmap="viridis", aspect="equal")
            size = min(_token_fontsize(max(weights.shape)), 7.0)
            ax.set_xticks(range(len(m.source)), [str(t) for t in m.source], rotation=90)
            ax.set_yticks(range(len(m.output)), [str(t) for t in m.output])
            ax.tick_params(labelsize=size, length=0)
            ax.set_title(m.label, fontsize=8)
            if c == 0 and m.panel:
                ax.set_ylabel(m.panel, fontsize=9)
    fig.colorbar(image, ax=axes, shrink=0.8, label="attention weight")
    _save(fig, path)
    return fig


def plot_search(
    fields: Mapping[str, bool],
    trials: Sequence[Mapping],
    colour_field: str | None,
    ylabel: str,
    path: str | os.PathLike,
) -> Figure:
    """A searched sweep at a glance: one panel per searched number (`fields`: name -> log
    scale), each trial a dot at its value and its objective, coloured by the value of
    `colour_field` (a searched choice). `trials`: dicts with `values` (field -> value),
    `y` and `pruned` (drawn hollow, at its last reported value)."""
    names = list(fields) or [colour_field or ""]
    fig = Figure(figsize=(3.4 * len(names) + 1.8, 3.2), layout="constrained")
    axes = fig.subplots(1, len(names), sharey=True, squeeze=False)[0]
    groups = list(dict.fromkeys(t["values"].get(colour_field) for t in trials))
    colours = {g: f"C{i % 10}" for i, g in enumerate(groups)}
    for ax, name in zip(axes, names, strict=True):
        for group in groups:
            for pruned in (False, True):
                mine = [
                    t
                    for t in trials
                    if t["values"].get(colour_field) == group and t["pruned"] == pruned
                ]
                if not mine:
                    continue
                xs = [t["values"][name] if fields else str(group) for t in mine]
                label = None if pruned else (str(group) if colour_field else None)
                ax.scatter(
                    xs, [t["y"] for t in mine], s=30, label=label, color=colours[group],
                    facecolors="none" if pruned else colours[group], linewidths=1.2,
                )  # fmt: skip
        if fields.get(name):
            from matplotlib import ticker

            ax.set_xscale("log")
            if all(isinstance(t["values"][name], int) for t in trials):  # 16, 32, 64, ...
                ax.xaxis.set_major_locator(ticker.LogLocator(base=2))
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel(name, fontsize=9)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(ylabel, fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels()
    if any(t["pruned"] for t in trials):
        handles.append(
            axes[0].scatter([], [], s=30, facecolors="none", edgecolors="grey", linewidths=1.2)
        )
        labels.append("pruned (last value)")
    if labels:
        title = colour_field.rsplit(".", 1)[-1] if colour_field else None
        fig.legend(handles, labels, loc="outside right upper", fontsize=8, title=title)
    _save(fig, path)
    return fig
