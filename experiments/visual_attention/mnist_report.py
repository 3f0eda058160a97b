"""Tables and figures of the MNIST study (`mnist.py`): test error of every variant beside the
paper's figure, where the glimpses landed, learning curves, and the learned model's glimpse
paths.

    python experiments/visual_attention/mnist_report.py runs/mnist_centred runs/mnist_cluttered

Writes `experiments/visual_attention/results/mnist/`: `table.md` (both tasks), and per task
`<task>_curves.png` (validation error against step, mean over seeds with a 95% band) and
`<task>_glimpses.png` (the learned model of seed 0 on validation images).
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np

from attnlab.compare import find_runs, holm, mean_ci, paired_p_value
from attnlab.plots import plot_curves

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "mnist")
# (model.kind, model.locations) -> the label in the tables
VARIANTS = {
    ("ram", "learned"): "RAM, learned glimpses",
    ("ram", "random"): "RAM, random glimpses",
    ("ram", "oracle"): "RAM, glimpses on the digit (oracle)",
    ("conv", "learned"): "conv net, whole image",
    ("fc", "learned"): "fc net, whole image",
}
LEARNED = VARIANTS["ram", "learned"]
# The paper's test errors (Mnih et al. 2014, Tables 1a and 2), in %, where it reports one.
PAPER = {
    ("centred", LEARNED): 1.12,
    ("centred", VARIANTS["conv", "learned"]): 1.21,
    ("cluttered", LEARNED): 4.04,
    ("cluttered", VARIANTS["ram", "random"]): 14.4,
    ("cluttered", VARIANTS["conv", "learned"]): 8.09,
}


def _task(config: dict) -> str:
    return "centred" if config["data.canvas_size"] == 28 else "cluttered"


def collect(sweep_dirs) -> dict:
    """`{task: {label: [RunRecord, ...]}}` of the finished runs (one record per seed)."""
    out: dict = {}
    for r in find_runs(sweep_dirs):
        label = VARIANTS[r.config["model.kind"], r.config["model.locations"]]
        out.setdefault(_task(r.config), {}).setdefault(label, []).append(r)
    return out


def _percent(values) -> str:
    mean, half = mean_ci([100 * v for v in values])
    return f"{mean:.2f}" if not np.isfinite(half) else f"{mean:.2f} ± {half:.2f}"


def task_table(task: str, variants: dict) -> list[str]:
    """Markdown rows for one task: each variant's test error (%, mean ± 95% CI over seeds),
    the Holm-corrected paired p against learned glimpses, where the glimpses landed, the
    paper's figure."""
    errors = {label: {r.config["seed"]: r.summary["test/error"] for r in runs}
              for label, runs in variants.items()}  # fmt: skip
    others = [label for label in VARIANTS.values() if label in errors and label != LEARNED]
    raw = [paired_p_value(errors.get(LEARNED, {}), errors[label]) for label in others]
    p_holm = dict(zip(others, holm(raw), strict=True))
    rows = []
    for label in VARIANTS.values():
        if label not in variants:
            continue
        runs = variants[label]
        found = [r.summary.get("test/fovea_found") for r in runs]
        where = _percent(found) if None not in found else "–"
        distance = [r.summary.get("test/glimpse_distance") for r in runs]
        mean_distance = f"{np.mean(distance):.1f}" if None not in distance else "–"
        p = p_holm.get(label)
        paper = PAPER.get((task, label))
        steps = runs[0].config["train.num_steps"]
        rows.append(
            f"| {task} | {label} | {len(runs)} | {steps:,} | {runs[0].summary['num_params']:,} | "
            f"{_percent(errors[label].values())} | {'' if p is None else f'{p:.2g}'} | "
            f"{where} | {mean_distance} | {'–' if paper is None else f'{paper:.2f}'} |"
        )
    return rows


def curves(task: str, variants: dict) -> None:
    """Validation error against step, mean over seeds ± 95% CI, one line per variant."""
    series, bands = {}, {}
    for label, runs in variants.items():
        per_seed = []
        for r in runs:
            with open(os.path.join(r.path, "metrics.jsonl")) as f:
                records = [json.loads(line) for line in f if line.strip()]
            per_seed.append({x["step"]: x["eval/error"] for x in records if "eval/error" in x})
        steps = sorted(set.intersection(*(set(s) for s in per_seed)))
        stats = [mean_ci([100 * s[step] for s in per_seed]) for step in steps]
        series[label] = (steps, [m for m, _ in stats])
        bands[label] = [0.0 if not np.isfinite(h) else h for _, h in stats]
    plot_curves(
        series,
        os.path.join(RESULTS, f"{task}_curves.png"),
        ylabel="validation error (%)",
        title=f"MNIST {task}: mean ± 95% CI over seeds (log scale)",
        bands=bands,
        log_y=True,
    )


def main(sweep_dirs) -> None:
    found = collect(sweep_dirs)
    os.makedirs(RESULTS, exist_ok=True)
    lines = [
        "| task | variant | seeds | steps | params | test error (%) | p vs learned, Holm | "
        "digit found by a fovea (%) | mean glimpse distance (px) | paper (%) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for task in ("centred", "cluttered"):
        if task not in found:
            continue
        lines += task_table(task, found[task])
        curves(task, found[task])
        learned = [r for r in found[task].get(LEARNED, []) if r.config["seed"] == 0]
        if learned:
            picture = os.path.join(learned[0].path, "glimpses", "paths.png")
            shutil.copyfile(picture, os.path.join(RESULTS, f"{task}_glimpses.png"))
    with open(os.path.join(RESULTS, "table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
