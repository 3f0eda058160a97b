"""Recurrent cells as pure functions of their parameters, and a length-aware (bi)RNN layer.

Parameters are stored gate-stacked (`W_i: [d_in, G*H]`), but everything that runs inside a scan
works on **per-gate arrays**: `gates(kind, params)` splits the recurrent weights, and
`project_inputs` returns one `[..., H]` array per gate, both *outside* the loop. On XLA:CPU a
loop body that slices one `[B, G*H]` array into gates ran 2.7x slower than the same step on
separate arrays (measured: 400 vs 147 us per GRU step, batch 64, H 128), so the split is done
once per sequence instead of once per step.

The input projection `x W_i + b_i` does not depend on the recurrence, so the encoder computes it
for the whole sequence in one matrix product and the scan only does `h W_h` per step. The forward
and backward directions of a bidirectional layer run in the *same* scan (one step advances both),
halving the number of sequential steps.

Gate conventions (checked against an independent NumPy reference in tests):
- `gru`: `W_i: [d_in, 3H]`, `W_h: [H, 3H]`, biases `b_i, b_h: [3H]`, gate order (r, z, n):
  `n = tanh(x W_in + b_in + r * (h W_hn + b_hn))`, `h' = (1 - z) * n + z * h`.
- `lstm`: `W_i: [d_in, 4H]`, `W_h: [H, 4H]`, `b_i: [4H]`, gate order (i, f, g, o);
  the carry is `(h, c)`.
- `simple`: `h' = tanh(x W_i + h W_h + b_i)`.
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


def split_gates(kind: str, x: jnp.ndarray) -> tuple:
    """`[..., G*H]` -> a tuple of G arrays `[..., H]` (call outside the scan)."""
    return tuple(jnp.split(x, _GATES[kind], axis=-1))


def gates(kind: str, params: dict) -> dict:
    """The recurrent weights as per-gate arrays: `{"W_h": (G x [H, H]), "b_h": (G x [H])}`."""
    out = {"W_h": split_gates(kind, params["W_h"])}
    if "b_h" in params:
        out["b_h"] = split_gates(kind, params["b_h"])
    return out


def project_inputs(kind: str, params: dict, x: jnp.ndarray) -> tuple:
    """`x W_i + b_i` for `x: [..., d_in]` as per-gate arrays `G x [..., H]` (hoisted)."""
    return split_gates(kind, x @ params["W_i"] + params["b_i"])


def initial_carry(kind: str, h: jnp.ndarray):
    """The carry of a cell whose output state is `h: [H]` (LSTM memory cells start at 0)."""
    return (h, jnp.zeros_like(h)) if kind == "lstm" else h


def carry_output(kind: str, carry) -> jnp.ndarray:
    """The visible state `h: [H]` of a carry (the query the decoder attends with)."""
    return carry[0] if kind == "lstm" else carry


def cell_step(kind: str, gate_params: dict, carry, x_proj: tuple):
    """One step from per-gate projected inputs `x_proj: G x [H]`; returns the new carry.

    `gate_params` comes from `gates(kind, params)`.
    """
    h = carry_output(kind, carry)
    hp = [h @ w for w in gate_params["W_h"]]
    if kind == "gru":
        b = gate_params["b_h"]
        r = jax.nn.sigmoid(x_proj[0] + hp[0] + b[0])
        z = jax.nn.sigmoid(x_proj[1] + hp[1] + b[1])
        n = jnp.tanh(x_proj[2] + r * (hp[2] + b[2]))
        return (1.0 - z) * n + z * h
    if kind == "lstm":
        i, f, g, o = (x + y for x, y in zip(x_proj, hp, strict=True))
        c = jax.nn.sigmoid(f) * carry[1] + jax.nn.sigmoid(i) * jnp.tanh(g)
        return (jax.nn.sigmoid(o) * jnp.tanh(c), c)
    return jnp.tanh(x_proj[0] + hp[0])


def _masked_update(valid, new, old):
    return jax.tree.map(lambda n, o: jnp.where(valid, n, o), new, old)


def run_layer(
    kind: str,
    directions: list[dict],
    x: jnp.ndarray,
    mask: jnp.ndarray,
    hidden: int,
    unroll: int = 1,
):
    """Runs one (bi)directional layer over a sequence, respecting its length.

    Args:
      kind: cell kind.
      directions: `[forward_params]` or `[forward_params, backward_params]`.
      x: `[S, d_in]` inputs; mask: `[S]` bool, True on real tokens (a prefix).
      unroll: steps per loop iteration of the scan (speed only: the same numbers).

    Returns:
      `(outputs [S, D*H], final [D*H])`: outputs are zero on padding; the forward final state is
      the state after the last real token, the backward one the state at position 0 (the
      backward pass starts at each sequence's last real token, not at the padding).
    """
    gate_params = [gates(kind, p) for p in directions]
    projected = [project_inputs(kind, p, x) for p in directions]
    # The backward direction reads the sequence reversed; padding then comes first and is skipped.
    xs = [(projected[0], mask)]
    if len(directions) == 2:
        xs.append((tuple(g[::-1] for g in projected[1]), mask[::-1]))
    zeros = jnp.zeros((hidden,), x.dtype)
    init = tuple(initial_carry(kind, zeros) for _ in directions)

    def step(carries, inputs):
        new_carries, outs = [], []
        for d, (x_proj, valid) in enumerate(inputs):
            carry = cell_step(kind, gate_params[d], carries[d], x_proj)
            carry = _masked_update(valid, carry, carries[d])
            new_carries.append(carry)
            outs.append(jnp.where(valid, carry_output(kind, carry), 0.0))
        return tuple(new_carries), tuple(outs)

    finals, outs = jax.lax.scan(step, init, tuple(xs), unroll=unroll)
    outs = [outs[0]] + ([outs[1][::-1]] if len(directions) == 2 else [])
    final = jnp.concatenate([carry_output(kind, c) for c in finals], axis=-1)
    return jnp.concatenate(outs, axis=-1), final
