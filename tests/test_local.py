"""Local attention (Luong et al. 2015 §3.2): equal to global attention times the Gaussian when the
window covers the sentence, clipped at the edges, and O(D) per step by FLOP count."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnlab import models
from attnlab.config import default_config


def _model(
    kind: str, window: int, score="general", hidden=8, feed=True, policy="categorical", gauss=False
):
    config = default_config()
    c = config.model
    c.attention.local_m_gaussian = gauss
    c.attention.hard_policy = policy
    c.input_feeding = feed
    c.decoder, c.score, c.embed_dim = "luong", score, 8
    c.encoder.hidden_dim, c.decoder_hidden_dim, c.attention.attn_dim = hidden, hidden, hidden
    if score in ("dot", "scaled_dot", "concat_shared"):
        c.decoder_hidden_dim = 2 * hidden
    c.attention.kind, c.attention.window = kind, window
    return models.build_model(config, 12, 12)


def _batch(src_len=(7, 4), max_src=7, tgt=5, seed=0):
    rng = np.random.default_rng(seed)
    src = np.zeros((len(src_len), max_src), np.int32)
    for r, n in enumerate(src_len):
        src[r, :n] = rng.integers(4, 12, n)
    tgt_in = rng.integers(4, 12, (len(src_len), tgt)).astype(np.int32)
    return jnp.asarray(src), jnp.asarray(np.array(src_len, np.int32)), jnp.asarray(tgt_in)


@pytest.mark.parametrize("score", ["general", "additive", "dot"])
def test_a_window_covering_the_sentence_is_global_attention_eq7_or_times_the_gaussian(score):
    src, src_len, tgt_in = _batch()
    # Without input feeding the decoder states do not depend on earlier contexts, so every step
    # compares the kinds on the same state. 2D + 1 = 21 >= S = 7: the window covers it all.
    soft = _model("soft", 3, score, feed=False)
    eq7 = _model("local_m", 10, score, feed=False)  # Luong et al. 2015: Eq. 7 alone
    gauss = _model("local_m", 10, score, feed=False, gauss=True)  # the Gaussian as an option
    params = models.init_params(soft, jax.random.key(0))
    _, alpha_soft = models.apply_batch(soft, params, src, src_len, tgt_in)
    _, alpha_eq7 = models.apply_batch(eq7, params, src, src_len, tgt_in)
    _, alpha_gauss = models.apply_batch(gauss, params, src, src_len, tgt_in)
    np.testing.assert_allclose(np.asarray(alpha_eq7), np.asarray(alpha_soft), rtol=1e-5, atol=1e-6)
    t = np.arange(tgt_in.shape[1])[:, None]
    i = np.arange(src.shape[1])[None, :]
    factor = np.exp(-((i - t) ** 2) / (2 * (10 / 2) ** 2))  # sigma = D / 2, p_t = t
    expected = np.asarray(alpha_soft) * factor[None]
    np.testing.assert_allclose(np.asarray(alpha_gauss), expected, rtol=1e-5, atol=1e-6)


def test_the_window_is_clipped_at_the_sentence_edges():
    src, src_len, tgt_in = _batch(src_len=(7, 4), tgt=6)
    model = _model("local_m", 1)  # windows of 3 positions around t
    params = models.init_params(model, jax.random.key(1))
    _, alpha = models.apply_batch(model, params, src, src_len, tgt_in)
    alpha = np.asarray(alpha)
    for row, n in enumerate([7, 4]):
        for t in range(6):
            allowed = {i for i in range(t - 1, t + 2) if 0 <= i < n}
            nonzero = set(np.flatnonzero(alpha[row, t]))
            assert nonzero <= allowed, (row, t, nonzero)
            assert bool(nonzero) == bool(allowed)
    assert alpha[1, 5].sum() == 0.0  # p_t = 5 is past the 4-symbol source: nothing to attend


def test_local_p_learns_where_to_look():
    src, src_len, tgt_in = _batch()
    model = _model("local_p", 2)
    params = models.init_params(model, jax.random.key(2))

    def loss(p):
        logits, _ = models.apply_batch(model, p, src, src_len, tgt_in)
        return jnp.mean(jax.nn.log_softmax(logits)[..., 5])

    grads = jax.grad(loss)(params)["decoder"]
    assert float(jnp.abs(grads["v_p"]).sum()) > 0
    assert float(jnp.abs(grads["W_p"]["kernel"]).sum()) > 0


def _step_flops(kind: str, window: int, src_len: int, policy="categorical") -> float:
    """FLOPs of one compiled decoder step (the encoder's work is outside it)."""
    model = _model(kind, window, hidden=16, policy=policy)
    src, lengths, tgt_in = _batch(src_len=(src_len,), max_src=src_len, tgt=1)
    params = models.init_params(model, jax.random.key(0))
    variables = {"params": params}
    enc = model.apply(variables, src[0], lengths[0], method="encode")
    carry = model.apply(variables, enc, method="initial_carry")

    def step(carry, token, enc):
        return model.apply(variables, carry, token, enc, method="decode_step")

    compiled = jax.jit(step).lower(carry, tgt_in[0, 0], enc).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost["flops"])


def test_a_local_step_costs_o_d_not_o_s_by_flop_count():
    soft = [_step_flops("soft", 4, s) for s in (64, 512)]
    local = [_step_flops("local_p", 4, s) for s in (64, 512)]
    wider = _step_flops("local_p", 32, 512)
    assert soft[1] > 3 * soft[0]  # global: grows with the source length
    assert local[1] < 1.1 * local[0]  # local: independent of it
    assert wider > local[1]  # ... and grows with the window
    assert local[1] < soft[1] / 3


def test_a_hard_gaussian_step_costs_o_1_and_a_hard_categorical_one_o_s_by_flop_count():
    gaussian = [_step_flops("hard", 4, s, policy="gaussian") for s in (64, 512)]
    categorical = [_step_flops("hard", 4, s) for s in (64, 512)]
    assert gaussian[1] < 1.1 * gaussian[0]  # a location, no scores: independent of S
    assert categorical[1] > 2 * categorical[0]  # samples from one score per position
