"""Hard attention: pick one source position per step instead of averaging over all of them.

Per example. A stochastic policy chooses a position `a_t` and the context is that one encoder
state, `c_t = h_{a_t}` (Xu et al. 2015's "hard" attention: predict where to look).
Two policies:

- `categorical`: `a_t ~ softmax(e_t)` over the valid positions, `e_t` the score function's
  scores (so a step still costs one score per source position);
- `gaussian`: a location `x_t ~ N(mu_t, sigma^2)` with `mu_t = L * sigmoid(v_p^T tanh(W_p s))`
  (local_p's predicted position, Luong et al. 2015 Eq. 9, `L` the source length) and
  `a_t = clip(floor(x_t), 0, L - 1)`; sigma fixed or learned. No scores at all: a step costs
  `O(1)` in the source length.

The choice is not differentiable, so the policy is trained with REINFORCE (`reinforce.py`); the
functions here return `log pi(a_t)` and the policy's entropy for that. Randomness comes in as
`uniform: [S]` numbers in `(0, 1)` drawn by the caller (`train.py`, from the state's key and
step, so a resumed run draws the same); `uniform=None` is the deterministic policy used at
evaluation: the argmax of the scores, or the Gaussian's mean.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.scipy.special import ndtri

from attnlab import reinforce
from attnlab.attention import AttentionKind
from attnlab.local import add_position_predictor, predicted_position

POLICIES = ("categorical", "gaussian")
_MASK_FILL = -1e30  # far below any score: exp() underflows to exactly 0


def sample_categorical(scores, mask, uniform=None):
    """A position from `softmax(scores)` over `mask`, by the Gumbel-max trick.

    Args:
      scores: `[S]` alignment scores; mask: `[S]` bool, True at valid positions.
      uniform: `[S]` numbers in `(0, 1)`, or None for the argmax.

    Returns:
      `(index [] int32, log_prob [], entropy [])`: `log_prob` is differentiable in the scores.
    """
    logits = jnp.where(mask, scores.astype(jnp.float32), _MASK_FILL)
    log_p = jax.nn.log_softmax(logits)
    perturbed = logits if uniform is None else logits - jnp.log(-jnp.log(uniform))
    index = jnp.argmax(jnp.where(mask, perturbed, _MASK_FILL)).astype(jnp.int32)
    entropy = -jnp.sum(jnp.where(mask, jnp.exp(log_p) * log_p, 0.0))
    return index, log_p[index], entropy


def sample_gaussian(mean, log_std, length, uniform=None):
    """A position from a Gaussian location policy on `[0, length)`.

    Args:
      mean: `[]` the policy's mean location (in source positions).
      log_std: `[]` log of sigma (a constant or a learned parameter).
      length: `[]` float, the source length `L`.
      uniform: `[S]` numbers in `(0, 1)` (only the first is used), or None for the mean.

    Returns:
      `(index [] int32, log_prob [], entropy [])`; `log_prob` is differentiable in the mean and
      `log_std` (the sampled location itself is not).
    """
    location = mean if uniform is None else mean + jnp.exp(log_std) * ndtri(uniform[0])
    location = jax.lax.stop_gradient(location)
    index = jnp.clip(jnp.floor(location), 0, jnp.maximum(length - 1, 0)).astype(jnp.int32)
    log_prob = reinforce.gaussian_log_prob(location[None], mean[None], jnp.reshape(log_std, (1,)))
    entropy = 0.5 * math.log(2.0 * math.pi * math.e) + log_std
    return index, log_prob, jnp.asarray(entropy, jnp.float32)


def one_hot_context(index, mask, values_proj):
    """`alpha [S]` one-hot at `index` (0 everywhere for an empty source) and, per array of
    `values_proj` (`[S, H]` each), the chosen row: a gather, not a weighted sum."""
    valid = mask[index]
    # written into zeros (not one_hot(...) * mask): no arithmetic per source position
    alpha = jax.lax.dynamic_update_slice_in_dim(
        jnp.zeros(mask.shape, jnp.float32), valid.astype(jnp.float32)[None], index, axis=0
    )
    return alpha, tuple(v[index] * valid.astype(v.dtype) for v in values_proj)


def draw_uniform(key, shape):
    """Uniform numbers in the open interval (0, 1) (0 would make Gumbel and normal noise
    infinite)."""
    return jax.random.uniform(key, shape, minval=jnp.finfo(jnp.float32).tiny, maxval=1.0)


def step_rewards(logits, tgt_out, step_mask, kind: str):
    """The reward of each step's choice: `[B, T]` from `logits [B, T, V]`, `tgt_out [B, T]` and
    `step_mask [B, T]` (True on real steps).

    `step_loss`: minus the step's cross-entropy (a dense reward for the position chosen there);
    `sequence_accuracy`: 1 when every real step's argmax is right, else 0, given to every step
    of the sequence (a sparse reward for the whole path of positions).
    """
    if kind == "step_loss":
        return -optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), tgt_out)
    right = (jnp.argmax(logits, -1) == tgt_out) | ~step_mask
    return jnp.broadcast_to(jnp.all(right, axis=1, keepdims=True), tgt_out.shape).astype(
        jnp.float32
    )


def policy_objective(policy, rewards, step_mask, moving_baseline, step, cfg):
    """The loss that trains the hard-attention policy, and what to log of it.

    Args:
      policy: `[B, T]` arrays from `models.sample_batch` (`log_prob`, `entropy`, maybe
        `baseline`, the learned baseline's prediction).
      rewards: `[B, T]` from `step_rewards`; step_mask: `[B, T]` bool.
      moving_baseline: `[]` the moving-average baseline carried in the train state.
      step: `[]` the train step (at step 0 the moving average starts from the batch's mean).
      cfg: `config.model.reinforce`.

    Returns:
      `(loss, new moving baseline, sums)`: `loss = policy_weight * REINFORCE surrogate
      - entropy_weight * entropy + baseline_weight * baseline regression` averaged over real
      steps; `sums` are summed over real steps (divide by `tokens`) for the log.
    """
    tokens = jnp.sum(step_mask).astype(jnp.float32)
    mean_reward = jnp.mean(rewards, where=step_mask)
    moving = jnp.where(step == 0, mean_reward, moving_baseline)
    if cfg.baseline == "learned":
        baseline = policy["baseline"]
    elif cfg.baseline == "moving_average":
        baseline = moving
    else:
        baseline = 0.0
    surrogate = reinforce.reinforce_loss(policy["log_prob"], rewards, baseline, where=step_mask)
    entropy = jnp.mean(policy["entropy"], where=step_mask)
    loss = cfg.policy_weight * surrogate - cfg.entropy_weight * entropy
    sums = {
        "reinforce_sum": surrogate * tokens,
        "reward_sum": mean_reward * tokens,
        "policy_entropy_sum": entropy * tokens,
    }
    if cfg.baseline == "learned":
        regression = reinforce.baseline_loss(baseline, rewards, where=step_mask)
        loss = loss + cfg.baseline_weight * regression
        sums["baseline_loss_sum"] = regression * tokens
    new_moving = reinforce.moving_average(moving, rewards, cfg.baseline_decay, where=step_mask)
    return loss, new_moving, sums


@dataclasses.dataclass(frozen=True)
class Hard(AttentionKind):
    """Hard attention (the module docstring): one position per step, chosen by the policy
    `hard_policy`; its REINFORCE objective is `policy_objective`, configured by
    `config.model.reinforce`. `learned_baseline`: a REINFORCE baseline `b(s) = w^T s + c`
    regressed on the reward (set from `model.reinforce.baseline == "learned"`)."""

    name: ClassVar[str] = "hard"
    needs_score: ClassVar[bool] = True
    stochastic: ClassVar[bool] = True

    hard_policy: str = "categorical"  # categorical | gaussian
    hard_std: float = 1.0  # gaussian: sigma in source positions (the start value if learned)
    hard_learned_std: bool = False  # gaussian: learn log sigma with the policy
    learned_baseline: bool = False

    @classmethod
    def from_config(cls, model_cfg) -> Hard:
        learned = model_cfg.reinforce.baseline == "learned"  # not an attention field
        return dataclasses.replace(super().from_config(model_cfg), learned_baseline=learned)

    @property
    def is_gaussian(self) -> bool:
        return self.hard_policy == "gaussian"

    def option_errors(self) -> list[tuple[str, str]]:
        errors = []
        if self.hard_policy not in POLICIES:
            errors.append(("hard_policy", f"must be one of {', '.join(POLICIES)}"))
        if not (isinstance(self.hard_std, int | float) and math.isfinite(self.hard_std)) or (
            self.hard_std <= 0
        ):
            errors.append(("hard_std", "must be > 0"))
        return errors

    def noise_width(self, src_len: int) -> int:
        return 1 if self.is_gaussian else src_len

    def setup(self, cell) -> None:
        if self.hard_learned_std:
            start = nn.initializers.constant(jnp.log(self.hard_std))
            cell.log_std = cell.param("log_std", start, ())
        if self.learned_baseline:
            cell.baseline_head = nn.Dense(1, name="baseline")
        if self.is_gaussian:
            add_position_predictor(cell)

    def attend(self, cell, query, t, enc, uniform):
        """One position chosen by the policy: `alpha [S]` one-hot, the chosen row of each
        projected-value array, and the step's policy terms (`log_prob`, `entropy`, maybe
        `baseline`)."""
        if self.is_gaussian:
            mean = predicted_position(cell, query, enc.length)
            log_std = cell.log_std if self.hard_learned_std else jnp.log(self.hard_std)
            index, log_prob, entropy = sample_gaussian(mean, log_std, enc.length, uniform)
        else:
            scores = cell.scorer(query, enc.prepared)
            index, log_prob, entropy = sample_categorical(scores, enc.mask, uniform)
        alpha, contexts = one_hot_context(index, enc.mask, enc.context_proj)
        policy = {"log_prob": log_prob, "entropy": entropy}
        if self.learned_baseline:  # sees the policy's input, trains only itself
            policy["baseline"] = cell.baseline_head(jax.lax.stop_gradient(query))[0]
        return alpha, contexts, policy
