"""`attnlab.attention.masked_softmax` (and the weighted sum of global attention) against the
float64 NumPy reference.

Padding must get a weight of exactly 0, valid weights sum to 1, and a row with no valid position
gives zero weights, a zero context and finite gradients (never NaN), also through a score.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpy_reference as ref
import pytest

from attnlab.attention import masked_softmax
from attnlab.scores import build_score


def attend(scores, mask, values):
    """`(context [d], weights [S])`: the weighted sum global attention forms (`attention.Soft`)."""
    weights = masked_softmax(scores, mask)
    return weights.astype(values.dtype) @ values, weights


S, D = 8, 5

MASKS = {
    "all": np.ones(S, dtype=bool),
    "prefix": np.arange(S) < 5,
    "scattered": np.array([True, False, True, True, False, False, True, False]),
    "single": np.arange(S) == 3,
    "empty": np.zeros(S, dtype=bool),
}

softmax_jit = jax.jit(masked_softmax)
attend_jit = jax.jit(attend)
attend_batch = jax.jit(jax.vmap(attend))


def random_scores(seed, scale=1.0):
    return (scale * np.random.default_rng(seed).normal(size=S)).astype(np.float32)


def random_values(seed, batch=()):
    return np.random.default_rng(seed).normal(size=batch + (S, D)).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Masked softmax
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mask_name", list(MASKS))
@pytest.mark.parametrize("scale", [1.0, 100.0])
def test_masked_softmax_matches_reference(mask_name, scale):
    mask = MASKS[mask_name]
    scores = random_scores(0, scale)
    got = np.asarray(softmax_jit(scores, mask))
    want = ref.masked_softmax(scores, mask)
    assert got.shape == (S,) and got.dtype == np.float32
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert np.all(got[~mask] == 0.0)  # padding: exactly zero
    if mask.any():
        assert got.sum() == pytest.approx(1.0, abs=1e-6)
        assert np.all(got[mask] >= 0.0)
    else:
        assert np.all(got == 0.0)


def test_masked_softmax_ignores_padding_scores():
    """Whatever sits at padding positions (huge, tiny) changes nothing."""
    mask = MASKS["scattered"]
    scores = random_scores(1)
    base = np.asarray(softmax_jit(scores, mask))
    for fill in (1e30, -1e30, 1e4, 0.0):
        changed = np.where(mask, scores, np.float32(fill))
        np.testing.assert_array_equal(np.asarray(softmax_jit(changed, mask)), base)


def test_masked_softmax_returns_float32_for_low_precision_scores():
    mask = MASKS["prefix"]
    scores = jnp.asarray(random_scores(2), dtype=jnp.bfloat16)
    got = masked_softmax(scores, mask)
    assert got.dtype == jnp.float32
    assert np.all(np.asarray(got)[~mask] == 0.0)
    assert float(got.sum()) == pytest.approx(1.0, abs=1e-6)


def test_masked_softmax_gradient_zero_at_padding_and_finite_when_empty():
    probe = np.random.default_rng(3).normal(size=S).astype(np.float32)
    grad = jax.jit(jax.grad(lambda e, m: jnp.sum(masked_softmax(e, m) * probe)))
    scores = random_scores(4)
    g = np.asarray(grad(scores, MASKS["scattered"]))
    assert np.all(np.isfinite(g))
    assert np.all(g[~MASKS["scattered"]] == 0.0)
    g_empty = np.asarray(grad(scores, MASKS["empty"]))
    assert np.all(g_empty == 0.0)


# ----------------------------------------------------------------------------------------------
# attend
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mask_name", list(MASKS))
def test_attend_matches_reference(mask_name):
    mask = MASKS[mask_name]
    scores, values = random_scores(5), random_values(6)
    context, weights = attend_jit(scores, mask, values)
    want_context, want_weights = ref.attend(scores, mask, values)
    assert context.shape == (D,) and weights.shape == (S,)
    assert context.dtype == jnp.float32
    np.testing.assert_allclose(weights, want_weights, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(context, want_context, rtol=1e-5, atol=1e-5)
    assert np.all(np.asarray(weights)[~mask] == 0.0)
    if not mask.any():
        assert np.all(np.asarray(context) == 0.0)


def test_attend_batched_equals_loop_over_examples():
    masks = np.stack(list(MASKS.values()))  # one row each, the empty one included
    batch = masks.shape[0]
    scores = np.stack([random_scores(10 + b) for b in range(batch)])
    values = random_values(7, batch=(batch,))
    contexts, weights = attend_batch(scores, masks, values)
    assert contexts.shape == (batch, D) and weights.shape == (batch, S)
    assert np.all(np.isfinite(contexts)) and np.all(np.isfinite(weights))
    for b in range(batch):
        want_context, want_weights = ref.attend(scores[b], masks[b], values[b])
        np.testing.assert_allclose(weights[b], want_weights, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(contexts[b], want_context, rtol=1e-5, atol=1e-5)
        assert np.all(np.asarray(weights[b])[~masks[b]] == 0.0)


# ----------------------------------------------------------------------------------------------
# Gradients through score + attend with an empty row in the batch
# ----------------------------------------------------------------------------------------------


def _run(mdl, query, keys):
    return mdl(query, mdl.prepare(keys))


@partial(jax.jit, static_argnums=0)
def batch_grads(module, params, queries, keys, masks, probe):
    """Gradients of `sum(contexts * probe)` over a batch w.r.t. params, queries and keys."""

    def loss(params, queries, keys):
        def one(query, keys_b, mask):
            context, _ = attend(module.apply(params, query, keys_b, method=_run), mask, keys_b)
            return jnp.sum(context * probe)

        return jnp.sum(jax.vmap(one)(queries, keys, masks))

    return jax.value_and_grad(loss, argnums=(0, 1, 2))(params, queries, keys)


@pytest.mark.parametrize(
    "name, options",
    [
        ("dot", {}),
        ("general", {}),
        ("additive", {"attn_dim": 4, "zero_v": False, "normalize": True}),
        ("concat", {"attn_dim": 4, "bias": True}),
        ("concat_shared", {"attn_dim": 4}),
        ("location", {"max_source_len": S}),
    ],
)
def test_gradients_finite_with_empty_row(name, options):
    module = build_score(name, D, D, **options)
    masks = np.stack([MASKS["prefix"], MASKS["empty"], MASKS["scattered"]])
    rng = np.random.default_rng(8)
    queries = rng.normal(size=(3, D)).astype(np.float32)
    keys = rng.normal(size=(3, S, D)).astype(np.float32)
    probe = rng.normal(size=D).astype(np.float32)
    shapes = jax.eval_shape(
        lambda q, k: module.init(jax.random.key(0), q, k, method=_run), queries[0], keys[0]
    )
    params = jax.tree.map(
        lambda s: jnp.asarray(0.5 * rng.normal(size=s.shape), dtype=jnp.float32), shapes
    )
    value, (g_params, g_queries, g_keys) = batch_grads(module, params, queries, keys, masks, probe)
    assert np.isfinite(float(value))
    for leaf in jax.tree.leaves((g_params, g_queries, g_keys)):
        assert np.all(np.isfinite(np.asarray(leaf)))
    # The empty row's context is 0 whatever its query and keys: their gradients are exactly 0.
    assert np.all(np.asarray(g_queries[1]) == 0.0)
    assert np.all(np.asarray(g_keys[1]) == 0.0)
    # The others still learn.
    assert np.any(np.asarray(g_keys[0]) != 0.0)
    if jax.tree.leaves(g_params):
        assert any(np.any(np.asarray(leaf) != 0.0) for leaf in jax.tree.leaves(g_params))
