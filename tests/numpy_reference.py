"""Plain float64 NumPy reference for the scores, the masked softmax, the RNN cells, the encoder
and both decoder orders (teacher forcing and greedy decoding).

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

import dataclasses
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


# ----------------------------------------------------------------------------------------------
# Cells by name. Parameters are dicts: gru {W_i, W_h, b_i, b_h}; lstm and simple {W_i, W_h, b}.
# The state is h: [H] (gru, simple) or the pair (h, c) (lstm).
# ----------------------------------------------------------------------------------------------

CELL_KINDS = ("gru", "lstm", "simple")


def cell_hidden_size(p: dict) -> int:
    """The state size `H` of a cell: the number of rows of `W_h`."""
    return _f64(p["W_h"]).shape[0]


def cell_zero_state(kind: str, hidden: int):
    """The all-zero state (`h = 0`, and `c = 0` for the LSTM)."""
    return cell_state_from(kind, np.zeros(hidden))


def cell_state_from(kind: str, h):
    """The state whose visible part is `h: [H]`; an LSTM's memory `c` starts at 0."""
    h = _f64(h)
    if kind == "lstm":
        return (h, np.zeros(h.shape[0]))
    return h


def cell_output(kind: str, state) -> np.ndarray:
    """The visible state `h: [H]` (for the LSTM, `h` and not the memory `c`)."""
    return state[0] if kind == "lstm" else state


def cell_step(kind: str, p: dict, x, state):
    """One step of the named cell on input `x: [d_in]`; returns the new state."""
    if kind == "gru":
        return gru_step(x, state, p["W_i"], p["W_h"], p["b_i"], p["b_h"])
    if kind == "lstm":
        return lstm_step(x, state[0], state[1], p["W_i"], p["W_h"], p["b"])
    if kind == "simple":
        return simple_step(x, state, p["W_i"], p["W_h"], p["b"])
    raise ValueError(f"unknown cell {kind!r}")


# ----------------------------------------------------------------------------------------------
# Encoder: embedding + stacked (bi)directional RNN over the real tokens only
# ----------------------------------------------------------------------------------------------


def run_direction(kind: str, p: dict, xs, reverse: bool) -> list[np.ndarray]:
    """Runs one direction over `xs: [L, d_in]` (the real tokens only) from the zero state.

    Returns the visible state after each position, indexed by position: `out[i]` is the state
    after reading `xs[i]` (forward: having read 0..i; backward: having read L-1..i).
    """
    xs = _f64(xs)
    length = xs.shape[0]
    state = cell_zero_state(kind, cell_hidden_size(p))
    out = [None] * length
    order = range(length - 1, -1, -1) if reverse else range(length)
    for i in order:
        state = cell_step(kind, p, xs[i], state)
        out[i] = cell_output(kind, state)
    return out


def encoder(src, src_len, embedding, layers, kind: str):
    """The encoder for one example.

    Args:
      src: `[S]` token ids; src_len: the number `L` of real tokens (a prefix of `src`).
      embedding: `[V_src, E]`.
      layers: one entry per layer, each a list of direction parameter dicts: `[fwd]` or
        `[fwd, bwd]` (bidirectional). Layer `l > 0` reads layer `l-1`'s outputs.
      kind: the cell of every direction.

    Returns:
      `(H [S, D*H], final [D*H], mask [S] bool)`: `H_i = [h_fwd_i; h_bwd_i]` (or `h_fwd_i`) for
      `i < L` and 0 on padding; `final = [h_fwd_{L-1}; h_bwd_0]` of the top layer (zeros when
      `L = 0`).
    """
    src = np.asarray(src)
    S = src.shape[0]
    L = int(src_len)
    embedding = _f64(embedding)
    xs = np.array([embedding[src[i]] for i in range(L)]).reshape(L, embedding.shape[1])
    for directions in layers:
        hidden = cell_hidden_size(directions[0])
        fwd = run_direction(kind, directions[0], xs, reverse=False)
        parts = [fwd]
        finals = [fwd[L - 1] if L > 0 else np.zeros(hidden)]
        if len(directions) == 2:
            bwd = run_direction(kind, directions[1], xs, reverse=True)
            parts.append(bwd)
            finals.append(bwd[0] if L > 0 else np.zeros(hidden))
        width = hidden * len(directions)
        xs = np.array([np.concatenate([part[i] for part in parts]) for i in range(L)])
        xs = xs.reshape(L, width)
        final = np.concatenate(finals)
    H = np.zeros((S, xs.shape[1]))
    H[:L] = xs
    mask = np.arange(S) < L
    return H, final, mask


# ----------------------------------------------------------------------------------------------
# Decoders, per example
# ----------------------------------------------------------------------------------------------


def score(name: str, p: dict, q, K, key_identity: bool = False) -> np.ndarray:
    """The score named `name` of query `q: [d_q]` against keys `K: [S, d_k]`; `p` its params."""
    if name == "dot":
        return dot(q, K)
    if name == "scaled_dot":
        return scaled_dot(q, K)
    if name == "general":
        return general(q, K, p["W"])
    if name == "additive":
        return additive(q, K, p["W_q"], p["W_k"], p["v"], p.get("b"), p.get("g"))
    if name == "concat":
        return concat(q, K, p["W_a"], p["v"], p.get("b"), key_identity=key_identity)
    if name == "concat_shared":
        return concat_shared(q, K, p["W"], p["v"], p.get("b"))
    if name == "location":
        return location(q, _f64(K).shape[0], p["W_a"])
    raise ValueError(f"unknown score {name!r}")


@dataclasses.dataclass(frozen=True)
class DecoderSpec:
    """Which decoder: `order` "bahdanau" | "luong", its cell, score and options."""

    order: str
    cell: str = "gru"
    score: str = "additive"  # or "none": no attention
    init_state: str = "tanh_proj"  # | "final" | "zeros"
    deep_output: bool = True  # Bahdanau order only
    input_feeding: bool = True  # Luong order only
    attentional_tanh: bool = True  # Luong order only
    key_identity: bool = False  # concat score only


# Decoder parameters `P` (a dict of float arrays):
#   "embedding" [V, E]; "init_W" [d_k, H], "init_b" [H] (init_state "tanh_proj" only);
#   "cell": the cell's dict (its input is [E + d_k] in the Bahdanau order, [E + H] or [E] in
#   the Luong order); "score": the score's dict; "W_c" [d_k + H, H] (Luong order only);
#   "out_W" [d_out, V] with d_out = H + d_k + E (Bahdanau, deep output) or H; "out_b" [V].


def decoder_initial_state(spec: DecoderSpec, P: dict, final) -> dict:
    """`{"s": s_0 (the cell state), "h_tilde": h~_0 = 0}` from the encoder's final state."""
    final = _f64(final)
    hidden = cell_hidden_size(P["cell"])
    if spec.init_state == "tanh_proj":
        h0 = np.tanh(final @ _f64(P["init_W"]) + _f64(P["init_b"]))
    elif spec.init_state == "final":
        h0 = final.copy()
    elif spec.init_state == "zeros":
        h0 = np.zeros(hidden)
    else:
        raise ValueError(f"unknown init_state {spec.init_state!r}")
    return {"s": cell_state_from(spec.cell, h0), "h_tilde": np.zeros(hidden)}


def _context(spec: DecoderSpec, P: dict, query, H, mask, final):
    """`(c [d_k], alpha [S])`; without attention `c` is the encoder final state, `alpha = 0`."""
    if spec.score == "none":
        return _f64(final), np.zeros(_f64(H).shape[0])
    e = score(spec.score, P["score"], query, H, key_identity=spec.key_identity)
    return attend(e, mask, H)


def decoder_step(spec: DecoderSpec, P: dict, state: dict, y_prev: int, H, mask, final):
    """One decoder step on the previous token `y_prev`; returns `(state, logits [V], alpha [S])`.

    Bahdanau order: attend with `s_{t-1}`, then `s_t = cell([e; c_t], s_{t-1})`,
    `logits = [s_t; c_t; e] W_out + b_out` (deep output) or `s_t W_out + b_out`.
    Luong order: `s_t = cell([e; h~_{t-1}], s_{t-1})` (or `cell(e, s_{t-1})` without input
    feeding), attend with `s_t`, `h~_t = tanh([c_t; s_t] W_c)`, `logits = h~_t W_out + b_out`.
    """
    emb = _f64(P["embedding"])[int(y_prev)]
    kind = spec.cell
    if spec.order == "bahdanau":
        s_prev = cell_output(kind, state["s"])
        context, alpha = _context(spec, P, s_prev, H, mask, final)
        s_state = cell_step(kind, P["cell"], np.concatenate([emb, context]), state["s"])
        s = cell_output(kind, s_state)
        features = np.concatenate([s, context, emb]) if spec.deep_output else s
        new_state = {"s": s_state, "h_tilde": state["h_tilde"]}
    elif spec.order == "luong":
        x = np.concatenate([emb, state["h_tilde"]]) if spec.input_feeding else emb
        s_state = cell_step(kind, P["cell"], x, state["s"])
        s = cell_output(kind, s_state)
        context, alpha = _context(spec, P, s, H, mask, final)
        h_tilde = np.concatenate([context, s]) @ _f64(P["W_c"])
        if spec.attentional_tanh:
            h_tilde = np.tanh(h_tilde)
        features = h_tilde
        new_state = {"s": s_state, "h_tilde": h_tilde}
    else:
        raise ValueError(f"unknown decoder order {spec.order!r}")
    logits = features @ _f64(P["out_W"]) + _f64(P["out_b"])
    return new_state, logits, alpha


def teacher_forced(spec: DecoderSpec, P: dict, H, mask, final, tgt_in):
    """The decoder on the gold inputs `tgt_in: [T]`: `(logits [T, V], alpha [T, S])`."""
    state = decoder_initial_state(spec, P, final)
    all_logits, all_alpha = [], []
    for y_prev in np.asarray(tgt_in):
        state, logits, alpha = decoder_step(spec, P, state, y_prev, H, mask, final)
        all_logits.append(logits)
        all_alpha.append(alpha)
    return np.array(all_logits), np.array(all_alpha)


def greedy(spec: DecoderSpec, P: dict, H, mask, final, max_len: int, bos: int, eos: int, pad: int):
    """Greedy decoding: feed back the argmax from `bos` until `eos` (included) or `max_len`.

    Returns `(tokens [max_len], alpha [max_len, S], length, margins [length])`: positions after
    the end are `pad` with all-zero weights; `length` counts the end token; `margins[t]` is the
    gap between the best and the second-best logit at step t (how safe each argmax is).
    """
    S = _f64(H).shape[0]
    tokens = np.full(max_len, pad, dtype=np.int64)
    alphas = np.zeros((max_len, S))
    margins = []
    state = decoder_initial_state(spec, P, final)
    y = bos
    length = 0
    while length < max_len:
        state, logits, alpha = decoder_step(spec, P, state, y, H, mask, final)
        y = int(np.argmax(logits))
        top = np.sort(logits)
        margins.append(float(top[-1] - top[-2]))
        tokens[length] = y
        alphas[length] = alpha
        length += 1
        if y == eos:
            break
    return tokens, alphas, length, np.array(margins)
