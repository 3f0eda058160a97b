"""Model families: what the runner needs to know about a kind of model, and the registry.

A family (`seq2seq`: attention in sequence-to-sequence models; `ram`: the recurrent attention
model of visual attention) declares in one place:

- its config: `default_config()` (with `family = <name>`), `quick(config)`, `validate(config)`
  (by default those of its `config_module`);
- its metrics: every name its evaluations log, each with its direction (`metrics`), which
  `train.best_metric`, keep-best checkpoints and `compare` read;
- its throughput: the per-step count that speed is measured in (`throughput`: tokens for
  seq2seq, examples for RAM), which goes to `timing.json`, not to the results;
- `build(config, mesh)`: its data, model, loss and evaluation for one run, as an
  `Experiment` (see `Experiment` for the interface the runner drives).

The runner (`attnlab.runner`) trains any family: checkpoints and exact resume, signals, the
log, summaries, seeds as a batch axis and data parallelism are its job, not the family's.
A new family registers itself with `register(family)` (a config file may do it, so that a
family outside this package trains with `python -m attnlab train --config=that_file.py`).

The built-in families are imported only when first asked for, so that this module stays light
(the command line's `--help` does not start JAX).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any

import ml_collections

from attnlab import writers
from attnlab.config_lib import (
    ConfigError,
    apply_overrides,
    flatten,
    raise_if,
    require,
    upgrade_saved,
)

DEFAULT = "seq2seq"  # the family of a config that does not name one (runs saved before families)
# name -> module that defines `FAMILY` (imported on first use)
_BUILTIN = {"seq2seq": "attnlab.train", "ram": "attnlab.ram.train"}
_REGISTERED: dict[str, Family] = {}


class Family:
    """A model family (see the module docstring). Subclasses set the class attributes and
    implement the methods."""

    name: str = ""
    # every metric name its evaluations may log -> True when higher is better
    metrics: Mapping[str, bool] = {}
    # the metrics `compare` puts in its table by default, in order
    report_metrics: tuple[str, ...] = ()
    # the field whose values `compare` draws in separate panels (when the variants differ in
    # it), and the names that keep one colour in every figure (e.g. the score functions)
    facet_field: str | None = None
    fixed_colors: tuple[str, ...] = ()
    # (the train sums' key that counts work per step, the name its rate is logged under)
    throughput: tuple[str, str] = ("examples", "train/examples_per_sec")
    # the progress display's fields (label -> train-log key), and the log line's keys
    progress_keys: Mapping[str, str] = {"loss": "train/loss"}
    brief_keys: tuple[str, ...] = ("train/loss",)

    # the family's config module: `default_config()`, `quick(config)`, `validate(config)`
    config_module: Any = None
    # the `Experiment` subclass that `build` makes: `experiment_class(config, mesh)`
    experiment_class: type | None = None

    def default_config(self):
        return self.config_module.default_config()

    def quick(self, config):
        """Shrinks `config` to a run of well under a minute on 2 CPU cores."""
        return self.config_module.quick(config)

    def validate(self, config) -> None:
        """Raises `ConfigError` listing every invalid field of the family's sections."""
        self.config_module.validate(config)

    def memory_estimate(self, config) -> list:
        """The run's big allocations (`attnlab.resources.Need`), or [] when the family's
        config module does not estimate them."""
        estimate = getattr(self.config_module, "memory_estimate", None)
        return estimate(config) if estimate else []

    def build(self, config, mesh) -> Experiment:
        """The family's part of one run (data, model, loss, evaluation)."""
        return self.experiment_class(config, mesh)

    def higher_is_better(self, metric: str) -> bool:
        """The direction of `metric` (a name from `metrics`, or `split/name` of one)."""
        if metric in self.metrics:
            return self.metrics[metric]
        short = metric.rsplit("/", 1)[-1]
        known = {m.rsplit("/", 1)[-1]: up for m, up in self.metrics.items()}
        return known.get(short, True)


class Experiment:
    """One run's family-specific parts, built by `Family.build(config, mesh)`.

    Per seed and pure (the runner vmaps them over the seed axis and jits them):
      `init_params(rng) -> params`;
      `loss(params, batch, state) -> (loss, (sums, state_updates))`: `sums` a dict of float32
        sums (it must hold `loss_sum` and the throughput key), `state_updates` a dict of
        `TrainState` fields to replace (e.g. a moving baseline) or `{}`. Randomness comes from
        `fold_in(state.rng, state.step)`.
    On the host:
      `train_stream(seed)`: an object whose `batch(step)` is the training batch of `step` (a
        dict of numpy arrays, a pure function of the step); `stack_batches(batches)` stacks
        one batch per seed (`seed_batches = "independent"`);
      `train_record(sums) -> {"train/<name>": value}` from one seed's summed log window;
      `evaluate(params, final) -> (metrics, extras, outputs)`: `params` with the seed axis;
        per seed the metrics (`{"eval/...": v}`), the extra summary fields, and whatever
        `artefacts` needs; `final`: the end-of-run evaluation (all splits, final decoding);
      `artefacts(run_dir, outputs, k) -> dict`: draws seed `k`'s pictures into `run_dir`,
        returns the summary fields naming them (paths relative to `run_dir`; the `.png` ones
        also go to the experiment trackers of `train.loggers` as images);
      `summary_fields() -> dict`: facts of the run for every summary (e.g. the decoding);
      `programs`: the `devices.Compiled` programs it built (counted in the timing).
    """

    programs: dict = {}

    def stack_batches(self, batches: list[dict]) -> dict:
        import numpy as np

        return {k: np.stack([b[k] for b in batches]) for k in batches[0]}

    def summary_fields(self) -> dict:
        return {}

    def artefacts(self, run_dir: str, outputs: Any, k: int) -> dict:
        return {}


def register(family: Family) -> Family:
    """Makes `family` available under `family.name` (replacing one of that name)."""
    if not family.name:
        raise ValueError("a family needs a name")
    _REGISTERED[family.name] = family
    return family


def names() -> list[str]:
    """The names of the built-in and registered families."""
    return sorted(set(_BUILTIN) | set(_REGISTERED))


def get(name: str) -> Family:
    """The family called `name` (`ConfigError` listing the known ones when there is none)."""
    if name not in _REGISTERED and name in _BUILTIN:
        importlib.import_module(_BUILTIN[name])  # registers its FAMILY
    if name not in _REGISTERED:
        raise ConfigError(
            f"config.family={name!r} is invalid: must be one of {', '.join(names())} "
            "(a family outside attnlab registers itself with attnlab.families.register)"
        )
    return _REGISTERED[name]


def name_of(config) -> str:
    """The family a config (a ConfigDict or a plain dict) belongs to."""
    return config.get("family", DEFAULT) or DEFAULT


def of(config) -> Family:
    """The family a config belongs to."""
    return get(name_of(config))


def saved_config(workdir: str) -> ml_collections.ConfigDict:
    """The config a run saved in `workdir/config.json`, set on top of its family's defaults of
    today, so that a run saved before a field existed still loads (the new field keeps its
    default). A family not registered in this process (one from outside attnlab) gives the
    saved config as it is. Raises `ConfigError` when the directory or the file is missing,
    `writers.DamagedFileError` (a `ConfigError`) when the file is not a JSON object."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(workdir):
        raise ConfigError(f"{workdir} not found: there is no run's work directory there")
    if not os.path.isfile(path):
        raise ConfigError(
            f"{path} not found: {workdir} is not a run's work directory (training writes "
            "config.json first)"
        )
    fix = "a training run writes it; train again into a new work directory"
    saved = writers.read_json(path, fix)
    if not isinstance(saved, dict):
        raise writers.DamagedFileError(f"{path} is damaged (not a JSON object); {fix}")
    try:
        family = of(saved)
    except ConfigError:  # registered by a config file of its own, not imported here
        return ml_collections.ConfigDict(saved)
    return apply_overrides(family.default_config(), upgrade_saved(flatten(saved)))


def validate(config, memory: bool = True) -> None:
    """Validates a config of any family: the family's own `validate`, then the checks that
    need its metric list (`train.best_metric` must be one of the family's metrics), then
    (`memory`) whether the run can fit in this machine's memory (`attnlab.resources`)."""
    family = of(config)
    family.validate(config)
    errors: list[str] = []
    best = config.train.best_metric
    require(
        errors,
        best in family.metrics,
        "train.best_metric",
        best,
        f"must be a metric of the {family.name} family: {', '.join(sorted(family.metrics))}",
    )
    raise_if(errors)
    if memory:
        from attnlab import resources

        resources.check(family.memory_estimate(config))
