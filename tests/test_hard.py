"""Hard attention: the samplers draw from the policy they score, the chosen state is the context,
the policy learns only through REINFORCE, and a short run learns the alignment of `reverse`."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnlab import hard, models, runner
from attnlab.config import default_config, quick, validate
from attnlab.config_lib import ConfigError

SCORES = jnp.array([0.5, -1.0, 1.5, 0.2, 9.0])
MASK = jnp.array([True, True, True, True, False])  # the large score sits on padding


def test_gumbel_max_draws_the_masked_softmax_and_its_argmax_without_noise():
    n = 200_000
    uniform = hard.draw_uniform(jax.random.key(0), (n, 5))
    index, log_prob, entropy = jax.vmap(hard.sample_categorical, (None, None, 0))(
        SCORES, MASK, uniform
    )
    p = np.exp(np.asarray(SCORES[:4]) - np.max(SCORES[:4]))
    p /= p.sum()
    freq = np.bincount(np.asarray(index), minlength=5) / n
    assert freq[4] == 0.0  # padding is never chosen
    np.testing.assert_allclose(freq[:4], p, atol=0.005)  # ~5 standard errors
    np.testing.assert_allclose(np.asarray(log_prob), np.log(p)[np.asarray(index)], rtol=1e-5)
    np.testing.assert_allclose(float(entropy[0]), -np.sum(p * np.log(p)), rtol=1e-5)
    greedy, _, _ = hard.sample_categorical(SCORES, MASK)
    assert int(greedy) == 2


def test_the_gaussian_policy_samples_around_its_mean_inside_the_sentence():
    n = 100_000
    mean, log_std, length = jnp.float32(3.2), jnp.log(jnp.float32(1.5)), jnp.float32(6.0)
    uniform = hard.draw_uniform(jax.random.key(1), (n, 4))
    index, log_prob, entropy = jax.vmap(hard.sample_gaussian, (None, None, None, 0))(
        mean, log_std, length, uniform
    )
    index = np.asarray(index)
    assert index.min() == 0 and index.max() == 5  # clipped to [0, L - 1]
    # P(index = 3) = P(3 <= x < 4) for x ~ N(3.2, 1.5^2)
    from scipy.stats import norm

    np.testing.assert_allclose(
        np.mean(index == 3), norm.cdf(4, 3.2, 1.5) - norm.cdf(3, 3.2, 1.5), atol=0.005
    )
    np.testing.assert_allclose(
        float(entropy[0]), 0.5 * np.log(2 * np.pi * np.e * 1.5**2), rtol=1e-5
    )
    assert int(hard.sample_gaussian(mean, log_std, length)[0]) == 3  # the mean's position


def test_the_categorical_reinforce_gradient_is_unbiased():
    """E[(R(a) - b) grad log pi(a)] over Gumbel-max draws equals grad E[R] in closed form."""
    reward = jnp.array([1.0, -0.5, 2.0, 0.0, 0.0])
    exact = jax.grad(lambda s: jnp.sum(jax.nn.softmax(jnp.where(MASK, s, -1e30)) * reward))(SCORES)
    uniform = hard.draw_uniform(jax.random.key(2), (200_000, 5))

    def surrogate(scores):
        index, log_prob, _ = jax.vmap(hard.sample_categorical, (None, None, 0))(
            scores, MASK, uniform
        )
        return jnp.mean((reward[index] - 0.7) * log_prob)

    np.testing.assert_allclose(jax.grad(surrogate)(SCORES), exact, atol=0.01)


def _model(policy="categorical", flow="luong", baseline="moving_average", hidden=8):
    config = default_config()
    c = config.model
    c.decoder, c.score, c.embed_dim = flow, "general", 8
    c.encoder.hidden_dim, c.decoder_hidden_dim, c.attention.attn_dim = hidden, hidden, hidden
    c.attention.kind, c.attention.hard_policy = "hard", policy
    c.reinforce.baseline = baseline
    return config, models.build_model(config, 12, 12)


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    src = np.zeros((3, 7), np.int32)
    for r, n in enumerate([7, 4, 1]):
        src[r, :n] = rng.integers(4, 12, n)
    tgt_in = rng.integers(4, 12, (3, 5)).astype(np.int32)
    return jnp.asarray(src), jnp.asarray([7, 4, 1], jnp.int32), jnp.asarray(tgt_in)


@pytest.mark.parametrize("flow", ["luong", "bahdanau"])
def test_the_first_step_attends_to_the_argmax_of_the_soft_scores(flow):
    src, src_len, tgt_in = _batch()
    cfg, hard_model = _model(flow=flow)
    cfg.model.attention.kind = "soft"
    soft_model = models.build_model(cfg, 12, 12)
    params = models.init_params(soft_model, jax.random.key(3))
    _, alpha_soft = models.apply_batch(soft_model, params, src, src_len, tgt_in)
    _, alpha_hard = models.apply_batch(hard_model, params, src, src_len, tgt_in)
    alpha_hard = np.asarray(alpha_hard)
    # One position per step, inside the sentence; at step 0 both see the same state.
    assert np.all(alpha_hard.sum(-1) == 1.0) and np.all(alpha_hard.max(-1) == 1.0)
    for row, n in enumerate([7, 4, 1]):
        assert np.all(alpha_hard[row, :, n:] == 0.0)
    np.testing.assert_array_equal(
        alpha_hard[:, 0].argmax(-1), np.asarray(alpha_soft)[:, 0].argmax(-1)
    )


def test_the_context_is_the_chosen_encoder_state():
    """Luong order: h~_t = tanh(W_c [h_a; s_t]) with a the sampled position."""
    src, src_len, tgt_in = _batch()
    _, model = _model()
    params = models.init_params(model, jax.random.key(4))
    uniform = hard.draw_uniform(jax.random.key(5), tgt_in.shape + src.shape[1:])
    _, alpha, policy = models.sample_batch(model, params, src, src_len, tgt_in, uniform)
    # Replaying the sampled positions as fixed soft weights gives the same decoder.
    keys = jax.vmap(lambda s, n: model.apply({"params": params}, s, n, method="encode"))(
        src, src_len
    ).keys
    chosen = np.einsum("bts,bsd->btd", np.asarray(alpha), np.asarray(keys))
    picked = np.asarray(keys)[np.arange(3)[:, None], np.asarray(alpha).argmax(-1)]
    np.testing.assert_allclose(chosen, picked, rtol=1e-6)
    assert policy["log_prob"].shape == (3, 5) and np.all(np.asarray(policy["log_prob"]) <= 0)


def _policy_and_ce_gradients(policy_kind, baseline):
    cfg, model = _model(policy_kind, baseline=baseline)
    src, src_len, tgt_in = _batch()
    params = models.init_params(model, jax.random.key(6))
    uniform = hard.draw_uniform(jax.random.key(7), tgt_in.shape + src.shape[1:])
    tgt_out = jnp.roll(tgt_in, -1, axis=1)
    mask = jnp.ones(tgt_in.shape, bool)

    def losses(p):
        logits, _, policy = models.sample_batch(model, p, src, src_len, tgt_in, uniform)
        rewards = hard.step_rewards(logits, tgt_out, mask, "step_loss")
        objective, _, _ = hard.policy_objective(policy, rewards, mask, 0.0, 1, cfg.model.reinforce)
        return jnp.mean(-rewards), objective

    ce_grad = jax.grad(lambda p: losses(p)[0])(params)
    policy_grad = jax.grad(lambda p: losses(p)[1])(params)
    return ce_grad["decoder"], policy_grad["decoder"]


def _norm(tree):
    return float(sum(jnp.sum(x**2) for x in jax.tree.leaves(tree)))


def test_the_policy_learns_only_from_reinforce_and_the_baseline_only_from_its_regression():
    ce_grad, policy_grad = _policy_and_ce_gradients("categorical", "learned")
    assert _norm(ce_grad["scorer"]) == 0.0  # a sampled position passes no gradient
    assert _norm(policy_grad["scorer"]) > 0.0
    assert _norm(ce_grad["baseline"]) == 0.0
    assert _norm(policy_grad["baseline"]) > 0.0
    assert _norm(policy_grad["out"]) == 0.0  # the reward enters through stop_gradient
    ce_grad, policy_grad = _policy_and_ce_gradients("gaussian", "moving_average")
    assert _norm(ce_grad["W_p"]) == 0.0 and _norm(policy_grad["W_p"]) > 0.0


def test_the_moving_baseline_starts_at_the_first_batch_mean_then_decays():
    cfg = default_config().model.reinforce
    policy = {"log_prob": jnp.zeros((2, 3)), "entropy": jnp.ones((2, 3))}
    rewards = jnp.array([[1.0, 2.0, 9.0], [3.0, 0.0, 0.0]])
    mask = jnp.array([[True, True, False], [True, False, False]])
    _, first, sums = hard.policy_objective(policy, rewards, mask, 0.0, 0, cfg)
    assert float(first) == pytest.approx(2.0)  # masked mean of (1, 2, 3), kept by the EMA
    assert float(sums["reward_sum"]) == pytest.approx(6.0)
    _, later, _ = hard.policy_objective(policy, rewards, mask, 5.0, 10, cfg)
    assert float(later) == pytest.approx(cfg.baseline_decay * 5.0 + (1 - cfg.baseline_decay) * 2)


def test_sequence_accuracy_rewards_every_step_of_a_right_sequence():
    logits = jax.nn.one_hot(jnp.array([[1, 2, 0], [1, 1, 0]]), 4) * 10
    tgt = jnp.array([[1, 2, 3], [1, 2, 3]])
    mask = jnp.array([[True, True, False], [True, True, False]])
    rewards = hard.step_rewards(logits, tgt, mask, "sequence_accuracy")
    np.testing.assert_array_equal(rewards, [[1, 1, 1], [0, 0, 0]])


def test_hard_attention_config_errors_name_the_fix():
    c = default_config()
    c.model.attention.kind, c.model.score = "hard", "none"
    c.model.attention.hard_policy, c.model.reinforce.baseline = "uniform", "median"
    c.model.attention.hard_std = 0.0
    with pytest.raises(ConfigError) as err:
        validate(c)
    text = str(err.value)
    for field in ("kind", "hard_policy", "hard_std", "reinforce.baseline"):
        assert f"model.{'attention.' if 'reinforce' not in field else ''}{field}" in text


def test_a_short_run_learns_reverse_with_sampled_positions(tmp_path, optimized_xla):
    c = quick(default_config())
    c.data.num_long = 0
    c.model.decoder, c.model.score, c.model.attention.kind = "luong", "general", "hard"
    c.model.reinforce.baseline = "learned"
    c.model.embed_dim, c.model.encoder.hidden_dim = 16, 32
    c.model.decoder_hidden_dim = c.model.attention.attn_dim = 32
    c.train.num_steps, c.train.eval_every, c.train.ckpt_every = 300, 300, 300
    c.train.loggers, c.train.num_heatmaps = "", 0
    summary = runner.train_and_evaluate(c, str(tmp_path))
    assert summary["eval/align_accuracy"] > 0.8  # chance is ~1/6
    assert summary["test/seq_accuracy"] > 0.5
    with open(os.path.join(tmp_path, "metrics.jsonl")) as f:
        first = json.loads(f.readline())
    for name in ("loss", "reinforce_loss", "policy_entropy", "reward", "baseline_loss"):
        assert f"train/{name}" in first
