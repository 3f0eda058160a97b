"""The score-function (REINFORCE) estimator, for attention that samples where to look.

Williams 1992: for a policy `pi_theta(a)` and a reward `R(a)` that is not differentiable in `a`,

    grad_theta E[R] = E[(R(a) - b) grad_theta log pi_theta(a)]

for any baseline `b` that does not depend on `a` (it lowers the variance, not the mean). The
surrogate losses below have exactly that gradient under `jax.grad`: the reward and the baseline
enter through `stop_gradient`, so only `log pi` is differentiated. A learned baseline is trained
separately by regressing the reward (`baseline_loss`); a moving average needs no parameters
(`moving_average`). An entropy bonus keeps the policy from collapsing early.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def reinforce_loss(log_prob, reward, baseline=0.0, where=None):
    """Surrogate `-(R - b) log pi(a)`, averaged (over `where`, a bool mask, if given); its
    gradient is the REINFORCE estimate of `-grad E[R]`. `log_prob`, `reward`, `baseline`:
    arrays of one shape (or scalars)."""
    advantage = jax.lax.stop_gradient(reward - baseline)
    return -jnp.mean(advantage * log_prob, where=where)


def baseline_loss(baseline, reward, where=None):
    """Squared error of a learned baseline against the (fixed) reward, averaged over `where`."""
    return jnp.mean((baseline - jax.lax.stop_gradient(reward)) ** 2, where=where)


def moving_average(average, reward, decay: float = 0.9, where=None):
    """The next value of an exponential moving-average baseline (mean reward over `where`)."""
    return decay * average + (1.0 - decay) * jnp.mean(jax.lax.stop_gradient(reward), where=where)


def gaussian_log_prob(x, mean, log_std):
    """`log N(x; mean, exp(log_std)^2)`, summed over the last axis (a location policy)."""
    var = jnp.exp(2.0 * log_std)
    per_dim = -0.5 * ((x - mean) ** 2 / var + 2.0 * log_std + jnp.log(2.0 * jnp.pi))
    return jnp.sum(per_dim, axis=-1)
