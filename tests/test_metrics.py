"""Metric sums and their normalisation against hand-computed examples."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from attnlab import metrics


def test_token_sums_count_only_real_steps():
    # Two rows, 3 steps; row 0 has 2 real steps, row 1 has 3. Logits favour token 1 everywhere.
    logits = jnp.log(jnp.array([[0.25, 0.5, 0.25]] * 3 * 2).reshape(2, 3, 3))
    tgt_out = jnp.array([[1, 2, 0], [1, 1, 0]])
    sums = metrics.token_sums(logits, tgt_out, jnp.array([2, 3]))
    assert float(sums["tokens"]) == 5
    assert float(sums["correct"]) == 3  # (0,0), (1,0), (1,1)
    want = -(3 * math.log(0.5) + 2 * math.log(0.25))
    assert float(sums["loss_sum"]) == pytest.approx(want, rel=1e-6)
    out = metrics.normalize(sums)
    assert out["loss"] == pytest.approx(want / 5, rel=1e-6)
    assert out["perplexity"] == pytest.approx(math.exp(want / 5), rel=1e-6)
    assert out["token_accuracy"] == pytest.approx(0.6)


def test_alignment_sums_by_hand():
    # One example, S = 3 source positions, 3 target steps (the last is the end token, no gold).
    alpha = jnp.array([[[0.1, 0.2, 0.7], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6]]])
    align = jnp.array([[2, 1, -1]])
    sums = metrics.alignment_sums(alpha, align, jnp.array([3]), jnp.array([3]))
    assert float(sums["align_gold"]) == 2 and float(sums["align_hit"]) == 1
    centre = [0.2 + 1.4, 0.3 + 0.2]  # sum_i i * alpha_i for the two gold steps
    assert float(sums["cog_sum"]) == pytest.approx(abs(centre[0] - 2) + abs(centre[1] - 1))
    entropy = lambda p: -sum(x * math.log(x) for x in p) / math.log(3)
    want = entropy([0.1, 0.2, 0.7]) + entropy([0.6, 0.3, 0.1]) + entropy([0.2, 0.2, 0.6])
    assert float(sums["entropy_sum"]) == pytest.approx(want, rel=1e-5)
    out = metrics.normalize(sums)
    assert out["align_accuracy"] == 0.5 and out["aer"] == pytest.approx(0.5)
    assert out["attention_entropy"] == pytest.approx(want / 3, rel=1e-5)


def test_entropy_is_zero_for_one_hot_and_one_for_uniform():
    alpha = jnp.array([[[1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]]])
    sums = metrics.alignment_sums(alpha, jnp.array([[0, 0]]), jnp.array([4]), jnp.array([2]))
    assert float(sums["entropy_sum"]) == pytest.approx(1.0)  # 0 + 1
    assert float(sums["entropy_steps"]) == 2


def test_sequence_correct_needs_the_end_token_and_nothing_after():
    tgt_out = jnp.array([[5, 6, 2, 0], [5, 6, 2, 0], [5, 6, 2, 0], [0, 0, 0, 0]])
    tgt_len = jnp.array([3, 3, 3, 0])  # the last row is batch filler
    tokens = jnp.array(
        [
            [5, 6, 2, 0, 0],  # right
            [5, 6, 7, 2, 0],  # extra token
            [5, 6, 6, 6, 6],  # never ends
            [5, 2, 0, 0, 0],  # filler row: ignored whatever it holds
        ]
    )
    correct = metrics.sequence_correct(tokens, tgt_out, tgt_len)
    assert np.asarray(correct).tolist() == [True, False, False, False]
    table = metrics.accuracy_by_length(correct, np.array([2, 2, 5, 0]), tgt_len)
    assert table == {2: [1, 2], 5: [0, 1]}  # the filler row is not counted


def test_add_and_normalize_are_exact_over_batches():
    a = {"loss_sum": np.float32(3.0), "tokens": np.float32(2.0), "correct": np.float32(1.0)}
    b = {"loss_sum": np.float32(1.0), "tokens": np.float32(6.0), "correct": np.float32(6.0)}
    out = metrics.normalize(metrics.add(a, b))
    assert out["loss"] == pytest.approx(0.5)  # 4 / 8, not the mean of 1.5 and 0.1667
    assert out["token_accuracy"] == pytest.approx(7 / 8)
    assert "align_accuracy" not in out and "seq_accuracy" not in out
