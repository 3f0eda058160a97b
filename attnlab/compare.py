"""Compare runs: final metrics per variant as mean ± 95% CI over seeds, Holm-corrected paired
tests against the best variant, ties marked as ties, and figures faceted like the question.

`python -m attnlab compare DIR...` finds every run under the given directories (a folder with
`config.json` and `summary.json`). Variants are the values of the fields the user varied: a
sweep's axes as `sweep.json` records them (fields a trial sets only because of another, like a
decoder size that follows the score, are not axes), else every config field that differs
between the runs; the seed is never one. It writes to `<first DIR>/report/`:

- `table.md` / `table.csv`: per variant, the number of seeds, the parameter count, and mean ±
  half-width of the 95% Student-t confidence interval of each metric its family reports; the
  variants ranked by `--metric`; every other variant's paired t-test against the top one on the
  seeds both share, Holm-corrected over those comparisons. A variant whose corrected p is >=
  0.05 (or that cannot be tested: fewer than two shared seeds) is *tied* with the top one: the
  top one is called best only when nothing ties with it.
- `summary_<metric>.png`: the figure for a paper: per variant the mean with its 95% CI as a dot
  with whiskers, variants sorted, one panel per facet value;
- `curves_<metric>.png`, `accuracy_by_length.png`, `attention_grid.png`: learning curves,
  accuracy against source length (Bahdanau et al. 2015, Fig. 2), the same validation example's
  attention under every variant.

Figures have one panel per value of the facet field (`--facet`; by default the family's, e.g.
the decoder order, when it varies), colour by the remaining variant field, with one fixed colour
per name that the family lists (every score keeps its colour in every figure), and the legend
outside the axes.

From Python, `load_runs(*dirs)` gives a pandas DataFrame (one row per run) and
`summarize(df, metric, by)` the mean ± CI table; `compare` is built on both.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from attnlab import families, plots
from attnlab.config_lib import ConfigError, flatten, upgrade_saved
from attnlab.writers import DamagedFileError, read_json, read_jsonl

ALPHA = 0.05  # significance level of the Holm-corrected tests against the best variant
SWEEP_FILE = "sweep.json"


@dataclass
class RunRecord:
    """One finished run: where it is, its flattened config and its summary."""

    path: str
    config: dict
    summary: dict


def _walk(directories):
    """`(path, flattened config, summary)` of every run under `directories`, in path order; the
    container of a several-seed run is skipped (its seeds are runs of their own)."""
    found = []
    for top in directories:
        for root, _, files in os.walk(top):
            if "summary.json" in files and "config.json" in files:
                try:
                    summary = read_json(os.path.join(root, "summary.json"))
                    config = read_json(os.path.join(root, "config.json"))
                    if not isinstance(summary, dict) or not isinstance(config, dict):
                        raise DamagedFileError(f"{root}: summary.json or config.json is not a dict")
                except DamagedFileError as err:  # reported, and the other runs still compared
                    print(f"warning: skipped {root}: {err}", file=sys.stderr)
                    continue
                if "seed_dirs" in summary:
                    continue
                found.append((root, upgrade_saved(flatten(config)), summary))
    return sorted(found, key=lambda r: r[0])


def find_runs(directories) -> list[RunRecord]:
    """Every completed run under `directories` (sorted by path)."""
    return [
        RunRecord(path, config, summary)
        for path, config, summary in _walk(directories)
        if summary.get("status") == "completed"
    ]


def _is_scalar(value) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def load_runs(*directories):
    """Every run under `directories` as a pandas DataFrame, one row per run: `path`, `status`,
    `seed`, the flattened config (`model.score`, ...), the final metrics and other scalar
    facts of `summary.json` (`eval/seq_accuracy`, `num_params`, ...) and of `timing.json`
    (`train/tokens_per_sec`, `wall_seconds`, ...). Failed and interrupted runs are rows too
    (their metrics are missing)."""
    import pandas as pd

    rows = []
    for path, config, summary in _walk(directories):
        row = {"path": path, "status": summary.get("status")}
        row.update({k: v for k, v in config.items() if _is_scalar(v)})
        timing = os.path.join(path, "timing.json")
        if os.path.exists(timing):
            with contextlib.suppress(DamagedFileError, AttributeError):  # speed is optional
                row.update({k: v for k, v in read_json(timing).items() if _is_scalar(v)})
        row.update({k: v for k, v in summary.items() if _is_scalar(v)})
        rows.append(row)
    return pd.DataFrame(rows)


def mean_ci(values, level: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the Student-t confidence interval (NaN half-width for n < 2)."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(x) == 0:
        return float("nan"), float("nan")
    if len(x) < 2:
        return float(x.mean()), float("nan")
    t = stats.t.ppf(0.5 + level / 2, df=len(x) - 1)
    return float(x.mean()), float(t * x.std(ddof=1) / math.sqrt(len(x)))


def paired_p_value(a: dict, b: dict) -> float:
    """Two-sided paired t-test over the seeds in both `{seed: value}` maps (NaN if < 2 pairs)."""
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return float("nan")
    x, y = np.array([a[s] for s in seeds]), np.array([b[s] for s in seeds])
    if np.allclose(x, y):
        return 1.0
    return float(stats.ttest_rel(x, y).pvalue)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down correction of `p_values` for multiple comparisons: the i-th smallest of
    m p-values becomes `max_{j <= i} min(1, (m - j + 1) p_(j))`. NaN entries (tests that could
    not be made) stay NaN and do not count in m."""
    finite = sorted((p, i) for i, p in enumerate(p_values) if math.isfinite(p))
    out = [float("nan")] * len(p_values)
    running, m = 0.0, len(finite)
    for rank, (p, i) in enumerate(finite):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def summarize(df, metric: str, by: Sequence[str] = (), higher_is_better: bool | None = True):
    """The mean ± 95% CI table of `metric` per group of the `by` columns, as a DataFrame.

    Columns: the `by` columns, `n` (runs with the metric), `mean`, `ci95` (half-width); with a
    direction (`higher_is_better` True or False) also `p_holm` (paired t-test of each group
    against the top one on the seeds both share, Holm-corrected over those tests) and
    `verdict`: `best` (the top group, when no other ties with it), `tied` (the top group and
    every group not significantly different from it at `ALPHA`, or that cannot be tested), or
    `""`. Rows are sorted best first. Only completed runs count."""
    import pandas as pd

    by = list(by)
    done = df[df["status"] == "completed"] if "status" in df else df
    done = done[done[metric].notna()] if metric in done else done.iloc[0:0]
    rows = []
    groups = done.groupby(by, sort=False, dropna=False) if by else [((), done)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        values = [float(v) for v in group[metric]]
        mean, half = mean_ci(values)
        seeds = group["seed"] if "seed" in group else range(len(values))
        row = dict(zip(by, key, strict=True), n=len(values), mean=mean, ci95=half)
        row["_by_seed"] = dict(zip(seeds, values, strict=True))
        rows.append(row)
    table = pd.DataFrame(rows, columns=[*by, "n", "mean", "ci95", "_by_seed"])
    if higher_is_better is None or table.empty:
        return table.drop(columns="_by_seed")
    order = table["mean"].sort_values(ascending=not higher_is_better, kind="stable").index
    table = table.loc[order].reset_index(drop=True)
    top = table["_by_seed"][0]
    raw = [paired_p_value(top, other) for other in table["_by_seed"][1:]]
    table["p_holm"] = [float("nan"), *holm(raw)]
    tied = [False] + [not (p < ALPHA) for p in table["p_holm"][1:]]  # NaN: cannot tell apart
    verdict = ["tied" if any(tied) else "best"] + ["tied" if t else "" for t in tied[1:]]
    table["verdict"] = verdict
    return table.drop(columns="_by_seed")


# ------------------------------------------------------------------------------------------
# Variants: which fields the user varied, how to name and colour them
# ------------------------------------------------------------------------------------------


@dataclass
class Variant:
    """One variant: its values of the variant fields (`{field: value}`), its label and runs."""

    values: dict
    label: str
    runs: list


def sweep_axes(directories) -> list[str] | None:
    """The axes the sweeps under `directories` recorded in `sweep.json` (their union), or None
    when there is no sweep file."""
    axes, found = [], False
    for top in directories:
        for root, _, files in os.walk(top):
            if SWEEP_FILE in files:
                try:
                    recorded = read_json(os.path.join(root, SWEEP_FILE)).get("axes")
                except (DamagedFileError, AttributeError):  # labels then use what differs
                    recorded = None
                if recorded is not None:
                    found = True
                    axes += [a for a in recorded if a not in axes]
    return axes if found else None


def _differing(runs: list[RunRecord]) -> list[str]:
    keys = sorted({k for r in runs for k in r.config})
    return [k for k in keys if k != "seed" and len({json.dumps(r.config.get(k)) for r in runs}) > 1]


def variant_keys(runs: list[RunRecord], axes: list[str] | None = None) -> list[str]:
    """The fields that name the variants: the sweep's `axes` that differ between the runs, plus
    any other differing field that the axes do not determine (runs of several sweeps); without
    axes, every config field that differs between the runs. Never the seed."""
    differing = _differing(runs)
    if axes is None:
        return differing
    keys = [a for a in axes if a in differing]
    for field in differing:
        if field in keys:
            continue
        values: dict = {}
        for r in runs:
            combo = json.dumps([r.config.get(k) for k in keys])
            values.setdefault(combo, set()).add(json.dumps(r.config.get(field)))
        if any(len(v) > 1 for v in values.values()):  # not implied by the axes: a variant field
            keys.append(field)
    return keys


def short_names(keys: Sequence[str]) -> dict[str, str]:
    """`model.score` -> `score`, unless two keys share their last component."""
    short = [k.rsplit(".", 1)[-1] for k in keys]
    unique = len(set(short)) == len(short)
    return {k: (s if unique else k) for k, s in zip(keys, short, strict=True)}


def _value(value) -> str:
    """A variant's value in labels: floats as written (`0.003`), sampled ones to 4 significant
    digits (`0.006239`, not `0.006238695217229555`)."""
    if not isinstance(value, float):
        return str(value)
    written = repr(value)
    return written if len(written) <= 8 else f"{value:.4g}"


def group_variants(runs: list[RunRecord], axes: list[str] | None = None):
    """`(variant fields, variants)`: runs grouped by their values of the variant fields."""
    keys = variant_keys(runs, axes)
    names = short_names(keys)
    groups: dict[str, Variant] = {}
    for r in runs:
        values = {k: r.config.get(k) for k in keys}
        label = ", ".join(f"{names[k]}={_value(v)}" for k, v in values.items()) or "all runs"
        groups.setdefault(label, Variant(values, label, [])).runs.append(r)
    return keys, list(groups.values())


@dataclass
class Layout:
    """How the figures show the variants: `facet` (a field, one panel per value, or None),
    `colour` (the field whose value picks the colour, or None) and the palette."""

    facet: str | None
    colour: str | None
    palette: plots.Palette
    names: dict
    styles: dict = dataclasses.field(default_factory=dict)  # other values -> style index

    def panel(self, v: Variant) -> str:
        return (
            ""
            if self.facet is None
            else f"{self.names[self.facet]} = {_value(v.values[self.facet])}"
        )

    def key(self, v: Variant) -> str:
        """The legend label: the variant's values except the facet's."""
        rest = [(k, x) for k, x in v.values.items() if k != self.facet]
        if len(rest) == 1:
            return _value(rest[0][1])
        return ", ".join(f"{self.names[k]}={_value(x)}" for k, x in rest) or "all runs"

    def color(self, v: Variant) -> str:
        name = _value(v.values[self.colour]) if self.colour else self.key(v)
        return self.palette.color(name)

    def _others(self, v: Variant) -> str:
        return json.dumps([x for k, x in v.values.items() if k not in (self.facet, self.colour)])

    def linestyle(self, v: Variant) -> str:
        """Variants that share a colour differ in line style (their other fields)."""
        index = self.styles.setdefault(self._others(v), len(self.styles))
        return plots.LINESTYLES[index % len(plots.LINESTYLES)]

    def marker(self, v: Variant) -> str:
        index = self.styles.setdefault(self._others(v), len(self.styles))
        return plots.MARKERS[index % len(plots.MARKERS)]

    def order(self, v: Variant) -> tuple:
        """Sort key: facet value, then the colour's place in the palette (the family's order
        of names, e.g. the score functions'), then the label."""
        colour_name = _value(v.values[self.colour]) if self.colour else self.key(v)
        return (self.panel(v), self.palette.rank(colour_name), v.label)

    def legend_title(self) -> str:
        rest = [k for k in self.names if k != self.facet]
        return self.names[rest[0]] if len(rest) == 1 else ""


def layout(variants: list[Variant], keys: list[str], runs, facet: str | None = None) -> Layout:
    """The facet (`facet`, else the first family's `facet_field` when it is a variant field),
    the colour field (the first other variant field) and a palette that gives the names the
    families list (`Family.fixed_colors`) their own colour."""
    fams = run_families(runs)
    if facet is not None and facet not in keys:
        raise ConfigError(
            f"--facet={facet} is not a field the variants differ in; they differ in: "
            f"{', '.join(keys) or 'nothing'}"
        )
    if facet is None:
        facet = next((f.facet_field for f in fams if f.facet_field in keys), None)
    rest = [k for k in keys if k != facet]
    colour = rest[0] if rest else None
    fixed = [n for f in fams for n in f.fixed_colors]
    others = sorted({_value(v.values[colour]) if colour else v.label for v in variants})
    lay = Layout(facet, colour, plots.Palette(fixed, others), short_names(keys))
    for v in sorted(variants, key=lay._others):  # styles in a stable order
        lay.linestyle(v)
    return lay


# ------------------------------------------------------------------------------------------
# The table
# ------------------------------------------------------------------------------------------


def run_families(runs: list[RunRecord]) -> list[families.Family]:
    """The families of `runs`, in order of first appearance."""
    names = dict.fromkeys(families.name_of(r.config) for r in runs)
    return [families.get(n) for n in names]


def report_metrics(runs: list[RunRecord]) -> list[str]:
    """The metrics the runs' families report that at least one run has, in the families'
    order."""
    names = [m for f in run_families(runs) for m in f.report_metrics]
    return [m for m in dict.fromkeys(names) if any(m in r.summary for r in runs)]


def check_metric(runs: list[RunRecord], metric: str) -> None:
    """`ConfigError` naming the metrics the runs have when none of them logged `metric`."""
    if any(r.summary.get(metric) is not None for r in runs):
        return
    known = sorted({k for r in runs for k, v in r.summary.items() if "/" in k and _is_number(v)})
    raise ConfigError(
        f"--metric={metric} is not a metric of these runs; they have: {', '.join(known)}"
    )


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _frame(variants: list[Variant]):
    """The runs of `variants` as a DataFrame with a `variant` column (their label)."""
    import pandas as pd

    rows = []
    for v in variants:
        for r in v.runs:
            row = {"variant": v.label, "seed": r.config.get("seed"), "status": "completed"}
            row.update({k: x for k, x in r.summary.items() if _is_number(x)})
            rows.append(row)
    return pd.DataFrame(rows)


def comparison_table(
    variants: list[Variant], metrics, best_metric: str, higher_is_better: bool = True
) -> list[dict]:
    """One row per variant, ranked by `best_metric`: `variant`, `n`, `params`, `(mean, ci)` per
    metric, `p_holm` against the top variant and `verdict` (see `summarize`)."""
    df = _frame(variants)
    ranked = summarize(df, best_metric, ["variant"], higher_is_better)
    cells = {m: summarize(df, m, ["variant"], None).set_index("variant") for m in metrics}
    by_label = {v.label: v for v in variants}
    order = list(ranked["variant"]) + [
        v.label for v in variants if v.label not in set(ranked["variant"])
    ]
    rows = []
    for label in order:
        v = by_label[label]
        row = {"variant": label, "n": len(v.runs), "params": v.runs[0].summary.get("num_params")}
        for m in metrics:
            have = label in cells[m].index
            row[m] = (cells[m].at[label, "mean"], cells[m].at[label, "ci95"]) if have else (
                float("nan"), float("nan"))  # fmt: skip
        match = ranked[ranked["variant"] == label]
        row["p_holm"] = float(match["p_holm"].iloc[0]) if len(match) else float("nan")
        row["verdict"] = match["verdict"].iloc[0] if len(match) else ""
        rows.append(row)
    return rows


def _cell(mean, half):
    if not math.isfinite(mean):
        return "–"
    return f"{mean:.4f}" if not math.isfinite(half) else f"{mean:.4f} ± {half:.4f}"


def _p(p: float) -> str:
    return "" if not math.isfinite(p) else f"{p:.3g}"


def to_markdown(rows, metrics, best_metric) -> str:
    head = ["variant", "n", "params", *metrics, f"p vs top, Holm ({best_metric})"]
    lines = ["| " + " | ".join(head) + " |", "|---|---:|---:|" + "---:|" * (len(head) - 3)]
    for r in rows:
        label = {"best": f"**{r['variant']}** (best)", "tied": f"**{r['variant']}** (tied)"}
        params = f"{r['params']:,}" if _is_number(r["params"]) else "–"
        cells = [label.get(r["verdict"], r["variant"]), str(r["n"]), params]
        cells += [_cell(*r[m]) for m in metrics] + [_p(r["p_holm"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_csv(rows, metrics) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out)
    head = ["variant", "n", "params", "verdict", "p_holm"]
    writer.writerow(head + [f"{m}{s}" for m in metrics for s in ("_mean", "_ci95")])
    for r in rows:
        writer.writerow([r[k] for k in head] + [x for m in metrics for x in r[m]])
    return out.getvalue()


# ------------------------------------------------------------------------------------------
# Figures
# ------------------------------------------------------------------------------------------


def _series(v: Variant, lay: Layout, x, mean, band):
    return plots.Series(lay.panel(v), lay.key(v), lay.color(v), x, mean, band, lay.linestyle(v))


def learning_curves(variants: list[Variant], metric: str, path: str, lay: Layout) -> bool:
    """Mean ± standard error over seeds of `metric` against step; False if no run logged it."""
    series = []
    for v in variants:
        per_run = []
        for r in v.runs:
            recs = read_jsonl(os.path.join(r.path, "metrics.jsonl"))
            per_run.append({x["step"]: x[metric] for x in recs if x.get(metric) is not None})
        steps = sorted(set.intersection(*(set(p) for p in per_run))) if per_run else []
        if steps:
            values = np.array([[p[s] for s in steps] for p in per_run])
            sem = values.std(0, ddof=1) / math.sqrt(len(values)) if len(values) > 1 else None
            series.append(_series(v, lay, steps, values.mean(0), sem))
    if not series:
        return False
    plots.plot_faceted_curves(
        series, path, ylabel=metric, title=f"{metric}: mean ± s.e. over seeds",
        legend_title=lay.legend_title(),
    )  # fmt: skip
    return True


def accuracy_by_length(variants: list[Variant], path: str, lay: Layout) -> bool:
    """Greedy exact-match accuracy against source length, validation and longer split pooled
    (Bahdanau et al. 2015, Fig. 2); mean ± standard error over seeds; dashed line at the
    longest training length. False when no run recorded it."""
    series, train_max = [], None
    for v in variants:
        per_run = []
        for r in v.runs:
            table = {}
            recorded = r.summary.get("seq_accuracy_by_length", {})
            for prefix in ("eval", "eval_long"):
                for length, (right, total) in recorded.get(prefix, {}).items():
                    entry = table.setdefault(int(length), [0, 0])
                    entry[0], entry[1] = entry[0] + right, entry[1] + total
            if table:
                per_run.append({n: right / total for n, (right, total) in table.items()})
            train_max = r.config.get("data.max_len", train_max)
        lengths = sorted(set.intersection(*(set(p) for p in per_run))) if per_run else []
        if lengths:
            values = np.array([[p[n] for n in lengths] for p in per_run])
            sem = values.std(0, ddof=1) / math.sqrt(len(values)) if len(values) > 1 else None
            series.append(_series(v, lay, lengths, values.mean(0), sem))
    if not series:
        return False
    plots.plot_faceted_curves(
        series, path, ylabel="seq_accuracy (greedy)", xlabel="source length",
        title="accuracy by source length (dashed: longest training length)",
        vline=train_max, legend_title=lay.legend_title(),
    )  # fmt: skip
    return True


def summary_figure(
    variants: list[Variant], metric: str, path: str, lay: Layout, higher_is_better: bool
) -> bool:
    """Mean ± 95% CI of `metric` per variant, sorted, one panel per facet value."""
    points = []
    for v in variants:
        values = [r.summary.get(metric) for r in v.runs]
        mean, half = mean_ci([x for x in values if _is_number(x)])
        if math.isfinite(mean):
            point = plots.Point(lay.panel(v), lay.key(v), lay.color(v), mean, half, lay.marker(v))
            points.append(point)
    if not points:
        return False
    better = "higher" if higher_is_better else "lower"
    plots.plot_intervals(
        points, path, xlabel=f"{metric} (mean ± 95% CI over seeds; {better} is better)",
        descending=higher_is_better,
    )  # fmt: skip
    return True


def attention_grid(variants: list[Variant], path: str, lay: Layout, example: int = 0) -> bool:
    """The same validation example's attention under each variant (its first seed's run).
    Variants without attention (all weights zero, e.g. score `none`) get no panel."""
    panels = []
    for v in variants:
        file = os.path.join(v.runs[0].path, "attention", "examples.json")
        if os.path.exists(file):
            with open(file) as f:
                examples = json.load(f)
            if len(examples) > example and np.any(np.asarray(examples[example]["weights"])):
                e = examples[example]
                panels.append(
                    plots.Map(lay.panel(v), lay.key(v), e["weights"], e["source"], e["output"])
                )
    if not panels:
        return False
    plots.plot_attention_grid(panels, path)
    return True


# ------------------------------------------------------------------------------------------


def compare(
    directories,
    out_dir: str | None = None,
    metrics=None,
    best_metric: str | None = None,
    facet: str | None = None,
) -> str:
    """Writes the report for the runs under `directories`; returns the Markdown table.

    `metrics`: the table's columns (default: what the runs' families report); `best_metric`:
    the metric that ranks variants (default: the first run's `train.best_metric`), in its
    family's direction; `facet`: the field whose values get a panel each in the figures."""
    runs = find_runs(directories)
    if not runs:
        raise FileNotFoundError(
            f"no completed runs (config.json + summary.json) under {directories}"
        )
    best_metric = best_metric or runs[0].config.get("train.best_metric", "eval/seq_accuracy")
    check_metric(runs, best_metric)
    higher = run_families(runs)[0].higher_is_better(best_metric)
    out_dir = out_dir or os.path.join(directories[0], "report")
    os.makedirs(out_dir, exist_ok=True)
    keys, variants = group_variants(runs, sweep_axes(directories))
    lay = layout(variants, keys, runs, facet)
    variants = sorted(variants, key=lay.order)
    if metrics is None:
        metrics = report_metrics(runs)
    metrics = [m for m in metrics if any(m in r.summary for r in runs)]
    rows = comparison_table(variants, metrics, best_metric, higher)
    table = to_markdown(rows, metrics, best_metric)
    _write(os.path.join(out_dir, "table.md"), table)
    _write(os.path.join(out_dir, "table.csv"), to_csv(rows, metrics))
    seeds = sorted({r["n"] for r in rows})
    report = [
        f"# Comparison of {len(runs)} runs, {len(variants)} variants",
        "",
        f"Variants differ in: {', '.join(keys) or 'nothing (seeds only)'}. Mean ± 95% CI "
        f"(Student t) over {'/'.join(map(str, seeds))} seeds. Ranked by {best_metric} "
        f"({'higher' if higher else 'lower'} is better); p: paired t-test of each variant "
        "against the top one on the seeds both share, Holm-corrected over those tests. "
        f"**(tied)**: not significantly different from the top one at {ALPHA} (or not "
        "testable); **(best)** only when nothing ties with it.",
        "",
        table,
    ]
    figures = []
    for metric in dict.fromkeys([best_metric, *metrics]):
        name = f"summary_{metric.replace('/', '_')}.png"
        up = run_families(runs)[0].higher_is_better(metric)
        if summary_figure(variants, metric, os.path.join(out_dir, name), lay, up):
            figures.append((f"{metric}, mean ± 95% CI", name))
    for metric in ("train/loss", best_metric):
        name = f"curves_{metric.replace('/', '_')}.png"
        if learning_curves(variants, metric, os.path.join(out_dir, name), lay):
            figures.append((metric, name))
    if accuracy_by_length(variants, os.path.join(out_dir, "accuracy_by_length.png"), lay):
        figures.append(("accuracy by source length", "accuracy_by_length.png"))
    if attention_grid(variants, os.path.join(out_dir, "attention_grid.png"), lay):
        figures.append(("attention, validation example 0", "attention_grid.png"))
    report += [f"![{m}]({name})" for m, name in figures]
    _write(os.path.join(out_dir, "report.md"), "\n".join(report) + "\n")
    return table


def _write(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
