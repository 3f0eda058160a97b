"""compare: mean ± CI, paired tests, Holm and ties against hand computations; the written
report; the figures' structure (facets, legend outside the axes, one colour per name)."""

import json
import math
import os

import pandas as pd
import pytest
from scipy import stats

from attnlab import compare
from attnlab.config_lib import ConfigError


def test_mean_ci_by_hand():
    mean, half = compare.mean_ci([1.0, 2.0, 3.0, 4.0])
    sd = math.sqrt(((1.5**2) * 2 + (0.5**2) * 2) / 3)  # sample standard deviation
    assert mean == 2.5
    assert half == pytest.approx(3.182446305 * sd / 2.0, rel=1e-6)  # t_{0.975, 3} = 3.1824
    assert math.isnan(compare.mean_ci([0.7])[1])
    assert compare.mean_ci([0.7])[0] == 0.7


def test_paired_p_value_by_hand():
    a = {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0, 9: 100.0}  # seed 9 has no partner: ignored
    b = {0: 2.0, 1: 2.0, 2: 5.0, 3: 4.5}
    d = [-1.0, 0.0, -2.0, -0.5]
    mean = sum(d) / 4
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / 3)
    t = mean / (sd / 2.0)
    assert compare.paired_p_value(a, b) == pytest.approx(2 * stats.t.sf(abs(t), 3), rel=1e-9)
    assert compare.paired_p_value({0: 1.0}, {0: 2.0}) != compare.paired_p_value({0: 1.0}, {0: 2.0})
    assert compare.paired_p_value({0: 1.0, 1: 2.0}, {0: 1.0, 1: 2.0}) == 1.0


def _fake_run(root, score, seed, acc):
    path = os.path.join(root, f"score={score},seed={seed}")
    os.makedirs(path)
    config = {"seed": seed, "model": {"score": score, "embed_dim": 32}}
    json.dump(config, open(os.path.join(path, "config.json"), "w"))
    summary = {
        "status": "completed",
        "eval/seq_accuracy": acc,
        "eval/loss": 1.0 - acc,
        "seq_accuracy_by_length": {
            "eval": {"3": [3, 4], "4": [2, 4]},
            "eval_long": {"5": [int(acc * 10), 10]},
        },
    }
    os.makedirs(os.path.join(path, "attention"))
    example = {
        "source": ["a", "b"],
        "output": ["b", "a", "</s>"],
        "weights": [[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]],
    }
    json.dump([example], open(os.path.join(path, "attention", "examples.json"), "w"))
    json.dump(summary, open(os.path.join(path, "summary.json"), "w"))
    with open(os.path.join(path, "metrics.jsonl"), "w") as f:
        for step in (10, 20):
            f.write(
                json.dumps(
                    {
                        "step": step,
                        "train/loss": 2.0 / step + seed * 0.01,
                        "eval/seq_accuracy": acc * step / 20,
                    }
                )
                + "\n"
            )


def test_report_groups_by_variant_and_marks_the_best(tmp_path):
    accs = {"dot": [0.5, 0.6, 0.7], "general": [0.8, 0.85, 0.9]}
    for score, values in accs.items():
        for seed, acc in enumerate(values):
            _fake_run(str(tmp_path), score, seed, acc)
    os.makedirs(tmp_path / "unfinished")
    json.dump({"status": "failed"}, open(tmp_path / "unfinished" / "summary.json", "w"))
    json.dump({"seed": 0}, open(tmp_path / "unfinished" / "config.json", "w"))
    table = compare.compare([str(tmp_path)])
    lines = table.splitlines()
    general = next(line for line in lines if "score=general" in line)
    dot = next(line for line in lines if "score=dot" in line)
    assert "(best)" in general and "(best)" not in dot
    mean, half = compare.mean_ci(accs["general"])
    assert f"{mean:.4f} ± {half:.4f}" in general
    assert "| 3 |" in general  # three seeds; the failed run is not counted
    p = compare.paired_p_value(dict(enumerate(accs["general"])), dict(enumerate(accs["dot"])))
    assert dot.rstrip(" |").endswith(f"{p:.3g}")
    report = tmp_path / "report"
    for name in (
        "table.md",
        "table.csv",
        "report.md",
        "curves_train_loss.png",
        "curves_eval_seq_accuracy.png",
        "accuracy_by_length.png",
        "attention_grid.png",
    ):
        assert (report / name).stat().st_size > 0
    text = (report / "report.md").read_text()
    assert "score" in text and "accuracy_by_length.png" in text and "attention_grid.png" in text


def test_no_runs_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no completed runs"):
        compare.compare([str(tmp_path)])


def test_lower_is_better_metrics_pick_the_smallest(tmp_path):
    """`--metric=test/wer`: the variant with the lowest word error rate is the best."""
    for score, wers in {"general": [0.30, 0.32, 0.31], "additive": [0.40, 0.43, 0.41]}.items():
        for seed, wer in enumerate(wers):
            _fake_run(str(tmp_path), score, seed, 0.5)
            path = tmp_path / f"score={score},seed={seed}" / "summary.json"
            summary = json.load(open(path))
            json.dump(dict(summary, **{"test/wer": wer}), open(path, "w"))
    table = compare.compare([str(tmp_path)], best_metric="test/wer")
    general = next(line for line in table.splitlines() if "score=general" in line)
    assert "(best)" in general and "test/wer" in table.splitlines()[0]


def test_an_unknown_metric_lists_the_runs_metrics(tmp_path):
    _fake_run(str(tmp_path), "general", 0, 0.5)
    with pytest.raises(ConfigError) as err:
        compare.compare([str(tmp_path)], best_metric="eval/seq_acc")
    assert "--metric=eval/seq_acc is not a metric of these runs" in str(err.value)
    assert "eval/seq_accuracy" in str(err.value) and "eval/loss" in str(err.value)


def test_holm_against_a_hand_computed_case():
    # sorted p: 0.01, 0.02, 0.03, 0.04 with m = 4: 0.04, 0.06, 0.06 (monotone), 0.06
    assert compare.holm([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert compare.holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    out = compare.holm([float("nan"), 0.01, 0.3])  # an untestable comparison does not count
    assert math.isnan(out[0]) and out[1:] == pytest.approx([0.02, 0.3])
    assert compare.holm([0.9, 0.8]) == [1.0, 1.0]  # capped at 1


def test_variants_equal_to_the_best_are_tied_and_none_is_called_best():
    rows = []
    for score, values in {"a": [1.0] * 4, "b": [1.0] * 4, "c": [0.5, 0.52, 0.49, 0.51]}.items():
        rows += [{"score": score, "seed": s, "acc": v, "status": "completed"} for s, v in
                 enumerate(values)]  # fmt: skip
    table = compare.summarize(pd.DataFrame(rows), "acc", ["score"])
    verdicts = dict(zip(table["score"], table["verdict"], strict=True))
    assert verdicts == {"a": "tied", "b": "tied", "c": ""}  # two at 1.000: no single winner
    assert table["p_holm"].iloc[1] == 1.0 and table["p_holm"].iloc[2] < 0.05
    alone = compare.summarize(
        pd.DataFrame([r for r in rows if r["score"] != "b"]), "acc", ["score"]
    )
    assert list(alone["verdict"]) == ["best", ""]
    low = compare.summarize(pd.DataFrame(rows), "acc", ["score"], higher_is_better=False)
    assert low["score"].iloc[0] == "c" and low["verdict"].iloc[0] == "best"  # lower is better


def test_figures_are_faceted_with_the_legend_outside_and_one_colour_per_score(tmp_path):
    from attnlab import plots

    palette = plots.Palette(fixed=["dot", "general", "additive"], others=["x"])
    series = [
        plots.Series(panel, score, palette.color(score), [1, 2, 3], [0.1, 0.2, 0.3])
        for panel in ("decoder = bahdanau", "decoder = luong")
        for score in ("general", "additive")
    ]
    fig = plots.plot_faceted_curves(series, tmp_path / "c.png", ylabel="loss")
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in axes] == ["decoder = bahdanau", "decoder = luong"]
    (legend,) = fig.legends
    fig.canvas.draw()
    box = legend.get_window_extent()
    assert all(box.x0 >= ax.get_window_extent().x1 for ax in axes)  # right of every panel
    colours = {
        t.get_text(): h.get_color()
        for t, h in zip(legend.get_texts(), legend.legend_handles, strict=True)
    }
    points = [plots.Point("", s, palette.color(s), 0.5, 0.1) for s in ("additive", "dot", "x")]
    fig2 = plots.plot_intervals(points, tmp_path / "i.png", xlabel="acc")
    marks = {t.get_text(): None for t in fig2.axes[0].get_yticklabels()}
    assert set(marks) == {"additive", "dot", "x"}
    # a score keeps its colour whatever else a figure shows: the palette is keyed by name
    assert colours["additive"] == palette.color("additive") == plots.COLORS[2]
    assert plots.Palette(fixed=["dot", "general", "additive"]).color("additive") == plots.COLORS[2]
    lines = fig2.axes[0].lines
    assert {ln.get_color() for ln in lines} >= {plots.COLORS[0], plots.COLORS[2]}
