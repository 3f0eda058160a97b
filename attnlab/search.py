"""Searched sweeps: a search space in the sweep file, the trials chosen by Optuna.

A sweep file may define `get_search([arg])` beside its `get_sweep()` (or instead of it): the
fields to search, each with its range, declared with the small classes below so that the file
needs no Optuna import. A plain value holds a field fixed in every trial.

    from attnlab.search import Choice, Float, Int

    def get_search(arg=None):
        return {
            "optim.learning_rate": Float(1e-4, 1e-2, log=True),   # log-uniform
            "model.attention.attn_dim": Int(16, 128, log=True),
            "model.score": Choice(["additive", "general", "concat"]),
            "seed": 0,                                            # fixed
        }

`python -m attnlab sweep --config=FILE --workdir=DIR --sweep.search=tpe --sweep.num_trials=16`
runs the search; without `--sweep.search` the same file's `get_sweep()` grid runs, as before.
Overrides on the command line (`--config.train.num_steps=300`) hold their fields fixed in
every trial; a field both searched and given on the command line is an error.

Every trial is still a plain `python -m attnlab train` process in its own directory
`DIR/<number>-<sampled values>` (e.g. `007-learning_rate=0.00123,attn_dim=32,score=general`),
so `compare`, `load_runs` and resuming work as for a grid. The study lives in `DIR/study.db`
(SQLite, Optuna's RDB storage): `N` (`num_trials`) is the study's total number of trials, so
re-running the same command continues it: finished (completed, pruned, failed) trials are never
re-run, a trial left running by a killed sweep resumes from its own checkpoints in its own
directory, and new trials are asked for only up to N in all. `sweep.json` mirrors the study:
every trial's values, status, error and objective, the searched fields as the sweep's axes,
and the best trial.

The objective is the trial's final `metric` in its `summary.json` (default: the config's
`train.best_metric`, a validation metric), maximised or minimised as the family declares it.
Each trial's evaluations in `metrics.jsonl` are reported to the study as its intermediate
values (its learning curve). With `prune="median"` they are read while the trial runs, and a
trial whose value at an eval step is worse than the median of the finished trials' at that
step gets SIGTERM (it saves a checkpoint and stops) and is recorded as pruned.

What fails, and how: a trial whose sampled config is invalid, or whose process fails (a
non-finite loss, an error) is a failed trial of the study (Optuna's samplers ignore it) and
counts towards N; a trial stopped by a signal that was not its pruning (the sweep or the
machine went down) stays running in the study and resumes on the next run.
"""

from __future__ import annotations

import copy
import glob
import json
import math
import os
import re
import threading
import warnings
from dataclasses import asdict, dataclass

from attnlab import sweep as sweep_lib
from attnlab.backends import LocalBackend
from attnlab.config_lib import ConfigError, apply_overrides, load_config, load_config_module
from attnlab.writers import write_json_atomic

STUDY_FILE = "study.db"
STUDY_NAME = "attnlab"
SAMPLERS = ("random", "tpe")
PRUNERS = ("none", "median")
_SCALAR = (bool, int, float, str, type(None))


def _is_real(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class Float:
    """A float in [low, high]: uniform, log-uniform (`log=True`, low > 0) or on a grid of
    `step`."""

    def __init__(self, low: float, high: float, log: bool = False, step: float | None = None):
        self.low, self.high, self.log, self.step = low, high, log, step

    def errors(self) -> list[str]:
        if not (_is_real(self.low) and _is_real(self.high)) or self.low >= self.high:
            return [f"needs finite numbers low < high, got low={self.low!r}, high={self.high!r}"]
        if self.log and self.low <= 0:
            return [f"log=True needs low > 0, got low={self.low!r}"]
        if self.step is not None and (self.log or not _is_real(self.step) or self.step <= 0):
            return [f"step must be a number > 0 and is not allowed with log, got {self.step!r}"]
        return []

    def describe(self) -> dict:
        return {"type": "float", "low": self.low, "high": self.high, "log": self.log,
                "step": self.step}  # fmt: skip

    def examples(self) -> list:
        return [float(self.low), float(self.high)]

    def distribution(self):
        import optuna

        return optuna.distributions.FloatDistribution(
            self.low, self.high, log=self.log, step=self.step
        )

    def __repr__(self) -> str:
        return f"Float({self.low!r}, {self.high!r}, log={self.log!r}, step={self.step!r})"


class Int(Float):
    """An integer in [low, high] (both included): uniform, log-uniform (`log=True`, low >= 1)
    or every `step`-th."""

    def __init__(self, low: int, high: int, log: bool = False, step: int = 1):
        super().__init__(low, high, log, step)

    def errors(self) -> list[str]:
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high))
        if not ints or self.low >= self.high:
            return [f"needs integers low < high, got low={self.low!r}, high={self.high!r}"]
        if self.log and self.low < 1:
            return [f"log=True needs low >= 1, got low={self.low!r}"]
        if not isinstance(self.step, int) or isinstance(self.step, bool) or self.step < 1:
            return [f"step must be an integer >= 1, got {self.step!r}"]
        if self.log and self.step != 1:
            return [f"step is not allowed with log, got step={self.step!r}"]
        return []

    def describe(self) -> dict:
        return dict(super().describe(), type="int")

    def examples(self) -> list:
        return [self.low, self.high]

    def distribution(self):
        import optuna

        return optuna.distributions.IntDistribution(
            self.low, self.high, log=self.log, step=self.step
        )

    def __repr__(self) -> str:
        return f"Int({self.low!r}, {self.high!r}, log={self.log!r}, step={self.step!r})"


class Choice:
    """One of `values` (a non-empty list of distinct numbers, strings, booleans or None)."""

    def __init__(self, values):
        self.values = values

    def errors(self) -> list[str]:
        values = self.values
        if not isinstance(values, list | tuple) or not values:
            return [f"needs a non-empty list of values, got {values!r}"]
        if not all(isinstance(v, _SCALAR) for v in values):
            return [f"values must be numbers, strings, booleans or None, got {values!r}"]
        if len({json.dumps(v) for v in values}) != len(values):
            return [f"values must be distinct, got {values!r}"]
        return []

    def describe(self) -> dict:
        return {"type": "choice", "values": list(self.values)}

    def examples(self) -> list:
        return list(self.values)

    def distribution(self):
        import optuna

        return optuna.distributions.CategoricalDistribution(list(self.values))

    def __repr__(self) -> str:
        return f"Choice({list(self.values)!r})"


SPACES = (Float, Int, Choice)


def parse_space(spec, source: str = "get_search()") -> tuple[dict, dict]:
    """`get_search()`'s value -> (searched fields -> Float | Int | Choice, fixed fields ->
    value); a bad spec is one `ConfigError` listing every bad field."""
    if not isinstance(spec, dict) or not spec:
        raise ConfigError(f"{source} must return a non-empty dict of fields, got {spec!r}")
    space, fixed, errors = {}, {}, []
    for key, value in spec.items():
        if not isinstance(key, str) or not key:
            errors.append(f"field {key!r} must be a dotted config field name")
        elif isinstance(value, SPACES):
            errors += [f"'{key}': {type(value).__name__} {e}" for e in value.errors()]
            space[key] = value
        elif isinstance(value, list | tuple | set | dict):
            errors.append(
                f"'{key}': {value!r} is a collection; search it with Choice([...]), "
                "Float(low, high) or Int(low, high), or give one value to hold it fixed"
            )
        elif not isinstance(value, _SCALAR):
            errors.append(f"'{key}': {value!r} is neither a Float, Int or Choice nor a value")
        else:
            fixed[key] = value
    if not space and not errors:
        errors.append("no field is searched (each is a plain value); use Float, Int or Choice")
    if errors:
        raise ConfigError(f"{source} is invalid: " + "; ".join(errors), errors)
    return space, fixed


def load_search(config_path: str) -> tuple[dict, dict]:
    """The search space of `get_search([arg])` of `path/to/config.py[:arg]` (`parse_space`)."""
    path, _, arg = config_path.partition(":")
    module = load_config_module(path)
    if not hasattr(module, "get_search"):
        raise ConfigError(
            f"config file '{path}' defines no get_search(); a searched sweep "
            "(--sweep.search=random|tpe) needs one (see attnlab.search)"
        )
    try:
        spec = module.get_search(arg) if arg else module.get_search()
    except Exception as err:  # the file's own code failed
        raise ConfigError(f"get_search() of '{path}' failed: {type(err).__name__}: {err}") from err
    return parse_space(spec, f"get_search() of '{path}'")


@dataclass
class SearchOptions:
    """How to search: `sampler` (random | tpe), `num_trials` (the study's total), `metric`
    (default: the config's train.best_metric), `prune` (none | median; `prune_startup`: the
    trials that must finish before any is pruned), `seed` (the sampler's; default: the
    config's seed), `parallel` (trials at once)."""

    sampler: str = "tpe"
    num_trials: int = 0
    metric: str = ""
    prune: str = "none"
    prune_startup: int = 5
    seed: int | None = None
    parallel: int = 1

    def check(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ConfigError(
                f"sweep.search={self.sampler!r} is unknown; valid: grid, {', '.join(SAMPLERS)}"
            )
        if self.num_trials < 1:
            raise ConfigError(
                f"sweep.search={self.sampler} needs --sweep.num_trials=N >= 1 (the study's "
                f"total number of trials), got {self.num_trials}"
            )
        if self.prune not in PRUNERS:
            raise ConfigError(f"sweep.prune={self.prune!r} is unknown; valid: {', '.join(PRUNERS)}")
        if self.prune_startup < 0:
            raise ConfigError(f"sweep.prune_startup={self.prune_startup} is invalid: must be >= 0")


@dataclass
class SearchTrial(sweep_lib.Trial):
    """A trial of a searched sweep: `index` is its number in the study; `value` its objective
    (None until it completes). Statuses: also `pruned`, `running` (now) and `interrupted`
    (left running by a stopped sweep: the next run resumes it)."""

    value: float | None = None


@dataclass
class Plan:
    """A checked search: the space, the fixed fields, the objective and the sampler's seed."""

    space: dict
    fixed: dict
    metric: str
    higher_is_better: bool
    seed: int
    family: str


def plan_search(config_path: str, options: SearchOptions, common: dict | None = None) -> Plan:
    """Checks everything before any trial starts (one `ConfigError` for the first problem):
    the options, the space, that every searched field exists and takes its range's values,
    no field both searched and fixed on the command line, and the metric against the
    family's."""
    from attnlab import families

    options.check()
    space, fixed = load_search(config_path)
    common = dict(common or {})
    clash = sorted(set(space) & set(common))
    if clash:
        raise ConfigError(
            f"{', '.join(clash)} searched by get_search() and also set on the command line "
            "(--config.*); drop one of them"
        )
    base = load_config(config_path)
    try:
        apply_overrides(base, fixed)
        apply_overrides(base, common)
        for key, spec in space.items():  # each field exists and takes its range's values
            for value in spec.examples():
                apply_overrides(copy.deepcopy(base), {key: value})
    except ConfigError as err:
        raise ConfigError(f"get_search(): {err}") from err
    _check_fixed(base, space)
    family = families.of(base)
    metric = options.metric or base.train.best_metric
    if metric not in family.metrics:
        raise ConfigError(
            f"sweep.metric={metric!r} is not a metric of the {family.name} family: "
            + ", ".join(sorted(family.metrics))
        )
    seed = options.seed if options.seed is not None and options.seed >= 0 else int(base.seed)
    return Plan(space, fixed, metric, family.higher_is_better(metric), seed, family.name)


def _check_fixed(base, space: dict) -> None:
    """Refuses, before any trial starts, a config that no sampled value can make valid: the
    problems of the config with every searched field at its first value that name no
    searched field (e.g. `--config.train.eval_every` not a multiple of `log_every`). Without
    this, every trial would fail and use up the study's trials. A problem that involves a
    searched field fails only the trials that sample it."""
    from attnlab import families

    sample = copy.deepcopy(base)
    apply_overrides(sample, {key: spec.examples()[0] for key, spec in space.items()})
    try:
        families.validate(sample, memory=False)
    except ConfigError as err:
        fixed = [e for e in err.errors if not any(key in e for key in space)]
        if fixed:
            raise ConfigError(
                "the fields the search holds fixed are invalid in every trial; no trial was "
                "started: " + "; ".join(fixed),
                fixed,
            ) from err


def _optuna():
    try:
        import optuna
    except ImportError as err:
        raise ConfigError(
            "a searched sweep needs Optuna: pip install -e '.[optuna]' (or pip install optuna)"
        ) from err
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def storage_url(sweep_dir: str) -> str:
    """The Optuna storage of the sweep in `sweep_dir`: `sqlite:///<dir>/study.db`."""
    return "sqlite:///" + os.path.abspath(os.path.join(sweep_dir, STUDY_FILE))


def load_study(sweep_dir: str):
    """The Optuna study of a searched sweep, for analysis (`study.trials_dataframe()`,
    `optuna.visualization`); the same as `optuna.load_study(study_name="attnlab",
    storage="sqlite:///DIR/study.db")`."""
    optuna = _optuna()
    if not os.path.exists(os.path.join(sweep_dir, STUDY_FILE)):
        raise FileNotFoundError(f"no study in {sweep_dir} ({STUDY_FILE})")
    return optuna.load_study(study_name=STUDY_NAME, storage=storage_url(sweep_dir))


def sampler_seed(seed: int, trials_so_far: int) -> int:
    """The sampler's seed for a run that starts with `trials_so_far` trials in the study: a
    re-run must not draw the first run's values again, and the same history gives the same
    draws."""
    import numpy as np

    return int(np.random.SeedSequence([seed, trials_so_far]).generate_state(1)[0])


def startup_trials(num_trials: int) -> int:
    """TPE's random trials before it models the results: Optuna's 10, or a third of a
    smaller study (at least 1), so that a short search still spends most trials on TPE."""
    return max(1, min(10, num_trials // 3))


def open_study(sweep_dir: str, plan: Plan, options: SearchOptions):
    """Creates or loads the sweep's study; refuses one made with another space, metric or
    direction (a new search needs a new --workdir)."""
    optuna = _optuna()
    storage = optuna.storages.RDBStorage(
        storage_url(sweep_dir), engine_kwargs={"connect_args": {"timeout": 60}}
    )
    direction = "maximize" if plan.higher_is_better else "minimize"
    existing = optuna.study.get_all_study_names(storage)
    study = optuna.create_study(
        storage=storage, study_name=STUDY_NAME, direction=direction, load_if_exists=True
    )
    space = {k: v.describe() for k, v in plan.space.items()}
    if STUDY_NAME in existing:
        stored = study.user_attrs
        differs = [
            what
            for what, old, new in (
                ("space", stored.get("space"), space),
                ("metric", stored.get("metric"), plan.metric),
                ("direction", study.direction.name.lower(), direction),
            )
            if old is not None
            and json.dumps(old, sort_keys=True) != json.dumps(new, sort_keys=True)
        ]
        if differs:
            raise ConfigError(
                f"the study in {os.path.join(sweep_dir, STUDY_FILE)} was made with another "
                f"{' and '.join(differs)} ({json.dumps(stored.get('space'))}, "
                f"{stored.get('metric')}); a new search needs a new --workdir"
            )
    study.set_user_attr("space", space)
    study.set_user_attr("metric", plan.metric)
    done = len(study.get_trials(deepcopy=False))
    seed = sampler_seed(plan.seed, done)
    if options.sampler == "random":
        study.sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        study.sampler = optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=startup_trials(options.num_trials), constant_liar=True
        )
    if options.prune == "median":
        study.pruner = optuna.pruners.MedianPruner(n_startup_trials=options.prune_startup)
    else:
        study.pruner = optuna.pruners.NopPruner()
    return study


def display_values(params: dict) -> dict:
    """Sampled values as a trial's directory name shows them (floats to 3 significant digits;
    the trial itself gets the full values)."""
    return {k: float(f"{v:.3g}") if isinstance(v, float) else v for k, v in params.items()}


def search_trial_name(number: int, params: dict) -> str:
    """`007-learning_rate=0.00123,score=general`: the study's trial number keeps names unique
    (a sampler may draw the same choices twice)."""
    return f"{number:03d}-{sweep_lib.trial_name(display_values(params))}"


def run_dirs(trial_dir: str) -> list[str]:
    """Where a trial's seeds wrote their logs: `seed_*/` of a several-seed run, else itself."""
    seeds = sorted(os.path.dirname(p) for p in glob.glob(os.path.join(trial_dir, "seed_*", "")))
    return seeds or [trial_dir]


def metric_by_step(trial_dir: str, metric: str) -> dict[int, float]:
    """`{step: value}` of `metric` at the eval steps logged so far in the trial's
    `metrics.jsonl` (the mean over its seeds at the steps all have); partial lines skipped."""
    per_dir = []
    for directory in run_dirs(trial_dir):
        values = {}
        try:
            with open(os.path.join(directory, "metrics.jsonl"), encoding="utf-8") as f:
                for line in f:
                    if not line.endswith("\n"):
                        break  # being written
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    value = record.get(metric)
                    if _is_real(value) and isinstance(record.get("step"), int):
                        values[record["step"]] = float(value)
        except OSError:
            pass
        per_dir.append(values)
    steps = set(per_dir[0]).intersection(*per_dir[1:])
    return {s: sum(v[s] for v in per_dir) / len(per_dir) for s in sorted(steps)}


def objective(trial_dir: str, metric: str) -> tuple[float | None, str]:
    """The trial's final `metric` from its `summary.json` (the mean over its seeds), or None
    and why not."""
    values = []
    for directory in run_dirs(trial_dir):
        try:
            with open(os.path.join(directory, "summary.json")) as f:
                summary = json.load(f)
        except (OSError, ValueError) as err:
            return None, f"no readable summary.json in {directory}: {err}"
        value = summary.get(metric)
        if not _is_real(value):
            known = ", ".join(sorted(k for k in summary if "/" in k and _is_real(summary[k])))
            return None, f"summary.json has no finite {metric} (it has: {known})"
        values.append(float(value))
    return sum(values) / len(values), ""


_EXIT = re.compile(r"exit code (-?\d+)")


def _interrupted(trial: sweep_lib.Trial, trial_dir: str) -> bool:
    """Whether a failed trial was stopped from outside (a signal: the sweep or the machine
    went down) rather than failing on its own; such a trial resumes on the next run."""
    if trial.status == "pending":  # another process holds its directory
        return True
    if sweep_lib.trial_status(trial_dir) == "interrupted":
        return True
    code = _EXIT.match(trial.error)
    return code is not None and (int(code.group(1)) < 0 or int(code.group(1)) > 128)


class _Watch:
    """A trial's eval steps, reported to its Optuna trial as they appear in `metrics.jsonl`
    (the study keeps every trial's curve); as a run's watch (`sweep.run_trial`), also asks the
    pruner whether to stop it."""

    def __init__(self, search: _Search, optuna_trial, reported):
        self.search, self.trial, self.reported = search, optuna_trial, set(reported)
        self.stopped = False

    def report(self, trial_dir: str) -> bool:
        """Reports the steps not reported yet; whether there were any."""
        new = {
            s: v
            for s, v in metric_by_step(trial_dir, self.search.plan.metric).items()
            if s not in self.reported
        }
        with self.search.lock:
            for step, value in new.items():
                self.trial.report(value, step)
        self.reported.update(new)
        return bool(new)

    def __call__(self, trial_dir: str) -> bool:
        if self.report(trial_dir):
            with self.search.lock:
                self.stopped = self.trial.should_prune()
        return self.stopped


class _Search:
    """One run of a searched sweep: asks, runs, tells, and mirrors the study in sweep.json."""

    def __init__(self, config_path, sweep_dir, plan, options, study, common, backend, on_done):
        self.config_path, self.sweep_dir, self.plan = config_path, sweep_dir, plan
        self.options, self.study, self.common = options, study, dict(common or {})
        self.backend, self.on_done = backend, on_done
        self.lock = threading.Lock()  # one Optuna call at a time (the watches run in threads)
        self.in_flight: dict[int, object] = {}  # number -> optuna Trial
        self.reported: dict[int, set] = {}  # number -> eval steps already reported
        self.distributions = {k: v.distribution() for k, v in plan.space.items()}
        self.base = load_config(config_path)

    # --- the trials to run -------------------------------------------------------------
    def _states(self):
        import optuna

        return optuna.trial.TrialState

    def _item(self, frozen) -> SearchTrial:
        name = frozen.user_attrs.get("name") or search_trial_name(frozen.number, frozen.params)
        overrides = frozen.user_attrs.get("overrides") or dict(self.plan.fixed, **frozen.params)
        return SearchTrial(frozen.number, name, overrides, status="running")

    def items(self):
        """Trials left running by an earlier run first (they resume), then new ones, asked
        for one at a time as slots free up, until the study holds `num_trials`."""
        import optuna

        states = self._states()
        leftover = self.study.get_trials(deepcopy=False, states=(states.RUNNING,))
        for frozen in leftover:
            item = self._item(frozen)
            with self.lock:  # Optuna has no public way back to a running trial from its number
                trial = optuna.trial.Trial(self.study, frozen._trial_id)
                trial.set_user_attr("name", item.name)
                trial.set_user_attr("overrides", item.overrides)
                self.in_flight[frozen.number] = trial
                self.reported[frozen.number] = set(frozen.intermediate_values)
            yield item
        while True:
            with self.lock:
                asked = self.study.get_trials(
                    deepcopy=False,
                    states=(states.RUNNING, states.COMPLETE, states.PRUNED, states.FAIL),
                )
                if len(asked) >= self.options.num_trials:
                    return
                trial = self.study.ask(self.distributions)
                item = SearchTrial(
                    trial.number,
                    search_trial_name(trial.number, trial.params),
                    dict(self.plan.fixed, **trial.params),
                    status="running",
                )
                trial.set_user_attr("name", item.name)
                trial.set_user_attr("overrides", item.overrides)
                self.in_flight[trial.number] = trial
            problem = self._invalid(item)
            if problem:  # never started: a failed trial of the study
                item.status, item.error = "failed", problem
                self._tell(item)
                continue
            self._write_status()
            yield item

    def _invalid(self, item: SearchTrial) -> str:
        from attnlab import families

        try:
            config = copy.deepcopy(self.base)
            apply_overrides(config, self.common)
            apply_overrides(config, item.overrides)
            families.validate(config)
        except ConfigError as err:
            return "invalid config: " + "; ".join(err.errors)
        return ""

    # --- one trial, in a worker thread ------------------------------------------------
    def job(self, item: SearchTrial, env: dict | None = None) -> SearchTrial:
        with self.lock:
            watch = _Watch(self, self.in_flight[item.index], self.reported.get(item.index, ()))
        pruning = self.options.prune != "none"
        sweep_lib.run_trial(
            self.config_path,
            item,
            self.sweep_dir,
            self.common,
            env=env,
            watch=watch if pruning else None,
        )
        if watch.stopped and item.status != "completed":
            item.status, item.error = "pruned", ""
        else:
            watch.report(os.path.join(self.sweep_dir, item.name))  # the rest of its curve
        return item

    # --- back in the main thread ------------------------------------------------------
    def _tell(self, item: SearchTrial) -> None:
        """Records the trial's outcome in the study (an interrupted one stays running)."""
        states = self._states()
        trial_dir = os.path.join(self.sweep_dir, item.name)
        if item.status == "completed":
            item.value, why = objective(trial_dir, self.plan.metric)
            if item.value is None:
                item.status, item.error = "failed", why
        elif item.status != "pruned" and _interrupted(item, trial_dir):
            item.status = "interrupted"
        with self.lock:
            trial = self.in_flight.pop(item.index)
            trial.set_user_attr("seconds", round(item.seconds, 3))
            trial.set_user_attr("error", item.error)
            if item.status == "completed":
                self.study.tell(trial, item.value)
            elif item.status == "pruned":
                self.study.tell(trial, state=states.PRUNED)
            elif item.status == "failed":
                self.study.tell(trial, state=states.FAIL)
        trials = self._write_status()
        if self.on_done is not None:
            self.on_done(item, trials)

    def run(self) -> list[SearchTrial]:
        self._write_status()
        for item in self.backend.run(self.job, self.items()):
            self._tell(item)
        return self._write_status()

    # --- sweep.json --------------------------------------------------------------------
    def trials(self) -> list[SearchTrial]:
        """Every trial of the study (not the ones only queued), as sweep.json records them."""
        states = self._states()
        status = {
            states.COMPLETE: "completed",
            states.PRUNED: "pruned",
            states.FAIL: "failed",
        }
        out = []
        for frozen in self.study.get_trials(deepcopy=False):
            if frozen.state == states.WAITING:
                continue
            item = self._item(frozen)
            running = "running" if frozen.number in self.in_flight else "interrupted"
            item.status = status.get(frozen.state, running)
            item.error = frozen.user_attrs.get("error", "")
            item.seconds = frozen.user_attrs.get("seconds", 0.0)
            item.value = frozen.value if frozen.state == states.COMPLETE else None
            out.append(item)
        return out

    def _write_status(self) -> list[SearchTrial]:
        with self.lock:
            trials = self.trials()
        best = None
        for top in best_trials(trials, self.plan.higher_is_better, k=1):
            best = {"index": top.index, "name": top.name, "value": top.value,
                    "overrides": top.overrides}  # fmt: skip
        write_json_atomic(
            os.path.join(self.sweep_dir, sweep_lib.STATUS_FILE),
            {
                "config": self.config_path,
                "axes": list(self.plan.space),
                "search": {
                    "sampler": self.options.sampler,
                    "num_trials": self.options.num_trials,
                    "metric": self.plan.metric,
                    "direction": "maximize" if self.plan.higher_is_better else "minimize",
                    "space": {k: v.describe() for k, v in self.plan.space.items()},
                    "fixed": self.plan.fixed,
                    "common": self.common,
                    "prune": self.options.prune,
                    "seed": self.plan.seed,
                    "study": STUDY_FILE,
                },
                "best": best,
                "trials": [asdict(t) for t in trials],
            },
        )
        return trials


def run_search(
    config_path: str,
    sweep_dir: str,
    options: SearchOptions,
    common_overrides: dict | None = None,
    backend=None,
    on_done=None,
) -> list[SearchTrial]:
    """Runs (or continues) the search of `config_path` into `sweep_dir`; returns every trial
    of the study. `backend`: a `LocalBackend` (default: `options.parallel` at a time, GPUs
    found as `attnlab.backends` describes); `on_done(trial, trials)` after each trial."""
    plan = plan_search(config_path, options, common_overrides)
    _optuna()
    backend = backend or LocalBackend(options.parallel)
    if not isinstance(backend, LocalBackend):
        raise ConfigError(
            "a searched sweep runs its trials on this machine (--sweep.backend=local); "
            "run a grid (get_sweep) on Ray"
        )
    os.makedirs(sweep_dir, exist_ok=True)
    with sweep_lib.SweepLock(sweep_dir):
        study = open_study(sweep_dir, plan, options)
        search = _Search(
            config_path, sweep_dir, plan, options, study, common_overrides, backend, on_done
        )
        return search.run()


PLOT_FILE = "search.png"


def plot(sweep_dir: str, path: str | None = None) -> str | None:
    """Draws the study of `sweep_dir` (`plots.plot_search`: the objective against each searched
    number, coloured by the first searched choice, pruned trials hollow) to `path` (default
    `<sweep_dir>/search.png`); returns the path, or None when no trial has a value yet."""
    from attnlab import plots

    study = load_study(sweep_dir)
    space, metric = study.user_attrs.get("space", {}), study.user_attrs.get("metric", "")
    numbers = {k: bool(v["log"]) for k, v in space.items() if v["type"] in ("float", "int")}
    choices = [k for k, v in space.items() if v["type"] == "choice"]
    points = []
    for frozen in study.get_trials(deepcopy=False):
        if frozen.state.name == "COMPLETE":
            y, pruned = frozen.value, False
        elif frozen.state.name == "PRUNED" and frozen.intermediate_values:
            y, pruned = frozen.intermediate_values[max(frozen.intermediate_values)], True
        else:
            continue
        points.append({"values": frozen.params, "y": y, "pruned": pruned})
    if not points:
        return None
    path = path or os.path.join(sweep_dir, PLOT_FILE)
    direction = study.direction.name.lower()
    label = f"{metric} ({'higher' if direction == 'maximize' else 'lower'} is better)"
    plots.plot_search(numbers, points, choices[0] if choices else None, label, path)
    return path


def best_trials(trials: list[SearchTrial], higher_is_better: bool, k: int = 5):
    """The `k` best completed trials, best first."""
    done = [t for t in trials if t.value is not None]
    return sorted(done, key=lambda t: t.value, reverse=higher_is_better)[:k]
