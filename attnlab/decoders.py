"""Attention decoders as one-step cells, in the two orders the papers use (DESIGN.md §3).

Per example. The encoder output reaches every step as an `Encoded` value holding the keys
prepared **once per sequence** by the score (`score.prepare(H)`), so no key projection is
recomputed inside the scan.

**Bahdanau order** (Bahdanau et al. 2015, Eqs. 4-6 and App. A.2.2; the seed's first flow chart):
attend with the *previous* state, then step the RNN::

    e_t = score(s_{t-1}, H);  alpha_t = softmax(e_t);  c_t = sum_i alpha_ti h_i
    s_t = RNN(s_{t-1}, [emb(y_{t-1}); c_t])
    logits_t = W_o [s_t; c_t; emb(y_{t-1})] + b_o    (deep output; or W_o s_t + b_o)

**Luong order** (Luong et al. 2015, Eqs. 5-6 and §3.3 input feeding): step the RNN, then attend
with the *new* state::

    s_t = RNN(s_{t-1}, [emb(y_{t-1}); h~_{t-1}])      (input feeding; or emb(y_{t-1}) alone)
    e_t = score(s_t, H);  alpha_t, c_t as above
    h~_t = tanh(W_c [c_t; s_t])                         (Eq. 5; no bias, as in the paper)
    logits_t = W_s h~_t + b_s                           (Eq. 6)

With the `none` score there is no attention: `c_t` is the encoder's final state at every step
(Cho et al. 2014's RNNencdec) and the returned weights are all zero.

Initial state: `tanh(W_init f + b)` of the encoder's final state `f` (Bahdanau et al. 2015,
App. A.2.2, which uses the backward state; here `f` holds both directions), the final state
itself (needs equal sizes), or zeros.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax.numpy as jnp

from attnlab import rnn
from attnlab.attention import attend
from attnlab.scores import build_score

FLOWS = ("bahdanau", "luong")
INIT_STATES = ("tanh_proj", "final", "zeros")


class Encoded(NamedTuple):
    """What every decoder step reads from the encoder (per example).

    keys: `[S, d_k]` encoder states `H` (also the attention values).
    prepared: the score's per-sequence precomputation of the keys (e.g. `W_k H: [S, A]`).
    mask: `[S]` bool, True on real source positions.
    final: `[d_k]` encoder final state.
    """

    keys: jnp.ndarray
    prepared: object
    mask: jnp.ndarray
    final: jnp.ndarray


class DecoderCell(nn.Module):
    """One decoder step in either order; `__call__(carry, emb, enc) -> (carry, (logits, alpha))`.

    The carry is a dict `{"rnn": cell carry, "feed": h~_{t-1} [H]}` ("feed" is only used by the
    Luong order with input feeding, and kept at size 0 otherwise).
    """

    flow: str
    vocab_size: int
    embed_dim: int
    hidden_dim: int
    key_dim: int
    cell: str = "gru"
    score: str = "additive"
    score_options: tuple = ()  # (name, value) pairs handed to `build_score`
    deep_output: bool = True
    input_feeding: bool = True
    attentional_tanh: bool = True
    init_state: str = "tanh_proj"

    def setup(self):
        if self.flow not in FLOWS:
            raise ValueError(f"unknown decoder '{self.flow}'; valid decoders: {', '.join(FLOWS)}")
        if self.init_state not in INIT_STATES:
            raise ValueError(f"unknown init_state '{self.init_state}'; valid: {INIT_STATES}")
        self.embed = nn.Embed(self.vocab_size, self.embed_dim, name="embed")
        self.scorer = build_score(
            self.score, self.hidden_dim, self.key_dim, **dict(self.score_options)
        )
        if self.flow == "bahdanau":
            rnn_in = self.embed_dim + self.key_dim
        else:
            rnn_in = self.embed_dim + (self.hidden_dim if self.input_feeding else 0)
            self.W_c = self.param(
                "W_c",
                nn.initializers.lecun_normal(),
                (self.key_dim + self.hidden_dim, self.hidden_dim),
            )
        self.rnn = rnn.cell_params(self, "rnn_", self.cell, rnn_in, self.hidden_dim)
        if self.init_state == "tanh_proj":
            self.init_proj = nn.Dense(self.hidden_dim, name="init")
        self.out = nn.Dense(self.vocab_size, name="out")

    @property
    def uses_feed(self) -> bool:
        return self.flow == "luong" and self.input_feeding

    def prepare(self, keys, mask, final) -> Encoded:
        """Per-sequence work before the first step: the score's key projection."""
        prepared = None if self.scorer is None else self.scorer.prepare(keys)
        return Encoded(keys, prepared, mask, final)

    def initial_carry(self, enc: Encoded) -> dict:
        """The decoder carry before the first target token."""
        if self.init_state == "tanh_proj":
            h0 = jnp.tanh(self.init_proj(enc.final))
        elif self.init_state == "final":
            if enc.final.shape[-1] != self.hidden_dim:
                raise ValueError(
                    f"init_state='final' needs decoder hidden_dim ({self.hidden_dim}) equal to "
                    f"the encoder's final state size ({enc.final.shape[-1]})"
                )
            h0 = enc.final
        else:
            h0 = jnp.zeros((self.hidden_dim,), enc.keys.dtype)
        feed = jnp.zeros((self.hidden_dim if self.uses_feed else 0,), h0.dtype)
        return {"rnn": rnn.initial_carry(self.cell, h0), "feed": feed}

    def embed_tokens(self, tokens):
        """`tokens: [...]` int -> `[..., embed_dim]`."""
        return self.embed(tokens)

    def _attend(self, query, enc: Encoded):
        if self.scorer is None:  # no-attention baseline: the fixed summary, no weights
            return enc.final, jnp.zeros(enc.mask.shape, jnp.float32)
        return attend(self.scorer(query, enc.prepared), enc.mask, enc.keys)

    def _rnn_step(self, carry, x):
        return rnn.cell_step(self.cell, self.rnn, carry, rnn.project_inputs(self.rnn, x))

    def __call__(self, carry: dict, emb: jnp.ndarray, enc: Encoded):
        """One step: `emb: [E]` is `emb(y_{t-1})`; returns `(carry, (logits [V], alpha [S]))`."""
        if self.flow == "bahdanau":
            s_prev = rnn.carry_output(self.cell, carry["rnn"])
            context, alpha = self._attend(s_prev, enc)
            rnn_carry = self._rnn_step(carry["rnn"], jnp.concatenate([emb, context]))
            s = rnn.carry_output(self.cell, rnn_carry)
            features = jnp.concatenate([s, context, emb]) if self.deep_output else s
            return {"rnn": rnn_carry, "feed": carry["feed"]}, (self.out(features), alpha)
        x = jnp.concatenate([emb, carry["feed"]]) if self.uses_feed else emb
        rnn_carry = self._rnn_step(carry["rnn"], x)
        s = rnn.carry_output(self.cell, rnn_carry)
        context, alpha = self._attend(s, enc)
        h_tilde = jnp.concatenate([context, s]) @ self.W_c
        if self.attentional_tanh:
            h_tilde = jnp.tanh(h_tilde)
        feed = h_tilde if self.uses_feed else carry["feed"]
        return {"rnn": rnn_carry, "feed": feed}, (self.out(h_tilde), alpha)


def _scan_body(cell: DecoderCell, carry, emb, enc):
    return cell(carry, emb, enc)


def teacher_forced(cell: DecoderCell, enc: Encoded, tgt_in: jnp.ndarray):
    """Runs the cell over the gold inputs `tgt_in: [T]` under one `nn.scan`.

    Returns `(logits [T, V], alpha [T, S])`. The target embeddings are looked up for the whole
    sequence before the scan.
    """
    scan = nn.scan(
        _scan_body,
        variable_broadcast="params",
        split_rngs={"params": False},
        in_axes=(0, nn.broadcast),
        out_axes=0,
    )
    _, (logits, alpha) = scan(cell, cell.initial_carry(enc), cell.embed_tokens(tgt_in), enc)
    return logits, alpha


def greedy(cell: DecoderCell, enc: Encoded, max_len: int, bos_id: int, eos_id: int, pad_id: int):
    """Greedy decoding to the end token or `max_len` steps, in one `nn.while_loop`.

    Returns `(tokens [max_len], alpha [max_len, S], length [])`: tokens after the end token are
    `pad_id` and their weights 0; `length` counts the end token. Under `jax.vmap` the loop runs
    until every row is done and finished rows stop changing.
    """
    src_len = enc.mask.shape[0]

    def cond(_, state):
        return (state["t"] < max_len) & ~state["done"]

    def body(mdl, state):
        carry, (logits, alpha) = mdl(state["carry"], mdl.embed_tokens(state["y"]), enc)
        y = jnp.argmax(logits).astype(jnp.int32)
        t = state["t"]
        return {
            "t": t + 1,
            "y": y,
            "done": y == eos_id,
            "carry": carry,
            "tokens": state["tokens"].at[t].set(y),
            "alpha": state["alpha"].at[t].set(alpha),
        }

    init = {
        "t": jnp.array(0, jnp.int32),
        "y": jnp.array(bos_id, jnp.int32),
        "done": jnp.array(False),
        "carry": cell.initial_carry(enc),
        "tokens": jnp.full((max_len,), pad_id, jnp.int32),
        "alpha": jnp.zeros((max_len, src_len), jnp.float32),
    }
    final = nn.while_loop(cond, body, cell, init, broadcast_variables="params")
    return final["tokens"], final["alpha"], final["t"]
