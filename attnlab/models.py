"""The sequence-to-sequence model, written per example and batched with `jax.vmap`.

`Seq2Seq` holds an `Encoder` and a `DecoderCell`; its methods (`__call__` for teacher forcing,
`encode` / `initial_carry` / `decode_step` for generation) take one example.
`build_model(config)` is the only reader of `config.model`. The batched entry points
`apply_batch` / `generate_batch` vmap the per-example methods over the batch with shared
parameters (greedy decoding loops over time for the whole batch: see `generate.py`).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from attnlab import decoders, generate
from attnlab.encoders import Encoder
from attnlab.kinds import build_kind
from attnlab.scores import build_score

COMPUTE_DTYPES = ("float32", "bfloat16")


class Seq2Seq(nn.Module):
    """Encoder + attention decoder (per example).

    `dtype` is the compute type (`config.model.dtype`): with `bfloat16`, `variables_for(params)`
    hands the modules a bfloat16 copy of the float32 parameters, so every matmul and activation
    runs in bfloat16 while the optimiser updates float32 parameters (the cast's gradient is a
    cast back); softmax weights, scores, logits, losses and metrics stay float32.
    """

    encoder: Encoder
    decoder: decoders.DecoderCell
    dtype: str = "float32"

    def variables_for(self, params) -> dict:
        """`{"params": ...}` to `apply` with: the parameters in the compute dtype."""
        if self.dtype == "float32":
            return {"params": params}
        cast = lambda x: x.astype(self.dtype) if x.dtype == jnp.float32 else x
        return {"params": jax.tree.map(cast, params)}

    def encode(self, src, src_len) -> decoders.Encoded:
        """`src: [S]`, `src_len: []` -> `Encoded` with keys prepared once for the decoder."""
        keys, final, mask = self.encoder(src, src_len)
        return self.decoder.prepare(keys, mask, final)

    def __call__(self, src, src_len, tgt_in):
        """Teacher forcing: `tgt_in: [T]` -> `(logits [T, V], alpha [T, S])` (hard attention:
        its deterministic policy)."""
        logits, alpha, _ = decoders.teacher_forced(self.decoder, self.encode(src, src_len), tgt_in)
        return logits.astype(jnp.float32), alpha

    def sample(self, src, src_len, tgt_in, uniform):
        """Teacher forcing with hard attention sampling its positions from `uniform: [T, S]`
        in (0, 1): `-> (logits [T, V], alpha [T, S], policy)`, `policy` a dict of `[T]`
        arrays (`log_prob`, `entropy`, maybe `baseline`; see `decoders.teacher_forced`)."""
        enc = self.encode(src, src_len)
        logits, alpha, policy = decoders.teacher_forced(self.decoder, enc, tgt_in, uniform)
        return logits.astype(jnp.float32), alpha, policy

    def initial_carry(self, enc: decoders.Encoded):
        """The decoder carry before the first target token."""
        return self.decoder.initial_carry(enc)

    def decode_step(self, carry, token, enc: decoders.Encoded):
        """One generation step from the previous token `token: []`.

        Returns `(carry, (logits [V], alpha [S]))`.
        """
        carry, (logits, alpha) = self.decoder(carry, token, enc)
        return carry, (logits.astype(jnp.float32), alpha)


def build_model(config, src_vocab_size: int | None = None, tgt_vocab_size: int | None = None):
    """Builds `Seq2Seq` from a whole config (the only reader of `config.model`).

    The vocabulary sizes come from the data: pass them when the data is loaded already, else
    they are read from `config.data` (a synthetic task's size is known; a real data set's
    vocabulary is built from its training split). Options reach the modules by name: every
    field of `config.model.attention` is offered to the score (`build_score` keeps those the
    score defines) and the attention kind reads its own (`attnlab.kinds`).
    """
    if src_vocab_size is None or tgt_vocab_size is None:
        src_vocab_size, tgt_vocab_size = vocab_sizes(config)
    m = config.model
    options = dict(m.attention)
    encoder = Encoder(
        vocab_size=src_vocab_size,
        embed_dim=m.embed_dim,
        hidden_dim=m.encoder.hidden_dim,
        num_layers=m.encoder.num_layers,
        cell=m.encoder.cell,
        bidirectional=m.encoder.bidirectional,
        self_attention=m.encoder.self_attention,
        # the decoder's score options; the self-attention layer's scores are not weight-normed
        score_options=tuple(sorted(dict(options, normalize=False).items())),
        unroll=m.unroll,
    )
    decoder = decoders.DecoderCell(
        flow=m.decoder,
        vocab_size=tgt_vocab_size,
        embed_dim=m.embed_dim,
        hidden_dim=m.decoder_hidden_dim,
        key_dim=encoder.output_dim,
        cell=m.decoder_cell,
        scorer=build_score(m.score, m.decoder_hidden_dim, encoder.output_dim, **options),
        deep_output=m.deep_output,
        input_feeding=m.input_feeding,
        attentional_tanh=m.attentional_tanh,
        init_state=m.init_state,
        attention=build_kind(m),
        unroll=m.unroll,
    )
    return Seq2Seq(encoder=encoder, decoder=decoder, dtype=m.dtype)


def vocab_sizes(config) -> tuple[int, int]:
    """`(source, target)` vocabulary sizes of `config.data` (loads a real data set)."""
    from attnlab.data.pipeline import get_datasets
    from attnlab.data.synthetic import TASKS, make_vocab

    if config.data.name in TASKS:
        size = make_vocab(config.data.vocab_size).size
        return size, size
    data = get_datasets(config.data, config.seed)
    return data.src_vocab.size, data.tgt_vocab.size


def init_params(model: Seq2Seq, rng, src_len: int = 8, tgt_len: int = 8):
    """Initialises parameters from one dummy example (shapes do not depend on lengths)."""
    src = jnp.zeros((src_len,), jnp.int32)
    return model.init(rng, src, jnp.array(src_len), jnp.zeros((tgt_len,), jnp.int32))["params"]


def apply_batch(model: Seq2Seq, params, src, src_len, tgt_in):
    """Batched teacher forcing: `[B, S], [B], [B, T] -> (logits [B, T, V], alpha [B, T, S])`."""
    variables = model.variables_for(params)
    fn = lambda s, sl, t: model.apply(variables, s, sl, t)
    return jax.vmap(fn)(src, src_len, tgt_in)


def sample_batch(model: Seq2Seq, params, src, src_len, tgt_in, uniform):
    """Batched `Seq2Seq.sample`: `uniform: [B, T, S]` -> `(logits [B, T, V], alpha [B, T, S],
    policy)` with `[B, T]` policy arrays."""
    variables = model.variables_for(params)
    fn = lambda s, sl, t, u: model.apply(variables, s, sl, t, u, method="sample")
    return jax.vmap(fn)(src, src_len, tgt_in, uniform)


def generate_batch(model: Seq2Seq, params, src, src_len, max_len: int):
    """Batched greedy decoding: `-> (tokens [B, max_len], alpha [B, max_len, S], length [B])`."""
    return generate.greedy(model, params, src, src_len, max_len)
