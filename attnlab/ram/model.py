"""The recurrent attention model (Mnih et al. 2014, §3), written per example.

One step `t = 0 .. N-1`, from the core state `h_t` (`h_0 = 0`):

- location policy: `mu_t = tanh(W_l sg(h_t) + b_l)`; during training `l_t ~ N(mu_t, sigma^2 I)`
  (`sigma` fixed, or learned with `learn_std`), at evaluation `l_t = mu_t` (deterministic). The
  location net sees `h_t` through a stop-gradient (`sg`): it is trained by REINFORCE alone, and
  the sampled `l_t` is itself a constant for the classifier's gradient. With `locations =
  "random"`, `l_t ~ U[-1, 1]^2` at training and evaluation alike (the paper's random-glimpse
  baseline, with no policy gradient); with `locations = "oracle"`, every glimpse is centred on
  the digit (`target`, from the data: a reference that knows where to look);
  Options that public reimplementations use (config fields, the paper's choice by default):
  `location_net_hidden > 0` puts a ReLU layer of that size before the `tanh` head;
  `first_location = "random"` draws `l_0 ~ U[-1, 1]^2` instead of taking it from `h_0 = 0`
  (no policy gradient for that step); the REINFORCE term's weight is `reinforce_weight`;
- baseline: `b_t = w_b sg(h_t) + c_b`, a learned estimate of the expected reward;
- glimpse network (§3, "Glimpse network"): `g_t = ReLU(Linear(h_g) + Linear(h_l))` with
  `h_g = ReLU(Linear(rho(x, l_t)))` (what) and `h_l = ReLU(Linear(l_t))` (where);
- core: `h_{t+1} = ReLU(Linear(h_t) + Linear(g_t))` (`core = "relu"`, the paper's MNIST
  network), or a GRU / LSTM cell (the paper's LSTM for harder tasks).

After `N` glimpses the classifier reads `softmax(Linear(h_N))`. The steps are one `nn.scan`.

Training objective (`loss_terms`, the paper's hybrid loss, §3): the classifier's cross-entropy,
plus the REINFORCE surrogate `-sum_t (R - b_t) log pi(l_t | h_t)` with reward `R = 1` when the
classification is correct and 0 otherwise, plus the baselines' squared error `(b_t - R)^2`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from attnlab import reinforce
from attnlab.ram.glimpse import glimpse

KINDS = ("ram", "fc", "conv")
CORES = ("relu", "gru", "lstm")
LOCATIONS = ("learned", "random", "oracle")
FIRST_LOCATIONS = ("policy", "random")


class Outputs(NamedTuple):
    """What the model returns for one example (a leading batch axis after `jax.vmap`)."""

    logits: jnp.ndarray  # [num_classes]
    locations: jnp.ndarray  # [N, 2] where each glimpse looked (sampled or mean), in [-1, 1]
    means: jnp.ndarray  # [N, 2] the policy means mu_t
    log_probs: jnp.ndarray  # [N] log pi(l_t | h_t) of the sampled locations (0: random/eval)
    baselines: jnp.ndarray  # [N] b_t


class GlimpseNetwork(nn.Module):
    """`g = ReLU(Linear(h_g) + Linear(h_l))`: what (`glimpse [k, p, p, C]`) and where
    (`loc [2]`) combined into `g [hidden]`."""

    glimpse_hidden: int
    location_hidden: int
    hidden: int

    @nn.compact
    def __call__(self, patches: jnp.ndarray, loc: jnp.ndarray) -> jnp.ndarray:
        h_g = nn.relu(nn.Dense(self.glimpse_hidden, name="what")(patches.reshape(-1)))
        h_l = nn.relu(nn.Dense(self.location_hidden, name="where")(loc))
        what = nn.Dense(self.hidden, name="what_out")(h_g)
        return nn.relu(what + nn.Dense(self.hidden, name="where_out")(h_l))


class Core(nn.Module):
    """One recurrent step `carry, g [hidden'] -> carry`; `state(carry)` is `h [hidden]`."""

    kind: str
    hidden: int

    def initial(self):
        zeros = jnp.zeros((self.hidden,))
        return (zeros, zeros) if self.kind == "lstm" else zeros

    @staticmethod
    def state(kind: str, carry) -> jnp.ndarray:
        return carry[1] if kind == "lstm" else carry  # flax LSTM carries (c, h)

    @nn.compact
    def __call__(self, carry, g: jnp.ndarray):
        if self.kind == "relu":
            recurrent = nn.Dense(self.hidden, use_bias=False, name="recurrent")(carry)
            return nn.relu(nn.Dense(self.hidden, name="input")(g) + recurrent)
        if self.kind == "gru":
            return nn.GRUCell(self.hidden, name="cell")(carry, g)[0]
        if self.kind == "lstm":
            return nn.OptimizedLSTMCell(self.hidden, name="cell")(carry, g)[0]
        raise ValueError(f"unknown core '{self.kind}'; valid cores: {', '.join(CORES)}")


class GlimpseStep(nn.Module):
    """One glimpse: `(carry, key [2] uint32, image [H, W, C]) -> (carry, per-step outputs)`."""

    patch: int
    scales: int
    glimpse_hidden: int
    location_hidden: int
    hidden: int
    core: str
    location_std: float
    learn_std: bool
    locations: str
    detach_policy: bool
    location_net_hidden: int
    first_location: str
    sample: bool

    @nn.compact
    def __call__(self, carry, key, image, first, target):
        h = Core.state(self.core, carry)
        # The paper differentiates log pi with respect to every parameter (the core and the
        # glimpse network learn to serve the policy too); `detach_policy` stops that, as some
        # implementations do. The baseline never trains the core.
        policy_input = jax.lax.stop_gradient(h) if self.detach_policy else h
        if self.location_net_hidden:
            policy_input = nn.relu(
                nn.Dense(self.location_net_hidden, name="location_hidden")(policy_input)
            )
        mean = jnp.tanh(nn.Dense(2, name="location")(policy_input))
        baseline = nn.Dense(1, name="baseline")(jax.lax.stop_gradient(h))[0]
        init_log_std = math.log(self.location_std)
        if self.learn_std:
            log_std = self.param("log_std", nn.initializers.constant(init_log_std), (2,))
        else:
            log_std = jnp.full((2,), init_log_std)
        key = jax.random.wrap_key_data(key)
        uniform = self.locations == "random"
        if uniform or self.first_location == "random":
            random_loc = jax.random.uniform(key, (2,), minval=-1.0, maxval=1.0)
        if uniform:
            loc, log_prob = random_loc, jnp.zeros(())
        elif self.sample:
            loc = jax.lax.stop_gradient(mean + jnp.exp(log_std) * jax.random.normal(key, (2,)))
            log_prob = reinforce.gaussian_log_prob(loc, mean, log_std)
        else:
            loc, log_prob = mean, jnp.zeros(())
        if self.first_location == "random" and not uniform:  # l_0 random, not from the policy
            loc = jnp.where(first, random_loc, loc)
            log_prob = jnp.where(first, 0.0, log_prob)
        if self.locations == "oracle":
            loc, log_prob = target, jnp.zeros(())
        loc = jax.lax.stop_gradient(jnp.clip(loc, -1.0, 1.0))  # the sensor clips it anyway
        patches = glimpse(image, loc, self.patch, self.scales)
        g = GlimpseNetwork(
            self.glimpse_hidden, self.location_hidden, self.hidden, name="glimpse_net"
        )(patches, loc)
        carry = Core(self.core, self.hidden, name="core")(carry, g)
        return carry, (loc, mean, log_prob, baseline)


class RecurrentAttentionModel(nn.Module):
    """RAM for classification: `(image [H, W, C], key [2] uint32, sample, target [2]) -> Outputs`.

    `sample`: draw locations from the policy (training) or take its mean (evaluation). The key
    drives the sampled (or, with `locations="random"`, uniform) locations. `target`: the digit's
    centre in `[-1, 1]`, read only by `locations="oracle"`.
    """

    patch: int = 8
    scales: int = 3
    num_glimpses: int = 4
    glimpse_hidden: int = 128
    location_hidden: int = 128
    hidden: int = 256
    core: str = "gru"
    location_std: float = 0.15
    learn_std: bool = False
    locations: str = "learned"
    detach_policy: bool = True
    location_net_hidden: int = 0
    first_location: str = "policy"
    num_classes: int = 10

    @nn.compact
    def __call__(self, image, key, sample: bool = True, target=None) -> Outputs:
        target = jnp.zeros((2,)) if target is None else target
        steps = nn.scan(
            GlimpseStep,
            variable_broadcast="params",
            split_rngs={"params": False},
            in_axes=(0, nn.broadcast, 0, nn.broadcast),
            length=self.num_glimpses,
        )(
            self.patch,
            self.scales,
            self.glimpse_hidden,
            self.location_hidden,
            self.hidden,
            self.core,
            self.location_std,
            self.learn_std,
            self.locations,
            self.detach_policy,
            self.location_net_hidden,
            self.first_location,
            sample,
            name="step",
        )
        keys = jax.random.key_data(
            jax.random.split(jax.random.wrap_key_data(key), self.num_glimpses)
        )
        carry = Core(self.core, self.hidden).initial()
        first = jnp.arange(self.num_glimpses) == 0
        carry, (locs, means, log_probs, baselines) = steps(carry, keys, image, first, target)
        logits = nn.Dense(self.num_classes, name="classifier")(Core.state(self.core, carry))
        return Outputs(logits, locs, means, log_probs, baselines)


class FullImageClassifier(nn.Module):
    """The paper's references that see the whole image at once (§4.1), with RAM's interface
    (`(image [H, W, C], key, sample, target) -> Outputs` with no glimpses, `N = 0`):

    - `fc`: two ReLU layers of `hidden` units on the flattened image;
    - `conv`: two ReLU convolutions (`conv_features` then `2 conv_features` filters of
      `conv_kernel x conv_kernel`, stride `conv_stride`, same padding), then one ReLU layer of
      `hidden` units.

    Both end in a linear classifier; `key`, `sample` and `target` are unused.
    """

    kind: str = "conv"
    hidden: int = 256
    conv_features: int = 8
    conv_kernel: int = 5
    conv_stride: int = 2
    num_classes: int = 10

    @nn.compact
    def __call__(self, image, key=None, sample: bool = True, target=None) -> Outputs:
        x = image
        if self.kind == "conv":
            for i, features in enumerate((self.conv_features, 2 * self.conv_features)):
                kernel, stride = (self.conv_kernel,) * 2, (self.conv_stride,) * 2
                x = nn.relu(nn.Conv(features, kernel, stride, name=f"conv{i}")(x))
            x = nn.relu(nn.Dense(self.hidden, name="hidden0")(x.reshape(-1)))
        else:
            x = x.reshape(-1)
            for i in range(2):
                x = nn.relu(nn.Dense(self.hidden, name=f"hidden{i}")(x))
        logits = nn.Dense(self.num_classes, name="classifier")(x)
        none = jnp.zeros((0,))
        return Outputs(logits, jnp.zeros((0, 2)), jnp.zeros((0, 2)), none, none)


def build_model(config) -> RecurrentAttentionModel | FullImageClassifier:
    """A whole RAM config -> the module (the only reader of `config.model`): the recurrent
    attention model (`model.kind = "ram"`), or a full-image reference (`fc`, `conv`)."""
    m = config.model
    if m.kind != "ram":
        return FullImageClassifier(
            kind=m.kind,
            hidden=m.hidden,
            conv_features=m.conv_features,
            conv_kernel=m.conv_kernel,
            conv_stride=m.conv_stride,
        )
    return RecurrentAttentionModel(
        patch=m.patch,
        scales=m.scales,
        num_glimpses=m.num_glimpses,
        glimpse_hidden=m.glimpse_hidden,
        location_hidden=m.location_hidden,
        hidden=m.hidden,
        core=m.core,
        location_std=m.location_std,
        learn_std=m.learn_std,
        locations=m.locations,
        detach_policy=m.detach_policy,
        location_net_hidden=m.location_net_hidden,
        first_location=m.first_location,
    )


def example_keys(key: jnp.ndarray, index: jnp.ndarray) -> jnp.ndarray:
    """Per-example raw keys `[B, 2]`: `fold_in(key, index[b])` (a pure function of the example,
    so a result does not depend on how examples are batched)."""
    key = jax.random.wrap_key_data(key)
    return jax.vmap(lambda i: jax.random.key_data(jax.random.fold_in(key, i)))(index)


def to_images(pixels: jnp.ndarray) -> jnp.ndarray:
    """uint8 `[B, H, W]` or `[B, H, W, C]` in 0-255 -> float32 `[B, H, W, C]` in [0, 1]."""
    x = pixels.astype(jnp.float32) / 255.0
    return x[..., None] if x.ndim == 3 else x


def apply_batch(model, params, pixels, keys, sample: bool, targets=None) -> Outputs:
    """The model over a batch: `pixels` uint8 `[B, H, W(, C)]`, `keys [B, 2]`, `targets
    [B, 2]` (the digits' centres in `[-1, 1]`; zeros when None) -> Outputs with a leading batch
    axis."""
    images = to_images(pixels)
    if targets is None:
        targets = jnp.zeros((images.shape[0], 2))

    def one(x, k, target):
        return model.apply({"params": params}, x, k, sample, target)

    return jax.vmap(one)(images, keys, targets)


def init_params(model, key: jnp.ndarray, image_shape: tuple[int, ...]):
    """Parameters of `model` for images of `image_shape` (`[H, W, C]`)."""
    dummy = jnp.zeros(image_shape, jnp.float32)
    data = jax.random.key_data(jax.random.key(0))
    return model.init(key, dummy, data, True, jnp.zeros((2,)))["params"]


def loss_terms(outputs: Outputs, labels: jnp.ndarray) -> dict:
    """The hybrid loss's three terms and the reward, each a scalar (means over the batch):

    - `classification`: cross-entropy of the classifier;
    - `reinforce`: `-sum_t (R - b_t) log pi(l_t)` (summed over the N glimpses as in the
      paper's gradient, averaged over examples), with `R` and `b_t` entering as constants;
    - `baseline`: `mean_t (b_t - R)^2` (reaches the baseline parameters only);
    - `reward`: mean `R` (the training accuracy under sampled locations).

    `outputs` has a leading batch axis `[B, ...]`; `labels [B]` int.
    """
    ce = optax.softmax_cross_entropy_with_integer_labels(outputs.logits, labels)
    reward = (jnp.argmax(outputs.logits, -1) == labels).astype(jnp.float32)
    rewards = jnp.broadcast_to(reward[:, None], outputs.log_probs.shape)  # [B, N]
    num_glimpses = outputs.log_probs.shape[-1]
    if num_glimpses == 0:  # a full-image reference: no policy, no baseline
        zero = jnp.zeros(())
        return {"classification": jnp.mean(ce), "reinforce": zero, "baseline": zero,
                "reward": jnp.mean(reward)}  # fmt: skip
    return {
        "classification": jnp.mean(ce),
        # reinforce_loss averages over the B x N entries; times N sums over the steps.
        "reinforce": num_glimpses
        * reinforce.reinforce_loss(outputs.log_probs, rewards, outputs.baselines),
        "baseline": reinforce.baseline_loss(outputs.baselines, rewards),
        "reward": jnp.mean(reward),
    }


def classification_sums(logits: jnp.ndarray, labels: jnp.ndarray, mask: jnp.ndarray) -> dict:
    """Evaluation sums over the real rows (`mask [B]` 1/0): `loss_sum` (cross-entropy),
    `correct`, `examples`."""
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
    return {
        "loss_sum": jnp.sum(mask * ce),
        "correct": jnp.sum(mask * correct),
        "examples": jnp.sum(mask),
    }
