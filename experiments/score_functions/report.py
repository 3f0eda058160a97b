"""The score-function study as one table per task, laid out like Luong et al. 2015, Table 4.

    python experiments/score_functions/report.py runs/score_functions > results/table4.md

Reads the three sweeps under the given directory (`reverse/`, `dates/`, `g2p/`) with
`attnlab.load_runs`; one row per decoder order x score, in the order of `attnlab.scores`;
mean ± 95% CI over the seeds; the parameter count; and, for the task's main metric, the
Holm-corrected paired test of every variant against the top one (`attnlab.compare.summarize`):
**best**, **tied** (not significantly different from the top one), or the corrected p of a
variant that is worse.
"""

from __future__ import annotations

import math
import os
import sys

from attnlab import compare, load_runs
from attnlab.scores import SCORE_NAMES

# task -> [(metric, column title, higher is better)]; the first is the task's main metric
COLUMNS = {
    "reverse": [
        ("eval_long/seq_accuracy", "lengths 11-15 seq_acc", True),
        ("test/seq_accuracy", "test seq_acc", True),
        ("test/aer", "test AER", False),
        ("test/perplexity", "test perplexity", False),
    ],
    "dates": [
        ("test/aer", "test AER", False),
        ("test/seq_accuracy", "test seq_acc", True),
        ("test/perplexity", "test perplexity", False),
    ],
    "g2p": [
        ("test/wer", "test WER", False),
        ("test/per", "test PER", False),
        ("test/perplexity", "test perplexity", False),
    ],
}
ORDERS = ("bahdanau", "luong")
BY = ["model.decoder", "model.score"]


def _cell(mean: float, half: float, scale: float) -> str:
    if not math.isfinite(mean):
        return "–"
    if not math.isfinite(half):
        return f"{scale * mean:.3f}"
    return f"{scale * mean:.3f} ± {scale * half:.3f}"


def task_table(df, task: str) -> str:
    """The Markdown table of one task's runs."""
    columns = COLUMNS[task]
    main, _, up = columns[0]
    ranked = compare.summarize(df, main, BY, higher_is_better=up).set_index(BY)
    cells = {m: compare.summarize(df, m, BY, None).set_index(BY) for m, _, _ in columns}
    params = df.groupby(BY)["num_params"].first()
    # every seed's directory records the vmapped program's speed per seed: times the seeds
    speed = df.groupby(BY)["train/tokens_per_sec"].mean() * df.groupby(BY).size()
    seeds = sorted(set(ranked["n"]))
    scale = {m: 100.0 if m.endswith(("/wer", "/per")) else 1.0 for m, _, _ in columns}
    head = ["order", "score", "params", *(t for _, t, _ in columns), f"vs top ({main}, Holm)"]
    head.append("train tok/s")
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for order in ORDERS:
        for score in SCORE_NAMES:
            key = (order, score)
            if key not in params.index:
                continue
            row = [order, score, f"{int(params[key]):,}"]
            for m, _, _ in columns:
                have = key in cells[m].index
                mean, half = (cells[m].at[key, "mean"], cells[m].at[key, "ci95"]) if have else (
                    float("nan"), float("nan"))  # fmt: skip
                row.append(_cell(mean, half, scale[m]))
            if key not in ranked.index:  # no value of the main metric (`none`: no weights)
                row.append("–")
            else:
                verdict, p = ranked.at[key, "verdict"], ranked.at[key, "p_holm"]
                row.append(f"**{verdict}**" if verdict else f"worse, p = {p:.2g}")
            row.append(f"{speed[key]:,.0f}")
            lines.append("| " + " | ".join(row) + " |")
    note = (
        f"\nMean ± 95% CI over {'/'.join(map(str, seeds))} seeds; WER and PER in %. Last column: "
        f"paired t-test of {main} against the top variant on the same seeds, Holm-corrected over "
        "all variants of the task; **tied**: not significantly different from the top one. "
        "train tok/s: target tokens per second of training, all seeds of the vmapped program "
        "together, measured during the sweep (one trial at a time on a shared 2-core CPU, where "
        "timings drift 10-30% between trials: differences under ~30% are noise; "
        "`scripts/` has the benchmarks that time variants back to back).\n"
    )
    return "\n".join(lines) + "\n" + note


def main(root: str) -> None:
    for task in COLUMNS:
        directory = os.path.join(root, task)
        if not os.path.isdir(directory):
            continue
        df = load_runs(directory)
        if df.empty:
            continue
        df = df[df["status"] == "completed"]
        if "model.decoder" not in df:
            continue
        print(f"## {task}\n")
        print(task_table(df, task))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/score_functions")
