"""Sweeps: a config file's `get_sweep()` expanded into trials, each a plain training process.

`get_sweep()` returns either a dict of axes, `{"model.score": [...], "seed": [0, 1, 2]}`
(their product, in the order given), or a list of override dicts (one per trial). Each trial
runs `python -m attnlab train --config=<same file> --config.<key>=<value> ...` in its own work
directory `<sweep workdir>/<name>`, named from its overrides. Because trials are ordinary
processes with their own directories, a sweep can run locally (`parallel` at a time), on a Ray
cluster (`attnlab.backends.RayBackend`), or one trial per job of a scheduler's job array
(`index`).

Re-running a sweep skips trials whose `summary.json` says completed and re-runs failed or
interrupted ones, which resume from their own checkpoints. A failing trial is recorded with the
tail of its log; the others go on. The status of every trial is kept in `sweep.json`.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import functools
import hashlib
import itertools
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

from attnlab.backends import LocalBackend
from attnlab.config_lib import ConfigError, apply_overrides, load_config, load_config_module
from attnlab.locks import DirectoryLock
from attnlab.writers import write_json_atomic

STATUS_FILE = "sweep.json"
LOCK_FILE = "sweep.lock"


class SweepLock(DirectoryLock):
    """The lock of a sweep directory: a second sweep into it is refused."""

    def __init__(self, sweep_dir: str, shared: bool = False):
        super().__init__(sweep_dir, LOCK_FILE, "sweep", shared)


_UNSAFE = re.compile(r"[^A-Za-z0-9._=+,-]+")
_MAX_NAME = 120


@dataclass
class Trial:
    """One point of a sweep: its overrides, its work directory name, and how it went."""

    index: int
    name: str
    overrides: dict
    # pending | completed | failed (a searched sweep's trials also: pruned, interrupted)
    status: str = "pending"
    error: str = ""
    seconds: float = 0.0


def expand(spec) -> list[dict]:
    """`get_sweep()`'s value -> a list of override dicts (`{"model.score": "dot", ...}`)."""
    if isinstance(spec, dict):
        keys = list(spec)
        for key in keys:
            if not isinstance(spec[key], (list, tuple)) or not spec[key]:
                raise ConfigError(f"sweep axis '{key}' must be a non-empty list, got {spec[key]!r}")
        return [
            dict(zip(keys, values, strict=True)) for values in itertools.product(*spec.values())
        ]
    if isinstance(spec, (list, tuple)) and all(isinstance(t, dict) for t in spec) and spec:
        return [dict(t) for t in spec]
    raise ConfigError("get_sweep() must return a dict of axes or a non-empty list of dicts")


def _format(value) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def trial_name(overrides: dict) -> str:
    """A file-system-safe directory name from the overrides, e.g. `score=dot,seed=1`.

    Keys are shortened to their last component unless that is ambiguous; characters other than
    letters, digits and `._=+,-` become `-`, so a name never holds a path separator or `..`
    leading anywhere outside the sweep directory.
    """
    short = [k.rsplit(".", 1)[-1] for k in overrides]
    keys = short if len(set(short)) == len(short) else list(overrides)
    name = ",".join(f"{k}={_format(v)}" for k, v in zip(keys, overrides.values(), strict=True))
    name = _UNSAFE.sub("-", name).strip(".") or "trial"
    if len(name) > _MAX_NAME:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]  # stable across processes
        name = name[: _MAX_NAME - 9] + "-" + digest
    return name


def sweep_axes(trials: list[Trial]) -> list[str]:
    """The fields the sweep varies: those every trial sets, with more than one value among the
    trials (in their order of first appearance). A field only some trials set is implied by
    the others (e.g. a decoder size that follows the score), not an axis."""
    keys = dict.fromkeys(k for t in trials for k in t.overrides)
    return [
        k
        for k in keys
        if all(k in t.overrides for t in trials)
        and len({json.dumps(t.overrides[k], sort_keys=True) for t in trials}) > 1
    ]


def load_sweep(config_path: str) -> list[Trial]:
    """Trials of `get_sweep([arg])` of `path/to/config.py[:arg]` (names made unique if needed)."""
    path, _, arg = config_path.partition(":")
    module = load_config_module(path)
    if not hasattr(module, "get_sweep"):
        raise ConfigError(f"config file '{path}' defines no get_sweep(); nothing to sweep")
    spec = module.get_sweep(arg) if arg else module.get_sweep()
    trials = [Trial(i, trial_name(o), o) for i, o in enumerate(expand(spec))]
    names = [t.name for t in trials]
    for t in trials:
        if names.count(t.name) > 1:
            t.name = f"{t.index:03d}-{t.name}"
    return trials


def check_trials(config_path: str, trials: list[Trial], common: dict | None = None) -> None:
    """Validates every trial's config (the file's config, the sweep-wide `common` overrides,
    then the trial's own) before any trial starts; raises one `ConfigError` that lists each
    bad trial with its errors (a misspelt axis, a value out of range, ...)."""
    from attnlab import families

    base = load_config(config_path)
    bad = []
    for trial in trials:
        try:
            config = copy.deepcopy(base)
            apply_overrides(config, dict(common or {}))
            apply_overrides(config, trial.overrides)
            families.validate(config)
        except ConfigError as err:
            bad.append(f"trial {trial.index} ({trial.name}): {'; '.join(err.errors)}")
    if bad:
        shown = bad[:10] + ([f"... and {len(bad) - 10} more"] if len(bad) > 10 else [])
        raise ConfigError(
            f"{len(bad)} of {len(trials)} trials have an invalid config; no trial was started: "
            + " | ".join(shown),
            bad,
        )


def trial_command(config_path: str, trial: Trial, trial_dir: str, common: dict | None = None):
    """The training command of one trial; `common` overrides apply to every trial."""
    merged = dict(common or {}, **trial.overrides)
    overrides = [f"--config.{k}={_format(v)}" for k, v in merged.items()]
    return [
        sys.executable,
        "-m",
        "attnlab",
        "train",
        f"--config={config_path}",
        f"--workdir={trial_dir}",
        *overrides,
    ]


def trial_status(trial_dir: str) -> str:
    """`completed`, `failed` or `pending`, from the trial's `summary.json`."""
    try:
        with open(os.path.join(trial_dir, "summary.json")) as f:
            return json.load(f).get("status", "pending")
    except (OSError, ValueError):
        return "pending"


def run_trial(
    config_path: str,
    trial: Trial,
    sweep_dir: str,
    common: dict | None = None,
    env: dict | None = None,
    watch=None,
):
    """Runs one trial as a subprocess (its output goes to `<trial>/train.log`).

    `common` overrides (from the sweep's own command line) apply under the trial's own. `env`:
    environment variables set for the trial's process on top of this one's (its GPUs).
    `watch(trial_dir)`, when given, is called about every `WATCH_SECONDS` while the process
    runs; when it returns True the process gets SIGTERM (it saves a checkpoint and stops: a
    searched sweep's pruning).
    """
    trial_dir = os.path.join(sweep_dir, trial.name)
    if os.path.commonpath([os.path.abspath(trial_dir), os.path.abspath(sweep_dir)]) != (
        os.path.abspath(sweep_dir)
    ):
        raise ConfigError(f"trial name '{trial.name}' leaves the sweep directory")
    if trial_status(trial_dir) == "completed":
        trial.status = "completed"
        return trial
    os.makedirs(trial_dir, exist_ok=True)
    holder = _running_elsewhere(trial_dir)
    if holder is not None:  # its log and files are another process's: leave them alone
        trial.status, trial.error = "pending", f"running in another process ({holder})"
        return trial
    start = time.perf_counter()
    with open(os.path.join(trial_dir, "train.log"), "w") as log:
        process = subprocess.Popen(
            trial_command(config_path, trial, trial_dir, common),
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_stop_with_parent,
            env=dict(os.environ, **env) if env else None,
        )
        code = _wait(process, trial_dir, watch)
    trial.seconds = time.perf_counter() - start
    trial.status = "completed" if code == 0 and trial_status(trial_dir) == "completed" else "failed"
    if trial.status == "failed":
        trial.error = f"exit code {code}: " + _error_summary(os.path.join(trial_dir, "train.log"))
    return trial


WATCH_SECONDS = 0.5  # how often a watched trial's files are read


def _wait(process: subprocess.Popen, trial_dir: str, watch) -> int:
    """Waits for the trial's process; with `watch`, stops it (SIGTERM, once) when asked to."""
    if watch is None:
        return process.wait()
    stopping = False
    while True:
        try:
            return process.wait(timeout=WATCH_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        if not stopping and watch(trial_dir):
            stopping = True
            process.terminate()


def _running_elsewhere(trial_dir: str) -> str | None:
    """Who holds the trial's run lock (a training process started by someone else), or `None`."""
    import fcntl

    with open(os.path.join(trial_dir, "run.lock"), "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            return f.read().strip() or "another process"
        fcntl.flock(f, fcntl.LOCK_UN)
    return None


def _stop_with_parent() -> None:
    """In a trial process (Linux): receive SIGTERM when the sweep that started it dies, so a
    killed sweep leaves no orphan trial behind; the trial saves a checkpoint and stops, and a
    re-run of the sweep resumes it."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: no such call
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _error_summary(log_path: str, max_lines: int = 6) -> str:
    """The last `error:` block of a trial's log (or its last lines), on one line."""
    with open(log_path) as log:
        tail = [line.rstrip() for line in log.readlines()[-40:] if line.strip()]
    starts = [i for i, line in enumerate(tail) if line.lower().startswith("error")]
    lines = tail[starts[-1] :][:max_lines] if starts else tail[-3:]
    return " | ".join(line.strip() for line in lines)


def run_sweep(
    config_path: str,
    sweep_dir: str,
    parallel: int = 1,
    index: int | None = None,
    on_done=None,
    common_overrides: dict | None = None,
    backend=None,
) -> list[Trial]:
    """Runs the sweep of `config_path` into `sweep_dir`; returns every trial with its status.

    `parallel`: trials run at once (local processes), unless a `backend` (`attnlab.backends`)
    is given. `index`: run only that trial (one job of a job array). `on_done(trial, trials)`
    is called after each trial (progress display). `common_overrides`
    (`{"train.num_steps": 100}`) apply to every trial.
    """
    backend = backend or LocalBackend(parallel)
    trials = load_sweep(config_path)
    axes = sweep_axes(trials)  # of the whole sweep, also when one job runs one trial
    if index is not None:
        if not 0 <= index < len(trials):
            raise ConfigError(f"sweep.index={index} is invalid: the sweep has {len(trials)} trials")
        trials = [trials[index]]
    check_trials(config_path, trials, common_overrides)
    os.makedirs(sweep_dir, exist_ok=True)
    # One whole sweep per directory at a time; the jobs of a job array (index) share it, and
    # neither starts while the other runs.
    with SweepLock(sweep_dir, shared=index is not None):
        status = functools.partial(_write_status, sweep_dir, config_path, axes=axes)
        return _run_trials(
            config_path, sweep_dir, trials, backend, on_done, common_overrides, status
        )


def _run_trials(config_path, sweep_dir, trials, backend, on_done, common_overrides, status):
    for t in trials:
        if trial_status(os.path.join(sweep_dir, t.name)) == "completed":
            t.status = "completed"
    todo = [t for t in trials if t.status != "completed"]
    status(trials)
    job = functools.partial(run_trial, config_path, sweep_dir=sweep_dir, common=common_overrides)
    by_index = {t.index: t for t in trials}
    for result in backend.run(job, todo):
        trial = by_index[result.index]  # a remote backend returns a copy
        trial.status, trial.error, trial.seconds = result.status, result.error, result.seconds
        status(trials)
        if on_done is not None:
            on_done(trial, trials)
    return trials


def _write_status(sweep_dir: str, config_path: str, trials: list[Trial], axes=()) -> None:
    """`sweep.json`: the config, the sweep's axes (`sweep_axes`) and every trial's status; with
    a job array each job only knows its own trial, so merge by name."""
    path = os.path.join(sweep_dir, STATUS_FILE)
    known = {}
    try:
        with open(path) as f:
            known = {t["name"]: t for t in json.load(f).get("trials", [])}
    except FileNotFoundError:
        pass
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
        # damaged (a cut write): rebuilt from the trials this process knows; every trial's own
        # summary.json still says whether it finished, so nothing is lost
        logging.warning("%s was damaged (%s); writing it anew", path, err)
    known.update({t.name: asdict(t) for t in trials})
    ordered = sorted(known.values(), key=lambda t: t["index"])
    write_json_atomic(path, {"config": config_path, "axes": list(axes), "trials": ordered})
