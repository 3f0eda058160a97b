"""Tables and plots of the visual attention sweep: test error against the number of glimpses,
learned against random locations (mean ± 95% CI over seeds), and one run's glimpse paths.

    python experiments/visual_attention/summarize.py runs/visual_attention

Writes `experiments/visual_attention/results/`: `table.md`, `error_vs_glimpses.png`,
`glimpse_paths.png` (the learned 4-glimpse run of seed 0; validation images).
"""

from __future__ import annotations

import os
import shutil
import sys

import numpy as np

from attnlab.compare import find_runs, mean_ci, paired_p_value
from attnlab.plots import plot_curves

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def main(sweep_dir: str) -> None:
    runs = find_runs([sweep_dir])
    table: dict = {}
    for r in runs:
        key = (r.config["model.locations"], r.config["model.num_glimpses"])
        table.setdefault(key, {})[r.config["seed"]] = r.summary["test/error"]
    glimpses = sorted({g for _, g in table})
    lines = [
        "| glimpses | learned: test error | random: test error | seeds | paired p |",
        "|---:|---:|---:|---:|---:|",
    ]
    series, bands = {}, {}
    for mode in ("learned", "random"):
        means, halves = [], []
        for g in glimpses:
            mean, half = mean_ci(list(table.get((mode, g), {}).values()))
            means.append(mean)
            halves.append(0.0 if np.isnan(half) else half)
        series[mode], bands[mode] = (glimpses, means), halves
    for i, g in enumerate(glimpses):
        learned, random = table.get(("learned", g), {}), table.get(("random", g), {})
        cells = [f"{series[m][1][i]:.3f} ± {bands[m][i]:.3f}" for m in ("learned", "random")]
        p = paired_p_value(learned, random)
        lines.append(
            f"| {g} | {cells[0]} | {cells[1]} | {min(len(learned), len(random))} | {p:.2g} |"
        )
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot_curves(
        series,
        os.path.join(RESULTS, "error_vs_glimpses.png"),
        ylabel="test error",
        xlabel="glimpses",
        title="cluttered digits canvas: mean ± 95% CI over seeds",
        bands=bands,
    )
    shown = os.path.join(sweep_dir, "locations=learned,num_glimpses=4,seed=0", "glimpses")
    if os.path.exists(os.path.join(shown, "paths.png")):
        shutil.copyfile(
            os.path.join(shown, "paths.png"), os.path.join(RESULTS, "glimpse_paths.png")
        )


if __name__ == "__main__":
    main(sys.argv[1])
