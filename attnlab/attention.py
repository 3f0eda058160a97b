"""Masked softmax and the weighted sum that turns alignment scores into a context vector.

Written per example (`scores: [S]`, `values: [S, d]`); batch with `jax.vmap`. Padding gets a
weight of exactly 0, and a source with no valid position (an empty sequence) gives all-zero
weights and a zero context, never NaN: we mask with a finite fill value and then zero the row,
instead of filling with `-inf` (whose softmax over an all-masked row is 0/0).

A score of exactly `-inf` marks a position the score function itself rules out (the `location`
score past its `S_max`): it is treated like padding, so it gets weight 0 even when no other
position is valid. NaN scores are not masked: they propagate, so a numerical fault shows.
"""

from __future__ import annotations

import jax.numpy as jnp

# Finite and far below any real score, so exp(fill - max) underflows to exactly 0 in float32.
_MASK_FILL = -1e30


def masked_softmax(scores: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """Softmax over the valid positions of `scores: [S]`; `mask: [S]` bool (True = valid).

    Computed in float32 whatever the input dtype. Returns `[S]` float32 weights that sum to 1
    over valid positions, are exactly 0 on padding and on `-inf` scores, and are all 0 when no
    position is valid.
    """
    scores = scores.astype(jnp.float32)
    mask = mask & (scores != -jnp.inf)
    scores = jnp.where(mask, scores, _MASK_FILL)
    scores = scores - jnp.max(scores, axis=-1, keepdims=True)
    exp = jnp.where(mask, jnp.exp(scores), 0.0)
    total = jnp.sum(exp, axis=-1, keepdims=True)
    # An all-padding row has total == 0: divide by 1 instead so the weights stay exactly 0.
    return exp / jnp.where(total > 0, total, 1.0)


def attend(
    scores: jnp.ndarray, mask: jnp.ndarray, values: jnp.ndarray
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Context `c = sum_i alpha_i v_i` with `alpha = masked_softmax(scores, mask)`.

    Args:
      scores: `[S]` alignment scores `e`.
      mask: `[S]` bool, True at real (non-padding) source positions.
      values: `[S, d]` the encoder states `H`.

    Returns:
      `(context [d], weights [S])`; the context has the dtype of `values`.
    """
    weights = masked_softmax(scores, mask)
    context = weights.astype(values.dtype) @ values
    return context, weights
