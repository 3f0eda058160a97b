"""The runner: `train_and_evaluate(config, workdir)` trains and evaluates a run of any model
family (`attnlab.families`) and writes its work directory.

What is the runner's, whatever the family: the optimiser; the train state and the one train
step (the family's loss, differentiated, clipped and applied); seeds as a batch axis (K seeds
initialised independently, trained by one `jax.vmap`-ed program); data parallelism over the
devices; ahead-of-time compiled programs; checkpoints with exact resume (batches are a pure
function of the step, and the sums of the current log window are saved with each checkpoint);
SIGTERM / SIGINT handling; the non-finite loss stop; the work-directory lock and config check;
the log (`metrics.jsonl`, `timing.jsonl`, and the loggers of `train.loggers`: TensorBoard,
Weights & Biases, MLflow) and the summaries. What is the family's: its data, model, loss,
evaluation and pictures (`families.Experiment`).

Work directory: `config.json` (resolved config), `provenance.json` (each invocation's command,
versions, git commit and devices), `metrics.jsonl` (one line per log/eval step),
`summary.json` (final figures), `timing.jsonl` / `timing.json` (speed, kept apart so that the
results of identical runs are byte-identical), `checkpoints/` (orbax), the family's pictures
(`attention/` or `glimpses/`), `tb/` (TensorBoard events), `tracking.json` (the W&B / MLflow
run that a resumed run continues) and `wandb/` (W&B's own files). With several seeds, each
seed's log, summary, pictures, events and tracked run go to `seed_<s>/` (with a `config.json`
for that seed alone); the checkpoints stay on top.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import functools
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from attnlab import devices, families, trackers, writers
from attnlab import metrics as metrics_lib
from attnlab.checkpoints import Checkpointer, CheckpointError
from attnlab.config_lib import ConfigError, flatten, logger_names, upgrade_saved
from attnlab.locks import DirectoryLock
from attnlab.progress import Progress, logs_shown

PROVENANCE_FILE = "provenance.json"
# Run facts that vary between identical runs: kept in timing.json, out of summary.json.
RUN_TIMING_KEYS = ("wall_seconds", "compile_seconds", "compiled_programs")


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or Inf; the message names the step range."""


class ResourceError(RuntimeError):
    """The machine ran out of memory or disk while the run was working; the message says
    which and what to change (the latest finished checkpoint is kept)."""


MEMORY_FIELDS = (
    "data.batch_size, data.eval_batch_size, eval.beam_size, num_seeds or the model sizes"
)


def resource_failure(err: BaseException) -> str | None:
    """One line for an out-of-memory or disk-full error (anywhere in its cause chain), naming
    the config fields that drive it; `None` for any other error."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        text = str(err)
        disk = isinstance(err, OSError) and err.errno == errno.ENOSPC
        # the checkpoint library reports a full disk as RESOURCE_EXHAUSTED too, while writing
        disk = disk or "No space left" in text or ("RESOURCE_EXHAUSTED" in text and "writ" in text)
        if disk:
            where = getattr(err, "filename", None)
            return (
                "no space left on the device"
                + (f" writing {where}" if where else "")
                + "; free some space, the same command then resumes from the latest finished "
                "checkpoint"
            )
        if isinstance(err, MemoryError) or "RESOURCE_EXHAUSTED" in text:
            first = text.strip().splitlines()[0][:160] if text.strip() else type(err).__name__
            return f"out of memory ({first}); lower {MEMORY_FIELDS}"
        err = err.__cause__ or err.__context__
    return None


class TrainingInterrupted(RuntimeError):
    """SIGTERM or SIGINT stopped training after a checkpoint was saved; `signum` says which."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


class StopOnSignal:
    """Within `with StopOnSignal() as stop:`, SIGTERM and SIGINT set `stop.signum` instead of
    killing the process, so the loop can save a checkpoint first. A second Ctrl-C (SIGINT)
    stops at once (KeyboardInterrupt); a repeated SIGTERM does not, since schedulers and dying
    parents may send it more than once while the checkpoint is being saved. Outside the main
    thread this does nothing.

    `during`: set when there is nothing to save (e.g. the final evaluation of a trained run):
    the first signal then raises `TrainingInterrupted` at once, naming it."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, during: str | None = None):
        self.signum = None
        self.during = during
        self._previous = {}

    def _handle(self, signum, frame):
        if self.during is not None and self.signum is None:
            self.signum = signum
            raise TrainingInterrupted(
                f"{signal.strsignal(signum)} during {self.during}; the checkpoints are kept, "
                "the same command runs it again",
                signum,
            )
        if self.signum is not None:
            if signum == signal.SIGINT:  # the user insists
                raise KeyboardInterrupt
            return  # already stopping
        self.signum = signum
        logging.warning("%s received: saving a checkpoint, then stopping", signal.strsignal(signum))

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc_info):
        for s, handler in self._previous.items():
            signal.signal(s, handler)


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training (the only state attnlab keeps)."""

    step: jnp.ndarray  # [] int32, number of updates applied
    params: Any
    opt_state: Any
    rng: jnp.ndarray  # [2] uint32 raw key data: per-step randomness is fold_in(rng, step)
    # [] float32: a running statistic a family's loss updates (hard attention's moving-average
    # REINFORCE baseline); 0 and unused otherwise
    reward_baseline: jnp.ndarray = None


def create_optimizer(optim_cfg, num_steps: int):
    """`config.optim` -> `(optax transformation, learning-rate schedule)`."""
    peak = optim_cfg.learning_rate
    warmup = min(optim_cfg.warmup_steps, max(num_steps - 1, 0))
    if optim_cfg.schedule == "cosine":
        schedule = optax.warmup_cosine_decay_schedule(0.0, peak, warmup, max(num_steps, warmup + 1))
    elif warmup > 0:
        schedule = optax.join_schedules(
            [optax.linear_schedule(0.0, peak, warmup), optax.constant_schedule(peak)], [warmup]
        )
    else:
        schedule = optax.constant_schedule(peak)
    if optim_cfg.optimizer == "adam":
        opt = optax.adam(schedule)
    elif optim_cfg.optimizer == "adamw":
        opt = optax.adamw(schedule, weight_decay=optim_cfg.weight_decay)
    else:
        opt = optax.sgd(schedule, momentum=optim_cfg.momentum)
    if optim_cfg.grad_clip_norm > 0:
        opt = optax.chain(optax.clip_by_global_norm(optim_cfg.grad_clip_norm), opt)
    return opt, schedule


def create_train_state(init_params, tx, seed: int, init=None) -> TrainState:
    """Initialises parameters (jitted: much faster than eager init) and optimiser state.

    `init_params(rng) -> params`: the family's initialiser; `init`: its jitted version to reuse
    (one compile for many seeds)."""
    rng = jax.random.key(seed)
    init = init or jax.jit(init_params)
    params = init(jax.random.fold_in(rng, 0))
    return TrainState(
        step=jnp.array(0, jnp.int32),
        params=params,
        opt_state=tx.init(params),
        rng=jax.random.key_data(jax.random.fold_in(rng, 1)),
        reward_baseline=jnp.zeros((), jnp.float32),
    )


def create_train_states(init_params, tx, seeds) -> TrainState:
    """One train state per seed, stacked along a leading seed axis (`[K, ...]` leaves).

    Seed `s`'s slice is exactly `create_train_state(init_params, tx, s)`: K models initialised
    independently, trained together by a vmapped step.
    """
    init = jax.jit(init_params)
    states = [create_train_state(init_params, tx, s, init) for s in seeds]
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)


def make_train_step(loss_fn, tx):
    """The pure `train_step(state, batch) -> (state, sums)` of one seed (not yet jitted).

    `loss_fn(params, batch, state) -> (loss, (sums, state_updates))` is the family's; the step
    differentiates it, applies the optimiser (clipping included), and adds `grad_norm_sum`
    (the global gradient norm) and `updates` (1) to the sums.
    """

    def train_step(state: TrainState, batch):
        grads, (sums, changes) = jax.grad(loss_fn, has_aux=True)(state.params, batch, state)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        sums = dict(sums, grad_norm_sum=optax.tree.norm(grads), updates=jnp.float32(1.0))
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
        return new_state.replace(**changes), sums

    return train_step


def num_params(params) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))


def seed_slice(tree, k: int):
    """Seed `k` of a tree whose leaves carry a leading seed axis."""
    return jax.tree.map(lambda x: x[k], tree)


def check_finite(sums: dict, first_step: int, last_step: int, seed: int | None = None) -> None:
    """Raises `NonFiniteLossError` when the summed loss or gradient norm of steps `first_step`
    .. `last_step` (host values) is NaN or infinite; `seed` names the model of several."""
    if not math.isfinite(float(sums["loss_sum"])) or not math.isfinite(
        float(sums["grad_norm_sum"])
    ):
        who = "" if seed is None else f" (seed {seed})"
        raise NonFiniteLossError(
            f"non-finite training loss or gradient{who} between steps {first_step} and "
            f"{last_step}; the last checkpoint before this range is kept. Lower "
            "optim.learning_rate or set optim.grad_clip_norm."
        )


def check_window(window: dict, step: int, seeds) -> None:
    """`check_finite` for each seed of the log window's sums (host values, a leading seed axis)
    ending at `step`."""
    first = step - int(window["updates"][0]) + 1
    for k, seed in enumerate(seeds):
        check_finite(seed_slice(window, k), first, step, seed)


def save_checkpoint(ckpt, state, step: int, window: dict, score, stop, seeds) -> dict:
    """Saves `state` at `step` with the log window's sums, checked first (a state whose recent
    steps were not checked is never saved), and `score` for keep-best retention. When `stop`
    has caught a signal, waits for the save and raises `TrainingInterrupted`. Returns the
    window, now on the host."""
    if window:
        window = devices.to_host(window)
        check_window(window, step, seeds)
    ckpt.save(step, state, {"step": step, "window": window}, score=score)
    if stop is not None and stop.signum is not None:
        ckpt.wait()
        name = signal.Signals(stop.signum).name
        raise TrainingInterrupted(
            f"{name} at step {step}: checkpoint saved; re-run the same command to resume",
            stop.signum,
        )
    return window


def _jsonable_config(config) -> dict:
    return flatten(json.loads(json.dumps(writers.to_jsonable(config.to_dict()))))


def check_workdir_config(config, workdir: str, force: bool = False) -> None:
    """Refuses (`ConfigError`) a work directory that holds a run with a different config, naming
    the fields that differ, unless `force`. A field the saved run lacks (added to the family
    after it was saved) counts as equal when the new config has the family's default there."""
    path = os.path.join(workdir, "config.json")
    if force or not os.path.exists(path):
        return
    fix = "use another --workdir, or --force to continue the run with this config"
    saved = writers.read_json(path, fix)
    if not isinstance(saved, dict):
        raise writers.DamagedFileError(f"{path} is damaged (not a JSON object); {fix}")
    old = upgrade_saved(flatten(saved))
    new = _jsonable_config(config)
    defaults = _jsonable_config(families.of(config).default_config())
    for key in [k for k in new if k not in old and new[k] == defaults.get(k)]:
        old[key] = new[key]
    changed = sorted(
        k for k in old.keys() | new.keys() if old.get(k, "<absent>") != new.get(k, "<absent>")
    )
    if changed:
        shown = ", ".join(
            f"{k}: {old.get(k, '<absent>')!r} -> {new.get(k, '<absent>')!r}" for k in changed[:8]
        )
        more = f" (and {len(changed) - 8} more)" if len(changed) > 8 else ""
        raise ConfigError(
            f"{workdir} holds a run with a different config ({shown}{more}); use another "
            "--workdir, or --force to continue this run with the new config"
        )


def provenance() -> dict:
    """What produced a run: the command line, attnlab's and its main libraries' versions, the
    git commit of attnlab's source when it is a checkout, Python, the platform and devices."""
    from importlib import metadata

    import attnlab

    versions = {"attnlab": attnlab.__version__}
    for name in ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    info = {
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": _command_line(),
        "versions": versions,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "devices": [f"{d.platform}:{d.device_kind}" for d in jax.devices()],
        "process_count": jax.process_count(),
    }
    info.update(_git_commit(os.path.dirname(os.path.abspath(attnlab.__file__))))
    return info


def _command_line() -> list[str]:
    """`sys.argv`, with `python -m attnlab` for the module's own path."""
    if not sys.argv:
        return []
    program = os.path.basename(sys.argv[0])
    if program == "__main__.py" and os.path.dirname(sys.argv[0]).endswith("attnlab"):
        program = "python -m attnlab"
    return [program, *sys.argv[1:]]


def _git_commit(directory: str) -> dict:
    """`{"git_commit": sha, "git_dirty": bool}` of the checkout holding `directory` ({} when it
    is not one, or git is missing)."""
    try:
        run = functools.partial(
            subprocess.run, cwd=directory, capture_output=True, text=True, timeout=10
        )
        inside = run(["git", "rev-parse", "--is-inside-work-tree"])
        if inside.returncode != 0 or inside.stdout.strip() != "true":
            return {}
        sha = run(["git", "rev-parse", "HEAD"]).stdout.strip()
        dirty = bool(run(["git", "status", "--porcelain", "--untracked-files=no"]).stdout.strip())
        return {"git_commit": sha, "git_dirty": dirty} if sha else {}
    except (OSError, subprocess.SubprocessError):
        return {}


def record_provenance(workdir: str, start_step: int | None) -> None:
    """Appends this invocation (`provenance()` and the step it starts from) to
    `provenance.json`, the run's history of invocations."""
    path = os.path.join(workdir, PROVENANCE_FILE)
    history = []
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                history = list(json.load(f)["invocations"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            # A damaged history is kept aside, not overwritten: nothing is lost.
            kept = writers.keep_aside(path)
            logging.warning("%s is damaged: kept as %s; a new history starts", path, kept)
    entry = dict(provenance(), start_step=int(start_step or 0))
    writers.write_json_atomic(path, {"invocations": [*history, entry]})


class Run:
    """The pieces of one run that the loop needs (built by `setup_run`).

    `seeds`: the K model seeds trained together; `run_dirs`: where each seed's log, summary and
    pictures go (the work directory itself for one seed, `seed_<s>/` below it for several).
    """

    def __init__(self, config, workdir, family, experiment, state, ckpt, start_step, mesh):
        self.config, self.workdir, self.mesh = config, workdir, mesh
        self.family, self.experiment = family, experiment
        self.state, self.ckpt, self.start_step = state, ckpt, start_step
        self.tx, self.schedule = create_optimizer(config.optim, config.train.num_steps)
        self.resume_window: dict = {}  # log-window sums saved with the checkpoint
        self.seeds = [config.seed + k for k in range(config.num_seeds)]
        self.num_seeds = len(self.seeds)
        self.run_dirs = (
            [workdir]
            if self.num_seeds == 1
            else [os.path.join(workdir, f"seed_{s}") for s in self.seeds]
        )
        self.independent = config.seed_batches == "independent" and self.num_seeds > 1
        seeds = self.seeds if self.independent else [config.seed]
        self.streams = [experiment.train_stream(s) for s in seeds]
        step_fn = make_train_step(experiment.loss, self.tx)
        step_fn = jax.vmap(step_fn, in_axes=(0, 0 if self.independent else None))
        self.programs = {"train": devices.Compiled(step_fn, donate_argnums=(0,))}
        self.programs.update(experiment.programs)

    @property
    def compile_seconds(self) -> float:
        return sum(p.compile_seconds for p in self.programs.values())

    @property
    def timing_keys(self) -> tuple[str, ...]:
        return (self.family.throughput[1], *RUN_TIMING_KEYS)

    def train_batch(self, step: int) -> dict:
        """The step's batch on the devices: shared by every seed, or one per seed (stacked)."""
        if not self.independent:
            return devices.shard_batch(self.streams[0].batch(step), self.mesh)
        stacked = self.experiment.stack_batches([s.batch(step) for s in self.streams])
        return devices.shard_batch(stacked, self.mesh, batch_axis=1)

    def evaluate(self, final: bool = False):
        """The family's evaluation of every seed's current parameters."""
        return self.experiment.evaluate(self.state.params, final)

    def log_records(self, window: dict, seconds: float, step: int) -> list[dict]:
        """One `metrics.jsonl` / `timing.jsonl` record per seed from the summed log window."""
        count_key, rate_name = self.family.throughput
        records = []
        for k in range(self.num_seeds):
            sums = seed_slice(window, k)
            record = self.experiment.train_record(sums)
            record["train/grad_norm"] = float(sums["grad_norm_sum"]) / float(sums["updates"])
            record[rate_name] = float(sums[count_key]) / max(seconds, 1e-9)
            record["train/learning_rate"] = float(self.schedule(step - 1))
            records.append(record)
        return records


def setup_run(config, workdir: str, force: bool = False) -> Run:
    """Validates the config, builds the family's experiment and the train state, and restores
    the latest checkpoint. A work directory holding a run with another config is refused
    unless `force`."""
    families.validate(config)
    family = families.of(config)
    check_workdir_config(config, workdir, force)
    mesh = devices.make_mesh()
    devices.check_batch_sizes(
        mesh, batch_size=config.data.batch_size, eval_batch_size=config.data.eval_batch_size
    )
    os.makedirs(workdir, exist_ok=True)
    experiment = family.build(config, mesh)
    tx, _ = create_optimizer(config.optim, config.train.num_steps)
    seeds = [config.seed + k for k in range(config.num_seeds)]
    state = devices.replicate(create_train_states(experiment.init_params, tx, seeds), mesh)
    ckpt = Checkpointer(
        os.path.join(workdir, "checkpoints"),
        config.train.max_to_keep,
        keep_best=config.train.keep_best,
        lower_is_better=not family.higher_is_better(config.train.best_metric),
    )
    start_step, window = ckpt.latest_step(), {}
    if start_step is not None:
        dirs = [workdir] if len(seeds) == 1 else [os.path.join(workdir, f"seed_{s}") for s in seeds]
        start_step = resume_step_for_log(ckpt, dirs, start_step, config.train.log_every)
        state, meta = ckpt.restore(state, step=start_step)
        # float32 sums survive the JSON round trip exactly
        window = {k: np.asarray(v, np.float32) for k, v in (meta.get("window") or {}).items()}
        logging.info("resumed from the checkpoint at step %d", start_step)
    run = Run(config, workdir, family, experiment, state, ckpt, start_step, mesh)
    run.resume_window = window
    if devices.is_main_process():
        writers.write_json_atomic(os.path.join(workdir, "config.json"), config.to_dict())
        record_provenance(workdir, start_step)
        if run.num_seeds > 1:  # each seed's directory reads as a one-seed run
            for seed, run_dir in zip(run.seeds, run.run_dirs, strict=True):
                single = config.to_dict()
                single["seed"], single["num_seeds"] = seed, 1
                os.makedirs(run_dir, exist_ok=True)
                writers.write_json_atomic(os.path.join(run_dir, "config.json"), single)
    return run


def logged_steps(run_dir: str) -> list[int]:
    """The steps of the complete lines of `run_dir/metrics.jsonl` ([] when there is none).
    A damaged line in the middle is a `DamagedFileError` naming the line."""
    path = os.path.join(run_dir, writers.METRICS_FILENAME)
    if not os.path.exists(path):
        return []
    return [int(r["step"]) for r in writers.read_jsonl(path) if "step" in r]


def resume_step_for_log(ckpt, run_dirs: list[str], latest: int, log_every: int) -> int:
    """The checkpoint to resume from so that no log line is lost: `latest`, unless a crash cut
    `metrics.jsonl` behind it (a line flushed but never written to disk). Then the newest
    checkpoint the log still covers is restored instead, and training repeats the steps after
    it, writing the lost lines again (training is deterministic: they come out the same).
    Refuses (`CheckpointError`) when no kept checkpoint is early enough."""
    last = min((max(logged_steps(d), default=0) for d in run_dirs), default=0)
    if latest // log_every * log_every <= last:
        return latest
    usable = [s for s in ckpt.all_steps() if s // log_every * log_every <= last]
    if not usable:
        raise CheckpointError(
            f"{os.path.join(run_dirs[0], writers.METRICS_FILENAME)} ends at step {last} but the "
            f"latest checkpoint is at step {latest}: log lines were lost (a crash before they "
            "reached the disk) and no kept checkpoint is early enough to write them again; "
            "train into a new --workdir"
        )
    logging.warning(
        "metrics.jsonl ends at step %d, behind the checkpoint at step %d: resuming from the "
        "checkpoint at step %d to write the lost lines again",
        last,
        latest,
        usable[-1],
    )
    return usable[-1]


def restore(config, workdir: str):
    """A finished (or checkpointed) run read back without writing anything: `(experiment,
    state, step)`, the family's experiment built from `config` and the train state of the
    latest checkpoint in `workdir` (every leaf with the leading seed axis). Raises
    `CheckpointError` when the directory has no checkpoint."""
    families.validate(config)
    experiment = families.of(config).build(config, devices.make_mesh())
    tx, _ = create_optimizer(config.optim, config.train.num_steps)
    seeds = [config.seed + k for k in range(config.num_seeds)]
    state = create_train_states(experiment.init_params, tx, seeds)
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), config.train.max_to_keep)
    step = ckpt.latest_step()
    if step is None:
        raise CheckpointError(
            f"no checkpoint in {ckpt.directory}: train the run first (python -m attnlab "
            f"train --config=... --workdir={workdir})"
        )
    state, _ = ckpt.restore(state)
    ckpt.close()
    return experiment, state, step


class StepTrace:
    """A `jax.profiler` trace of `train.profile_steps` training steps, written to
    `workdir/profile` (TensorBoard's profile view: `tensorboard --logdir WORKDIR/profile`).

    It begins after the first step this process runs (that step compiles the program: the
    warm-up) and ends once the traced steps have finished on the device; each step is marked
    with a `StepTraceAnnotation` so the profile view lists them. Only process 0 traces.
    """

    def __init__(self, run: Run, first_step: int):
        count = run.config.train.profile_steps if devices.is_main_process() else 0
        self.directory = os.path.join(run.workdir, "profile")
        self.start = first_step + 1
        self.end = min(self.start + count, run.config.train.num_steps)
        self.active = False

    def annotate(self, step: int):
        """Around the program call of `step` (0-based): starts the trace at its first step."""
        if step == self.start and step < self.end:
            jax.profiler.start_trace(self.directory)
            self.active = True
        if self.active:
            return jax.profiler.StepTraceAnnotation("train", step_num=step)
        return contextlib.nullcontext()

    def finish(self, steps_done: int, state) -> None:
        """After `steps_done` steps: ends the trace once the last traced step has run."""
        if self.active and steps_done >= self.end:
            jax.block_until_ready(state)
            self.close()
            logging.info(
                "profile of steps %d-%d written to %s", self.start + 1, self.end, self.directory
            )

    def close(self) -> None:
        if self.active:
            self.active = False
            jax.profiler.stop_trace()


def train_loop(run: Run, writer_list, stop: StopOnSignal | None = None) -> tuple[float, float]:
    """Trains from the state's step to `train.num_steps`, one writer per seed.

    `stop`: when it has caught a signal, the loop saves a checkpoint at the current step and
    raises `TrainingInterrupted`.

    Returns `(seconds, work per seed)` spent in training steps (compiles and evals excluded),
    the work counted in the family's throughput unit.
    """
    t = run.config.train
    count_key = run.family.throughput[0]
    step = int(devices.to_host(run.state.step)[0])
    # Sums of the steps since the last log line, restored with the checkpoint: a resumed run
    # writes the same log lines as an uninterrupted one.
    window = run.resume_window
    window_start, window_compile = time.perf_counter(), run.compile_seconds
    train_seconds, train_work = 0.0, 0.0
    bar, shown = Progress(t.num_steps, start=step, label="train"), {}
    trace = StepTrace(run, step)
    with bar, contextlib.closing(trace):
        while step < t.num_steps:
            score = None  # the step's best_metric, when it is evaluated
            with trace.annotate(step):
                run.state, sums = run.programs["train"](run.state, run.train_batch(step))
            window = metrics_lib.add(window, sums)
            step += 1
            trace.finish(step, run.state)
            if step % t.log_every == 0 or step == t.num_steps:
                window = devices.to_host(window)
                check_window(window, step, run.seeds)
                seconds = (
                    time.perf_counter() - window_start - (run.compile_seconds - window_compile)
                )
                train_seconds += seconds
                train_work += float(window[count_key][0])
                records = run.log_records(window, seconds, step)
                if step % t.eval_every == 0 or step == t.num_steps:
                    evals, _, _ = run.evaluate()
                    for record, metrics in zip(records, evals, strict=True):
                        record.update(metrics)
                    values = [m.get(t.best_metric) for m in evals]
                    if all(v is not None and math.isfinite(v) for v in values):
                        score = float(np.mean(values))  # the mean over seeds ranks checkpoints
                for writer, record in zip(writer_list, records, strict=True):
                    writer.write_scalars(step, record)
                logging.info("step %d: %s", step, _brief(records[0], run.family.brief_keys))
                shown = {
                    label: records[0][key]
                    for label, key in run.family.progress_keys.items()
                    if key in records[0]
                }
                window, window_start, window_compile = {}, time.perf_counter(), run.compile_seconds
            stopping = stop is not None and stop.signum is not None
            if step % t.ckpt_every == 0 or step == t.num_steps or stopping:
                window = save_checkpoint(run.ckpt, run.state, step, window, score, stop, run.seeds)
            bar.update(step, **shown)
    return train_seconds, train_work


def _brief(record: dict, keys) -> str:
    return ", ".join(f"{k}={record[k]:.4f}" for k in keys if k in record)


def run_lock(workdir: str):
    """One process trains into a work directory at a time (of a multi-process run: only
    process 0 takes the lock)."""
    if devices.is_main_process():
        return DirectoryLock(workdir, "run.lock", "training run")
    return contextlib.nullcontext()


@contextlib.contextmanager
def guarded_training(workdir: str, ckpt, writer_list, main: bool, during: str | None = None):
    """Around a train loop: yields the `StopOnSignal` that catches SIGTERM / SIGINT (`during`:
    around work that has nothing to save, which a signal then stops at once). A loop
    that fails (`NonFiniteLossError`) or is interrupted writes `summary.json` with that status,
    the reason and the last checkpoint's step (process 0 only) before the error propagates;
    pending checkpoint saves are waited for and the writers flushed in every case, and closed
    with the run's status when it stops (an experiment tracker records how its run ended)."""
    failed = True
    try:
        with StopOnSignal(during) as stop:
            yield stop
        ckpt.wait()  # pending saves: their failure (a full disk) is the run's failure too
        failed = False
    except Exception as err:
        _quietly(ckpt.wait)
        resource = resource_failure(err)
        status = "interrupted" if isinstance(err, TrainingInterrupted) else "failed"
        for writer in writer_list:
            _quietly(functools.partial(writer.close, status))
        if not isinstance(err, NonFiniteLossError | TrainingInterrupted) and resource is None:
            raise
        reason = resource or str(err)
        if main:
            try:
                stopped = {"status": status, "reason": reason, "step": _latest_step(ckpt)}
                writers.write_json_atomic(os.path.join(workdir, "summary.json"), stopped)
            except OSError:  # a full disk may refuse this too; the error line still says it
                pass
        if resource is not None:
            raise ResourceError(resource) from err
        raise
    except BaseException:  # a second Ctrl-C
        _quietly(ckpt.wait)
        for writer in writer_list:
            _quietly(functools.partial(writer.close, "interrupted"))
        raise
    finally:
        for writer in writer_list:
            _quietly(writer.flush) if failed else writer.flush()


def _latest_step(ckpt) -> int:
    try:
        return int(ckpt.latest_step() or 0)
    except Exception:  # a damaged checkpoint folder: the summary still says what happened
        return 0


def _quietly(fn) -> None:
    """Runs `fn` (waiting for pending saves) while an error is already on its way up: a second
    error from the same cause (a full disk) must not hide the first."""
    try:
        fn()
    except Exception as err:  # noqa: BLE001
        logging.warning("while stopping: %s", resource_failure(err) or err)


def train_and_evaluate(config, workdir: str, force: bool = False) -> dict:
    """Trains and evaluates `config.num_seeds` models of the config's family; writes the work
    directory; returns the summary (for several seeds: the top-level summary, with each seed's
    under `"per_seed"`). `attnlab.load_run(workdir)` then reads the whole run back: config,
    summary, the log as a DataFrame, and a predictor.

    Re-running in the same `workdir` resumes from the latest checkpoint (a finished run only
    re-evaluates, and leaves its timing as it was). Raises `ConfigError` for a bad config, or
    for a work directory holding a run with another config (unless `force`), before doing any
    work. SIGTERM / SIGINT save a checkpoint and raise `TrainingInterrupted`; `summary.json`
    then says `"interrupted"`.

    Called from Python or a notebook, it shows what the command line shows: the progress bar
    (a widget in a notebook with ipywidgets) and a log line per `train.log_every` steps.
    """
    families.validate(config)  # before the disk is touched: a bad config leaves nothing behind
    loggers = logger_names(config.train.loggers)
    if set(loggers) - {"tensorboard"}:  # a tracker's package: missing, it is one line and exit 2
        trackers.check_installed(loggers)
    check_workdir_path(workdir)
    check_workdir_config(config, workdir, force)
    created = not os.path.exists(workdir)
    try:
        with logs_shown(), run_lock(workdir):
            return _train_and_evaluate(config, workdir, force)
    except BaseException:
        if created:  # a run that failed before writing anything (e.g. data it cannot load)
            remove_if_empty_run(workdir)
        raise


def check_workdir_path(workdir: str) -> None:
    """Refuses (`ConfigError`) a work directory that is a file, lies inside a file, or cannot
    be created or written."""
    path = os.path.abspath(workdir)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(f"--workdir {workdir} is a file, not a directory")
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ConfigError(f"--workdir {workdir} lies inside the file {existing}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"--workdir {workdir}: no permission to write in {existing}")


def remove_if_empty_run(workdir: str) -> None:
    """Deletes a work directory this process created when it holds nothing but the run lock
    (and empty folders): a failed start leaves no half-made run behind."""
    for root, _, files in os.walk(workdir):
        if any(f != "run.lock" or root != workdir for f in files):
            return
    shutil.rmtree(workdir, ignore_errors=True)


def _train_and_evaluate(config, workdir: str, force: bool) -> dict:
    wall_start = time.perf_counter()
    run = setup_run(config, workdir, force)
    # A run without a checkpoint starts a clean log; a resumed one drops lines past its step.
    resume_step = run.start_step or 0
    trained = resume_step < config.train.num_steps  # False: a finished run, re-evaluated
    main = devices.is_main_process()  # with several processes, only process 0 writes files
    writer_list = []
    try:
        for k, run_dir in enumerate(run.run_dirs):
            writer_list.append(
                trackers.create_writer(
                    run_dir,
                    logger_names(config.train.loggers),
                    resume_step=resume_step,
                    timing_keys=run.timing_keys,
                    run=tracked_run(run, k),
                )
                if main
                else writers.MultiWriter([])
            )
    except BaseException:
        for writer in writer_list:
            _quietly(functools.partial(writer.close, "failed"))
        _quietly(run.ckpt.close)
        raise
    with guarded_training(workdir, run.ckpt, writer_list, main) as stop:
        train_seconds, train_work = train_loop(run, writer_list, stop)
    with guarded_training(workdir, run.ckpt, writer_list, main, "the final evaluation"):
        return _finish(run, writer_list, trained, wall_start, train_seconds, train_work)


def run_params(config, seed: int) -> dict:
    """The flattened config of one seed's run, as its hyper-parameters (TensorBoard's HParams,
    a tracker's parameters): `seed` is that seed's."""
    return flatten(config.to_dict()) | {"seed": seed}


def tracked_run(run: Run, k: int):
    """What the experiment trackers call seed `k`'s run: its directory (the work directory, or
    `seed_<s>/` in it, grouped under the work directory), and its parameters."""
    group = run.workdir if run.num_seeds > 1 else None
    return trackers.RunInfo(
        os.path.normpath(run.run_dirs[k]), run_params(run.config, run.seeds[k]), group
    )


def _finish(run, writer_list, trained, wall_start, train_seconds, train_work) -> dict:
    """The final evaluation, the artefacts and the summaries of a trained run."""
    config, workdir, main = run.config, run.workdir, devices.is_main_process()
    final, extras, outputs = run.evaluate(final=True)
    common = {
        "status": "completed",
        "step": int(devices.to_host(run.state.step)[0]),
        "num_params": num_params(seed_slice(run.state.params, 0)),
        "compile_seconds": run.compile_seconds,
        "compiled_programs": {k: len(p.programs) for k, p in run.programs.items()},
        "wall_seconds": time.perf_counter() - wall_start,
        **run.experiment.summary_fields(),
    }
    rate_name = run.family.throughput[1]
    per_seed = []
    for k, (run_dir, writer) in enumerate(zip(run.run_dirs, writer_list, strict=True)):
        summary = dict(common, **final[k], **extras[k])
        summary[rate_name] = train_work / train_seconds if train_seconds else None
        pictures = {}
        if main:
            fields = run.experiment.artefacts(run_dir, outputs, k)
            summary.update(fields)
            pictures = writers.pictures(run_dir, fields)
        if run.num_seeds > 1:
            summary["trained_with_seeds"] = run.seeds  # one vmapped program for all of them
        if main:
            write_summary(run_dir, summary, run.timing_keys, timing=trained)
        writer.write_images(common["step"], pictures)
        results = {n: v for n, v in summary.items() if n not in run.timing_keys}
        writer.write_summary(common["step"], results)  # what summary.json holds
        writer.write_hparams(run_params(config, run.seeds[k]), final[k])
        writer.close()
        per_seed.append(summary)
    run.ckpt.close()
    if run.num_seeds == 1:
        return per_seed[0]
    top = dict(common, seed_dirs=[os.path.relpath(d, workdir) for d in run.run_dirs])
    top[rate_name] = run.num_seeds * train_work / train_seconds if train_seconds else None
    if main:
        write_summary(workdir, top, run.timing_keys, timing=trained)
    return dict(top, per_seed=per_seed)


def write_summary(directory: str, summary: dict, timing_keys, timing: bool = True) -> None:
    """`summary.json` (results: identical for identical runs) and `timing.json` (the fields in
    `timing_keys`: speed and other facts of this invocation). `timing=False` (a re-run that
    trained nothing) keeps an existing `timing.json` as it was."""
    results = {k: v for k, v in summary.items() if k not in timing_keys}
    writers.write_json_atomic(os.path.join(directory, "summary.json"), results)
    timing_path = os.path.join(directory, "timing.json")
    if timing or not os.path.exists(timing_path):
        speed = {k: v for k, v in summary.items() if k in timing_keys}
        writers.write_json_atomic(timing_path, speed)
