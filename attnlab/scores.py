"""Alignment score functions `score(q, H) -> e`, one Flax module each.

Every module is written **per example**: the query is `q: [d_q]` (a decoder state), the keys are
`H: [S, d_k]` (encoder states), the scores are `e: [S]`. Batching is `jax.vmap` of the model that
calls them. The work that depends only on the keys (`W_k h_i`, `W_a h_i`) is split into
`prepare(keys)`, called **once per sequence** before the decoder's scan; the returned value is
passed to `__call__(query, prepared)` at every decoder step, so no key projection is ever
recomputed per step and nothing is cached on the module.

Scores are computed in the dtype of the query and keys (`bfloat16` under `model.dtype`) and
returned in float32.

| name           | formula                                 | paper                            |
|----------------|-----------------------------------------|----------------------------------|
| `dot`          | `q . h_i`                               | Luong et al. 2015, Eq. 8         |
| `scaled_dot`   | `q . h_i / sqrt(d_k)`                   | Vaswani et al. 2017, Eq. 1       |
| `general`      | `q^T W_a h_i`                           | Luong et al. 2015, Eq. 8         |
| `additive`     | `v^T tanh(W_q q + W_k h_i [+ b])`       | Bahdanau et al. 2015, App. A.1.2 |
| `concat`       | `v^T tanh(W_a [q; h_i])`                | Luong et al. 2015, Eq. 8         |
| `concat_shared`| `v^T tanh(W (q + h_i))`                 | one shared matrix for the sum    |
| `location`     | `(W_a q)[:S]`                           | Luong et al. 2015, Eq. 9         |
| `none`         | no attention (baseline)                 | Cho et al. 2014 (RNNencdec)      |
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

_f32 = jnp.float32
_init_w = nn.initializers.lecun_normal()
_zeros = nn.initializers.zeros_init()
_normal_v = nn.initializers.normal(stddev=0.1)


@functools.partial(jax.checkpoint, prevent_cse=False)
def _mlp_score(keys_proj, query_proj, v):
    """`v^T tanh(keys_proj + query_proj)`: `keys_proj: [S, A]` (prepared once per sequence),
    `query_proj: [A]` (with any bias), `v: [A]` -> `[S]`.

    Rematerialised (`jax.checkpoint`): the backward pass recomputes the `[S, A]` activations
    from the inputs instead of keeping them, so a decoder scan over `T` steps stores its query
    per step and the prepared keys once, and training memory grows with `S * A`, not
    `T * S * A` (the one extra `tanh` over `[S, A]` per step is cheap next to the memory).
    """
    return (jnp.tanh(keys_proj + query_proj) @ v).astype(_f32)


class ScoreError(ValueError):
    """A score function was asked for with an unknown name or incompatible sizes."""


class Score(nn.Module):
    """Base of every score: `prepare(keys [S, d_k]) -> prepared` once per sequence, then
    `__call__(query [d_q], prepared) -> e [S]` (float32) at every decoder step.

    Each score declares its own constraints, which config validation, sweeps, benchmarks and
    the attention kinds read (nothing else lists them):
    `same_size`: needs the query size to equal the key size; `content_based`: the scores
    depend on the keys (a window of keys can be scored; `location` cannot); `option_errors`:
    combinations of its options that are not allowed.
    """

    same_size: ClassVar[bool] = False
    content_based: ClassVar[bool] = True

    query_dim: int
    key_dim: int

    @classmethod
    def option_errors(cls, options: dict) -> list[str]:
        """What is wrong with these option values (`{"normalize": True, ...}`), as messages."""
        return []

    def prepare(self, keys: jnp.ndarray) -> Any:
        """Per-sequence precomputation on `keys: [S, d_k]`; default: the keys themselves."""
        return keys


class Dot(Score):
    """`e_i = q . h_i` (Luong et al. 2015, Eq. 8, "dot"). Needs `d_q == d_k`."""

    same_size: ClassVar[bool] = True

    def __call__(self, query, prepared):
        return (prepared @ query).astype(_f32)


class ScaledDot(Score):
    """`e_i = q . h_i / sqrt(d_k)` (Vaswani et al. 2017, Eq. 1). Needs `d_q == d_k`."""

    same_size: ClassVar[bool] = True

    def __call__(self, query, prepared):
        return (prepared @ query).astype(_f32) / math.sqrt(self.key_dim)


class General(Score):
    """`e_i = q^T W h_i` (Luong et al. 2015, Eq. 8, "general"); `W: [d_q, d_k]`.

    `prepare` computes `W h_i` for all i once: `[S, d_q]`.
    """

    def setup(self):
        self.W = self.param("W", _init_w, (self.query_dim, self.key_dim))

    def prepare(self, keys):
        return keys @ self.W.T

    def __call__(self, query, prepared):
        return (prepared @ query).astype(_f32)


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

    @classmethod
    def option_errors(cls, options: dict) -> list[str]:
        if options.get("normalize", False) and options.get("zero_v", True):
            return ["normalize=True divides by ||v||, so it needs zero_v=False"]
        return []

    def setup(self):
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
        query_proj = query @ self.W_q
        if self.bias or self.normalize:
            query_proj = query_proj + self.b
        v = self.v
        if self.normalize:
            v = (self.g * v.astype(_f32) / jnp.linalg.norm(v.astype(_f32))).astype(v.dtype)
        return _mlp_score(prepared, query_proj, v)


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
        query_proj = query @ self.W_a[: self.query_dim]
        if self.bias:
            query_proj = query_proj + self.b
        return _mlp_score(prepared, query_proj, self.v)


class ConcatShared(Score):
    """`e_i = v^T tanh(W (q + h_i) [+ b])`: one shared matrix for the sum.

    `W: [d, A]`, `v: [A]`; needs `d_q == d_k`. `prepare` computes `W h_i` once: `[S, A]`.
    """

    same_size: ClassVar[bool] = True
    attn_dim: int = 128
    bias: bool = False

    def setup(self):
        self.W = self.param("W", _init_w, (self.key_dim, self.attn_dim))
        self.v = self.param("v", _normal_v, (self.attn_dim,))
        if self.bias:
            self.b = self.param("b", _zeros, (self.attn_dim,))

    def prepare(self, keys):
        return keys @ self.W

    def __call__(self, query, prepared):
        query_proj = query @ self.W
        if self.bias:
            query_proj = query_proj + self.b
        return _mlp_score(prepared, query_proj, self.v)


class Location(Score):
    """`e = W_a q`, first `S` entries (Luong et al. 2015, Eq. 9, "location"); ignores the keys.

    `W_a: [d_q, S_max]`. As in the paper (footnote 6), a shorter source uses the first `S`
    entries; positions at or past `S_max` score `-inf`, which `masked_softmax` turns into weight
    exactly 0 (a warning is issued at trace time).
    """

    content_based: ClassVar[bool] = False
    max_source_len: int = 64

    def setup(self):
        self.W_a = self.param("W_a", _init_w, (self.query_dim, self.max_source_len))

    def prepare(self, keys):
        # Only the source length matters; an empty trailing axis carries it through jit/vmap.
        return jnp.zeros(keys.shape[:-1] + (0,), keys.dtype)

    def __call__(self, query, prepared):
        src_len = prepared.shape[-2]
        scores = (query @ self.W_a).astype(_f32)
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


def _score_class(name: str) -> type[Score]:
    if name not in SCORES:
        raise ScoreError(f"unknown score '{name}'; valid scores: {', '.join(SCORE_NAMES)}")
    return SCORES[name]


def needs_equal_sizes(name: str) -> bool:
    """Whether score `name` needs the query size to equal the key size (`none`: no)."""
    return name != NO_ATTENTION and _score_class(name).same_size


def is_content_based(name: str) -> bool:
    """Whether score `name` compares the query with the keys (`location` and `none` do not)."""
    return name != NO_ATTENTION and _score_class(name).content_based


def score_errors(name: str, query_dim: int, key_dim: int, options: dict) -> list[str]:
    """Everything that stops `build_score(name, query_dim, key_dim, **options)`, as messages
    (empty when it can be built): an unknown name, unequal sizes, or bad option values."""
    if name == NO_ATTENTION:
        return []
    if name not in SCORES:
        return [f"unknown score '{name}'; valid scores: {', '.join(SCORE_NAMES)}"]
    cls = SCORES[name]
    errors = [f"{name}: {e}" for e in option_errors(name, options)]
    if cls.same_size and query_dim != key_dim:
        errors.append(
            f"score '{name}' needs the query size to equal the key size, got query_dim="
            f"{query_dim} (decoder state) and key_dim={key_dim} (encoder states; doubled when "
            "bidirectional). Use 'general', 'additive' or 'concat', or change the sizes."
        )
    return errors


def option_errors(name: str, options: dict) -> list[str]:
    """What is wrong with the options score `name` takes from `options` (those it defines)."""
    if name == NO_ATTENTION or name not in SCORES:
        return []
    return SCORES[name].option_errors(_own_options(SCORES[name], options))


def _own_options(cls: type[Score], options: dict) -> dict:
    fields = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in options.items() if k in fields}


def build_score(name: str, query_dim: int, key_dim: int, **options) -> Score | None:
    """The score module registered under `name`, or None for the `none` baseline.

    `options` may hold any score option (`attn_dim`, `bias`, `zero_v`, `normalize`,
    `key_identity`, `max_source_len`, or any field a score defines); each module takes only
    those it defines, so one options dict from the config serves every score. Its constraints
    (`score_errors`) are checked here, before any tracing.
    """
    errors = score_errors(name, query_dim, key_dim, options)
    if errors:
        raise ScoreError("; ".join(errors))
    if name == NO_ATTENTION:
        return None
    cls = SCORES[name]
    return cls(query_dim=query_dim, key_dim=key_dim, **_own_options(cls, options))
