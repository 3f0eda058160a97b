"""Masked softmax, the attention-kind interface, and global ("soft") attention.

Written per example (`scores: [S]`, `values: [S, d]`); batch with `jax.vmap`. Padding gets a
weight of exactly 0, and a source with no valid position (an empty sequence) gives all-zero
weights and a zero context, never NaN: we mask with a finite fill value and then zero the row,
instead of filling with `-inf` (whose softmax over an all-masked row is 0/0).

A score of exactly `-inf` marks a position the score function itself rules out (the `location`
score past its `S_max`): it is treated like padding, so it gets weight 0 even when no other
position is valid. NaN scores are not masked: they propagate, so a numerical fault shows.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

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


@dataclasses.dataclass(frozen=True)
class AttentionKind:
    """How a decoder step turns its query into attention weights and a context: one of the
    kinds of `attnlab.kinds.KINDS` (global `soft`, `local_m`, `local_p`, `hard`).

    An instance is a frozen, typed set of the kind's options; `DecoderCell` holds it as its
    `attention` field and calls it with itself as `cell`, so the kind's parameters live in the
    decoder's parameter tree (`cell.param`, or a submodule assigned in `setup`). The one
    signature:

    - `setup(cell)`: creates the kind's parameters on the decoder cell (inside its `setup`);
    - `attend(cell, query [d_q], t [] int32, enc, uniform) -> (alpha [S], contexts, policy)`:
      the weights, the context projected by each array of `enc.context_proj` (`alpha (H W)`),
      and a dict of the step's policy terms (empty except for hard attention); `t` is the
      target step, `uniform: [S]` the sampling noise of a stochastic kind (None: deterministic).

    Each kind declares its constraints here, read by config validation, sweeps and benchmarks:
    `orders` (the decoder orders it works in), `needs_score` (a score other than `none`),
    `content_based` (a score that compares the query with the keys), `counts_steps` (it
    needs `t`). `from_config(model_cfg)` builds it from `config.model`, reading the fields of
    `config.model.attention` named like its own dataclass fields (each field written once).
    """

    name: ClassVar[str] = ""
    orders: ClassVar[tuple[str, ...]] = ("bahdanau", "luong")
    needs_score: ClassVar[bool] = False
    content_based: ClassVar[bool] = False
    counts_steps: ClassVar[bool] = False
    stochastic: ClassVar[bool] = False

    @classmethod
    def from_config(cls, model_cfg) -> AttentionKind:
        section = model_cfg.attention
        return cls(
            **{f.name: section[f.name] for f in dataclasses.fields(cls) if f.name in section}
        )

    @classmethod
    def constraint_errors(cls, order: str, score: str, content_based: bool) -> list[str]:
        """Why this kind cannot run with decoder `order` and score `score` (`content_based`:
        whether that score compares the query with the keys), as messages."""
        errors = []
        if order not in cls.orders:
            errors.append(f"needs model.decoder in {', '.join(cls.orders)} (got {order!r})")
        if cls.needs_score and score == "none":
            errors.append("needs a score other than 'none'")
        if cls.content_based and not content_based:
            errors.append(f"needs a content-based score (got {score!r})")
        return errors

    def option_errors(self) -> list[tuple[str, str]]:
        """What is wrong with the option values, as `(field, reason)` pairs."""
        return []

    def noise_width(self, src_len: int) -> int:
        """Uniform numbers a stochastic kind draws per step (0: deterministic)."""
        return 0

    def setup(self, cell) -> None:
        """Creates the kind's parameters on `cell` (none by default)."""

    def attend(self, cell, query, t, enc, uniform):
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Soft(AttentionKind):
    """Global attention over every source position (Bahdanau et al. 2015 Eq. 6; Luong et al.
    2015 Eq. 7): `alpha = softmax(score(q, H))`, `c = alpha H`. With the `none` score, no
    attention: the context is the encoder's final state and the weights are all zero."""

    name: ClassVar[str] = "soft"

    def attend(self, cell, query, t, enc, uniform):
        if cell.scorer is None:
            return jnp.zeros(enc.mask.shape, jnp.float32), tuple(p[0] for p in enc.context_proj), {}
        alpha = masked_softmax(cell.scorer(query, enc.prepared), enc.mask)
        return alpha, tuple(alpha.astype(p.dtype) @ p for p in enc.context_proj), {}
