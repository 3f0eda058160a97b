"""What every model family's config shares: the error type, the validation helpers, the
sections common to all families (`seed`, `num_seeds`, `optim`, `train`), and loading a config
file.

No family is named here: each family's own config module builds on these, and
`attnlab.families` picks the family a config belongs to. Imports nothing heavier than
`ml_collections`, so the command line can load and check configs without starting JAX.
"""

from __future__ import annotations

import importlib.util
import math
import os

import ml_collections

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine")
SEED_BATCHES = ("shared", "independent")
# Where a run's log goes besides its own metrics.jsonl (`train.loggers`, comma-separated):
# TensorBoard event files in the work directory, and the experiment trackers Weights & Biases
# and MLflow (each an optional extra: attnlab.trackers)
LOGGERS = ("tensorboard", "wandb", "mlflow")
# Seeds are drawn by jax.random.key(seed) and numpy's default_rng: both take 0 <= seed < 2**63.
MAX_SEED = 2**63 - 1


class ConfigError(ValueError):
    """A config value is invalid; the message names each field, its value and what is allowed.

    `errors`: the individual problems (one string each); the message joins them on one line."""

    def __init__(self, message: str, errors: list[str] | None = None):
        super().__init__(message)
        self.errors = list(errors) if errors else [message]


def add_run_fields(c: ml_collections.ConfigDict, family: str) -> None:
    """The top-level fields every family has: which family, the seeds and how they are batched."""
    c.family = family  # the model family that trains this config (attnlab.families)
    c.seed = 0  # parameter init and batch order; the data itself comes from data.seed
    c.num_seeds = 1  # K > 1: seeds seed..seed+K-1 trained together in one vmapped program
    c.seed_batches = "shared"  # shared: every seed sees the same batches | independent


def optim_section() -> ml_collections.ConfigDict:
    """`config.optim`, the same fields for every family."""
    o = ml_collections.ConfigDict()
    o.optimizer = "adam"  # adam | adamw | sgd
    o.learning_rate = 3e-3  # peak learning rate; Adam at 3e-3 trains these small RNNs fast
    o.schedule = "constant"  # constant | cosine (decays to 0 at train.num_steps)
    o.warmup_steps = 100  # linear warm-up from 0 to the peak
    o.grad_clip_norm = 1.0  # clip by global norm (0 = off): RNN gradients spike late otherwise
    o.weight_decay = 0.0  # adamw only
    o.momentum = 0.9  # sgd only
    return o


def train_section(best_metric: str) -> ml_collections.ConfigDict:
    """`config.train`, the same fields for every family (`best_metric`: the family's default)."""
    t = ml_collections.ConfigDict()
    t.num_steps = 4000  # optimisation steps
    t.log_every = 100  # train metrics to metrics.jsonl (the only host syncs in the loop)
    t.eval_every = 1000  # validation (+ any extra split) (a multiple of log_every)
    t.ckpt_every = 1000  # orbax checkpoint; a re-run resumes from the latest one
    t.max_to_keep = 2  # the last checkpoints kept (resume uses the latest)
    t.keep_best = 0  # also keep this many best checkpoints by best_metric (at eval steps)
    t.best_metric = best_metric  # an evaluated metric of the family; its direction is known
    t.num_heatmaps = 4  # validation examples drawn (attention maps, glimpse paths) at the end
    t.loggers = "tensorboard"  # comma-separated, besides metrics.jsonl: tensorboard (events in
    # workdir/tb) | wandb | mlflow (experiment trackers, see docs/runner.md); "" = none
    t.profile_steps = 0  # > 0: a jax.profiler trace of this many steps (after the first, which
    # compiles) in workdir/profile, for TensorBoard's profile view
    return t


def logger_names(value) -> tuple[str, ...]:
    """The loggers `train.loggers` names, in order, each once (`"tensorboard, wandb"` ->
    `("tensorboard", "wandb")`; `""` -> `()`). Whether they are known is `validate_optim_train`'s
    check."""
    names = [w.strip() for w in str(value).split(",")]
    return tuple(dict.fromkeys(w for w in names if w))


# Fields renamed since runs were saved (old name -> what says it now): an older run's
# config.json still reads (`upgrade_saved`), and the command line names the new field.
RENAMED = {"train.tensorboard": "train.loggers (e.g. --config.train.loggers= for no TensorBoard)"}


def upgrade_saved(flat: dict) -> dict:
    """A saved run's flattened config (`config.json`) in today's field names: what the run
    did, said the way a new config says it."""
    if "train.tensorboard" not in flat:
        return flat
    flat = dict(flat)
    tensorboard = flat.pop("train.tensorboard")
    flat.setdefault("train.loggers", "tensorboard" if tensorboard else "")
    return flat


def require(errors: list[str], ok: bool, field: str, value, allowed: str) -> None:
    """Appends `config.<field>=<value> is invalid: <allowed>` to `errors` unless `ok` (every
    family's `validate` collects all errors this way, then raises once)."""
    if not ok:
        errors.append(f"config.{field}={value!r} is invalid: {allowed}")


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def require_positive(errors, cfg, prefix, names):
    """Each field of `cfg` in `names` must be an int > 0."""
    for name in names:
        value = cfg[name]
        require(errors, is_int(value) and value > 0, f"{prefix}{name}", value, "must be > 0")


def require_choice(errors, cfg, prefix, name, choices):
    """Field `name` of `cfg` must be one of `choices`."""
    value = cfg[name]
    require(
        errors, value in choices, f"{prefix}{name}", value, f"must be one of {', '.join(choices)}"
    )


def require_full_batch(errors, d):
    """The training set must fill one batch (training uses full batches only)."""
    require(
        errors,
        d.num_train >= d.batch_size,
        "data.num_train",
        d.num_train,
        f"must be >= data.batch_size ({d.batch_size})",
    )


# Every size and count goes into an int32 array dimension or index somewhere.
MAX_INT = 2**31 - 1


def validate_numbers(errors, config) -> None:
    """Every number of every family's config: finite, not negative (no field takes a negative
    value), and an int below 2**31 unless it is a seed. Sizes that pass can still be too big for
    the machine: `attnlab.resources` estimates the memory a config needs."""
    for key, value in flatten(config.to_dict()).items():
        if key in ("seed", "num_seeds") or isinstance(value, bool):
            continue
        if not isinstance(value, int | float):
            continue  # the top-level seeds: validate_run_fields
        is_seed = key.rpartition(".")[2] == "seed"
        if not math.isfinite(value) or value < 0:
            errors.append(f"config.{key}={value!r} is invalid: must be a finite number >= 0")
        elif is_int(value) and value > (MAX_SEED if is_seed else MAX_INT):
            errors.append(
                f"config.{key}={value!r} is invalid: must be < 2**{63 if is_seed else 31}"
            )


def validate_run_fields(errors, config) -> None:
    """The top-level fields of `add_run_fields`, and the range of every number."""
    validate_numbers(errors, config)
    require(
        errors,
        is_int(config.seed)
        and 0 <= config.seed
        and (not is_int(config.num_seeds) or config.seed + config.num_seeds <= MAX_SEED),
        "seed",
        config.seed,
        "must be an int >= 0 (seed + num_seeds < 2**63)",
    )
    require(
        errors,
        is_int(config.num_seeds) and config.num_seeds >= 1,
        "num_seeds",
        config.num_seeds,
        "must be >= 1",
    )
    require_choice(errors, config, "", "seed_batches", SEED_BATCHES)


def validate_optim_train(errors, o, t, num_valid: int):
    """The `optim` and `train` sections (shared by every model family); `num_valid`: the
    validation examples, the most `train.num_heatmaps` can draw. Whether `train.best_metric`
    is a metric of the family is checked by `attnlab.families.validate`."""
    require(errors, t.keep_best >= 0, "train.keep_best", t.keep_best, "must be >= 0 (0 = off)")
    require(
        errors,
        is_int(t.profile_steps) and t.profile_steps >= 0,
        "train.profile_steps",
        t.profile_steps,
        "must be an int >= 0 (0 = off)",
    )
    require(
        errors,
        isinstance(t.loggers, str) and set(logger_names(t.loggers)) <= set(LOGGERS),
        "train.loggers",
        t.loggers,
        f"must be comma-separated names of {', '.join(LOGGERS)} (or empty for none)",
    )
    for old, new in RENAMED.items():  # set from Python on a loaded config, which takes any name
        section, _, name = old.partition(".")
        if section == "train" and name in t:
            errors.append(f"config.{old} is now config.{new}")
    require_choice(errors, o, "optim.", "optimizer", OPTIMIZERS)
    require_choice(errors, o, "optim.", "schedule", SCHEDULES)
    require(
        errors,
        is_number(o.learning_rate) and o.learning_rate > 0,
        "optim.learning_rate",
        o.learning_rate,
        "must be > 0",
    )
    # (warm-up longer than training is allowed: the schedule caps it at train.num_steps - 1)
    require(errors, o.warmup_steps >= 0, "optim.warmup_steps", o.warmup_steps, "must be >= 0")
    for name in ("grad_clip_norm", "weight_decay", "momentum"):
        require(
            errors,
            is_number(o[name]) and o[name] >= 0,
            f"optim.{name}",
            o[name],
            "must be a finite number >= 0",
        )
    require_positive(
        errors, t, "train.", ["num_steps", "log_every", "eval_every", "ckpt_every", "max_to_keep"]
    )
    require(
        errors,
        0 <= t.num_heatmaps <= num_valid,
        "train.num_heatmaps",
        t.num_heatmaps,
        f"must be in [0, data.num_valid] ([0, {num_valid}])",
    )
    if t.log_every > 0 and t.eval_every > 0:
        require(
            errors,
            t.eval_every % t.log_every == 0,
            "train.eval_every",
            t.eval_every,
            f"must be a multiple of train.log_every ({t.log_every})",
        )


def raise_if(errors: list[str]) -> None:
    """Raises one `ConfigError` listing every collected error (nothing when there is none)."""
    if errors:
        # one message per field: the last check that caught it (the family's own checks run
        # after the generic range check and say more precisely what is allowed)
        by_field: dict[str, str] = {}
        for error in errors:
            by_field[error.split("=", 1)[0] if error.startswith("config.") else error] = error
        errors = list(by_field.values())
        raise ConfigError("invalid config: " + "; ".join(errors), errors)


def config_words(arg: str | None, allowed) -> set[str]:
    """The comma-separated words of a config file's argument (`configs/x.py:quick,cluttered`);
    a word not in `allowed` is a `ConfigError` that lists them."""
    words = set(filter(None, (arg or "").split(",")))
    unknown = sorted(words - set(allowed))
    if unknown:
        raise ConfigError(
            f"unknown config argument {', '.join(unknown)}; valid: {', '.join(sorted(allowed))}"
        )
    return words


def load_config(spec: str) -> ml_collections.ConfigDict:
    """Loads `path/to/config.py[:arg]` the way `--config=` does: `get_config(arg)` of the file.

    Only the named file is executed. Raises `ConfigError` when the file is missing, has no
    `get_config`, or its `get_config` refuses the argument.
    """
    path, _, arg = spec.partition(":")
    module = load_config_module(path)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"config file '{path}' defines no get_config()")
    try:
        return module.get_config(arg) if arg else module.get_config()
    except ConfigError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise ConfigError(f"config file '{path}': {err}") from err


def load_config_module(path: str):
    """Executes the config file at `path` (and nothing else) and returns it as a module."""
    if not os.path.isfile(path):
        raise ConfigError(f"config file '{path}' not found")
    module_spec = importlib.util.spec_from_file_location("_attnlab_config", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def flatten(tree: dict, prefix: str = "") -> dict:
    """Nested dict -> dotted keys: `{"model": {"score": "dot"}}` -> `{"model.score": "dot"}`."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def apply_overrides(
    config: ml_collections.ConfigDict, overrides: dict
) -> ml_collections.ConfigDict:
    """Sets dotted fields (`{"model.score": "dot"}`) as `--config.model.score=dot` would.

    Raises `ConfigError` for a field the config does not have (the config is locked) or a
    value of the wrong type, naming the field.
    """
    for key, value in overrides.items():
        section, _, name = key.rpartition(".")
        target = config
        try:
            for part in section.split(".") if section else []:
                target = target[part]
            if name not in target:
                raise KeyError(name)
            target[name] = value
        except (KeyError, AttributeError) as err:
            raise ConfigError(f"unknown config field '{key}'") from err
        except TypeError as err:
            raise ConfigError(f"config.{key}={value!r} is invalid: {err}") from err
    return config
