"""Embedding + (bi)directional GRU/LSTM/simple RNN encoder that keeps every hidden state.

Per example: `src: [S]` token ids and `src_len: []` -> all states `H: [S, d_k]` and a final state
`[d_k]`, with `d_k = hidden_dim * (2 if bidirectional else 1)`. Keeping all of `H` is what lets
the decoder attend; the final state initialises the decoder and is the only
thing the no-attention baseline sees.

Optionally (`self_attention="<score>"`), one self-attention layer over the RNN states follows:
every position attends over all positions of the same sentence with that score function
(query `h_i`, keys `H`, padding masked), and `H <- LayerNorm(H + C)` with `C [S, d_k]` the
contexts: attention within the input elements. Padded rows stay zero.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from attnlab import rnn
from attnlab.attention import masked_softmax
from attnlab.scores import build_score


class Encoder(nn.Module):
    """Stacked, length-aware RNN encoder.

    Attributes:
      vocab_size: source vocabulary size.
      embed_dim: embedding size.
      hidden_dim: state size per direction.
      num_layers: stacked layers; layer l > 0 reads layer l-1's (concatenated) states.
      cell: "gru" | "lstm" | "simple".
      bidirectional: forward and backward states concatenated per position.
    """

    vocab_size: int
    embed_dim: int
    hidden_dim: int
    num_layers: int = 1
    cell: str = "gru"
    bidirectional: bool = True
    self_attention: str = ""  # "" = off, else a score name for one self-attention layer
    score_options: tuple = ()  # (name, value) pairs handed to `build_score`
    unroll: int = 1  # RNN steps per scan iteration (`config.model.unroll`; speed only)

    @property
    def output_dim(self) -> int:
        return self.hidden_dim * (2 if self.bidirectional else 1)

    @nn.compact
    def __call__(self, src: jnp.ndarray, src_len: jnp.ndarray):
        """`src: [S]` int, `src_len: []` -> `(H [S, d_k], final [d_k], mask [S] bool)`.

        `final` concatenates each direction's last state of the top layer (forward: after the
        last real token; backward: at position 0).
        """
        mask = jnp.arange(src.shape[0]) < src_len
        x = nn.Embed(self.vocab_size, self.embed_dim, name="embed")(src)
        names = ("fwd", "bwd") if self.bidirectional else ("fwd",)
        final = None
        for layer in range(self.num_layers):
            directions = [
                rnn.cell_params(self, f"l{layer}_{d}_", self.cell, x.shape[-1], self.hidden_dim)
                for d in names
            ]
            x, final = rnn.run_layer(self.cell, directions, x, mask, self.hidden_dim, self.unroll)
        if self.self_attention:
            layer = SelfAttention(self.self_attention, self.score_options, name="self_attention")
            x = layer(x, mask)
        return x, final, mask


class SelfAttention(nn.Module):
    """`LayerNorm(H + C)` with `C_i = sum_j alpha_ij h_j`, `alpha_i = softmax_j score(h_i, h_j)`.

    Per example: `states [S, d]`, `mask [S]`; padded keys get weight 0, padded rows stay 0.
    """

    score: str
    score_options: tuple = ()

    @nn.compact
    def __call__(self, states, mask):
        d = states.shape[-1]
        scorer = build_score(self.score, d, d, **dict(self.score_options))
        if scorer is None:
            raise ValueError("self_attention needs a score function, not 'none'")
        prepared = scorer.prepare(states)
        alpha = jax.vmap(lambda q: masked_softmax(scorer(q, prepared), mask))(states)  # [S, S]
        out = nn.LayerNorm(name="norm")(states + alpha.astype(states.dtype) @ states)
        return jnp.where(mask[:, None], out, 0.0)
