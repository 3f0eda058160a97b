"""Tests for attnlab.plots: valid PNG output for edge-case shapes and no leaked figures."""

import struct

import matplotlib.pyplot as plt
import numpy as np
import pytest

from attnlab.plots import plot_attention, plot_curves, plot_tradeoff

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(path):
    """Return (width, height) from the PNG IHDR chunk, checking the signature."""
    data = path.read_bytes()
    assert data[:8] == _PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("t,s", [(1, 1), (1, 7), (6, 1), (100, 100)])
def test_plot_attention_writes_png(tmp_path, t, s):
    rng = np.random.default_rng(0)
    weights = rng.random((t, s))
    weights /= weights.sum(axis=1, keepdims=True)
    path = tmp_path / "sub" / "attn.png"
    plot_attention(
        weights, [f"s{i}" for i in range(s)], [f"t{i}" for i in range(t)], path, title="attn"
    )
    width, height = _png_size(path)
    assert width > 0 and height > 0
    assert plt.get_fignums() == []


def test_plot_attention_rejects_mismatched_tokens(tmp_path):
    with pytest.raises(ValueError, match="does not match"):
        plot_attention(np.zeros((2, 3)), ["a", "b"], ["x", "y"], tmp_path / "a.png")
    assert not (tmp_path / "a.png").exists()


def test_plot_curves_writes_png(tmp_path):
    path = tmp_path / "curves.png"
    plot_curves(
        {"train": ([0, 10, 20], [3.0, 2.0, 1.5]), "dev": ([20], [1.8])},
        path,
        ylabel="loss",
        title="learning curves",
    )
    width, height = _png_size(path)
    assert width > 0 and height > 0
    assert plt.get_fignums() == []


def test_plot_curves_puts_a_long_legend_beside_the_axes(tmp_path):
    """Ten series: the legend goes right of the axes (the figure widens), not over the lines."""
    few, many = tmp_path / "few.png", tmp_path / "many.png"
    lines = {f"variant {i}": ([16, 64, 256], [i + 1.0, i + 2.0, i + 4.0]) for i in range(10)}
    plot_curves(dict(list(lines.items())[:2]), few, ylabel="ms", log=True)
    plot_curves(lines, many, ylabel="ms", log=True)
    assert _png_size(many)[0] > _png_size(few)[0] + 50


def test_plot_tradeoff_writes_png_and_refuses_no_points(tmp_path):
    path = tmp_path / "tradeoff.png"
    plot_tradeoff({"general": (2e5, 0.99), "local_p": (8e4, 0.97)}, path, "FLOPs", "accuracy")
    width, height = _png_size(path)
    assert width > 100 and height > 100
    with pytest.raises(ValueError, match="at least one point"):
        plot_tradeoff({}, tmp_path / "none.png", "x", "y")
