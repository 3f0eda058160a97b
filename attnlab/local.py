"""Local attention (Luong et al. 2015, §3.2): scores only inside a window around a position.

Per example. At decoder step `t` an aligned position `p_t` is chosen, either monotonically
(`local_m`: `p_t = t`) or predicted from the decoder state (`local_p`, Eq. 9:
`p_t = L * sigmoid(v_p^T tanh(W_p s_t))`, `L` the source length). The score is computed only on
the `W = min(2D + 1, S)` positions of a window `[p_t - D, p_t + D]` cut out of the prepared keys
with a dynamic slice, so a step costs `O(D)`, not `O(S)`. The window is clipped at the sentence
edges (positions outside `[0, L)` or farther than `D` from `p_t` get weight 0). The weights are
softmax-normalised inside the window and then multiplied by a Gaussian centred at `p_t` (Eq. 10,
`sigma = D / 2`), which is not renormalised: with a window that covers the whole sentence, local
attention equals global attention times that Gaussian factor.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from attnlab.attention import masked_softmax

KINDS = ("local_m", "local_p")


def window_size(src_len: int, half_width: int) -> int:
    """Static number of positions scored per step: `min(2D + 1, S)`."""
    return min(2 * half_width + 1, src_len)


def local_attention(scorer, query, prepared, mask, values_proj, position, half_width: int):
    """Window scores, weights and contexts around `position`.

    Args:
      scorer: a content-based `Score` (called on the window's prepared keys).
      query: `[d_q]` decoder state.
      prepared: the score's per-sequence keys, every leaf `[S, ...]`.
      mask: `[S]` bool, True at real source positions.
      values_proj: tuple of `[S, H]` arrays (the values times the weights that consume them).
      position: scalar float `p_t` (a traced value; `local_m` passes `t`).
      half_width: `D` (static).

    Returns:
      `(alpha [S], contexts)`: the weights scattered back to all `S` positions (0 outside the
      window) and, per array of `values_proj`, `alpha @ values` computed on the window only.
    """
    src_len = mask.shape[0]
    size = window_size(src_len, half_width)
    centre = jnp.floor(position).astype(jnp.int32)
    start = jnp.clip(centre - half_width, 0, src_len - size)
    cut = lambda x: jax.lax.dynamic_slice_in_dim(x, start, size, axis=0)
    positions = start + jnp.arange(size)
    inside = cut(mask) & (jnp.abs(positions - centre) <= half_width)
    scores = scorer(query, jax.tree.map(cut, prepared))
    sigma = half_width / 2.0
    gauss = jnp.exp(-((positions - position) ** 2) / (2.0 * sigma**2))
    alpha_w = masked_softmax(scores, inside) * gauss
    contexts = tuple(alpha_w.astype(v.dtype) @ cut(v) for v in values_proj)
    alpha = jax.lax.dynamic_update_slice_in_dim(
        jnp.zeros((src_len,), alpha_w.dtype), alpha_w, start, axis=0
    )
    return alpha, contexts
