"""Training and evaluation: `train_and_evaluate(config, workdir)`.

The train step is a pure `train_step(state, batch) -> (state, metric sums)`, compiled once per
batch shape (a handful of length buckets) with the state buffers donated. Batches are a pure
function of the step (`TrainStream.batch(step)`) and the state carries everything else, so a run
resumed from a checkpoint continues exactly as an uninterrupted one.

`num_seeds = K` trains K independently initialised models in one compiled program: every leaf of
the state has a leading seed axis and the step is `jax.vmap`-ed over it (the batch shared, or one
per seed with `seed_batches = "independent"`).

Work directory: `config.json` (resolved config), `metrics.jsonl` (one line per log/eval step),
`summary.json` (final figures), `timing.jsonl` / `timing.json` (speed, kept apart so that the
results of identical runs are byte-identical), `checkpoints/` (orbax), `attention/*.png` (heat
maps), `tb/` (TensorBoard events). With several seeds, each seed's log, summary, heat maps and
events go to `seed_<s>/` (with a `config.json` for that seed alone); the checkpoints stay on top.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import signal
import threading
import time
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from attnlab import beam, devices, hard, models, plots, text_metrics, writers
from attnlab import metrics as metrics_lib
from attnlab.checkpoints import Checkpointer
from attnlab.compare import LOWER_IS_BETTER
from attnlab.config import ConfigError, default_config, flatten, validate
from attnlab.data.pipeline import TrainStream, get_datasets, stack_batches
from attnlab.locks import DirectoryLock
from attnlab.progress import Progress

# Metric-name prefix of each evaluated split (a contract: compare and later tools read these).
SPLIT_PREFIX = {"validation": "eval", "long": "eval_long", "test": "test"}


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or Inf; the message names the step range."""


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
    thread this does nothing."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signum = None
        self._previous = {}

    def _handle(self, signum, frame):
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
    # [] float32: hard attention's moving-average REINFORCE baseline (unused otherwise)
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


def create_train_state(model, tx, seed: int, init=None) -> TrainState:
    """Initialises parameters (jitted: much faster than eager init) and optimiser state.

    `init`: a jitted `models.init_params` to reuse (one compile for many seeds)."""
    rng = jax.random.key(seed)
    init = init or jax.jit(functools.partial(models.init_params, model))
    params = init(jax.random.fold_in(rng, 0))
    return TrainState(
        step=jnp.array(0, jnp.int32),
        params=params,
        opt_state=tx.init(params),
        rng=jax.random.key_data(jax.random.fold_in(rng, 1)),
        reward_baseline=jnp.zeros((), jnp.float32),
    )


def create_train_states(model, tx, seeds) -> TrainState:
    """One train state per seed, stacked along a leading seed axis (`[K, ...]` leaves).

    Seed `s`'s slice is exactly `create_train_state(model, tx, s)`: K models initialised
    independently, trained together by a vmapped step.
    """
    init = jax.jit(functools.partial(models.init_params, model))
    states = [create_train_state(model, tx, s, init) for s in seeds]
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)


def num_params(params) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))


def make_train_step(model, tx, reinforce_cfg=None):
    """Returns the pure `train_step(state, batch) -> (state, sums)` (not yet jitted).

    The loss is the mean cross-entropy over real target tokens. With hard attention the
    positions are sampled (noise from the state's key folded with the step) and the policy's
    REINFORCE objective (`hard.policy_objective`, configured by `reinforce_cfg`, i.e.
    `config.model.reinforce`) is added; its terms are logged apart from the cross-entropy.
    """
    is_hard = model.decoder.attention_kind == "hard"

    def loss_fn(params, batch, state):
        args = (batch["src"], batch["src_len"], batch["tgt_in"])
        if not is_hard:
            logits, _ = models.apply_batch(model, params, *args)
            sums = metrics_lib.token_sums(logits, batch["tgt_out"], batch["tgt_len"])
            return sums["loss_sum"] / jnp.maximum(sums["tokens"], 1.0), (sums, None)
        key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
        width = 1 if model.decoder.is_gaussian else batch["src"].shape[1]  # noise per step
        uniform = hard.draw_uniform(key, batch["tgt_in"].shape + (width,))
        logits, _, policy = models.sample_batch(model, params, *args, uniform)
        sums = metrics_lib.token_sums(logits, batch["tgt_out"], batch["tgt_len"])
        mask = jnp.arange(logits.shape[1])[None, :] < batch["tgt_len"][:, None]
        rewards = hard.step_rewards(logits, batch["tgt_out"], mask, reinforce_cfg.reward)
        policy_loss, moving, policy_sums = hard.policy_objective(
            policy, rewards, mask, state.reward_baseline, state.step, reinforce_cfg
        )
        loss = sums["loss_sum"] / jnp.maximum(sums["tokens"], 1.0) + policy_loss
        return loss, (dict(sums, **policy_sums), moving)

    def train_step(state: TrainState, batch):
        grads, (sums, moving) = jax.grad(loss_fn, has_aux=True)(state.params, batch, state)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        sums = dict(sums, grad_norm_sum=optax.tree.norm(grads), updates=jnp.float32(1.0))
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
        if moving is not None:
            new_state = new_state.replace(reward_baseline=moving)
        return new_state, sums

    return train_step


def make_eval_step(model, alignment: bool):
    """`eval_step(params, batch) -> sums`: teacher-forced loss/accuracy (+ alignment sums)."""

    def eval_step(params, batch):
        logits, alpha = models.apply_batch(
            model, params, batch["src"], batch["src_len"], batch["tgt_in"]
        )
        sums = metrics_lib.token_sums(logits, batch["tgt_out"], batch["tgt_len"])
        if alignment:
            align = metrics_lib.alignment_sums(
                alpha, batch["align"], batch["src_len"], batch["tgt_len"]
            )
            sums = dict(sums, **align)
        return sums

    return eval_step


def make_generate_step(model, beam_size: int = 1, length_penalty: float = 0.6):
    """`generate_step(params, batch) -> (tokens, alpha, length, correct [B])`: greedy decoding,
    or the best hypothesis of a beam search when `beam_size > 1`; at most as many steps as the
    batch's padded target length."""

    def generate_step(params, batch):
        max_len = batch["tgt_out"].shape[1]
        if beam_size > 1:
            best = beam.beam_search(
                model, params, batch["src"], batch["src_len"], max_len, beam_size, length_penalty
            )
            tokens, alpha, length = best.tokens[:, 0], best.alpha[:, 0], best.length[:, 0]
        else:
            tokens, alpha, length = models.generate_batch(
                model, params, batch["src"], batch["src_len"], max_len
            )
        correct = metrics_lib.sequence_correct(tokens, batch["tgt_out"], batch["tgt_len"])
        return tokens, alpha, length, correct

    return generate_step


class Compiled:
    """A jitted function compiled ahead of time once per input shape, timing each compile.

    Keeps the number of programs visible (`len(self.programs)`) and `compile_seconds` exact.
    """

    def __init__(self, fn, donate_argnums=()):
        self._jitted = jax.jit(fn, donate_argnums=donate_argnums)
        self.programs: dict = {}
        self.compile_seconds = 0.0

    def __call__(self, *args):
        key = tuple((x.shape, x.dtype) for x in jax.tree.leaves(args))
        program = self.programs.get(key)
        if program is None:
            start = time.perf_counter()
            program = self._jitted.lower(*args).compile()
            self.compile_seconds += time.perf_counter() - start
            self.programs[key] = program
        return program(*args)


def seed_slice(tree, k: int):
    """Seed `k` of a tree whose leaves carry a leading seed axis."""
    return jax.tree.map(lambda x: x[k], tree)


class TextScorer:
    """Text metrics of one split's generated outputs, per seed: PER/WER against every
    reference (g2p) or corpus BLEU/chrF (translation), from `Datasets` of a real data set."""

    def __init__(self, data, split: str, num_seeds: int):
        self.kind, self.vocab, self.detokenize = data.text_metrics, data.tgt_vocab, data.detokenize
        self.references = data.references[split]
        self.sums = [{} for _ in range(num_seeds)]
        self.hypotheses = [[] for _ in range(num_seeds)]
        self.row = 0

    def add(self, tokens, length, tgt_len) -> None:
        """One batch of outputs: `tokens [K, B, T]`, `length [K, B]`, `tgt_len [B]`."""
        rows = [r for r in range(len(tgt_len)) if tgt_len[r] > 0]
        refs = self.references[self.row : self.row + len(rows)]
        self.row += len(rows)
        for k in range(len(self.sums)):
            hyps = [self.vocab.decode(tokens[k, r, : length[k, r]]) for r in rows]
            if self.kind == "g2p":
                sums = text_metrics.g2p_error_sums(hyps, refs)
                self.sums[k] = metrics_lib.add(self.sums[k], sums)
            else:
                self.hypotheses[k] += [self.detokenize(h) for h in hyps]

    def metrics(self, k: int) -> dict:
        if self.kind == "g2p":
            return {"per": text_metrics.per(self.sums[k]), "wer": text_metrics.wer(self.sums[k])}
        refs = [self.detokenize(r[0]) for r in self.references[: self.row]]
        hyps = self.hypotheses[k]
        return {"bleu": text_metrics.bleu(hyps, refs), "chrf": text_metrics.chrf(hyps, refs)}


def evaluate(programs, params, batches, prefix: str, mesh, num_seeds: int, text=None):
    """Evaluates every seed's model on one split.

    Returns per seed (lists of length `num_seeds`) the metrics under `prefix/` and the exact
    matches of the generated output by source length (`{length: [correct, total]}`), plus the
    per-batch outputs `(tokens, alpha, length)` with a leading seed axis. `text`: a `TextScorer`
    that adds PER/WER or BLEU/chrF.
    """
    totals, by_length, outputs = [{} for _ in range(num_seeds)], [{} for _ in range(num_seeds)], []
    for batch in batches:
        sharded = devices.shard_batch(batch, mesh)
        sums = devices.to_host(programs["eval"](params, sharded))
        tokens, alpha, length, correct = programs["generate"](params, sharded)
        correct = devices.to_host(correct)
        if text is not None:
            text.add(*devices.to_host((tokens, length)), batch["tgt_len"])
        for k in range(num_seeds):
            seq = {"seq_correct": correct[k].sum(), "sequences": (batch["tgt_len"] > 0).sum()}
            totals[k] = metrics_lib.add(metrics_lib.add(totals[k], seed_slice(sums, k)), seq)
            metrics_lib.accuracy_by_length(
                correct[k], batch["src_len"], batch["tgt_len"], by_length[k]
            )
        outputs.append((tokens, alpha, length))
    metrics = [metrics_lib.normalize(t) for t in totals]
    if text is not None:
        metrics = [dict(m, **text.metrics(k)) for k, m in enumerate(metrics)]
    metrics = [{f"{prefix}/{n}": v for n, v in m.items()} for m in metrics]
    return metrics, outputs, by_length


def evaluate_splits(run: Run, splits, final: bool = False) -> tuple[list, dict, list]:
    """`evaluate` over several splits: per seed merged metrics and `{prefix: by-length}`, and the
    outputs by split. `final`: decode with `eval.beam_size` (periodic evaluations are greedy)."""
    k = run.num_seeds
    results, outputs, by_length = [{} for _ in range(k)], {}, [{} for _ in range(k)]
    programs = run.programs
    if final and "final_generate" in programs:
        programs = dict(programs, generate=programs["final_generate"])
    for split in splits:
        if split in run.data.eval:
            prefix = SPLIT_PREFIX[split]
            text = TextScorer(run.data, split, k) if run.data.text_metrics else None
            metrics, outputs[split], tables = evaluate(
                programs, run.state.params, run.data.eval[split], prefix, run.mesh, k, text
            )
            for seed in range(k):
                results[seed].update(metrics[seed])
                by_length[seed][prefix] = tables[seed]
    return results, outputs, by_length


def draw_heatmaps(workdir: str, data, outputs, count: int, seed: int = 0) -> list[str]:
    """PNG heat maps of the greedy attention for the first `count` validation examples.

    The same examples are saved as data in `attention/examples.json` (source and output tokens,
    weights `[T, S]`), which `compare` reads to put one example side by side across variants.
    `seed` picks the model along the seed axis of `outputs`.
    """
    paths, examples, directory = [], [], os.path.join(workdir, "attention")
    os.makedirs(directory, exist_ok=True)
    batch = data.eval["validation"][0]
    tokens, alpha, length = (np.asarray(x)[seed] for x in outputs["validation"][0])
    for row in range(min(count, int(np.sum(batch["tgt_len"] > 0)))):
        src_len, n = int(batch["src_len"][row]), int(length[row])
        src = data.src_vocab.decode(batch["src"][row, :src_len], strip=False)
        hyp = data.tgt_vocab.decode(tokens[row, :n], strip=False)
        path = os.path.join(directory, f"validation_{row:02d}.png")
        weights = alpha[row, :n, :src_len]
        plots.plot_attention(weights, src, hyp, path, title=f"validation #{row}")
        paths.append(path)
        examples.append({"source": src, "output": hyp, "weights": weights.tolist()})
    writers.write_json_atomic(os.path.join(directory, "examples.json"), examples)
    return paths


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


def check_window(window: dict, step: int, seeds=None) -> None:
    """`check_finite` on the log window's sums (host values) ending at `step`: per seed when
    `seeds` lists the models on the sums' leading axis, else for one model without that axis."""
    if seeds is None:
        check_finite(window, step - int(window["updates"]) + 1, step)
        return
    first = step - int(window["updates"][0]) + 1
    for k, seed in enumerate(seeds):
        check_finite(seed_slice(window, k), first, step, seed)


def save_checkpoint(ckpt, state, step: int, window: dict, score, stop, seeds=None) -> dict:
    """Saves `state` at `step` with the log window's sums, checked first (a state whose recent
    steps were not checked is never saved; `seeds` as in `check_window`), and `score` for
    keep-best retention. When `stop` has caught a signal, waits for the save and raises
    `TrainingInterrupted`. Returns the window, now on the host."""
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


def _train_log_record(sums: dict, seconds: float, learning_rate: float) -> dict:
    record = {f"train/{k}": v for k, v in metrics_lib.normalize(sums).items()}
    record["train/grad_norm"] = float(sums["grad_norm_sum"]) / float(sums["updates"])
    record["train/tokens_per_sec"] = float(sums["tokens"]) / max(seconds, 1e-9)
    record["train/learning_rate"] = float(learning_rate)
    return record


class Run:
    """The pieces of one run that the loop needs (built by `setup_run`).

    `seeds`: the K model seeds trained together; `run_dirs`: where each seed's log, summary and
    heat maps go (the work directory itself for one seed, `seed_<s>/` below it for several).
    """

    def __init__(self, config, workdir, data, model, tx, schedule, state, ckpt, start_step, mesh):
        self.config, self.workdir, self.data, self.model = config, workdir, data, model
        self.tx, self.schedule, self.state, self.ckpt = tx, schedule, state, ckpt
        self.start_step, self.mesh = start_step, mesh
        self.resume_window: dict = {}  # log-window sums saved with the checkpoint
        self.seeds = [config.seed + k for k in range(config.num_seeds)]
        self.num_seeds = len(self.seeds)
        self.run_dirs = (
            [workdir]
            if self.num_seeds == 1
            else [os.path.join(workdir, f"seed_{s}") for s in self.seeds]
        )
        self.independent = config.seed_batches == "independent" and self.num_seeds > 1
        self.streams = (
            [
                TrainStream(data.train.examples, data.train.batch_size, data.train.bucket_step, s)
                for s in self.seeds
            ]
            if self.independent
            else [data.train]
        )
        # Alignment metrics where the data has gold alignments (synthetic tasks, dates).
        has_gold = any(ex.align is not None for ex in data.examples["validation"])
        alignment = config.model.score != "none" and has_gold
        step_fn = make_train_step(model, tx, config.model.reinforce)
        step_fn = jax.vmap(step_fn, in_axes=(0, 0 if self.independent else None))
        self.programs = {
            "train": Compiled(step_fn, donate_argnums=(0,)),
            "eval": Compiled(jax.vmap(make_eval_step(model, alignment), in_axes=(0, None))),
            "generate": Compiled(jax.vmap(make_generate_step(model), in_axes=(0, None))),
        }
        ev = config.eval
        if ev.beam_size > 1:  # the final evaluation decodes with beam search
            step = make_generate_step(model, ev.beam_size, ev.length_penalty)
            self.programs["final_generate"] = Compiled(jax.vmap(step, in_axes=(0, None)))

    @property
    def compile_seconds(self) -> float:
        return sum(p.compile_seconds for p in self.programs.values())

    def train_batch(self, step: int) -> dict:
        """The step's batch on the devices: shared by every seed, or one per seed (stacked)."""
        if not self.independent:
            return devices.shard_batch(self.streams[0].batch(step), self.mesh)
        stacked = stack_batches([s.batch(step) for s in self.streams])
        return devices.shard_batch(stacked, self.mesh, batch_axis=1)


def check_workdir_config(config, workdir: str, force: bool = False) -> None:
    """Refuses (`ConfigError`) a work directory that holds a run with a different config, naming
    the fields that differ, unless `force`."""
    path = os.path.join(workdir, "config.json")
    if force or not os.path.exists(path):
        return
    with open(path) as f:
        old = flatten(json.load(f))
    new = flatten(json.loads(json.dumps(writers.to_jsonable(config.to_dict()))))
    # A field added after the run was saved, at its default value, is not a difference.
    defaults = flatten(json.loads(json.dumps(writers.to_jsonable(default_config().to_dict()))))
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


def setup_run(config, workdir: str, force: bool = False) -> Run:
    """Validates the config, builds data/model/optimiser, and restores the latest checkpoint.

    A work directory holding a run with another config is refused unless `force`.
    """
    validate(config)
    check_workdir_config(config, workdir, force)
    mesh = devices.make_mesh()
    devices.check_batch_sizes(
        mesh, batch_size=config.data.batch_size, eval_batch_size=config.data.eval_batch_size
    )
    os.makedirs(workdir, exist_ok=True)
    data = get_datasets(config.data, config.seed)
    model = models.build_model(config.model, data.src_vocab.size, data.tgt_vocab.size)
    tx, schedule = create_optimizer(config.optim, config.train.num_steps)
    seeds = [config.seed + k for k in range(config.num_seeds)]
    state = devices.replicate(create_train_states(model, tx, seeds), mesh)
    ckpt = Checkpointer(
        os.path.join(workdir, "checkpoints"),
        config.train.max_to_keep,
        keep_best=config.train.keep_best,
        lower_is_better=config.train.best_metric.rsplit("/", 1)[-1] in LOWER_IS_BETTER,
    )
    start_step, window = ckpt.latest_step(), {}
    if start_step is not None:
        state, meta = ckpt.restore(state)
        # float32 sums survive the JSON round trip exactly
        window = {k: np.asarray(v, np.float32) for k, v in (meta.get("window") or {}).items()}
        logging.info("resumed from the checkpoint at step %d", start_step)
    if devices.is_main_process():
        writers.write_json_atomic(os.path.join(workdir, "config.json"), config.to_dict())
    run = Run(config, workdir, data, model, tx, schedule, state, ckpt, start_step, mesh)
    run.resume_window = window
    if run.num_seeds > 1 and devices.is_main_process():  # each reads as a one-seed run
        for seed, run_dir in zip(run.seeds, run.run_dirs, strict=True):
            single = config.to_dict()
            single["seed"], single["num_seeds"] = seed, 1
            os.makedirs(run_dir, exist_ok=True)
            writers.write_json_atomic(os.path.join(run_dir, "config.json"), single)
    return run


def train_loop(run: Run, writer_list, stop: StopOnSignal | None = None) -> tuple[float, float]:
    """Trains from the state's step to `train.num_steps`, one writer per seed.

    `stop`: when it has caught a signal, the loop saves a checkpoint at the current step and
    raises `TrainingInterrupted`.

    Returns `(seconds, target tokens per seed)` spent in training steps (compiles and evals
    excluded).
    """
    t = run.config.train
    step = int(devices.to_host(run.state.step)[0])
    # Sums of the steps since the last log line, restored with the checkpoint: a resumed run
    # writes the same log lines as an uninterrupted one.
    window = run.resume_window
    window_start, window_compile = time.perf_counter(), run.compile_seconds
    train_seconds, train_tokens = 0.0, 0.0
    bar, shown = Progress(t.num_steps, start=step, label="train"), {}
    while step < t.num_steps:
        score = None  # the step's best_metric, when it is evaluated
        run.state, sums = run.programs["train"](run.state, run.train_batch(step))
        window = metrics_lib.add(window, sums)
        step += 1
        if step % t.log_every == 0 or step == t.num_steps:
            window = devices.to_host(window)
            check_window(window, step, run.seeds)
            seconds = time.perf_counter() - window_start - (run.compile_seconds - window_compile)
            train_seconds += seconds
            train_tokens += float(window["tokens"][0])
            records = [
                _train_log_record(seed_slice(window, k), seconds, run.schedule(step - 1))
                for k in range(run.num_seeds)
            ]
            if step % t.eval_every == 0 or step == t.num_steps:
                evals, _, _ = evaluate_splits(run, ("validation", "long"))
                for record, metrics in zip(records, evals, strict=True):
                    record.update(metrics)
                values = [m.get(t.best_metric) for m in evals]
                if all(v is not None and math.isfinite(v) for v in values):
                    score = float(np.mean(values))  # the mean over seeds ranks checkpoints
            for writer, record in zip(writer_list, records, strict=True):
                writer.write_scalars(step, record)
            logging.info("step %d: %s", step, _brief(records[0]))
            shown = {"loss": records[0]["train/loss"], "tok/s": records[0]["train/tokens_per_sec"]}
            window, window_start, window_compile = {}, time.perf_counter(), run.compile_seconds
        stopping = stop is not None and stop.signum is not None
        if step % t.ckpt_every == 0 or step == t.num_steps or stopping:
            window = save_checkpoint(run.ckpt, run.state, step, window, score, stop, run.seeds)
        bar.update(step, **shown)
    bar.close()
    return train_seconds, train_tokens


def _brief(record: dict) -> str:
    keys = ("train/loss", "eval/loss", "eval/seq_accuracy", "eval/align_accuracy")
    return ", ".join(f"{k}={record[k]:.4f}" for k in keys if k in record)


def run_lock(workdir: str):
    """One process trains into a work directory at a time (of a multi-process run: only
    process 0 takes the lock)."""
    if devices.is_main_process():
        return DirectoryLock(workdir, "run.lock", "training run")
    return contextlib.nullcontext()


@contextlib.contextmanager
def guarded_training(workdir: str, ckpt, writer_list, main: bool):
    """Around a train loop: yields the `StopOnSignal` that catches SIGTERM / SIGINT. A loop
    that fails (`NonFiniteLossError`) or is interrupted writes `summary.json` with that status,
    the reason and the last checkpoint's step (process 0 only) before the error propagates;
    pending checkpoint saves are waited for and the writers flushed in every case."""
    try:
        with StopOnSignal() as stop:
            yield stop
    except (NonFiniteLossError, TrainingInterrupted) as err:
        status = "failed" if isinstance(err, NonFiniteLossError) else "interrupted"
        stopped = {"status": status, "reason": str(err), "step": int(ckpt.latest_step() or 0)}
        if main:
            writers.write_json_atomic(os.path.join(workdir, "summary.json"), stopped)
        raise
    finally:
        ckpt.wait()
        for writer in writer_list:
            writer.flush()


def train_and_evaluate(config, workdir: str, force: bool = False) -> dict:
    """Trains and evaluates `config.num_seeds` models; writes the work directory; returns the
    summary (for several seeds: the top-level summary, with each seed's under `"per_seed"`).

    Re-running in the same `workdir` resumes from the latest checkpoint (a finished run only
    re-evaluates). Raises `ConfigError` for a bad config, or for a work directory holding a run
    with another config (unless `force`), before doing any work. SIGTERM / SIGINT save a
    checkpoint and raise `TrainingInterrupted`; `summary.json` then says `"interrupted"`.
    """
    with run_lock(workdir):
        return _train_and_evaluate(config, workdir, force)


def _train_and_evaluate(config, workdir: str, force: bool) -> dict:
    wall_start = time.perf_counter()
    run = setup_run(config, workdir, force)
    # A run without a checkpoint starts a clean log; a resumed one drops lines past its step.
    resume_step = run.start_step or 0
    main = devices.is_main_process()  # with several processes, only process 0 writes files
    writer_list = [
        writers.create_writer(d, config.train.tensorboard, resume_step=resume_step)
        if main
        else writers.MultiWriter([])
        for d in run.run_dirs
    ]
    with guarded_training(workdir, run.ckpt, writer_list, main) as stop:
        train_seconds, train_tokens = train_loop(run, writer_list, stop)
    final, outputs, by_length = evaluate_splits(run, ("validation", "long", "test"), final=True)
    shown = {"validation": [devices.to_host(outputs["validation"][0])]}  # heat maps' batch
    common = {
        "status": "completed",
        "step": int(devices.to_host(run.state.step)[0]),
        "num_params": num_params(seed_slice(run.state.params, 0)),
        "compile_seconds": run.compile_seconds,
        "compiled_programs": {k: len(p.programs) for k, p in run.programs.items()},
        "decoding": (
            f"beam {config.eval.beam_size}, length penalty {config.eval.length_penalty}"
            if config.eval.beam_size > 1
            else "greedy"
        ),
        "wall_seconds": time.perf_counter() - wall_start,
    }
    if run.data.filter_counts:  # real data: what the length policy dropped or cut, per split
        common["data_filter"] = run.data.filter_counts
    per_seed = []
    for k, (run_dir, writer) in enumerate(zip(run.run_dirs, writer_list, strict=True)):
        heatmaps = (
            draw_heatmaps(run_dir, run.data, shown, config.train.num_heatmaps, seed=k)
            if main
            else []
        )
        summary = dict(common, **final[k])
        summary["train/tokens_per_sec"] = train_tokens / train_seconds if train_seconds else None
        summary["attention_maps"] = [os.path.relpath(p, run_dir) for p in heatmaps]
        # greedy exact matches per source length: {prefix: {length: [correct, total]}}
        summary["seq_accuracy_by_length"] = by_length[k]
        if run.num_seeds > 1:
            summary["trained_with_seeds"] = run.seeds  # one vmapped program for all of them
        if main:
            write_summary(run_dir, summary)
        writer.write_hparams(flatten(config.to_dict()) | {"seed": run.seeds[k]}, final[k])
        writer.close()
        per_seed.append(summary)
    run.ckpt.close()
    if run.num_seeds == 1:
        return per_seed[0]
    top = dict(common, seed_dirs=[os.path.relpath(d, workdir) for d in run.run_dirs])
    top["train/tokens_per_sec"] = (
        run.num_seeds * train_tokens / train_seconds if train_seconds else None
    )
    if main:
        write_summary(workdir, top)
    return dict(top, per_seed=per_seed)


def write_summary(directory: str, summary: dict) -> None:
    """`summary.json` (results: identical for identical runs) and `timing.json` (speed)."""
    results = {k: v for k, v in summary.items() if writers.is_result(k)}
    timing = {k: v for k, v in summary.items() if not writers.is_result(k)}
    writers.write_json_atomic(os.path.join(directory, "summary.json"), results)
    writers.write_json_atomic(os.path.join(directory, "timing.json"), timing)
