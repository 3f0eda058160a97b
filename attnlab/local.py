"""Local attention (Luong et al. 2015, §3.2): scores only inside a window around a position.

Per example. At decoder step `t` an aligned position `p_t` is chosen, either monotonically
(`local_m`: `p_t = t`) or predicted from the decoder state (`local_p`, Eq. 9:
`p_t = L * sigmoid(v_p^T tanh(W_p s_t))`, `L` the source length). The score is computed only on
the `W = min(2D + 1, S)` positions of a window `[p_t - D, p_t + D]` cut out of the prepared keys
with a dynamic slice, so a step costs `O(D)`, not `O(S)`. The window is clipped at the sentence
edges (positions outside `[0, L)` or farther than `D` from `p_t` get weight 0). The weights are
softmax-normalised inside the window (Eq. 7). `local_p` then multiplies them by a Gaussian
centred at `p_t` (Eq. 10, `sigma = D / 2`), which is not renormalised; `local_m` uses Eq. 7
alone, as the paper does (`local_m_gaussian=True` applies the Gaussian there too). With a window
that covers the whole sentence, `local_m` equals global attention, and `local_p` (or `local_m`
with the Gaussian) equals global attention times the Gaussian factor.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from attnlab.attention import AttentionKind, masked_softmax


def window_size(src_len: int, half_width: int) -> int:
    """Static number of positions scored per step: `min(2D + 1, S)`."""
    return min(2 * half_width + 1, src_len)


def local_attention(
    scorer, query, prepared, mask, values_proj, position, half_width: int, gaussian: bool = True
):
    """Window scores, weights and contexts around `position`.

    Args:
      scorer: a content-based `Score` (called on the window's prepared keys).
      query: `[d_q]` decoder state.
      prepared: the score's per-sequence keys, every leaf `[S, ...]`.
      mask: `[S]` bool, True at real source positions.
      values_proj: tuple of `[S, H]` arrays (the values times the weights that consume them).
      position: scalar float `p_t` (a traced value; `local_m` passes `t`).
      half_width: `D` (static).
      gaussian: multiply the window's weights by `exp(-(s - p_t)^2 / (2 sigma^2))`, `sigma =
        D / 2` (Eq. 10).

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
    alpha_w = masked_softmax(scores, inside)
    if gaussian:
        sigma = half_width / 2.0
        alpha_w = alpha_w * jnp.exp(-((positions - position) ** 2) / (2.0 * sigma**2))
    contexts = tuple(alpha_w.astype(v.dtype) @ cut(v) for v in values_proj)
    alpha = jax.lax.dynamic_update_slice_in_dim(
        jnp.zeros((src_len,), alpha_w.dtype), alpha_w, start, axis=0
    )
    return alpha, contexts


def predicted_position(cell, query, length):
    """`p = L sigmoid(v_p^T tanh(W_p query))` in `[0, L]` (Luong et al. 2015, Eq. 9), from the
    parameters `W_p`, `v_p` that `add_position_predictor` put on the decoder cell."""
    return length * jax.nn.sigmoid(jnp.tanh(cell.W_p(query)) @ cell.v_p)


def add_position_predictor(cell) -> None:
    """The parameters of Eq. 9 on the decoder cell: `W_p: [d_q, d_q]`, `v_p: [d_q]`."""
    cell.W_p = nn.Dense(cell.hidden_dim, use_bias=False, name="W_p")
    cell.v_p = cell.param("v_p", nn.initializers.normal(0.1), (cell.hidden_dim,))


@dataclasses.dataclass(frozen=True)
class _Local(AttentionKind):
    orders: ClassVar[tuple[str, ...]] = ("luong",)
    needs_score: ClassVar[bool] = True
    content_based: ClassVar[bool] = True

    window: int = 8  # half-width D

    def option_errors(self) -> list[tuple[str, str]]:
        ok = isinstance(self.window, int) and self.window > 0
        return [] if ok else [("window", "must be > 0")]

    def position(self, cell, query, t, enc):
        raise NotImplementedError

    def gaussian(self) -> bool:
        return True

    def attend(self, cell, query, t, enc, uniform):
        position = self.position(cell, query, t, enc)
        alpha, contexts = local_attention(
            cell.scorer,
            query,
            enc.prepared,
            enc.mask,
            enc.context_proj,
            position,
            self.window,
            self.gaussian(),
        )
        return alpha, contexts, {}


@dataclasses.dataclass(frozen=True)
class LocalM(_Local):
    """Local attention with monotonic alignment, `p_t = t` (Luong et al. 2015 §3.2, "local-m"):
    Eq. 7 inside the window; `local_m_gaussian=True` multiplies by Eq. 10's Gaussian too."""

    name: ClassVar[str] = "local_m"
    counts_steps: ClassVar[bool] = True

    local_m_gaussian: bool = False

    def position(self, cell, query, t, enc):
        return t.astype(jnp.float32)

    def gaussian(self) -> bool:
        return self.local_m_gaussian


@dataclasses.dataclass(frozen=True)
class LocalP(_Local):
    """Local attention with predictive alignment (Luong et al. 2015 §3.2, "local-p"): `p_t` by
    Eq. 9 from the decoder state, weights by Eq. 7 times the Gaussian of Eq. 10."""

    name: ClassVar[str] = "local_p"

    def setup(self, cell) -> None:
        add_position_predictor(cell)

    def position(self, cell, query, t, enc):
        return predicted_position(cell, query, enc.length)
