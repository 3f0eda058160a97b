"""Alignment score functions `score(q, H) -> e`, one Flax module each (DESIGN.md §1).

Every module is written **per example**: the query is `q: [d_q]` (a decoder state), the keys are
`H: [S, d_k]` (encoder states), the scores are `e: [S]`. Batching is `jax.vmap` of the model that
calls them. The work that depends only on the keys (`W_k h_i`, `W_a h_i`) is split into
`prepare(keys)`, called **once per sequence** before the decoder's scan; the returned value is
passed to `__call__(query, prepared)` at every decoder step, so no key projection is ever
recomputed per step and nothing is cached on the module.

Scores are returned in float32 whatever the parameter dtype.

| name           | formula                                 | paper                            |
|----------------|-----------------------------------------|----------------------------------|
| `dot`          | `q . h_i`                               | Luong et al. 2015, Eq. 8         |
| `scaled_dot`   | `q . h_i / sqrt(d_k)`                   | Vaswani et al. 2017, Eq. 1       |
| `general`      | `q^T W_a h_i`                           | Luong et al. 2015, Eq. 8         |
| `additive`     | `v^T tanh(W_q q + W_k h_i [+ b])`       | Bahdanau et al. 2015, App. A.1.2 |
| `concat`       | `v^T tanh(W_a [q; h_i])`                | Luong et al. 2015, Eq. 8         |
| `concat_shared`| `v^T tanh(W (q + h_i))`                 | the seed note's description      |
| `location`     | `(W_a q)[:S]`                           | Luong et al. 2015, Eq. 9         |
| `none`         | no attention (baseline)                 | Cho et al. 2014 (RNNencdec)      |
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

_f32 = jnp.float32
_init_w = nn.initializers.lecun_normal()
_zeros = nn.initializers.zeros_init()
_normal_v = nn.initializers.normal(stddev=0.1)


class ScoreError(ValueError):
    """A score function was asked for with an unknown name or incompatible sizes."""


def _require_same_dims(name: str, query_dim: int, key_dim: int) -> None:
    if query_dim != key_dim:
        raise ScoreError(
            f"score '{name}' needs the query size to equal the key size, got query_dim="
            f"{query_dim} (decoder state) and key_dim={key_dim} (encoder states; doubled when "
            "bidirectional). Use 'general', 'additive' or 'concat', or change the sizes."
        )


class Score(nn.Module):
    """Base of every score: `prepare(keys [S, d_k]) -> prepared` once per sequence, then
    `__call__(query [d_q], prepared) -> e [S]` (float32) at every decoder step."""

    query_dim: int
    key_dim: int

    def prepare(self, keys: jnp.ndarray) -> Any:
        """Per-sequence precomputation on `keys: [S, d_k]`; default: the keys themselves."""
        return keys


class Dot(Score):
    """`e_i = q . h_i` (Luong et al. 2015, Eq. 8, "dot"). Needs `d_q == d_k`."""

    def setup(self):
        _require_same_dims("dot", self.query_dim, self.key_dim)

    def __call__(self, query, prepared):
        return prepared.astype(_f32) @ query.astype(_f32)


class ScaledDot(Score):
    """`e_i = q . h_i / sqrt(d_k)` (Vaswani et al. 2017, Eq. 1). Needs `d_q == d_k`."""

    def setup(self):
        _require_same_dims("scaled_dot", self.query_dim, self.key_dim)

    def __call__(self, query, prepared):
        return prepared.astype(_f32) @ query.astype(_f32) / math.sqrt(self.key_dim)


class General(Score):
    """`e_i = q^T W h_i` (Luong et al. 2015, Eq. 8, "general"); `W: [d_q, d_k]`.

    `prepare` computes `W h_i` for all i once: `[S, d_q]`.
    """

    def setup(self):
        self.W = self.param("W", _init_w, (self.query_dim, self.key_dim))

    def prepare(self, keys):
        return keys @ self.W.T

    def __call__(self, query, prepared):
        return prepared.astype(_f32) @ query.astype(_f32)


class Additive(Score):
    """`e_i = v^T tanh(W_q q + W_k h_i [+ b])` (Bahdanau et al. 2015, App. A.1.2).

    Parameters `W_q: [d_q, A]`, `W_k: [d_k, A]`, `v: [A]`, optional `b: [A]`. Paper values by
    default: no bias, and `v = 0` at initialisation (App. B.1), so attention starts uniform.
    `normalize=True` is "normed Bahdanau" (Salimans & Kingma 2016 weight norm on `v`):
    `v -> g v / ||v||` with a learned scalar `g`, plus the bias `b`.
    `prepare` computes `W_k h_i` for all i once: `[S, A]`.
    """

    attn_dim: int = 128
    bias: bool = False
    zero_v: bool = True
    normalize: bool = False

    def setup(self):
        if self.normalize and self.zero_v:
            raise ScoreError("additive: normalize=True divides by ||v||, so it needs zero_v=False")
        self.W_q = self.param("W_q", _init_w, (self.query_dim, self.attn_dim))
        self.W_k = self.param("W_k", _init_w, (self.key_dim, self.attn_dim))
        self.v = self.param("v", _zeros if self.zero_v else _normal_v, (self.attn_dim,))
        if self.bias or self.normalize:
            self.b = self.param("b", _zeros, (self.attn_dim,))
        if self.normalize:
            self.g = self.param("g", nn.initializers.constant(1.0 / math.sqrt(self.attn_dim)), ())

    def prepare(self, keys):
        return keys @ self.W_k

    def __call__(self, query, prepared):
        hidden = prepared.astype(_f32) + query.astype(_f32) @ self.W_q.astype(_f32)
        if self.bias or self.normalize:
            hidden = hidden + self.b.astype(_f32)
        v = self.v.astype(_f32)
        if self.normalize:
            v = self.g.astype(_f32) * v / jnp.linalg.norm(v)
        return jnp.tanh(hidden) @ v


class Concat(Score):
    """`e_i = v^T tanh(W_a [q; h_i])` (Luong et al. 2015, Eq. 8, "concat").

    `W_a: [d_q + d_k, A]` (query rows first), `v: [A]`, optional bias `b: [A]`. Algebraically an
    additive score with `W_a = [W_q; W_k]`, so `prepare` computes the key half once: `[S, A]`.
    `key_identity=True` fixes the key block to the identity (what Luong et al. ran, footnote 15):
    then `W_a: [d_q, d_k]` holds only the query block and `A = d_k`.
    """

    attn_dim: int = 128
    bias: bool = False
    key_identity: bool = False

    def setup(self):
        if self.key_identity:
            self.W_a = self.param("W_a", _init_w, (self.query_dim, self.key_dim))
        else:
            self.W_a = self.param("W_a", _init_w, (self.query_dim + self.key_dim, self.attn_dim))
        hidden_dim = self.key_dim if self.key_identity else self.attn_dim
        self.v = self.param("v", _normal_v, (hidden_dim,))
        if self.bias:
            self.b = self.param("b", _zeros, (hidden_dim,))

    def prepare(self, keys):
        if self.key_identity:
            return keys
        return keys @ self.W_a[self.query_dim :]

    def __call__(self, query, prepared):
        hidden = prepared.astype(_f32) + query.astype(_f32) @ self.W_a[: self.query_dim].astype(
            _f32
        )
        if self.bias:
            hidden = hidden + self.b.astype(_f32)
        return jnp.tanh(hidden) @ self.v.astype(_f32)


class ConcatShared(Score):
    """`e_i = v^T tanh(W (q + h_i) [+ b])`: one shared matrix for the sum (the seed's wording).

    `W: [d, A]`, `v: [A]`; needs `d_q == d_k`. `prepare` computes `W h_i` once: `[S, A]`.
    """

    attn_dim: int = 128
    bias: bool = False

    def setup(self):
        _require_same_dims("concat_shared", self.query_dim, self.key_dim)
        self.W = self.param("W", _init_w, (self.key_dim, self.attn_dim))
        self.v = self.param("v", _normal_v, (self.attn_dim,))
        if self.bias:
            self.b = self.param("b", _zeros, (self.attn_dim,))

    def prepare(self, keys):
        return keys @ self.W

    def __call__(self, query, prepared):
        hidden = prepared.astype(_f32) + query.astype(_f32) @ self.W.astype(_f32)
        if self.bias:
            hidden = hidden + self.b.astype(_f32)
        return jnp.tanh(hidden) @ self.v.astype(_f32)


class Location(Score):
    """`e = W_a q`, first `S` entries (Luong et al. 2015, Eq. 9, "location"); ignores the keys.

    `W_a: [d_q, S_max]`. As in the paper (footnote 6), a shorter source uses the first `S`
    entries; positions at or past `S_max` score `-inf`, which `masked_softmax` turns into weight
    exactly 0 (a warning is issued at trace time).
    """

    max_source_len: int = 64

    def setup(self):
        self.W_a = self.param("W_a", _init_w, (self.query_dim, self.max_source_len))

    def prepare(self, keys):
        # Only the source length matters; an empty trailing axis carries it through jit/vmap.
        return jnp.zeros(keys.shape[:-1] + (0,), keys.dtype)

    def __call__(self, query, prepared):
        src_len = prepared.shape[-2]
        scores = query.astype(_f32) @ self.W_a.astype(_f32)
        if src_len <= self.max_source_len:
            return scores[:src_len]
        warnings.warn(
            f"location score: source length {src_len} exceeds max_source_len="
            f"{self.max_source_len}; positions >= {self.max_source_len} get no attention",
            stacklevel=2,
        )
        # -inf: masked_softmax gives these positions weight 0 even if nothing else is valid.
        return jnp.concatenate([scores, jnp.full((src_len - self.max_source_len,), -jnp.inf)])


SCORES: dict[str, type[Score]] = {
    "dot": Dot,
    "scaled_dot": ScaledDot,
    "general": General,
    "additive": Additive,
    "concat": Concat,
    "concat_shared": ConcatShared,
    "location": Location,
}
NO_ATTENTION = "none"
SCORE_NAMES = (*SCORES, NO_ATTENTION)


def build_score(name: str, query_dim: int, key_dim: int, **options) -> Score | None:
    """The score module registered under `name`, or None for the `none` baseline.

    `options` may hold any score option (`attn_dim`, `bias`, `zero_v`, `normalize`,
    `key_identity`, `max_source_len`); each module takes only those it defines, so one options
    dict from the config serves every score. Size checks run here, before any tracing.
    """
    if name == NO_ATTENTION:
        return None
    if name not in SCORES:
        raise ScoreError(f"unknown score '{name}'; valid scores: {', '.join(SCORE_NAMES)}")
    cls = SCORES[name]
    fields = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in options.items() if k in fields}
    if name in ("dot", "scaled_dot", "concat_shared"):
        _require_same_dims(name, query_dim, key_dim)
    if name == "additive" and kwargs.get("normalize") and kwargs.get("zero_v", True):
        raise ScoreError("additive: normalize=True divides by ||v||, so it needs zero_v=False")
    return cls(query_dim=query_dim, key_dim=key_dim, **kwargs)
