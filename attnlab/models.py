"""The sequence-to-sequence model, written per example and batched with `jax.vmap`.

`Seq2Seq` holds an `Encoder` and a `DecoderCell`; its methods (`__call__` for teacher forcing,
`encode` / `initial_carry` / `decode_step` for generation) take one example.
`build_model(cfg.model, ...)` is the only reader of `config.model`. The batched entry points
`apply_batch` / `generate_batch` vmap the per-example methods over the batch with shared
parameters (greedy decoding loops over time for the whole batch: see `generate.py`).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from attnlab import decoders, generate
from attnlab.encoders import Encoder


class Seq2Seq(nn.Module):
    """Encoder + attention decoder (per example)."""

    encoder: Encoder
    decoder: decoders.DecoderCell

    def encode(self, src, src_len) -> decoders.Encoded:
        """`src: [S]`, `src_len: []` -> `Encoded` with keys prepared once for the decoder."""
        keys, final, mask = self.encoder(src, src_len)
        return self.decoder.prepare(keys, mask, final)

    def __call__(self, src, src_len, tgt_in):
        """Teacher forcing: `tgt_in: [T]` -> `(logits [T, V], alpha [T, S])` (hard attention:
        its deterministic policy)."""
        logits, alpha, _ = decoders.teacher_forced(self.decoder, self.encode(src, src_len), tgt_in)
        return logits, alpha

    def sample(self, src, src_len, tgt_in, uniform):
        """Teacher forcing with hard attention sampling its positions from `uniform: [T, S]`
        in (0, 1): `-> (logits [T, V], alpha [T, S], policy)`, `policy` a dict of `[T]`
        arrays (`log_prob`, `entropy`, maybe `baseline`; see `decoders.teacher_forced`)."""
        return decoders.teacher_forced(self.decoder, self.encode(src, src_len), tgt_in, uniform)

    def initial_carry(self, enc: decoders.Encoded):
        """The decoder carry before the first target token."""
        return self.decoder.initial_carry(enc)

    def decode_step(self, carry, token, enc: decoders.Encoded):
        """One generation step from the previous token `token: []`.

        Returns `(carry, (logits [V], alpha [S]))`.
        """
        return self.decoder(carry, token, enc)


def build_model(model_cfg, src_vocab_size: int, tgt_vocab_size: int) -> Seq2Seq:
    """Builds `Seq2Seq` from the `config.model` section (the only place that reads it)."""
    encoder = Encoder(
        vocab_size=src_vocab_size,
        embed_dim=model_cfg.embed_dim,
        hidden_dim=model_cfg.encoder.hidden_dim,
        num_layers=model_cfg.encoder.num_layers,
        cell=model_cfg.encoder.cell,
        bidirectional=model_cfg.encoder.bidirectional,
        self_attention=model_cfg.encoder.self_attention,
        score_options=(
            ("attn_dim", model_cfg.attention.attn_dim),
            ("bias", model_cfg.attention.bias),
            ("zero_v", model_cfg.attention.zero_v),
            ("key_identity", model_cfg.attention.key_identity),
            ("max_source_len", model_cfg.attention.max_source_len),
        ),
    )
    a = model_cfg.attention
    decoder = decoders.DecoderCell(
        flow=model_cfg.decoder,
        vocab_size=tgt_vocab_size,
        embed_dim=model_cfg.embed_dim,
        hidden_dim=model_cfg.decoder_hidden_dim,
        key_dim=encoder.output_dim,
        cell=model_cfg.decoder_cell,
        score=model_cfg.score,
        score_options=(
            ("attn_dim", a.attn_dim),
            ("bias", a.bias),
            ("zero_v", a.zero_v),
            ("normalize", a.normalize),
            ("key_identity", a.key_identity),
            ("max_source_len", a.max_source_len),
        ),
        deep_output=model_cfg.deep_output,
        input_feeding=model_cfg.input_feeding,
        attentional_tanh=model_cfg.attentional_tanh,
        init_state=model_cfg.init_state,
        attention_kind=a.kind,
        window=a.window,
        hard_policy=a.hard_policy,
        hard_std=a.hard_std,
        hard_learned_std=a.hard_learned_std,
        learned_baseline=a.kind == "hard" and model_cfg.reinforce.baseline == "learned",
    )
    return Seq2Seq(encoder=encoder, decoder=decoder)


def init_params(model: Seq2Seq, rng, src_len: int = 8, tgt_len: int = 8):
    """Initialises parameters from one dummy example (shapes do not depend on lengths)."""
    src = jnp.zeros((src_len,), jnp.int32)
    return model.init(rng, src, jnp.array(src_len), jnp.zeros((tgt_len,), jnp.int32))["params"]


def apply_batch(model: Seq2Seq, params, src, src_len, tgt_in):
    """Batched teacher forcing: `[B, S], [B], [B, T] -> (logits [B, T, V], alpha [B, T, S])`."""
    fn = lambda s, sl, t: model.apply({"params": params}, s, sl, t)
    return jax.vmap(fn)(src, src_len, tgt_in)


def sample_batch(model: Seq2Seq, params, src, src_len, tgt_in, uniform):
    """Batched `Seq2Seq.sample`: `uniform: [B, T, S]` -> `(logits [B, T, V], alpha [B, T, S],
    policy)` with `[B, T]` policy arrays."""
    fn = lambda s, sl, t, u: model.apply({"params": params}, s, sl, t, u, method="sample")
    return jax.vmap(fn)(src, src_len, tgt_in, uniform)


def generate_batch(model: Seq2Seq, params, src, src_len, max_len: int):
    """Batched greedy decoding: `-> (tokens [B, max_len], alpha [B, max_len, S], length [B])`."""
    return generate.greedy(model, params, src, src_len, max_len)


def generate_one(model: Seq2Seq, params, src, src_len, max_len: int):
    """Greedy decoding of one example: `[S], [] -> (tokens [max_len], alpha [max_len, S], [])`."""
    out = generate.greedy(model, params, src[None], jnp.reshape(src_len, (1,)), max_len)
    return jax.tree.map(lambda x: x[0], out)
