"""The encoder of `attnlab.encoders` against the independent float64 NumPy reference.

Every configuration (cell x direction x depth) builds the model through the public config and
`models.build_model`, replaces all parameters with random normal values and feeds the same
arrays to `numpy_reference.encoder`. One batch holds a full-length source, padded ones (with
junk ids in the padding in one row) and an empty one. Each configuration is compiled once
(batched with `jax.vmap`) and shared by every test through a cache.
"""

from __future__ import annotations

import functools
import itertools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpy_reference as ref
import pytest

from attnlab import models
from attnlab.config_lib import load_config
from attnlab.data.vocab import PAD_ID

ATOL = 1e-4
RTOL = 1e-4

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "reverse.py") + ":quick"
SRC_VOCAB, TGT_VOCAB = 9, 7
EMBED, HIDDEN = 4, 3
S = 6  # padded source length
LENGTHS = np.array([6, 4, 1, 0, 3])  # full, padded, one token, empty, padded

CONFIGS = [
    pytest.param(
        cell, bidirectional, layers, id=f"{cell}-{'bi' if bidirectional else 'uni'}-{layers}"
    )
    for cell, bidirectional, layers in itertools.product(
        ("gru", "lstm", "simple"), (True, False), (1, 2)
    )
]


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


def model_config(cell: str, bidirectional: bool, layers: int):
    config = load_config(CONFIG)
    cfg = config.model
    cfg.embed_dim = EMBED
    cfg.encoder.cell = cell
    cfg.encoder.hidden_dim = HIDDEN
    cfg.encoder.num_layers = layers
    cfg.encoder.bidirectional = bidirectional
    cfg.decoder_hidden_dim = 5
    cfg.attention.attn_dim = 3
    return config


def randomize(shapes, seed: int):
    """Random normal float32 values (scale 0.5) for every leaf of a tree of shapes."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda x: (0.5 * rng.normal(size=x.shape)).astype(np.float32), shapes)


@functools.cache
def setup(cell: str, bidirectional: bool, layers: int):
    """`(encoder module, random encoder params, jitted one-example fn, jitted batched fn)`."""
    model = models.build_model(model_config(cell, bidirectional, layers), SRC_VOCAB, TGT_VOCAB)
    shapes = jax.eval_shape(lambda: models.init_params(model, jax.random.key(0)))
    seed = 100 * ("gru", "lstm", "simple").index(cell) + 10 * bidirectional + layers
    params = randomize(shapes["encoder"], seed)
    encoder = model.encoder

    def one(p, src, src_len):
        return encoder.apply({"params": p}, src, src_len)

    batched = jax.jit(jax.vmap(one, in_axes=(None, 0, 0)))
    return encoder, params, jax.jit(one), batched


def cell_reference_params(p: dict, prefix: str, cell: str) -> dict:
    """The package's `{prefix}W_i, ...` as the reference's cell dict (LSTM/simple: one bias)."""
    out = {"W_i": p[prefix + "W_i"], "W_h": p[prefix + "W_h"]}
    if cell == "gru":
        out.update(b_i=p[prefix + "b_i"], b_h=p[prefix + "b_h"])
    else:
        out["b"] = p[prefix + "b_i"]
    return {k: np.asarray(v, np.float64) for k, v in out.items()}


def reference_layers(p: dict, cell: str, bidirectional: bool, layers: int) -> list:
    names = ("fwd", "bwd") if bidirectional else ("fwd",)
    return [
        [cell_reference_params(p, f"l{layer}_{d}_", cell) for d in names] for layer in range(layers)
    ]


def expected_shapes(cell: str, bidirectional: bool, layers: int) -> dict:
    gates = {"gru": 3, "lstm": 4, "simple": 1}[cell] * HIDDEN
    directions = 2 if bidirectional else 1
    shapes = {"embed": {"embedding": (SRC_VOCAB, EMBED)}}
    for layer in range(layers):
        d_in = EMBED if layer == 0 else directions * HIDDEN
        for d in ("fwd", "bwd")[:directions]:
            prefix = f"l{layer}_{d}_"
            shapes[prefix + "W_i"] = (d_in, gates)
            shapes[prefix + "W_h"] = (HIDDEN, gates)
            shapes[prefix + "b_i"] = (gates,)
            if cell == "gru":
                shapes[prefix + "b_h"] = (gates,)
    return shapes


def make_sources(seed: int, junk_padding: bool):
    """`src [B, S]` with random real tokens; padding is PAD, or random non-PAD ids if `junk`."""
    rng = np.random.default_rng(seed)
    src = rng.integers(3, SRC_VOCAB, size=(len(LENGTHS), S)).astype(np.int32)
    padding = np.arange(S)[None, :] >= LENGTHS[:, None]
    junk = rng.integers(1, SRC_VOCAB, size=src.shape).astype(np.int32)
    src[padding] = junk[padding] if junk_padding else PAD_ID
    return src, LENGTHS.astype(np.int32)


# ----------------------------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell, bidirectional, layers", CONFIGS)
def test_parameter_names_and_shapes(cell, bidirectional, layers):
    _, params, _, _ = setup(cell, bidirectional, layers)
    got = jax.tree.map(lambda x: tuple(x.shape), params)
    assert got == expected_shapes(cell, bidirectional, layers)


@pytest.mark.parametrize("junk_padding", [False, True], ids=["pad", "junk"])
@pytest.mark.parametrize("cell, bidirectional, layers", CONFIGS)
def test_matches_reference(cell, bidirectional, layers, junk_padding):
    _, params, _, batched = setup(cell, bidirectional, layers)
    src, src_len = make_sources(seed=1, junk_padding=junk_padding)
    H, final, mask = jax.device_get(batched(params, src, src_len))
    width = HIDDEN * (2 if bidirectional else 1)
    assert H.shape == (len(LENGTHS), S, width) and final.shape == (len(LENGTHS), width)
    embedding = np.asarray(params["embed"]["embedding"], np.float64)
    layer_params = reference_layers(params, cell, bidirectional, layers)
    for b in range(len(LENGTHS)):
        want_H, want_final, want_mask = ref.encoder(
            src[b], src_len[b], embedding, layer_params, cell
        )
        np.testing.assert_array_equal(mask[b], want_mask)
        np.testing.assert_allclose(H[b], want_H, rtol=RTOL, atol=ATOL, err_msg=f"row {b}")
        np.testing.assert_allclose(final[b], want_final, rtol=RTOL, atol=ATOL, err_msg=f"row {b}")
        assert np.all(H[b, src_len[b] :] == 0.0), "outputs must be exactly 0 on padding"


@pytest.mark.parametrize("cell, bidirectional, layers", CONFIGS)
def test_padding_ids_change_nothing(cell, bidirectional, layers):
    """The backward pass starts at the last real token: what the padding holds is never read."""
    _, params, _, batched = setup(cell, bidirectional, layers)
    clean = jax.device_get(batched(params, *make_sources(seed=2, junk_padding=False)))
    junk = jax.device_get(batched(params, *make_sources(seed=2, junk_padding=True)))
    for got, want in zip(junk, clean, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("cell, bidirectional, layers", CONFIGS)
def test_empty_source_gives_zero_outputs_and_final(cell, bidirectional, layers):
    """`src_len = 0`: no output and a zero final state, whatever ids the padding holds."""
    _, params, _, batched = setup(cell, bidirectional, layers)
    src = np.random.default_rng(3).integers(0, SRC_VOCAB, size=(len(LENGTHS), S))
    H, final, mask = jax.device_get(
        batched(params, src.astype(np.int32), np.zeros(len(LENGTHS), np.int32))
    )
    assert not mask.any()
    assert np.all(H == 0.0) and np.all(final == 0.0)


@pytest.mark.parametrize("cell, bidirectional, layers", CONFIGS)
def test_backward_final_is_state_at_position_zero(cell, bidirectional, layers):
    """`final = [h_fwd after the last real token; h_bwd at position 0]` of the top layer."""
    _, params, _, batched = setup(cell, bidirectional, layers)
    src, src_len = make_sources(seed=4, junk_padding=True)
    H, final, _ = jax.device_get(batched(params, src, src_len))
    for b, length in enumerate(src_len):
        if length == 0:
            continue
        np.testing.assert_array_equal(final[b, :HIDDEN], H[b, length - 1, :HIDDEN])
        if bidirectional:
            np.testing.assert_array_equal(final[b, HIDDEN:], H[b, 0, HIDDEN:])


@pytest.mark.parametrize(
    "cell, bidirectional, layers",
    [c for c in CONFIGS if c.id in ("gru-bi-2", "lstm-bi-1", "simple-uni-2")],
)
def test_batched_equals_loop(cell, bidirectional, layers):
    _, params, one, batched = setup(cell, bidirectional, layers)
    src, src_len = make_sources(seed=5, junk_padding=True)
    got = jax.device_get(batched(params, src, src_len))
    for b in range(len(LENGTHS)):
        want = jax.device_get(one(params, jnp.asarray(src[b]), jnp.asarray(src_len[b])))
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g[b], w, rtol=1e-6, atol=1e-6)
