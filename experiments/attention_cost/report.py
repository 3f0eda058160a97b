"""Joins the cost benchmark with the accuracy sweep: one table of what each attention kind costs
against source length and what it reaches on `reverse`.

    python experiments/attention_cost/report.py --bench=runs/bench_cost \
        --runs=runs/attention_cost --out=experiments/attention_cost/results

Cost columns come from `scripts/bench_cost.py`'s `results.json`. A decoder step's FLOPs are
`a + b S` (the RNN's fixed work plus `b` per source position scored): the table gives `b`, the
least-squares slope, which is what attention costs per position (0 for a fixed window). Train
time and memory get a growth exponent `k` in `cost ∝ S^k`, the slope of log(cost) against log(S)
over `S >= --fit_from` (T = S, so work on every (source, target) pair grows like S·T = S^2, work
per position or per step like S).
Accuracy columns are mean ± 95% CI over the seeds of every run under `--runs` (summary.json).
Writes `cost_accuracy.md` and `tradeoff.png` (accuracy against step FLOPs at the longest S).
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from attnlab import compare, plots

ACCURACY = ("test/seq_accuracy", "eval/align_accuracy", "eval_long/seq_accuracy")


def variant_name(config: dict) -> str:
    """The bench_cost name of a run's attention: a score, local_m/local_p, hard, hard_gaussian."""
    kind = config["model.attention.kind"]
    if kind == "soft":
        return config["model.score"]
    if kind == "hard":
        return "hard_gaussian" if config["model.attention.hard_policy"] == "gaussian" else "hard"
    return kind


def accuracy_by_variant(run_dirs) -> dict:
    """`{variant: {metric: (mean, ci95 half-width, n)}}` over the completed runs' seeds."""
    runs: dict[str, list] = {}
    for record in compare.find_runs(run_dirs):
        runs.setdefault(variant_name(record.config), []).append(record.summary)
    return {
        name: {
            m: (*compare.mean_ci([s.get(m) for s in summaries]), len(summaries)) for m in ACCURACY
        }
        for name, summaries in runs.items()
    }


def growth(rows, column: str, fit_from: int) -> float:
    """Slope of log(column) against log(S) over the rows with S >= fit_from."""
    points = [(r["S"], r[column]) for r in rows if r["S"] >= fit_from and r[column] > 0]
    if len(points) < 2:
        return float("nan")
    s, y = np.log([p[0] for p in points]), np.log([p[1] for p in points])
    return float(np.polyfit(s, y, 1)[0])


def flops_per_position(rows) -> float:
    """Least-squares slope of a decoder step's FLOPs against S: FLOPs per source position."""
    slope = float(np.polyfit([r["S"] for r in rows], [r["step FLOPs"] for r in rows], 1)[0])
    return 0.0 if abs(slope) < 0.5 else slope  # flat: no "-0" from rounding


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench", required=True, help="bench_cost.py's --out directory")
    parser.add_argument("--runs", required=True, help="the accuracy sweep's directory")
    parser.add_argument("--out", required=True)
    parser.add_argument("--fit_from", type=int, default=128)
    args = parser.parse_args()
    with open(os.path.join(args.bench, "results.json")) as f:
        bench = json.load(f)
    accuracy = accuracy_by_variant([args.runs])
    by_variant: dict[str, list] = {}
    for row in bench:
        by_variant.setdefault(row["variant"].split(" ")[0], []).append(row)
    longest = max(r["S"] for r in bench)
    head = (
        f"| variant | step FLOPs, S=16 → {longest} | step FLOPs per source position | "
        f"train ms at S={longest} | train ms ∝ S^k | train MiB at S={longest} | MiB ∝ S^k | "
        "test seq_acc | align_acc | 21-30 seq_acc |"
    )
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    points = {}
    for name, rows in by_variant.items():
        rows = sorted(rows, key=lambda r: r["S"])
        first, last = rows[0], rows[-1]
        acc = accuracy.get(name)
        cells = [
            name,
            f"{first['step FLOPs']:,.0f} → {last['step FLOPs']:,.0f}",
            f"{flops_per_position(rows):,.0f}",
            f"{last['train ms']:,.0f}",
            f"{growth(rows, 'train ms', args.fit_from):.2f}",
            f"{last['train MiB']:,.0f}",
            f"{growth(rows, 'train MiB', args.fit_from):.2f}",
        ]
        for metric in ACCURACY:
            cells.append(f"{acc[metric][0]:.3f} ± {acc[metric][1]:.3f}" if acc else "–")
        lines.append("| " + " | ".join(cells) + " |")
        if acc:
            points[name] = (last["step FLOPs"], acc["test/seq_accuracy"][0])
    for name in sorted(accuracy.keys() - by_variant.keys()):  # trained but not benchmarked
        acc = accuracy[name]
        cells = [name, *["–"] * 6, *(f"{acc[m][0]:.3f} ± {acc[m][1]:.3f}" for m in ACCURACY)]
        lines.append("| " + " | ".join(cells) + " |")
    os.makedirs(args.out, exist_ok=True)
    table = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "cost_accuracy.md"), "w") as f:
        f.write(table)
    if points:
        plots.plot_tradeoff(
            points,
            os.path.join(args.out, "tradeoff.png"),
            xlabel=f"decoder-step FLOPs at S={longest}",
            ylabel="test seq_accuracy (reverse, 5-20 symbols)",
            title="cost against accuracy",
        )
    print(table)


if __name__ == "__main__":
    main()
