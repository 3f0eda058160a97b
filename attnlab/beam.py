"""Beam search, batched and compiled as one `lax.while_loop` over time.

Each source is encoded once (`Seq2Seq.encode` vmapped over the batch) and the `Encoded` pytree
is then tiled over the beams, so the keys and their projections are computed once per sequence,
not per beam or per step. Every step runs `Seq2Seq.decode_step` vmapped over all `B * K` beams
and keeps, per row, the `K` best of the `K * V` one-token extensions::

    cand[b, k, v] = logp[b, k] + log softmax(logits[b, k])[v]      (k live)
    cand[b, k, v] = logp[b, k] if v == PAD else -inf               (k finished)
    rank[b, k, v] = cand[b, k, v] / lp(|Y|),  lp(|Y|) = ((5 + |Y|) / 6) ** alpha

`lp` is the length penalty of Wu et al. 2016 (GNMT, Sec. 7), `|Y|` counts the end token and
`alpha = 0` means no normalisation. Live candidates all have the same length, so among them the
rank is the raw log-probability; the penalty decides between finished hypotheses and live ones.
A finished hypothesis stays in its beam with its score unchanged: its only extension is padding
with log-probability 0. At step 0 only beam 0 is live (the others start at `-inf`), so the
beams do not start as `K` copies of one hypothesis. After each selection the decoder carry, the
tokens and the attention history `[B, K, max_len, S]` are gathered along the beam axis by the
parent index, so the weights returned belong to the hypothesis returned. The loop ends when
every beam of every row is finished (or `-inf`: there were fewer than `K` hypotheses) or after
`max_len` steps; the `n_best` best beams by `logp / lp(length)` are returned, best first.

With `beam_size=1` this is greedy decoding (`generate.greedy`): same tokens, lengths and weights.
If `beam_size` exceeds the number of distinct hypotheses (tiny vocabularies), the spare beams
hold `-inf` scores and rank last.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp

from attnlab.data.vocab import BOS_ID, EOS_ID, PAD_ID


class BeamResult(NamedTuple):
    """The `n_best` hypotheses per row, best first.

    tokens: `[B, n_best, max_len]` int32, PAD after the end token.
    length: `[B, n_best]` int32, counting the end token (`max_len` if it never came).
    scores: `[B, n_best]` float32 `log_probs / lp(length)`, the score used for ranking.
    log_probs: `[B, n_best]` float32, the sum of the token log-probabilities.
    alpha: `[B, n_best, max_len, S]` float32 attention weights of each hypothesis, 0 after its end.
    """

    tokens: jnp.ndarray
    length: jnp.ndarray
    scores: jnp.ndarray
    log_probs: jnp.ndarray
    alpha: jnp.ndarray


def length_penalty(length, alpha):
    """GNMT's `lp(|Y|) = ((5 + |Y|) / 6) ** alpha` (exactly 1 for `alpha = 0`)."""
    lp = ((5.0 + jnp.asarray(length, jnp.float32)) / 6.0) ** alpha
    return jnp.where(jnp.asarray(alpha) == 0, 1.0, lp)


def _check_args(max_len, beam_size, n_best, alpha) -> None:
    for name, value in (("max_len", max_len), ("beam_size", beam_size), ("n_best", n_best)):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool):
            raise ValueError(f"{name} must be a Python int (static), got {value!r}")
    if max_len < 1:
        raise ValueError(f"max_len={max_len} is not allowed; it must be >= 1")
    if beam_size < 1:
        raise ValueError(f"beam_size={beam_size} is not allowed; it must be >= 1")
    if not 1 <= n_best <= beam_size:
        raise ValueError(f"n_best={n_best} is not allowed; it must be in 1..beam_size={beam_size}")
    # A traced alpha (jit without static alpha) cannot be checked here.
    if isinstance(alpha, numbers.Real) and not alpha >= 0:
        raise ValueError(f"alpha={alpha} is not allowed; the length penalty needs alpha >= 0")


def _gather_beams(x, parent):
    """`x: [B, K, ...]` reordered along the beam axis by `parent: [B, K]`."""
    return jax.vmap(lambda row, idx: row[idx])(x, parent)


def beam_search(
    model,
    params,
    src,
    src_len,
    max_len: int,
    beam_size: int,
    alpha: float = 0.6,
    n_best: int = 1,
) -> BeamResult:
    """Beam search over a batch.

    Args:
      model: a `Seq2Seq`; params: its parameters.
      src: `[B, S]` source ids; src_len: `[B]` lengths.
      max_len: most steps; beam_size: beams per row `K`; n_best: hypotheses returned per row
        (`1 <= n_best <= K`). All three are static (Python ints).
      alpha: the length-penalty exponent (>= 0; 0 ranks by raw log-probability). May be traced.

    Returns:
      A `BeamResult` (tokens, length, scores, log_probs, alpha), `n_best` per row, best first.
    """
    _check_args(max_len, beam_size, n_best, alpha)
    variables = model.variables_for(params)
    apply = lambda method: jax.vmap(lambda *a: model.apply(variables, *a, method=method))
    K = beam_size
    batch, src_positions = src.shape
    enc = apply("encode")(src, src_len)
    tile = lambda x: jnp.repeat(x, K, axis=0)  # [B, ...] -> [B * K, ...], beams of a row adjacent
    enc_beams = jax.tree.map(tile, enc)
    flat = lambda x: x.reshape((batch * K,) + x.shape[2:])
    unflat = lambda x: x.reshape((batch, K) + x.shape[1:])

    def cond(state):
        stopped = state["done"] | (state["log_prob"] == -jnp.inf)
        return (state["t"] < max_len) & ~jnp.all(stopped)

    def body(state):
        t, done, log_prob, length = state["t"], state["done"], state["log_prob"], state["length"]
        carry, (logits, weights) = apply("decode_step")(
            jax.tree.map(flat, state["carry"]), flat(state["y"]), enc_beams
        )
        carry, logits, weights = jax.tree.map(unflat, (carry, logits, weights))
        vocab = logits.shape[-1]
        token_lp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)  # [B, K, V]
        pad_only = jnp.where(jnp.arange(vocab) == PAD_ID, 0.0, -jnp.inf)
        cand = log_prob[..., None] + jnp.where(done[..., None], pad_only, token_lp)
        cand_len = length + (~done).astype(jnp.int32)
        rank = cand / length_penalty(cand_len, alpha)[..., None]
        _, best = jax.lax.top_k(rank.reshape(batch, K * vocab), K)  # [B, K], best first
        parent, token = best // vocab, (best % vocab).astype(jnp.int32)
        parent_done = _gather_beams(done, parent)
        token = jnp.where(parent_done, PAD_ID, token)  # only matters for -inf picks
        weights = jnp.where(parent_done[..., None], 0.0, _gather_beams(weights, parent))
        # A finished beam's carry is frozen, as in greedy decoding.
        keep = lambda new, old: jnp.where(
            done.reshape(done.shape + (1,) * (new.ndim - 2)), old, new
        )
        carry = jax.tree.map(keep, carry, state["carry"])
        tokens = _gather_beams(state["tokens"], parent)
        history = _gather_beams(state["alpha"], parent)
        return {
            "t": t + 1,
            "y": token,
            "done": parent_done | (token == EOS_ID),
            "log_prob": jnp.take_along_axis(cand.reshape(batch, K * vocab), best, axis=1),
            "length": _gather_beams(cand_len, parent),
            "carry": jax.tree.map(lambda x: _gather_beams(x, parent), carry),
            "tokens": jax.lax.dynamic_update_slice(tokens, token[..., None], (0, 0, t)),
            "alpha": jax.lax.dynamic_update_slice(history, weights[:, :, None], (0, 0, t, 0)),
        }

    init = {
        "t": jnp.array(0, jnp.int32),
        "y": jnp.full((batch, K), BOS_ID, jnp.int32),
        "done": jnp.zeros((batch, K), bool),
        # Only beam 0 is live at the start: the others would duplicate it.
        "log_prob": jnp.tile(jnp.where(jnp.arange(K) == 0, 0.0, -jnp.inf), (batch, 1)),
        "length": jnp.zeros((batch, K), jnp.int32),
        "carry": jax.tree.map(lambda x: unflat(tile(x)), apply("initial_carry")(enc)),
        "tokens": jnp.full((batch, K, max_len), PAD_ID, jnp.int32),
        "alpha": jnp.zeros((batch, K, max_len, src_positions), jnp.float32),
    }
    final = jax.lax.while_loop(cond, body, init)
    # The last selection already left the beams best first; sorting again keeps that explicit.
    scores = final["log_prob"] / length_penalty(final["length"], alpha)
    scores, order = jax.lax.top_k(scores, n_best)
    pick = lambda x: _gather_beams(x, order)
    return BeamResult(
        tokens=pick(final["tokens"]),
        length=pick(final["length"]),
        scores=scores,
        log_probs=pick(final["log_prob"]),
        alpha=pick(final["alpha"]),
    )
