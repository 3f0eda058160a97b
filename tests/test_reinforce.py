"""The REINFORCE estimator is unbiased: Monte Carlo against gradients known in closed form."""

import jax
import jax.numpy as jnp
import numpy as np

from attnlab import reinforce

REWARD = jnp.array([1.0, -0.5, 2.0, 0.0])
LOGITS = jnp.array([0.3, -0.2, 0.1, 0.5])
N = 400_000


def _exact_categorical_gradient(logits):
    return jax.grad(lambda th: jnp.sum(jax.nn.softmax(th) * REWARD))(logits)


def _estimate(logits, baseline, key):
    actions = jax.random.categorical(key, logits, shape=(N,))
    rewards = REWARD[actions]

    def surrogate(th):
        log_p = jax.nn.log_softmax(th)[actions]
        return -reinforce.reinforce_loss(log_p, rewards, baseline)  # its gradient: +grad E[R]

    per_sample = jax.vmap(
        lambda a, r: jax.grad(lambda th: (r - baseline) * jax.nn.log_softmax(th)[a])(logits)
    )(actions[:20_000], rewards[:20_000])
    return jax.grad(surrogate)(logits), per_sample


def test_categorical_estimate_is_unbiased_with_and_without_a_baseline():
    exact = _exact_categorical_gradient(LOGITS)
    plain, samples_plain = _estimate(LOGITS, 0.0, jax.random.key(0))
    centred, samples_centred = _estimate(LOGITS, 0.9, jax.random.key(1))
    # Standard error of the mean at N samples is ~0.002 here: 0.01 is 5 standard errors.
    np.testing.assert_allclose(plain, exact, atol=0.01)
    np.testing.assert_allclose(centred, exact, atol=0.01)
    # The baseline (near E[R] = 0.8) lowers the variance, not the mean.
    assert float(samples_centred.var(0).sum()) < float(samples_plain.var(0).sum())


def test_gaussian_location_policy_estimate_matches_the_closed_form():
    """Location ~ N(mu, sigma^2), reward -(x - c)^2: d/dmu E[R] = -2 (mu - c)."""
    mu, log_std, c = jnp.array([0.4]), jnp.array([-0.7]), 1.0
    x = mu + jnp.exp(log_std) * jax.random.normal(jax.random.key(2), (N, 1))
    reward = -jnp.sum((x - c) ** 2, axis=-1)

    def surrogate(m):
        return -reinforce.reinforce_loss(reinforce.gaussian_log_prob(x, m, log_std), reward)

    np.testing.assert_allclose(jax.grad(surrogate)(mu), -2.0 * (mu - c), atol=0.02)


def test_baselines():
    average = reinforce.moving_average(jnp.float32(0.0), jnp.array([1.0, 3.0]), decay=0.5)
    assert float(average) == 1.0
    assert float(jax.grad(reinforce.baseline_loss)(jnp.float32(2.0), jnp.float32(3.0))) == -2.0
