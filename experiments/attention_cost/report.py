"""Joins the cost benchmark with the accuracy sweep: one table of what each attention kind costs
against source length and what it reaches on `reverse`.

    python experiments/attention_cost/report.py --bench=runs/bench_cost \
        --runs=runs/attention_cost --out=experiments/attention_cost/results

Cost columns come from `scripts/bench_cost.py`'s `results.json`; the growth exponent is the
least-squares slope of log(cost) against log(S) over `S >= --fit_from` (T = S, so attention that
scores every source position at every step grows like S·T = S^2, and a fixed window like S).
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
    head = (
        "| variant | step FLOPs, S=16 → max | FLOPs ∝ | train ms ∝ | train MiB ∝ | decode ∝ | "
        "train ms at max S | train MiB at max S | test seq_acc | align_acc | 21-30 seq_acc |"
    )
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    points = {}
    for name, rows in by_variant.items():
        rows = sorted(rows, key=lambda r: r["S"])
        first, last = rows[0], rows[-1]
        acc = accuracy.get(name)
        cells = [
            name,
            f"{first['step FLOPs']:,.0f} → {last['step FLOPs']:,.0f}",
            *(
                f"S^{growth(rows, c, args.fit_from):.2f}"
                for c in ("step FLOPs", "train ms", "train MiB", "decode us/step")
            ),
            f"{last['train ms']:,.0f} (S={last['S']})",
            f"{last['train MiB']:,.0f}",
        ]
        for metric in ACCURACY:
            cells.append(f"{acc[metric][0]:.3f} ± {acc[metric][1]:.3f}" if acc else "–")
        lines.append("| " + " | ".join(cells) + " |")
        if acc:
            points[name] = (last["step FLOPs"], acc["test/seq_accuracy"][0])
    os.makedirs(args.out, exist_ok=True)
    table = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "cost_accuracy.md"), "w") as f:
        f.write(table)
    if points:
        plots.plot_tradeoff(
            points,
            os.path.join(args.out, "tradeoff.png"),
            xlabel=f"decoder-step FLOPs at S={max(r['S'] for r in bench)}",
            ylabel="test seq_accuracy (reverse, 5-20 symbols)",
            title="cost against accuracy",
        )
    print(table)


if __name__ == "__main__":
    main()
