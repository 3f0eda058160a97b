"""Plain float64 NumPy reference for the attention scores, the masked softmax and the RNN cells.

Independent of the package on purpose: written straight from the formulas, one example at a
time, with explicit loops where that reads more plainly. Nothing here is fast; it only has to be
obviously right.

Shapes, per example: query `q: [d_q]`, keys `K: [S, d_k]`, mask `m: [S]` bool (True = a real
source position), scores `e: [S]`, attention width `A`.

Convention for positions that must get no attention whatever the mask says (the `location`
score past `S_max`): the score is `-inf`, and `masked_softmax` gives every `-inf` score a weight
of exactly 0. A row with no valid finite score gets all-zero weights.
"""

from __future__ import annotations

import math

import numpy as np


def _f64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# ----------------------------------------------------------------------------------------------
# Softmax and context
# ----------------------------------------------------------------------------------------------


def masked_softmax(e, m) -> np.ndarray:
    """Softmax of `e: [S]` over the positions where `m: [S]` is True and `e` is not `-inf`.

    Returns `w: [S]` float64: exactly 0 on padding and on `-inf` scores, summing to 1 over the
    rest; all zeros when no position is left (never NaN).
    """
    e = _f64(e)
    m = np.asarray(m, dtype=bool)
    w = np.zeros(e.shape[0])
    valid = [i for i in range(e.shape[0]) if m[i] and e[i] != -np.inf]
    if not valid:
        return w
    largest = max(e[i] for i in valid)
    for i in valid:
        w[i] = math.exp(e[i] - largest)
    return w / w.sum()


def attend(e, m, K) -> tuple[np.ndarray, np.ndarray]:
    """`(context [d_k], weights [S])`: `w = masked_softmax(e, m)`, `context = sum_i w_i K_i`.

    `e: [S]` scores, `m: [S]` bool mask, `K: [S, d_k]` the values.
    """
    K = _f64(K)
    w = masked_softmax(e, m)
    context = np.zeros(K.shape[1])
    for i in range(K.shape[0]):
        context += w[i] * K[i]
    return context, w


# ----------------------------------------------------------------------------------------------
# Scores: each returns e: [S]
# ----------------------------------------------------------------------------------------------


def dot(q, K) -> np.ndarray:
    """`e_i = q . K_i`; `q: [d]`, `K: [S, d]`."""
    q, K = _f64(q), _f64(K)
    return np.array([np.dot(q, K[i]) for i in range(K.shape[0])])


def scaled_dot(q, K) -> np.ndarray:
    """`e_i = q . K_i / sqrt(d_k)`; `q: [d]`, `K: [S, d]`."""
    K = _f64(K)
    return dot(q, K) / math.sqrt(K.shape[1])


def general(q, K, W) -> np.ndarray:
    """`e_i = q^T W K_i`; `q: [d_q]`, `K: [S, d_k]`, `W: [d_q, d_k]`."""
    q, K, W = _f64(q), _f64(K), _f64(W)
    return np.array([q @ W @ K[i] for i in range(K.shape[0])])


def additive(q, K, W_q, W_k, v, b=None, g=None) -> np.ndarray:
    """`e_i = v'^T tanh(q W_q + K_i W_k + b)`.

    `W_q: [d_q, A]`, `W_k: [d_k, A]`, `v: [A]`, optional `b: [A]`. With `g` (a scalar, the
    weight-normalised variant) `v' = g v / ||v||`, otherwise `v' = v`.
    """
    q, K, W_q, W_k, v = _f64(q), _f64(K), _f64(W_q), _f64(W_k), _f64(v)
    b = np.zeros(v.shape[0]) if b is None else _f64(b)
    if g is not None:
        v = float(g) * v / math.sqrt(float(np.sum(v * v)))
    e = np.zeros(K.shape[0])
    for i in range(K.shape[0]):
        e[i] = v @ np.tanh(q @ W_q + K[i] @ W_k + b)
    return e


def concat(q, K, W_a, v, b=None, key_identity=False) -> np.ndarray:
    """`e_i = v^T tanh([q; K_i] W_a + b)`; `W_a: [d_q + d_k, A]` (query rows first), `v: [A]`.

    With `key_identity=True`, `W_a: [d_q, d_k]` is only the query block and the key block is the
    identity: `e_i = v^T tanh(q W_a + K_i + b)`, `v: [d_k]`.
    """
    q, K, W_a, v = _f64(q), _f64(K), _f64(W_a), _f64(v)
    b = np.zeros(v.shape[0]) if b is None else _f64(b)
    e = np.zeros(K.shape[0])
    for i in range(K.shape[0]):
        if key_identity:
            hidden = q @ W_a + K[i] + b
        else:
            hidden = np.concatenate([q, K[i]]) @ W_a + b
        e[i] = v @ np.tanh(hidden)
    return e


def concat_shared(q, K, W, v, b=None) -> np.ndarray:
    """`e_i = v^T tanh((q + K_i) W + b)`; `q: [d]`, `K: [S, d]`, `W: [d, A]`, `v: [A]`."""
    q, K, W, v = _f64(q), _f64(K), _f64(W), _f64(v)
    b = np.zeros(v.shape[0]) if b is None else _f64(b)
    e = np.zeros(K.shape[0])
    for i in range(K.shape[0]):
        e[i] = v @ np.tanh((q + K[i]) @ W + b)
    return e


def location(q, S, W_a) -> np.ndarray:
    """`e = (q W_a)[:S]`; `q: [d_q]`, `W_a: [d_q, S_max]`, source length `S`.

    When `S > S_max` the positions `>= S_max` have no score: they are `-inf`, which
    `masked_softmax` turns into a weight of exactly 0.
    """
    q, W_a = _f64(q), _f64(W_a)
    all_scores = q @ W_a
    e = np.full(S, -np.inf)
    for i in range(min(S, W_a.shape[1])):
        e[i] = all_scores[i]
    return e


# ----------------------------------------------------------------------------------------------
# RNN cells, one step: x: [d_in], h (and c): [H]
# ----------------------------------------------------------------------------------------------


def gru_step(x, h, W_i, W_h, b_i, b_h) -> np.ndarray:
    """One GRU step, gate order (r, z, n); returns `h': [H]`.

    `W_i: [d_in, 3H]`, `W_h: [H, 3H]`, `b_i, b_h: [3H]`:
    `r = s(x W_ir + b_ir + h W_hr + b_hr)`, `z = s(x W_iz + b_iz + h W_hz + b_hz)`,
    `n = tanh(x W_in + b_in + r * (h W_hn + b_hn))`, `h' = (1 - z) * n + z * h`.
    """
    x, h, W_i, W_h, b_i, b_h = map(_f64, (x, h, W_i, W_h, b_i, b_h))
    H = h.shape[0]
    gi = x @ W_i + b_i
    gh = h @ W_h + b_h
    r = _sigmoid(gi[0:H] + gh[0:H])
    z = _sigmoid(gi[H : 2 * H] + gh[H : 2 * H])
    n = np.tanh(gi[2 * H : 3 * H] + r * gh[2 * H : 3 * H])
    return (1.0 - z) * n + z * h


def lstm_step(x, h, c, W_i, W_h, b) -> tuple[np.ndarray, np.ndarray]:
    """One LSTM step, gate order (i, f, g, o); returns `(h' [H], c' [H])`.

    `W_i: [d_in, 4H]`, `W_h: [H, 4H]`, `b: [4H]`; with `a = x W_i + h W_h + b`:
    `c' = s(a_f) * c + s(a_i) * tanh(a_g)`, `h' = s(a_o) * tanh(c')`.
    """
    x, h, c, W_i, W_h, b = map(_f64, (x, h, c, W_i, W_h, b))
    H = h.shape[0]
    a = x @ W_i + h @ W_h + b
    gate_i = _sigmoid(a[0:H])
    gate_f = _sigmoid(a[H : 2 * H])
    gate_g = np.tanh(a[2 * H : 3 * H])
    gate_o = _sigmoid(a[3 * H : 4 * H])
    c_new = gate_f * c + gate_i * gate_g
    h_new = gate_o * np.tanh(c_new)
    return h_new, c_new


def simple_step(x, h, W_i, W_h, b) -> np.ndarray:
    """One Elman RNN step: `h' = tanh(x W_i + h W_h + b)`; `W_i: [d_in, H]`, `W_h: [H, H]`."""
    x, h, W_i, W_h, b = map(_f64, (x, h, W_i, W_h, b))
    return np.tanh(x @ W_i + h @ W_h + b)
