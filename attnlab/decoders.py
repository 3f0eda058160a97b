"""Attention decoders as one-step cells, in the two orders the papers use.

Per example. The encoder output reaches every step as an `Encoded` value holding the keys
prepared **once per sequence** by the score (`score.prepare(H)`), so no key projection is
recomputed inside the scan.

**Bahdanau order** (Bahdanau et al. 2015, Eqs. 4-6 and App. A.2.2): attend with the *previous*
state, then step the RNN::

    e_t = score(s_{t-1}, H);  alpha_t = softmax(e_t);  c_t = sum_i alpha_ti h_i
    s_t = RNN(s_{t-1}, [emb(y_{t-1}); c_t])
    logits_t = W_o [s_t; c_t; emb(y_{t-1})] + b_o    (deep output; or W_o s_t + b_o)

**Luong order** (Luong et al. 2015, Eqs. 5-6 and §3.3 input feeding): step the RNN, then attend
with the *new* state::

    s_t = RNN(s_{t-1}, [emb(y_{t-1}); h~_{t-1}])      (input feeding; or emb(y_{t-1}) alone)
    e_t = score(s_t, H);  alpha_t, c_t as above
    h~_t = tanh(W_c [c_t; s_t])                         (Eq. 5; no bias, as in the paper)
    logits_t = W_s h~_t + b_s                           (Eq. 6)

How `alpha_t` and `c_t` are formed is the decoder's `attention` kind (`attnlab.kinds`): global
(`soft`), local (`local_m`, `local_p`) or `hard`; the score function is its own module
(`attnlab.scores`). With the `none` score there is no attention: `c_t` is the encoder's final
state at every step (Cho et al. 2014's RNNencdec) and the returned weights are all zero.

Initial state: `tanh(W_init f + b)` of the encoder's final state `f` (Bahdanau et al. 2015,
App. A.2.2, which uses the backward state; here `f` holds both directions), the final state
itself (needs equal sizes), or zeros.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax.numpy as jnp

from attnlab import rnn
from attnlab.attention import AttentionKind, Soft
from attnlab.scores import Score

FLOWS = ("bahdanau", "luong")
INIT_STATES = ("tanh_proj", "final", "zeros")


class Encoded(NamedTuple):
    """What every decoder step reads from the encoder (per example), prepared once per sequence.

    keys: `[S, d_k]` encoder states `H` (also the attention values).
    prepared: the score's precomputation of the keys (e.g. `H W_k: [S, A]`); None for `none`.
    mask: `[S]` bool, True on real source positions.
    final: `[d_k]` encoder final state.
    context_proj: a tuple of `[S, H]` arrays: the values already multiplied by the weights that
      consume the context inside the recurrence (Bahdanau: the context rows of the RNN input
      matrix, one array per gate; Luong: the context rows of `W_c`, one array). Since
      `c_t W = sum_i alpha_ti (h_i W)`, a step then costs `S*H` per array instead of `d_k*H`, with
      the same result. For the `none` score the arrays are `[1, H]`: the fixed summary's
      projection.
    """

    keys: jnp.ndarray
    prepared: object
    mask: jnp.ndarray
    final: jnp.ndarray
    context_proj: tuple
    length: jnp.ndarray | None = None  # [] the source length (local_p's p_t scale)


class DecoderCell(nn.Module):
    """One decoder step in either order, split so teacher forcing hoists everything it can.

    `step(carry, emb_proj, enc, uniform) -> (carry, (output, alpha, policy))` is the part inside
    the recurrence; `readout(output, alpha, emb, enc) -> logits` is not, so teacher forcing
    applies it to all steps at once after the scan. `output` is `s_t` (Bahdanau) or `h~_t`
    (Luong). The carry is a dict `{"rnn": cell carry, "feed": h~_{t-1} [H]}` ("feed" has size 0
    unless the Luong order feeds its input). `policy` is empty except for hard attention
    (`hard.py`), where it holds the step's `log_prob`, `entropy` and, with a learned baseline,
    `baseline` (scalars), and `uniform: [S]` (or None: the deterministic policy) drives the
    sampling.
    """

    flow: str
    vocab_size: int
    embed_dim: int
    hidden_dim: int
    key_dim: int
    cell: str = "gru"
    scorer: Score | None = None  # the score function module (None: the `none` baseline)
    deep_output: bool = True
    input_feeding: bool = True
    attentional_tanh: bool = True
    init_state: str = "tanh_proj"
    attention: AttentionKind = Soft()  # how weights and context are formed (attnlab.kinds)
    unroll: int = 1  # teacher forcing: steps per scan iteration (`config.model.unroll`)

    def setup(self):
        if self.flow not in FLOWS:
            raise ValueError(f"unknown decoder '{self.flow}'; valid decoders: {', '.join(FLOWS)}")
        if self.init_state not in INIT_STATES:
            raise ValueError(f"unknown init_state '{self.init_state}'; valid: {INIT_STATES}")
        score = "none" if self.scorer is None else type(self.scorer).__name__
        content_based = self.scorer is not None and self.scorer.content_based
        errors = self.attention.constraint_errors(self.flow, score, content_based)
        errors += [
            f"{f}={getattr(self.attention, f)!r}: {r}" for f, r in self.attention.option_errors()
        ]
        if errors:
            raise ValueError(f"attention kind '{self.attention.name}': " + "; ".join(errors))
        self.embed = nn.Embed(self.vocab_size, self.embed_dim, name="embed")
        if self.flow == "bahdanau":
            rnn_in = self.embed_dim + self.key_dim  # [emb(y_{t-1}); c_t]
        else:
            rnn_in = self.embed_dim + (self.hidden_dim if self.input_feeding else 0)
            shape = (self.key_dim + self.hidden_dim, self.hidden_dim)  # rows: [c_t; s_t]
            self.W_c = self.param("W_c", nn.initializers.lecun_normal(), shape)
        self.rnn = rnn.cell_params(self, "rnn_", self.cell, rnn_in, self.hidden_dim)
        self.attention.setup(self)
        if self.init_state == "tanh_proj":
            self.init_proj = nn.Dense(self.hidden_dim, name="init")
        self.out = nn.Dense(self.vocab_size, name="out")

    @property
    def uses_feed(self) -> bool:
        return self.flow == "luong" and self.input_feeding

    def _project_context(self, values):
        """`values: [n, d_k]` times the weights that take the context inside the recurrence."""
        if self.flow == "bahdanau":
            return rnn.split_gates(self.cell, values @ self.rnn["W_i"][self.embed_dim :])
        return (values @ self.W_c[: self.key_dim],)

    def prepare(self, keys, mask, final) -> Encoded:
        """Per-sequence work before the first step: key and context projections."""
        if self.scorer is None:
            return Encoded(keys, None, mask, final, self._project_context(final[None]))
        prepared, context_proj = self.scorer.prepare(keys), self._project_context(keys)
        return Encoded(keys, prepared, mask, final, context_proj, jnp.sum(mask).astype(jnp.float32))

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
        carry = {"rnn": rnn.initial_carry(self.cell, h0), "feed": feed}
        if self.attention.counts_steps:
            carry["t"] = jnp.zeros((), jnp.int32)  # the target step (local_m's p_t = t)
        return carry

    def embed_tokens(self, tokens):
        """`tokens: [...]` int -> `(emb [..., E], emb_proj: G x [..., H])`.

        `emb_proj = emb W_i[:E] + b_i`, per gate, is the embedding's share of the RNN input
        (hoisted out of the scan in teacher forcing).
        """
        emb = self.embed(tokens)
        proj = emb @ self.rnn["W_i"][: self.embed_dim] + self.rnn["b_i"]
        return emb, rnn.split_gates(self.cell, proj)

    def step(self, carry: dict, emb_proj: jnp.ndarray, enc: Encoded, uniform=None):
        """The recurrent part of one step; `emb_proj: G x [H]` from `embed_tokens`.

        Returns `(carry, (output [H], alpha [S], policy))`. Every activation stays a per-gate
        array: slicing one gate-stacked activation inside the loop is slow on XLA:CPU (rnn.py).
        `uniform: [S]` in `(0, 1)` makes hard attention sample (None: its argmax / mean).
        """
        gate_params = rnn.gates(self.cell, self.rnn)
        if self.flow == "bahdanau":  # attend with s_{t-1}, then the RNN on [emb; c_t]
            s_prev = rnn.carry_output(self.cell, carry["rnn"])
            step = carry.get("t")
            alpha, context_in, policy = self.attention.attend(self, s_prev, step, enc, uniform)
            x_proj = tuple(e + c for e, c in zip(emb_proj, context_in, strict=True))
            rnn_carry = rnn.cell_step(self.cell, gate_params, carry["rnn"], x_proj)
            return {"rnn": rnn_carry, "feed": carry["feed"]}, (
                rnn.carry_output(self.cell, rnn_carry),
                alpha,
                policy,
            )
        x_proj = emb_proj  # Luong: the RNN first, on [emb; h~_{t-1}] ...
        if self.uses_feed:
            feed_weights = rnn.split_gates(self.cell, self.rnn["W_i"][self.embed_dim :])
            x_proj = tuple(e + carry["feed"] @ w for e, w in zip(x_proj, feed_weights, strict=True))
        rnn_carry = rnn.cell_step(self.cell, gate_params, carry["rnn"], x_proj)
        s = rnn.carry_output(self.cell, rnn_carry)
        # ... then attend (globally, in a window, or at one sampled position)
        alpha, (context_c,), policy = self.attention.attend(self, s, carry.get("t"), enc, uniform)
        h_tilde = context_c + s @ self.W_c[self.key_dim :]  # W_c [c_t; s_t]
        if self.attentional_tanh:
            h_tilde = jnp.tanh(h_tilde)
        feed = h_tilde if self.uses_feed else carry["feed"]
        new_carry = {"rnn": rnn_carry, "feed": feed}
        if self.attention.counts_steps:
            new_carry["t"] = carry["t"] + 1
        return new_carry, (h_tilde, alpha, policy)

    def readout(self, output, alpha, emb, enc: Encoded):
        """Logits from step outputs; works on one step (`[H]`, `[S]`, `[E]`) or all (`[T, ...]`).

        Bahdanau: `W_o [s_t; c_t; emb(y_{t-1})] + b_o` (deep output) or `W_o s_t + b_o`;
        Luong: `W_s h~_t + b_s`.
        """
        if self.flow == "luong" or not self.deep_output:
            return self.out(output)
        if self.scorer is None:
            context = jnp.broadcast_to(enc.final, output.shape[:-1] + enc.final.shape)
        else:
            context = alpha.astype(enc.keys.dtype) @ enc.keys
        return self.out(jnp.concatenate([output, context, emb], axis=-1))

    def __call__(self, carry: dict, tokens: jnp.ndarray, enc: Encoded):
        """One whole step from the previous token id: `-> (carry, (logits [V], alpha [S]))`."""
        emb, emb_proj = self.embed_tokens(tokens)
        carry, (output, alpha, _) = self.step(carry, emb_proj, enc)
        return carry, (self.readout(output, alpha, emb, enc), alpha)


def _scan_body(cell: DecoderCell, carry, emb_proj, uniform, enc):
    return cell.step(carry, emb_proj, enc, uniform)


def teacher_forced(cell: DecoderCell, enc: Encoded, tgt_in: jnp.ndarray, uniform=None):
    """Runs the decoder over the gold inputs `tgt_in: [T]` under one `nn.scan`.

    Returns `(logits [T, V], alpha [T, S], policy)`; `policy` is `{}`, or for hard attention a
    dict of `[T]` arrays (`log_prob`, `entropy`, maybe `baseline`). `uniform: [T, S]` in (0, 1)
    makes hard attention sample its positions (None: deterministic). Embeddings and their input
    projection are computed for the whole sequence before the scan, the output layer after it.
    """
    scan = nn.scan(
        _scan_body,
        variable_broadcast="params",
        split_rngs={"params": False},
        in_axes=(0, 0, nn.broadcast),
        out_axes=0,
        unroll=cell.unroll,
    )
    emb, emb_proj = cell.embed_tokens(tgt_in)
    _, (outputs, alpha, policy) = scan(cell, cell.initial_carry(enc), emb_proj, uniform, enc)
    return cell.readout(outputs, alpha, emb, enc), alpha, policy
