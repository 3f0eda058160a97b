"""Greedy decoding, compiled as one `lax.while_loop` over the batch.

The decoder step is the per-example `Seq2Seq.decode_step`, vmapped over the batch inside the
loop; the loop itself runs over time for the whole batch, so the step index is a scalar (tokens
are written with a dynamic slice, not a scatter) and the loop ends as soon as every row has
produced the end token, or after `max_len` steps. A finished row stops changing: its carry is
frozen, its later tokens are padding and its later attention weights are 0.

With `model.unroll = k > 1` each loop iteration runs `k` steps (the loop's own per-iteration
cost is paid once per `k` steps): the buffers get `k - 1` spare columns for the steps past
`max_len`, which are cut off, so the result is the same as with `k = 1`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from attnlab.data.vocab import BOS_ID, EOS_ID, PAD_ID


def greedy(model, params, src, src_len, max_len: int):
    """Greedy decoding of a batch.

    Args:
      model: a `Seq2Seq`; params: its parameters.
      src: `[B, S]` source ids; src_len: `[B]` lengths; max_len: most steps (static).

    Returns:
      `(tokens [B, max_len], alpha [B, max_len, S], length [B])`: `length` counts the end token
      (or is `max_len` for a row that never produced it).
    """
    variables = model.variables_for(params)
    apply = lambda method: jax.vmap(lambda *a: model.apply(variables, *a, method=method))
    enc = apply("encode")(src, src_len)
    batch, src_positions = src.shape

    def cond(state):
        return (state["t"] < max_len) & ~jnp.all(state["done"])

    unroll = model.decoder.unroll
    width = max_len + unroll - 1  # the last iteration may run up to unroll - 1 steps past max_len

    def step(state):
        carry, (logits, alpha) = apply("decode_step")(state["carry"], state["y"], enc)
        done = state["done"]
        y = jnp.where(done, PAD_ID, jnp.argmax(logits, -1).astype(jnp.int32))
        alpha = jnp.where(done[:, None], 0.0, alpha)
        keep = lambda new, old: jnp.where(done.reshape((-1,) + (1,) * (new.ndim - 1)), old, new)
        t = state["t"]
        return {
            "t": t + 1,
            "y": y,
            "done": done | (y == EOS_ID),
            "length": state["length"] + (~done).astype(jnp.int32),
            "carry": jax.tree.map(keep, carry, state["carry"]),
            "tokens": jax.lax.dynamic_update_slice(state["tokens"], y[:, None], (0, t)),
            "alpha": jax.lax.dynamic_update_slice(state["alpha"], alpha[:, None], (0, t, 0)),
        }

    init = {
        "t": jnp.array(0, jnp.int32),
        "y": jnp.full((batch,), BOS_ID, jnp.int32),
        "done": jnp.zeros((batch,), bool),
        "length": jnp.zeros((batch,), jnp.int32),
        "carry": apply("initial_carry")(enc),
        "tokens": jnp.full((batch, width), PAD_ID, jnp.int32),
        "alpha": jnp.zeros((batch, width, src_positions), jnp.float32),
    }

    def body(state):
        for _ in range(unroll):
            state = step(state)
        return state

    final = jax.lax.while_loop(cond, body, init)
    length = jnp.minimum(final["length"], max_len)
    return final["tokens"][:, :max_len], final["alpha"][:, :max_len], length
