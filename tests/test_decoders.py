"""Both decoder orders of `attnlab` against the independent float64 NumPy reference.

Every case builds the whole model through the public config and `models.build_model`, replaces
all parameters with random normal values and runs the same arrays through
`numpy_reference.encoder` and `numpy_reference.teacher_forced` / `greedy`: logits and attention
weights are compared at every step. The batch always holds a full-length source, padded ones
(junk ids in the padding of one) and an empty one. Each case is compiled once (batched) and
shared through a cache; greedy decoding is compiled for one case per order.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpy_reference as ref
import pytest

from attnlab import models
from attnlab.config_lib import load_config
from attnlab.data.vocab import BOS_ID, EOS_ID, PAD_ID

ATOL = 1e-4
RTOL = 1e-4

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "reverse.py") + ":quick"
SRC_VOCAB, TGT_VOCAB = 9, 7
EMBED, ENC_HIDDEN, DEC_HIDDEN, ATTN = 4, 3, 5, 3
KEY_DIM = 2 * ENC_HIDDEN  # bidirectional encoder
S, T = 6, 5  # padded source length, target length
LENGTHS = np.array([6, 3, 0, 5])  # full, padded, empty, padded
MAX_LEN = 8  # greedy decoding
ORDERS = ("bahdanau", "luong")

# name -> config overrides (dotted field names under config.model). Compiles dominate the run
# time, so each case covers several options; the reference checks every one of them anyway.
CASES = {
    "gru-additive": {},
    "lstm-general": {"encoder.cell": "lstm", "decoder_cell": "lstm", "score": "general"},
    "lstm-dot-init_final": {
        "decoder_cell": "lstm",
        "score": "dot",
        "init_state": "final",
        "decoder_hidden_dim": KEY_DIM,
    },
    "gru-concat-init_zeros": {"score": "concat", "init_state": "zeros"},
    "simple-location": {"decoder_cell": "simple", "score": "location"},
    "gru-none": {"score": "none"},
}
ORDER_CASES = {
    "bahdanau": {"gru-additive-no_deep_output": {"deep_output": False}},
    "luong": {
        "gru-additive-no_input_feeding": {"input_feeding": False},
        "lstm-additive-no_attentional_tanh": {"decoder_cell": "lstm", "attentional_tanh": False},
    },
}
PARAMS = [
    pytest.param(order, name, id=f"{order}-{name}")
    for order in ORDERS
    for name in (*CASES, *ORDER_CASES[order])
]


# ----------------------------------------------------------------------------------------------
# Building, parameters and the reference
# ----------------------------------------------------------------------------------------------


def model_config(order: str, name: str):
    """The whole config of one case (its model section set up for the test sizes)."""
    config = load_config(CONFIG)
    cfg = config.model
    cfg.embed_dim = EMBED
    cfg.encoder.cell = "gru"
    cfg.encoder.hidden_dim = ENC_HIDDEN
    cfg.encoder.num_layers = 1
    cfg.encoder.bidirectional = True
    cfg.decoder = order
    cfg.decoder_hidden_dim = DEC_HIDDEN
    cfg.attention.attn_dim = ATTN
    cfg.attention.max_source_len = S + 2
    overrides = {**CASES, **ORDER_CASES[order]}[name]
    for field, value in overrides.items():
        *parents, leaf = field.split(".")
        node = cfg
        for parent in parents:
            node = node[parent]
        node[leaf] = value
    return config


def randomize(shapes, seed: int):
    """Random normal float32 values (scale 0.5) for every leaf of a tree of shapes."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda x: (0.5 * rng.normal(size=x.shape)).astype(np.float32), shapes)


class Case:
    """One compiled configuration: model, random params, reference spec and params."""

    def __init__(self, order: str, name: str):
        config = model_config(order, name)
        self.cfg = cfg = config.model
        self.model = model = models.build_model(config, SRC_VOCAB, TGT_VOCAB)
        self.shapes = jax.eval_shape(lambda: models.init_params(model, jax.random.key(0)))
        seed = 1000 * ORDERS.index(order) + sum(map(ord, name))
        self.params = randomize(self.shapes, seed)
        self.spec = ref.DecoderSpec(
            order=order,
            cell=cfg.decoder_cell,
            score=cfg.score,
            init_state=cfg.init_state,
            deep_output=cfg.deep_output,
            input_feeding=cfg.input_feeding,
            attentional_tanh=cfg.attentional_tanh,
            key_identity=cfg.attention.key_identity,
        )
        self.apply_batch = jax.jit(functools.partial(models.apply_batch, model))

    @functools.cached_property
    def apply_one(self):
        return jax.jit(lambda p, s, sl, t: self.model.apply({"params": p}, s, sl, t))

    @functools.cached_property
    def generate_one(self):
        def one(p, s, sl):  # a batch of one example
            out = models.generate_batch(self.model, p, s[None], jnp.reshape(sl, (1,)), MAX_LEN)
            return jax.tree.map(lambda x: x[0], out)

        return jax.jit(one)

    @functools.cached_property
    def generate_batch(self):
        return jax.jit(lambda p, s, sl: models.generate_batch(self.model, p, s, sl, MAX_LEN))

    def reference_encode(self, params, src, src_len):
        """`(H, final, mask)` of one example from the reference encoder."""
        p = params["encoder"]
        enc = self.cfg.encoder
        layers = [
            [cell_reference_params(p, f"l{layer}_{d}_", enc.cell) for d in ("fwd", "bwd")]
            for layer in range(enc.num_layers)
        ]
        return ref.encoder(src, src_len, f64(p["embed"]["embedding"]), layers, enc.cell)

    def reference_decoder_params(self, params) -> dict:
        p = params["decoder"]
        P = {
            "embedding": f64(p["embed"]["embedding"]),
            "cell": cell_reference_params(p, "rnn_", self.cfg.decoder_cell),
            "score": {k: f64(v) for k, v in p.get("scorer", {}).items()},
            "out_W": f64(p["out"]["kernel"]),
            "out_b": f64(p["out"]["bias"]),
        }
        if "init" in p:
            P["init_W"], P["init_b"] = f64(p["init"]["kernel"]), f64(p["init"]["bias"])
        if "W_c" in p:
            P["W_c"] = f64(p["W_c"])
        return P

    def reference_teacher_forced(self, params, src, src_len, tgt_in):
        H, final, mask = self.reference_encode(params, src, src_len)
        P = self.reference_decoder_params(params)
        return ref.teacher_forced(self.spec, P, H, mask, final, tgt_in)

    def reference_greedy(self, params, src, src_len):
        H, final, mask = self.reference_encode(params, src, src_len)
        P = self.reference_decoder_params(params)
        return ref.greedy(self.spec, P, H, mask, final, MAX_LEN, BOS_ID, EOS_ID, PAD_ID)


@functools.cache
def get_case(order: str, name: str) -> Case:
    return Case(order, name)


def f64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def cell_reference_params(p: dict, prefix: str, cell: str) -> dict:
    """The package's `{prefix}W_i, ...` as the reference's cell dict (LSTM/simple: one bias)."""
    out = {"W_i": f64(p[prefix + "W_i"]), "W_h": f64(p[prefix + "W_h"])}
    if cell == "gru":
        out.update(b_i=f64(p[prefix + "b_i"]), b_h=f64(p[prefix + "b_h"]))
    else:
        out["b"] = f64(p[prefix + "b_i"])
    return out


def expected_decoder_shapes(cfg) -> dict:
    """The decoder's parameter tree (shapes) as specified for a configuration."""
    E, H, V, d_k, A = EMBED, cfg.decoder_hidden_dim, TGT_VOCAB, KEY_DIM, ATTN
    gates = {"gru": 3, "lstm": 4, "simple": 1}[cfg.decoder_cell] * H
    if cfg.decoder == "bahdanau":
        rnn_in = E + d_k
        out_in = H + d_k + E if cfg.deep_output else H
    else:
        rnn_in = E + H if cfg.input_feeding else E
        out_in = H
    shapes = {
        "embed": {"embedding": (V, E)},
        "rnn_W_i": (rnn_in, gates),
        "rnn_W_h": (H, gates),
        "rnn_b_i": (gates,),
        "out": {"kernel": (out_in, V), "bias": (V,)},
    }
    if cfg.decoder_cell == "gru":
        shapes["rnn_b_h"] = (gates,)
    if cfg.init_state == "tanh_proj":
        shapes["init"] = {"kernel": (d_k, H), "bias": (H,)}
    if cfg.decoder == "luong":
        shapes["W_c"] = (d_k + H, H)
    scorer = {
        "additive": {"W_q": (H, A), "W_k": (d_k, A), "v": (A,)},
        "general": {"W": (H, d_k)},
        "concat": {"W_a": (H + d_k, A), "v": (A,)},
        "location": {"W_a": (H, S + 2)},
    }.get(cfg.score)
    if scorer is not None:
        shapes["scorer"] = scorer
    return shapes


def make_batch(seed: int):
    """`src [B, S]`, `src_len [B]`, `tgt_in [B, T]` (BOS first); junk ids in row 1's padding."""
    rng = np.random.default_rng(seed)
    src = rng.integers(3, SRC_VOCAB, size=(len(LENGTHS), S)).astype(np.int32)
    padding = np.arange(S)[None, :] >= LENGTHS[:, None]
    src[padding] = PAD_ID
    src[1, LENGTHS[1] :] = rng.integers(1, SRC_VOCAB, size=S - LENGTHS[1])
    tgt_in = rng.integers(0, TGT_VOCAB, size=(len(LENGTHS), T)).astype(np.int32)
    tgt_in[:, 0] = BOS_ID
    return src, LENGTHS.astype(np.int32), tgt_in


def assert_weights_close(got, want, msg=""):
    got = np.asarray(got, np.float64)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=msg)
    assert np.all(got[want == 0.0] == 0.0), f"{msg}: weight where none is allowed"


# ----------------------------------------------------------------------------------------------
# Teacher forcing
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("order, name", PARAMS)
def test_parameter_tree(order, name):
    case = get_case(order, name)
    got = jax.tree.map(lambda x: tuple(x.shape), case.shapes["decoder"])
    assert got == expected_decoder_shapes(case.cfg)


@pytest.mark.parametrize("order, name", PARAMS)
def test_teacher_forced_matches_reference(order, name):
    case = get_case(order, name)
    src, src_len, tgt_in = make_batch(seed=1)
    logits, alpha = jax.device_get(case.apply_batch(case.params, src, src_len, tgt_in))
    assert logits.shape == (len(LENGTHS), T, TGT_VOCAB) and alpha.shape == (len(LENGTHS), T, S)
    assert np.all(np.isfinite(logits)) and np.all(np.isfinite(alpha))
    for b in range(len(LENGTHS)):
        want_logits, want_alpha = case.reference_teacher_forced(
            case.params, src[b], src_len[b], tgt_in[b]
        )
        for t in range(T):
            msg = f"row {b} (src_len {src_len[b]}), step {t + 1}"
            np.testing.assert_allclose(
                logits[b, t], want_logits[t], rtol=RTOL, atol=ATOL, err_msg=msg
            )
            assert_weights_close(alpha[b, t], want_alpha[t], msg)
        assert np.all(alpha[b, :, src_len[b] :] == 0.0), "weight on padding"
        if case.cfg.score == "none" or src_len[b] == 0:
            assert np.all(alpha[b] == 0.0)
        else:
            np.testing.assert_allclose(alpha[b].sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("order", ORDERS)
def test_apply_batch_equals_loop(order):
    case = get_case(order, "gru-additive")
    src, src_len, tgt_in = make_batch(seed=2)
    logits, alpha = jax.device_get(case.apply_batch(case.params, src, src_len, tgt_in))
    for b in range(len(LENGTHS)):
        one = case.apply_one(case.params, src[b], jnp.int32(src_len[b]), tgt_in[b])
        want_logits, want_alpha = jax.device_get(one)
        np.testing.assert_allclose(logits[b], want_logits, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(alpha[b], want_alpha, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("order", ORDERS)
def test_padding_ids_and_later_targets_do_not_leak(order):
    """Junk in the source padding changes nothing; step t does not read targets after t."""
    case = get_case(order, "gru-additive")
    src, src_len, tgt_in = make_batch(seed=3)
    base = jax.device_get(case.apply_batch(case.params, src, src_len, tgt_in))
    src2, tgt2 = src.copy(), tgt_in.copy()
    padding = np.arange(S)[None, :] >= src_len[:, None]
    src2[padding] = (src2[padding] % (SRC_VOCAB - 1)) + 1
    tgt2[:, 3:] = (tgt2[:, 3:] + 1) % TGT_VOCAB
    logits, alpha = jax.device_get(case.apply_batch(case.params, src2, src_len, tgt2))
    np.testing.assert_array_equal(logits[:, :3], base[0][:, :3])
    np.testing.assert_array_equal(alpha[:, :3], base[1][:, :3])


# ----------------------------------------------------------------------------------------------
# Greedy decoding
# ----------------------------------------------------------------------------------------------

POOL = 24  # candidate sources searched (with the reference) for rows that stop early or never


@functools.cache
def greedy_setup(order: str):
    """Parameters and sources whose greedy runs stop at various steps, chosen with the reference.

    Over a few random parameter draws and shifts of the EOS output bias, the first one for which
    a pool of random sources holds two rows that emit EOS early (at step 2 to MAX_LEN - 2) and
    two that never emit it. Only rows whose every argmax wins by a clear margin (so float32 and
    float64 must agree) are kept. Returns `(case, params, src [6, S], src_len [6], reference
    results per row)`: two early stoppers, two rows that never stop, then two others.
    """
    case = get_case(order, "gru-additive")
    rng = np.random.default_rng(10)
    src_len = rng.integers(0, S + 1, size=POOL).astype(np.int32)
    src = rng.integers(3, SRC_VOCAB, size=(POOL, S)).astype(np.int32)
    src[np.arange(S)[None, :] >= src_len[:, None]] = PAD_ID
    for seed in range(500, 510):
        drawn = randomize(case.shapes, seed)
        for shift in np.linspace(-1.0, 2.0, 13):
            params = jax.tree.map(np.array, drawn)
            params["decoder"]["out"]["bias"][EOS_ID] += shift
            results = [case.reference_greedy(params, src[i], src_len[i]) for i in range(POOL)]
            safe = [i for i, r in enumerate(results) if r[3].min() > 1e-3]
            early = [i for i in safe if 2 <= results[i][2] <= MAX_LEN - 2]
            never = [i for i in safe if EOS_ID not in results[i][0]]
            if len(early) >= 2 and len(never) >= 2:
                rows = early[:2] + never[:2]
                rows += [i for i in safe if i not in rows][:2]
                assert len(rows) == 6
                return case, params, src[rows], src_len[rows], [results[i] for i in rows]
    raise AssertionError("no parameters give both early-stopping and never-stopping rows")


def assert_greedy_equal(got, want, msg):
    tokens, alpha, length = got
    want_tokens, want_alpha, want_length, _ = want
    np.testing.assert_array_equal(tokens, want_tokens, err_msg=msg)
    assert int(length) == want_length, msg
    assert_weights_close(alpha, want_alpha, msg)


@pytest.mark.parametrize("order", ORDERS)
def test_generate_matches_reference_greedy(order):
    case, params, src, src_len, want = greedy_setup(order)
    for b in range(len(src)):
        got = jax.device_get(case.generate_one(params, src[b], jnp.int32(src_len[b])))
        assert_greedy_equal(got, want[b], f"row {b} (src_len {src_len[b]})")


@pytest.mark.parametrize("order", ORDERS)
def test_generate_stops_at_eos(order):
    case, params, src, src_len, _ = greedy_setup(order)
    for b in range(4):  # two early stoppers, then two rows that never emit EOS
        tokens, alpha, length = jax.device_get(
            case.generate_one(params, src[b], jnp.int32(src_len[b]))
        )
        eos = np.flatnonzero(tokens == EOS_ID)
        if b < 2:
            assert 2 <= length <= MAX_LEN - 2
            assert eos[0] == length - 1, "length counts the EOS"
            assert np.all(tokens[length:] == PAD_ID)
            assert np.all(alpha[length:] == 0.0)
        else:
            assert length == MAX_LEN and eos.size == 0
        if src_len[b] > 0:
            np.testing.assert_allclose(alpha[:length].sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("order", ORDERS)
def test_generate_batch_rows_do_not_depend_on_their_batch(order):
    """A row decodes the same alone, with rows that stop at once, or with rows that never stop."""
    case, params, src, src_len, want = greedy_setup(order)
    rows = np.arange(len(src))
    batches = [rows, rows[::-1], np.array([0, 0, 0, 0, 1, 1]), np.array([0, 2, 3, 1, 2, 3])]
    for batch in batches:
        tokens, alpha, length = jax.device_get(
            case.generate_batch(params, src[batch], src_len[batch])
        )
        assert tokens.shape == (len(batch), MAX_LEN) and alpha.shape == (len(batch), MAX_LEN, S)
        for j, b in enumerate(batch):
            alone = jax.device_get(case.generate_one(params, src[b], jnp.int32(src_len[b])))
            msg = f"row {b} in batch {list(batch)}"
            np.testing.assert_array_equal(tokens[j], alone[0], err_msg=msg)
            assert length[j] == alone[2], msg
            np.testing.assert_allclose(alpha[j], alone[1], rtol=1e-5, atol=1e-6, err_msg=msg)
            assert np.all(alpha[j, length[j] :] == 0.0), msg
            assert_greedy_equal((tokens[j], alpha[j], length[j]), want[b], msg)


# ----------------------------------------------------------------------------------------------
# The MLP scores' rematerialisation: memory linear in the source, gradients unchanged
# ----------------------------------------------------------------------------------------------


def _param_grads(case, src, src_len, tgt_in, probe):
    def loss(params):
        logits, _ = models.apply_batch(case.model, params, src, src_len, tgt_in)
        return jnp.sum(logits * probe)

    return jax.device_get(jax.jit(jax.grad(loss))(case.params))


@pytest.mark.parametrize(
    "order, name", [("bahdanau", "gru-additive"), ("luong", "gru-concat-init_zeros")]
)
def test_rematerialised_scores_keep_their_gradients(order, name, monkeypatch):
    """The `[S, A]` activations recomputed in the backward pass give the gradients of the
    same program that stores them (`_mlp_score` without `jax.checkpoint`)."""
    from attnlab import scores

    case = get_case(order, name)
    src, src_len, tgt_in = make_batch(seed=4)
    probe = np.random.default_rng(5).normal(size=(len(LENGTHS), T, TGT_VOCAB)).astype(np.float32)
    got = _param_grads(case, src, src_len, tgt_in, probe)
    monkeypatch.setattr(scores, "_mlp_score", scores._mlp_score.__wrapped__)
    want = _param_grads(case, src, src_len, tgt_in, probe)
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    assert any(np.any(g != 0) for g in jax.tree.leaves(got["decoder"]["scorer"]))


def test_mlp_score_training_memory_does_not_grow_with_target_times_source():
    """XLA's peak buffers of a gradient through the decoder at S = 256: `additive`'s `[S, A]`
    activations are not kept per target step, so it needs at most 2x `general`'s memory (kept
    per step, they would be T * S * A floats: several times the whole program)."""

    def program_mib(score: str) -> float:
        config = load_config(CONFIG)
        m = config.model
        m.embed_dim, m.encoder.hidden_dim, m.decoder_hidden_dim, m.attention.attn_dim = 8, 8, 8, 64
        m.decoder, m.score = "luong", score
        model = models.build_model(config, SRC_VOCAB, TGT_VOCAB)
        params = jax.eval_shape(lambda: models.init_params(model, jax.random.key(0)))
        src = jax.ShapeDtypeStruct((2, 256), jnp.int32)
        src_len = jax.ShapeDtypeStruct((2,), jnp.int32)
        tgt_in = jax.ShapeDtypeStruct((2, 64), jnp.int32)

        def loss(params, src, src_len, tgt_in):
            logits, _ = models.apply_batch(model, params, src, src_len, tgt_in)
            return jnp.sum(logits)

        lowered = jax.jit(jax.grad(loss)).lower(params, src, src_len, tgt_in)
        memory = lowered.compile().memory_analysis()
        total = memory.argument_size_in_bytes + memory.temp_size_in_bytes
        return (total + memory.output_size_in_bytes) / 2**20

    stored = 2 * 64 * 256 * 64 * 4 / 2**20  # [B, T, S, A] float32, were it kept
    additive, general = program_mib("additive"), program_mib("general")
    assert additive <= 2 * general, (additive, general)
    assert additive < stored / 4, (additive, stored)


# ----------------------------------------------------------------------------------------------
# Mixed precision
# ----------------------------------------------------------------------------------------------

BF16_LOGITS_ATOL = 0.05  # bfloat16 keeps 8 bits of mantissa: logits of size ~2 move by ~0.02
BF16_WEIGHTS_ATOL = 0.01


def test_bfloat16_computes_in_bfloat16_within_tolerance_of_float32():
    """`model.dtype=bfloat16` runs the matmuls in bfloat16 on the same float32 parameters,
    returns float32 logits and weights, and stays within a stated tolerance of float32."""
    src, src_len, tgt_in = make_batch(seed=6)
    for order, name in (("bahdanau", "gru-additive"), ("luong", "lstm-general")):
        case = get_case(order, name)
        config = model_config(order, name)
        config.model.dtype = "bfloat16"
        model = models.build_model(config, SRC_VOCAB, TGT_VOCAB)
        fn = functools.partial(models.apply_batch, model)
        assert "bf16" in str(jax.make_jaxpr(fn)(case.params, src, src_len, tgt_in))
        logits, alpha = jax.device_get(jax.jit(fn)(case.params, src, src_len, tgt_in))
        want_logits, want_alpha = jax.device_get(
            case.apply_batch(case.params, src, src_len, tgt_in)
        )
        assert logits.dtype == alpha.dtype == np.float32
        np.testing.assert_allclose(logits, want_logits, atol=BF16_LOGITS_ATOL, err_msg=name)
        np.testing.assert_allclose(alpha, want_alpha, atol=BF16_WEIGHTS_ATOL, err_msg=name)
        assert np.all(alpha[:, :, S:] == 0) and np.all(alpha[2] == 0)  # masking still exact


def test_unrolled_loops_give_the_same_results():
    """`model.unroll=3`: teacher forcing and greedy decoding (3 steps per loop iteration, with
    steps past `max_len` cut off) return what one step per iteration returns."""
    order = "luong"
    case = get_case(order, "gru-additive")
    config = model_config(order, "gru-additive")
    config.model.unroll = 3
    model = models.build_model(config, SRC_VOCAB, TGT_VOCAB)
    src, src_len, tgt_in = make_batch(seed=7)
    got = jax.jit(functools.partial(models.apply_batch, model))(case.params, src, src_len, tgt_in)
    want = case.apply_batch(case.params, src, src_len, tgt_in)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    endings = set()
    for max_len in (MAX_LEN, 3):  # rows that end, and rows cut off at max_len
        tokens, alpha, length = jax.device_get(
            jax.jit(lambda p, s, sl, m=model, n=max_len: models.generate_batch(m, p, s, sl, n))(
                case.params, src, src_len
            )
        )
        want_tokens, want_alpha, want_length = jax.device_get(
            models.generate_batch(case.model, case.params, src, src_len, max_len)
        )
        assert tokens.shape == want_tokens.shape and alpha.shape == want_alpha.shape
        np.testing.assert_array_equal(tokens, want_tokens)
        np.testing.assert_array_equal(length, want_length)
        np.testing.assert_allclose(alpha, want_alpha, rtol=1e-5, atol=1e-6)
        endings |= {"cut" if n == max_len else "ended" for n in want_length}
    assert endings == {"cut", "ended"}  # rows past max_len (the spare columns) and rows that end
