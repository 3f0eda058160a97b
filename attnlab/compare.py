"""Compare runs: final metrics per variant as mean ± 95% CI over seeds, with a paired test.

`python -m attnlab compare DIR...` finds every run under the given directories (a folder with
`config.json` and `summary.json`), groups them by every config field that differs between runs
except `seed` (the variants), and writes to `<first DIR>/report/`:
- `table.md` / `table.csv`: per variant, the number of seeds and mean ± half-width of the 95%
  Student-t confidence interval of each metric its family reports (`Family.report_metrics`);
  the best variant (by `--metric`, in that metric's direction) is marked, and
  every other variant gets the p-value of a paired t-test against it over the seeds both share;
- `curves_<metric>.png`: learning curves, mean over seeds with a band of ± one standard error;
- `accuracy_by_length.png`: greedy accuracy against source length, including the lengths of the
  longer split never seen in training (the analogue of Bahdanau et al. 2015, Fig. 2);
- `attention_grid.png`: the same validation example's attention under every variant;
- `report.md` linking them.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass

import numpy as np
from scipy import stats

from attnlab import families, plots
from attnlab.config_lib import ConfigError, flatten
from attnlab.writers import read_jsonl


@dataclass
class RunRecord:
    """One finished run: where it is, its flattened config and its summary."""

    path: str
    config: dict
    summary: dict


def find_runs(directories) -> list[RunRecord]:
    """Every completed run under `directories` (sorted by path)."""
    runs = []
    for top in directories:
        for root, _, files in os.walk(top):
            if "summary.json" in files and "config.json" in files:
                with open(os.path.join(root, "summary.json")) as f:
                    summary = json.load(f)
                if summary.get("status") != "completed" or "seed_dirs" in summary:
                    continue  # unfinished, or the container of a several-seed run
                with open(os.path.join(root, "config.json")) as f:
                    config = flatten(json.load(f))
                runs.append(RunRecord(root, config, summary))
    return sorted(runs, key=lambda r: r.path)


def variant_keys(runs: list[RunRecord]) -> list[str]:
    """Config fields whose values differ between runs, except the seed."""
    keys = sorted({k for r in runs for k in r.config})
    return [k for k in keys if k != "seed" and len({json.dumps(r.config.get(k)) for r in runs}) > 1]


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


@dataclass
class Variant:
    label: str
    runs: list


def group_variants(runs: list[RunRecord]) -> tuple[list[str], list[Variant]]:
    keys = variant_keys(runs)
    groups: dict[str, list[RunRecord]] = {}
    for r in runs:
        label = ", ".join(f"{k.rsplit('.', 1)[-1]}={r.config.get(k)}" for k in keys) or "all runs"
        groups.setdefault(label, []).append(r)
    return keys, [Variant(label, rs) for label, rs in groups.items()]


def comparison_table(
    variants: list[Variant], metrics, best_metric: str, higher_is_better: bool = True
) -> list[dict]:
    """One row per variant: n, mean/ci per metric, best flag and paired p-value vs the best
    (by `best_metric`, higher or lower being better)."""

    def by_seed(v, m):
        return {r.config.get("seed"): r.summary[m] for r in v.runs if r.summary.get(m) is not None}

    rows = []
    for v in variants:
        row = {"variant": v.label, "n": len(v.runs)}
        for m in metrics:
            row[m] = mean_ci([r.summary.get(m) for r in v.runs])
        rows.append(row)
    sign = 1.0 if higher_is_better else -1.0
    scored = [
        (sign * r[best_metric][0], i)
        for i, r in enumerate(rows)
        if best_metric in r and math.isfinite(r[best_metric][0])
    ]
    best = max(scored)[1] if scored else None
    for i, row in enumerate(rows):
        row["best"] = i == best
        row["p_vs_best"] = (
            float("nan")
            if best is None or i == best
            else paired_p_value(
                by_seed(variants[best], best_metric), by_seed(variants[i], best_metric)
            )
        )
    return rows


def _cell(mean, half):
    if not math.isfinite(mean):
        return "–"
    return f"{mean:.4f}" if not math.isfinite(half) else f"{mean:.4f} ± {half:.4f}"


def to_markdown(rows, metrics, best_metric) -> str:
    head = ["variant", "n", *metrics, f"p vs best ({best_metric})"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        label = f"**{r['variant']}** (best)" if r["best"] else r["variant"]
        p = "" if r["best"] or not math.isfinite(r["p_vs_best"]) else f"{r['p_vs_best']:.3g}"
        lines.append(
            "| " + " | ".join([label, str(r["n"]), *(_cell(*r[m]) for m in metrics), p]) + " |"
        )
    return "\n".join(lines) + "\n"


def to_csv(rows, metrics) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["variant", "n", "best", "p_vs_best"]
        + [f"{m}{s}" for m in metrics for s in ("_mean", "_ci95")]
    )
    for r in rows:
        writer.writerow(
            [r["variant"], r["n"], r["best"], r["p_vs_best"]] + [x for m in metrics for x in r[m]]
        )
    return out.getvalue()


def learning_curves(variants: list[Variant], metric: str, path: str) -> bool:
    """Mean ± standard error over seeds of `metric` against step; False if no run logged it."""
    series = {}
    for v in variants:
        per_run = []
        for r in v.runs:
            recs = [
                x
                for x in read_jsonl(os.path.join(r.path, "metrics.jsonl"))
                if x.get(metric) is not None
            ]
            per_run.append({x["step"]: x[metric] for x in recs})
        steps = sorted(set.intersection(*(set(p) for p in per_run))) if per_run else []
        if steps:
            values = np.array([[p[s] for s in steps] for p in per_run])
            sem = values.std(0, ddof=1) / math.sqrt(len(values)) if len(values) > 1 else None
            series[v.label] = (steps, values.mean(0), sem)
    if not series:
        return False
    plots.plot_curves(
        {k: (s, m) for k, (s, m, _) in series.items()},
        path,
        ylabel=metric,
        title=f"{metric}: mean over seeds",
        bands={k: e for k, (_, _, e) in series.items() if e is not None},
    )
    return True


def accuracy_by_length(variants: list[Variant], path: str) -> bool:
    """Greedy exact-match accuracy against source length, validation and longer split pooled
    (Bahdanau et al. 2015, Fig. 2); mean ± standard error over seeds; dashed line at the
    longest training length. False when no run recorded it."""
    series, bands, train_max = {}, {}, None
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
            series[v.label] = (lengths, values.mean(0))
            if len(values) > 1:
                bands[v.label] = values.std(0, ddof=1) / math.sqrt(len(values))
    if not series:
        return False
    plots.plot_curves(
        series,
        path,
        ylabel="seq_accuracy (greedy)",
        xlabel="source length",
        title="accuracy by source length (dashed: longest training length)",
        bands=bands,
        vline=train_max,
    )
    return True


def attention_grid(variants: list[Variant], path: str, example: int = 0) -> bool:
    """The same validation example's attention under each variant (its first seed's run)."""
    panels = []
    for v in variants:
        file = os.path.join(v.runs[0].path, "attention", "examples.json")
        if os.path.exists(file):
            with open(file) as f:
                examples = json.load(f)
            if len(examples) > example:
                e = examples[example]
                panels.append((v.label, e["weights"], e["source"], e["output"]))
    if not panels:
        return False
    plots.plot_attention_grid(panels, path)
    return True


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


def compare(
    directories,
    out_dir: str | None = None,
    metrics=None,
    best_metric: str | None = None,
) -> str:
    """Writes the report for the runs under `directories`; returns the Markdown table.

    `metrics`: the table's columns (default: what the runs' families report); `best_metric`:
    the metric that ranks variants (default: the first run's `train.best_metric`), in its
    family's direction."""
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
    keys, variants = group_variants(runs)
    if metrics is None:
        metrics = report_metrics(runs)
    metrics = [m for m in metrics if any(m in r.summary for r in runs)]
    rows = comparison_table(variants, metrics, best_metric, higher)
    table = to_markdown(rows, metrics, best_metric)
    _write(os.path.join(out_dir, "table.md"), table)
    _write(os.path.join(out_dir, "table.csv"), to_csv(rows, metrics))
    figures = []
    for metric in ("train/loss", best_metric):
        name = f"curves_{metric.replace('/', '_')}.png"
        if learning_curves(variants, metric, os.path.join(out_dir, name)):
            figures.append((metric, name))
    report = [
        f"# Comparison of {len(runs)} runs",
        "",
        f"Variants differ in: {', '.join(keys) or 'nothing (seeds only)'}. Mean ± 95% CI "
        "(Student t) over seeds; p: paired t-test against the best variant on shared seeds.",
        "",
        table,
    ]
    if accuracy_by_length(variants, os.path.join(out_dir, "accuracy_by_length.png")):
        figures.append(("accuracy by source length", "accuracy_by_length.png"))
    if attention_grid(variants, os.path.join(out_dir, "attention_grid.png")):
        figures.append(("attention, validation example 0", "attention_grid.png"))
    report += [f"![{m}]({name})" for m, name in figures]
    _write(os.path.join(out_dir, "report.md"), "\n".join(report) + "\n")
    return table


def _write(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
