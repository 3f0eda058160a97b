"""Embedding + (bi)directional GRU/LSTM/simple RNN encoder that keeps every hidden state.

Per example: `src: [S]` token ids and `src_len: []` -> all states `H: [S, d_k]` and a final state
`[d_k]`, with `d_k = hidden_dim * (2 if bidirectional else 1)`. Keeping all of `H` is what lets
the decoder attend (the seed's step 1); the final state initialises the decoder and is the only
thing the no-attention baseline sees.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from attnlab import rnn


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
            x, final = rnn.run_layer(self.cell, directions, x, mask, self.hidden_dim)
        return x, final, mask
