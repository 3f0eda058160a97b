"""Recurrent cells as pure functions of their parameters, and a length-aware (bi)RNN layer.

The input projection `x W_i + b_i` does not depend on the recurrence, so the encoder computes it
for the whole sequence in one matrix product and the scan only does `h W_h` per step. The
forward and backward directions of a bidirectional layer run in the *same* scan (one step
advances both), halving the number of sequential steps.

Gate conventions (checked against an independent NumPy reference in tests):
- `gru`: `W_i: [d_in, 3H]`, `W_h: [H, 3H]`, biases `b_i, b_h: [3H]`, gate order (r, z, n):
  `n = tanh(x W_in + b_in + r * (h W_hn + b_hn))`, `h' = (1 - z) * n + z * h`.
- `lstm`: `W_i: [d_in, 4H]`, `W_h: [H, 4H]`, `b: [4H]`, gate order (i, f, g, o);
  the carry is `(h, c)`.
- `simple`: `h' = tanh(x W_i + h W_h + b)`.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

CELLS = ("gru", "lstm", "simple")
_GATES = {"gru": 3, "lstm": 4, "simple": 1}


def cell_params(module: nn.Module, prefix: str, kind: str, in_dim: int, hidden: int) -> dict:
    """Declares one cell's parameters on `module` (names `{prefix}W_i`, ...); returns them."""
    if kind not in _GATES:
        raise ValueError(f"unknown RNN cell '{kind}'; valid cells: {', '.join(CELLS)}")
    width = _GATES[kind] * hidden
    params = {
        "W_i": module.param(f"{prefix}W_i", nn.initializers.lecun_normal(), (in_dim, width)),
        "W_h": module.param(f"{prefix}W_h", nn.initializers.orthogonal(), (hidden, width)),
        "b_i": module.param(f"{prefix}b_i", nn.initializers.zeros_init(), (width,)),
    }
    if kind == "gru":  # the reset gate multiplies the recurrent part including its bias
        params["b_h"] = module.param(f"{prefix}b_h", nn.initializers.zeros_init(), (width,))
    return params


def project_inputs(params: dict, x: jnp.ndarray) -> jnp.ndarray:
    """`x W_i + b_i` for `x: [..., d_in]` -> `[..., G*H]`: hoisted out of the scan."""
    return x @ params["W_i"] + params["b_i"]


def initial_carry(kind: str, h: jnp.ndarray):
    """The carry of a cell whose output state is `h: [H]` (LSTM memory cells start at 0)."""
    return (h, jnp.zeros_like(h)) if kind == "lstm" else h


def carry_output(kind: str, carry) -> jnp.ndarray:
    """The visible state `h: [H]` of a carry (the query the decoder attends with)."""
    return carry[0] if kind == "lstm" else carry


def cell_step(kind: str, params: dict, carry, x_proj: jnp.ndarray):
    """One step from the projected input `x_proj: [G*H]`; returns the new carry."""
    h = carry_output(kind, carry)
    if kind == "gru":
        hp = h @ params["W_h"] + params["b_h"]
        xr, xz, xn = jnp.split(x_proj, 3, axis=-1)
        hr, hz, hn = jnp.split(hp, 3, axis=-1)
        r = jax.nn.sigmoid(xr + hr)
        z = jax.nn.sigmoid(xz + hz)
        n = jnp.tanh(xn + r * hn)
        return (1.0 - z) * n + z * h
    if kind == "lstm":
        c = carry[1]
        i, f, g, o = jnp.split(x_proj + h @ params["W_h"], 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        return (jax.nn.sigmoid(o) * jnp.tanh(c), c)
    return jnp.tanh(x_proj + h @ params["W_h"])


def _masked_update(valid, new, old):
    return jax.tree.map(lambda n, o: jnp.where(valid, n, o), new, old)


def run_layer(kind: str, directions: list[dict], x: jnp.ndarray, mask: jnp.ndarray, hidden: int):
    """Runs one (bi)directional layer over a sequence, respecting its length.

    Args:
      kind: cell kind.
      directions: `[forward_params]` or `[forward_params, backward_params]`.
      x: `[S, d_in]` inputs; mask: `[S]` bool, True on real tokens (a prefix).

    Returns:
      `(outputs [S, D*H], final [D*H])`: outputs are zero on padding; the forward final state is
      the state after the last real token, the backward one the state at position 0 (the
      backward pass starts at each sequence's last real token, not at the padding).
    """
    projected = [project_inputs(p, x) for p in directions]
    # The backward direction reads the sequence reversed; padding then comes first and is skipped.
    xs = [projected[0], mask] + ([projected[1][::-1], mask[::-1]] if len(directions) == 2 else [])
    zeros = jnp.zeros((hidden,), x.dtype)
    init = tuple(initial_carry(kind, zeros) for _ in directions)

    def step(carries, inputs):
        new_carries, outs = [], []
        for d, params in enumerate(directions):
            x_proj, valid = inputs[2 * d], inputs[2 * d + 1]
            carry = _masked_update(valid, cell_step(kind, params, carries[d], x_proj), carries[d])
            new_carries.append(carry)
            outs.append(jnp.where(valid, carry_output(kind, carry), 0.0))
        return tuple(new_carries), tuple(outs)

    finals, outs = jax.lax.scan(step, init, xs)
    outs = [outs[0]] + ([outs[1][::-1]] if len(directions) == 2 else [])
    final = jnp.concatenate([carry_output(kind, c) for c in finals], axis=-1)
    return jnp.concatenate(outs, axis=-1), final
