"""Training and evaluation of the recurrent attention model: `train_and_evaluate(config,
workdir)`, the RAM family's runner, built from the seq2seq runner's parts.

Shared with `attnlab.train`: the optimiser (`create_optimizer`), the `TrainState`, ahead-of-time
compiled programs (`Compiled`), checkpointing and exact resume (`Checkpointer`; batches are a
pure function of the step and the log window's sums are saved with each checkpoint), SIGTERM /
SIGINT handling (`StopOnSignal`, `TrainingInterrupted`), the non-finite loss stop
(`NonFiniteLossError`), the work-directory check and lock, the writers (`metrics.jsonl`,
`timing.jsonl`, TensorBoard; `summary.json` apart from `timing.json`) and the progress line.

Work directory: `config.json`, `metrics.jsonl` (`train/loss`, `train/classification_loss`,
`train/reinforce_loss`, `train/baseline_loss`, `train/reward`, `train/grad_norm`,
`train/learning_rate`; at eval steps `eval/loss`, `eval/accuracy`, `eval/error`),
`summary.json` (final `eval/...` and `test/...`), `timing.jsonl` / `timing.json`,
`checkpoints/`, `glimpses/` (glimpse paths over validation images, and the same as data in
`glimpses/examples.json`), `tb/`.
"""

from __future__ import annotations

import functools
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from attnlab import devices, writers
from attnlab import metrics as metrics_lib
from attnlab.checkpoints import Checkpointer
from attnlab.compare import LOWER_IS_BETTER
from attnlab.config import flatten
from attnlab.progress import Progress
from attnlab.ram import data as data_lib
from attnlab.ram import model as model_lib
from attnlab.ram import plots
from attnlab.ram.config import validate
from attnlab.train import (
    Compiled,
    StopOnSignal,
    TrainState,
    check_window,
    check_workdir_config,
    create_optimizer,
    guarded_training,
    num_params,
    run_lock,
    save_checkpoint,
    write_summary,
)

SPLIT_PREFIX = {"validation": "eval", "test": "test"}
# The train step's sums that become `train/<name>` (per example) in the log.
TRAIN_SUMS = {
    "loss": "loss_sum",
    "classification_loss": "classification_sum",
    "reinforce_loss": "reinforce_sum",
    "baseline_loss": "baseline_sum",
    "reward": "reward_sum",
}


def create_train_state(model, tx, seed: int, image_shape) -> TrainState:
    """Parameters (jitted init) and optimiser state; per-step randomness is
    `fold_in(rng, step)`, as in `attnlab.train`."""
    rng = jax.random.key(seed)
    init = jax.jit(functools.partial(model_lib.init_params, model, image_shape=image_shape))
    params = init(jax.random.fold_in(rng, 0))
    return TrainState(
        step=jnp.array(0, jnp.int32),
        params=params,
        opt_state=tx.init(params),
        rng=jax.random.key_data(jax.random.fold_in(rng, 1)),
    )


def make_train_step(model, tx):
    """The pure `train_step(state, batch) -> (state, sums)`: the hybrid loss (cross-entropy +
    REINFORCE + baseline), sampled locations from `fold_in(state.rng, state.step)`."""

    def loss_fn(params, batch, key):
        size = batch["label"].shape[0]
        keys = model_lib.example_keys(key, jnp.arange(size))
        outputs = model_lib.apply_batch(model, params, batch["image"], keys, sample=True)
        terms = model_lib.loss_terms(outputs, batch["label"])
        loss = terms["classification"] + terms["reinforce"] + terms["baseline"]
        return loss, terms

    def train_step(state: TrainState, batch):
        key = jax.random.key_data(
            jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
        )
        (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch, key)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        size = jnp.float32(batch["label"].shape[0])
        sums = {
            "loss_sum": loss * size,
            "classification_sum": terms["classification"] * size,
            "reinforce_sum": terms["reinforce"] * size,
            "baseline_sum": terms["baseline"] * size,
            "reward_sum": terms["reward"] * size,
            "examples": size,
            "grad_norm_sum": optax.tree.norm(grads),
            "updates": jnp.float32(1.0),
        }
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
        return new_state, sums

    return train_step


def make_eval_step(model):
    """`eval_step(params, batch, key) -> (sums, locations [B, N, 2])`: deterministic
    locations (the policy mean; `random` locations from `fold_in(key, example index)`)."""

    def eval_step(params, batch, key):
        keys = model_lib.example_keys(key, batch["index"])
        outputs = model_lib.apply_batch(model, params, batch["image"], keys, sample=False)
        sums = model_lib.classification_sums(outputs.logits, batch["label"], batch["mask"])
        return sums, outputs.locations, jnp.argmax(outputs.logits, -1)

    return eval_step


class Run:
    """The pieces of one run that the loop needs (built by `setup_run`)."""

    def __init__(self, config, workdir, splits, model, tx, schedule, state, ckpt, mesh):
        self.config, self.workdir, self.splits, self.model = config, workdir, splits, model
        self.tx, self.schedule, self.state, self.ckpt, self.mesh = tx, schedule, state, ckpt, mesh
        self.start_step = ckpt.latest_step()
        self.resume_window: dict = {}
        self.stream = data_lib.train_stream(config.data, splits["train"], config.seed)
        self.eval = {
            s: data_lib.eval_batches(splits[s], config.data.eval_batch_size)
            for s in ("validation", "test")
        }
        # Evaluation randomness (random locations only) is fixed by the seed.
        self.eval_key = jax.random.key_data(jax.random.fold_in(jax.random.key(config.seed), 2))
        self.programs = {
            "train": Compiled(make_train_step(model, tx), donate_argnums=(0,)),
            "eval": Compiled(make_eval_step(model)),
        }

    @property
    def compile_seconds(self) -> float:
        return sum(p.compile_seconds for p in self.programs.values())


def setup_run(config, workdir: str, force: bool = False) -> Run:
    """Validates the config, loads the data, builds the model and optimiser, and restores the
    latest checkpoint. A work directory holding a run with another config is refused unless
    `force`."""
    validate(config)
    check_workdir_config(config, workdir, force)
    mesh = devices.make_mesh()
    devices.check_batch_sizes(
        mesh, batch_size=config.data.batch_size, eval_batch_size=config.data.eval_batch_size
    )
    os.makedirs(workdir, exist_ok=True)
    splits = data_lib.load(config.data)
    model = model_lib.build_model(config.model)
    tx, schedule = create_optimizer(config.optim, config.train.num_steps)
    image_shape = (*splits["train"].images.shape[1:3], 1)
    state = devices.replicate(create_train_state(model, tx, config.seed, image_shape), mesh)
    ckpt = Checkpointer(
        os.path.join(workdir, "checkpoints"),
        config.train.max_to_keep,
        keep_best=config.train.keep_best,
        lower_is_better=config.train.best_metric.rsplit("/", 1)[-1] in LOWER_IS_BETTER,
    )
    run = Run(config, workdir, splits, model, tx, schedule, state, ckpt, mesh)
    if run.start_step is not None:
        run.state, meta = ckpt.restore(state)
        # float32 sums survive the JSON round trip exactly
        window = meta.get("window") or {}
        run.resume_window = {k: np.asarray(v, np.float32) for k, v in window.items()}
        logging.info("resumed from the checkpoint at step %d", run.start_step)
    if devices.is_main_process():
        writers.write_json_atomic(os.path.join(workdir, "config.json"), config.to_dict())
    return run


def evaluate(run: Run, split: str) -> tuple[dict, list]:
    """`{prefix/loss, prefix/accuracy, prefix/error}` of one split, and per batch the
    `(locations [B, N, 2], predictions [B])`."""
    totals, outputs = {}, []
    for batch in run.eval[split]:
        sums, locations, predictions = run.programs["eval"](
            run.state.params, devices.shard_batch(batch, run.mesh), run.eval_key
        )
        totals = metrics_lib.add(totals, devices.to_host(sums))
        outputs.append(devices.to_host((locations, predictions)))
    prefix = SPLIT_PREFIX[split]
    examples = float(totals["examples"])
    accuracy = float(totals["correct"]) / examples
    metrics = {
        f"{prefix}/loss": float(totals["loss_sum"]) / examples,
        f"{prefix}/accuracy": accuracy,
        f"{prefix}/error": 1.0 - accuracy,
    }
    return metrics, outputs


def _train_log_record(sums: dict, seconds: float, learning_rate: float) -> dict:
    examples = float(sums["examples"])
    record = {f"train/{name}": float(sums[key]) / examples for name, key in TRAIN_SUMS.items()}
    record["train/grad_norm"] = float(sums["grad_norm_sum"]) / float(sums["updates"])
    record["train/learning_rate"] = float(learning_rate)
    record["train/examples_per_sec"] = examples / max(seconds, 1e-9)
    return record


def train_loop(run: Run, writer, stop: StopOnSignal | None = None) -> tuple[float, float]:
    """Trains from the state's step to `train.num_steps`; returns `(seconds, examples)` spent
    in training steps (compiles and evaluations excluded). A caught signal saves a checkpoint
    at the current step and raises `TrainingInterrupted`."""
    t = run.config.train
    step = int(devices.to_host(run.state.step))
    window = run.resume_window  # sums since the last log line, restored with the checkpoint
    window_start, window_compile = time.perf_counter(), run.compile_seconds
    train_seconds, train_examples = 0.0, 0.0
    bar, shown = Progress(t.num_steps, start=step, label="train"), {}
    while step < t.num_steps:
        score = None
        batch = devices.shard_batch(run.stream.batch(step), run.mesh)
        run.state, sums = run.programs["train"](run.state, batch)
        window = metrics_lib.add(window, sums)
        step += 1
        if step % t.log_every == 0 or step == t.num_steps:
            window = devices.to_host(window)
            check_window(window, step)
            seconds = time.perf_counter() - window_start - (run.compile_seconds - window_compile)
            train_seconds += seconds
            train_examples += float(window["examples"])
            record = _train_log_record(window, seconds, run.schedule(step - 1))
            if step % t.eval_every == 0 or step == t.num_steps:
                metrics, _ = evaluate(run, "validation")
                record.update(metrics)
                value = metrics.get(t.best_metric)
                score = value if value is not None and math.isfinite(value) else None
            writer.write_scalars(step, record)
            logging.info("step %d: %s", step, _brief(record))
            shown = {"loss": record["train/loss"], "reward": record["train/reward"]}
            window, window_start, window_compile = {}, time.perf_counter(), run.compile_seconds
        stopping = stop is not None and stop.signum is not None
        if step % t.ckpt_every == 0 or step == t.num_steps or stopping:
            window = save_checkpoint(run.ckpt, run.state, step, window, score, stop)
        bar.update(step, **shown)
    bar.close()
    return train_seconds, train_examples


def _brief(record: dict) -> str:
    keys = ("train/loss", "train/reward", "eval/loss", "eval/error")
    return ", ".join(f"{k}={record[k]:.4f}" for k in keys if k in record)


def draw_glimpses(run: Run, outputs: list, directory: str) -> list[str]:
    """Glimpse paths of the first `train.num_heatmaps` validation examples: one PNG with all
    of them (`glimpses/paths.png`), one per example, and `glimpses/examples.json`."""
    count = min(run.config.train.num_heatmaps, len(run.splits["validation"]))
    if count == 0:
        return []
    split, m = run.splits["validation"], run.config.model
    locations = np.concatenate([loc for loc, _ in outputs])[:count]
    predictions = np.concatenate([pred for _, pred in outputs])[:count]
    images, labels = split.images[:count], split.labels[:count]
    titles = [f"#{i}: label {labels[i]}, predicted {predictions[i]}" for i in range(count)]
    os.makedirs(directory, exist_ok=True)
    paths = [os.path.join(directory, "paths.png")]
    plots.plot_glimpse_paths(images, locations, m.patch, m.scales, paths[0], titles)
    for i in range(count):
        paths.append(os.path.join(directory, f"validation_{i:02d}.png"))
        plots.plot_glimpse_paths(
            images[i : i + 1], locations[i : i + 1], m.patch, m.scales, paths[-1], titles[i : i + 1]
        )
    examples = [
        {
            "label": int(labels[i]),
            "prediction": int(predictions[i]),
            "position": split.positions[i].tolist(),
            "locations": locations[i].tolist(),
        }
        for i in range(count)
    ]
    writers.write_json_atomic(os.path.join(directory, "examples.json"), examples)
    return paths


def train_and_evaluate(config, workdir: str, force: bool = False) -> dict:
    """Trains and evaluates one RAM; writes the work directory; returns the summary.

    Re-running in the same `workdir` resumes from the latest checkpoint (a finished run only
    re-evaluates). Raises `ConfigError` for a bad config or a work directory holding another
    run (unless `force`); SIGTERM / SIGINT save a checkpoint and raise `TrainingInterrupted`.
    """
    with run_lock(workdir):
        return _train_and_evaluate(config, workdir, force)


def _train_and_evaluate(config, workdir: str, force: bool) -> dict:
    wall_start = time.perf_counter()
    run = setup_run(config, workdir, force)
    main = devices.is_main_process()
    writer = (
        writers.create_writer(workdir, config.train.tensorboard, resume_step=run.start_step or 0)
        if main
        else writers.MultiWriter([])
    )
    with guarded_training(workdir, run.ckpt, [writer], main) as stop:
        train_seconds, train_examples = train_loop(run, writer, stop)
    final, shown = evaluate(run, "validation")
    final.update(evaluate(run, "test")[0])
    paths = draw_glimpses(run, shown, os.path.join(workdir, "glimpses")) if main else []
    summary = dict(
        final,
        status="completed",
        step=int(devices.to_host(run.state.step)),
        num_params=num_params(run.state.params),
        compile_seconds=run.compile_seconds,
        compiled_programs={k: len(p.programs) for k, p in run.programs.items()},
        wall_seconds=time.perf_counter() - wall_start,
        glimpse_paths=[os.path.relpath(p, workdir) for p in paths],
    )
    summary["train/examples_per_sec"] = train_examples / train_seconds if train_seconds else None
    if main:
        write_summary(workdir, summary)
    writer.write_hparams(flatten(config.to_dict()), final)
    writer.close()
    run.ckpt.close()
    return summary
