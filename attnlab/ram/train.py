"""The RAM family: the recurrent attention model (Mnih et al. 2014), trained by the runner.

What is this family's (the runner, `attnlab.runner`, does the rest: checkpoints and exact
resume, signals, seeds as a batch axis, the log and summaries): the image data (`data.py`),
the model (`model.py`), its hybrid loss (cross-entropy + REINFORCE + baseline regression, with
locations sampled from `fold_in(state.rng, state.step)`), evaluation with deterministic
locations (the policy mean), and the glimpse-path pictures.

Metrics: `train/loss`, `train/classification_loss`, `train/reinforce_loss`,
`train/baseline_loss`, `train/reward` in the train log; `eval/loss`, `eval/accuracy`,
`eval/error` (validation) and `test/...` at evaluation, with where the glimpses landed
(`localisation_sums`): `eval/glimpse_distance` and `eval/last_distance` (pixels from the digit's
centre), `eval/fovea_hit` (last glimpses whose fovea covers it) and `eval/fovea_found` (any
glimpse's). Work directory additions:
`glimpses/` (glimpse paths over validation images, and the same as data in
`glimpses/examples.json`); `summary.json` adds `glimpse_paths`.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from attnlab import devices, families, writers
from attnlab import metrics as metrics_lib
from attnlab.devices import Compiled
from attnlab.ram import config as config_lib
from attnlab.ram import data as data_lib
from attnlab.ram import model as model_lib
from attnlab.ram import plots

SPLIT_PREFIX = {"validation": "eval", "test": "test"}
# loss, accuracy, error; and where the glimpses land (`localisation`): the mean distance in
# pixels of each glimpse to the digit's centre, of the last glimpse alone, and the fraction of
# last glimpses whose fovea (the smallest, full-resolution patch) covers that centre, and of
# examples where any glimpse's fovea does
LOCALISATION = ("glimpse_distance", "last_distance", "fovea_hit", "fovea_found")
METRICS = {
    f"{prefix}/{name}": up
    for prefix in SPLIT_PREFIX.values()
    for name, up in (
        ("loss", False),
        ("accuracy", True),
        ("error", False),
        ("glimpse_distance", False),
        ("last_distance", False),
        ("fovea_hit", True),
        ("fovea_found", True),
    )
}
# The train step's sums that become `train/<name>` (per example) in the log.
TRAIN_SUMS = {
    "loss": "loss_sum",
    "classification_loss": "classification_sum",
    "reinforce_loss": "reinforce_sum",
    "baseline_loss": "baseline_sum",
    "reward": "reward_sum",
}


def make_loss(model, reinforce_weight: float = 1.0):
    """The pure `loss(params, batch, state) -> (loss, (sums, {}))` of one seed: the hybrid loss
    (cross-entropy + REINFORCE + baseline), locations sampled from `fold_in(state.rng,
    state.step)`; the sums are per-batch totals (`<term>_sum`, `examples`)."""

    def loss_fn(params, batch, state):
        key = jax.random.key_data(
            jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
        )
        size = batch["label"].shape[0]
        keys = model_lib.example_keys(key, jnp.arange(size))
        outputs = model_lib.apply_batch(
            model, params, batch["image"], keys, sample=True, targets=batch["target"]
        )
        terms = model_lib.loss_terms(outputs, batch["label"])
        weight = reinforce_weight  # the policy term's weight (config.model.reinforce_weight)
        loss = terms["classification"] + weight * terms["reinforce"] + terms["baseline"]
        count = jnp.float32(size)
        sums = {
            "loss_sum": loss * count,
            "classification_sum": terms["classification"] * count,
            "reinforce_sum": terms["reinforce"] * count,
            "baseline_sum": terms["baseline"] * count,
            "reward_sum": terms["reward"] * count,
            "examples": count,
        }
        return loss, (sums, {})

    return loss_fn


def make_eval_step(model):
    """`eval_step(params, batch, key) -> (sums, locations [B, N, 2], predictions [B])`:
    deterministic locations (the policy mean; `random` locations from `fold_in(key, example
    index)`)."""

    def eval_step(params, batch, key):
        keys = model_lib.example_keys(key, batch["index"])
        outputs = model_lib.apply_batch(
            model, params, batch["image"], keys, sample=False, targets=batch["target"]
        )
        sums = model_lib.classification_sums(outputs.logits, batch["label"], batch["mask"])
        return sums, outputs.locations, jnp.argmax(outputs.logits, -1)

    return eval_step


def localisation_sums(locations, batch, split, config) -> dict:
    """Where the glimpses landed, summed over the batch's real rows, per seed:
    `glimpse_distance` (each example's mean over its glimpses of the distance in pixels from
    the glimpse centre to the digit's centre), `last_distance` (the last glimpse's),
    `fovea_hit` (1 when the last glimpse's `patch x patch` fovea covers the digit's centre) and
    `fovea_found` (1 when any glimpse's fovea does: a policy may find the digit early and then
    look elsewhere, since the core remembers what it saw).

    `locations [K, B, N, 2]` in `[-1, 1]` (the sensor's convention, `attnlab.ram.glimpse`),
    `batch` the eval batch (`index`, `mask`), `split` its `ImageSplit` (digit positions)."""
    size = np.asarray(split.images.shape[1:3], np.float64)
    centre = split.positions[batch["index"]] + split.digit_size / 2.0  # [B, 2], pixels
    looked = (np.clip(locations, -1.0, 1.0) + 1.0) / 2.0 * size  # [K, B, N, 2]
    offset = looked - centre[None, :, None, :]
    distance = np.sqrt((offset**2).sum(-1))  # [K, B, N]
    inside = (np.abs(offset) <= config.model.patch / 2.0).all(-1)  # [K, B, N]
    mask = batch["mask"][None, :]
    return {
        "glimpse_distance": (mask * distance.mean(-1)).sum(-1),
        "last_distance": (mask * distance[:, :, -1]).sum(-1),
        "fovea_hit": (mask * inside[:, :, -1]).sum(-1),
        "fovea_found": (mask * inside.any(-1)).sum(-1),
    }


class RamExperiment(families.Experiment):
    """One RAM run's data, model, loss and evaluation (see `families.Experiment`)."""

    def __init__(self, config, mesh):
        self.config, self.mesh = config, mesh
        self.splits = data_lib.load(config.data)
        self.model = model_lib.build_model(config)
        self.loss = make_loss(self.model, config.model.reinforce_weight)
        self.image_shape = (*self.splits["train"].images.shape[1:3], 1)
        self.eval_batches = {
            s: data_lib.eval_batches(self.splits[s], config.data.eval_batch_size)
            for s in SPLIT_PREFIX
        }
        # Evaluation randomness (random locations only) is fixed by each seed.
        seeds = [config.seed + k for k in range(config.num_seeds)]
        self.eval_keys = np.stack(
            [jax.random.key_data(jax.random.fold_in(jax.random.key(s), 2)) for s in seeds]
        )
        eval_step = jax.vmap(make_eval_step(self.model), in_axes=(0, None, 0))
        self.programs = {"eval": Compiled(eval_step)}

    def init_params(self, rng):
        return model_lib.init_params(self.model, rng, self.image_shape)

    def train_stream(self, seed: int):
        return data_lib.train_stream(self.config.data, self.splits["train"], seed)

    def train_record(self, sums: dict) -> dict:
        examples = float(sums["examples"])
        return {f"train/{name}": float(sums[key]) / examples for name, key in TRAIN_SUMS.items()}

    def evaluate(self, params, final: bool = False):
        """`{prefix/loss, prefix/accuracy, prefix/error}` per seed on validation (and test when
        `final`), and per seed the validation batches' `(locations, predictions)`."""
        k = self.config.num_seeds
        metrics, outputs = [{} for _ in range(k)], []
        for split in ("validation", "test") if final else ("validation",):
            totals = [{} for _ in range(k)]
            for batch in self.eval_batches[split]:
                sharded = devices.shard_batch(batch, self.mesh)
                sums, locations, predictions = self.programs["eval"](
                    params, sharded, self.eval_keys
                )
                sums, locations = devices.to_host(sums), devices.to_host(locations)
                where = {}
                if locations.shape[2]:  # glimpses (none for the full-image references)
                    where = localisation_sums(locations, batch, self.splits[split], self.config)
                for seed in range(k):
                    totals[seed] = metrics_lib.add(
                        totals[seed], {n: v[seed] for n, v in {**sums, **where}.items()}
                    )
                if split == "validation":
                    outputs.append(devices.to_host((locations, predictions)))
            prefix = SPLIT_PREFIX[split]
            for seed in range(k):
                examples = float(totals[seed]["examples"])
                accuracy = float(totals[seed]["correct"]) / examples
                metrics[seed][f"{prefix}/loss"] = float(totals[seed]["loss_sum"]) / examples
                metrics[seed][f"{prefix}/accuracy"] = accuracy
                metrics[seed][f"{prefix}/error"] = 1.0 - accuracy
                for name in LOCALISATION:
                    if name in totals[seed]:
                        metrics[seed][f"{prefix}/{name}"] = float(totals[seed][name]) / examples
        return metrics, [{} for _ in range(k)], outputs

    def artefacts(self, run_dir: str, outputs, k: int) -> dict:
        if self.config.model.kind != "ram":
            return {}
        seed_outputs = [(loc[k], pred[k]) for loc, pred in outputs]
        paths = draw_glimpses(self, seed_outputs, os.path.join(run_dir, "glimpses"))
        return {"glimpse_paths": [os.path.relpath(p, run_dir) for p in paths]}


def draw_glimpses(experiment: RamExperiment, outputs: list, directory: str) -> list[str]:
    """Glimpse paths of the first `train.num_heatmaps` validation examples: one PNG with all
    of them (`glimpses/paths.png`), one per example, and `glimpses/examples.json`.
    `outputs`: per validation batch, `(locations [B, N, 2], predictions [B])` of one seed."""
    config = experiment.config
    split = experiment.splits["validation"]
    count = min(config.train.num_heatmaps, len(split))
    if count == 0:
        return []
    m = config.model
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


class RamFamily(families.Family):
    """The recurrent attention model (`attnlab.ram.config` is its config)."""

    name = config_lib.FAMILY
    metrics = METRICS
    report_metrics = (
        "eval/error",
        "eval/accuracy",
        "test/error",
        "test/accuracy",
        "test/fovea_found",
        "test/fovea_hit",
        "test/last_distance",
    )
    fixed_colors = (*model_lib.LOCATIONS, *model_lib.KINDS, *model_lib.CORES)
    throughput = ("examples", "train/examples_per_sec")
    progress_keys = {"loss": "train/loss", "reward": "train/reward"}
    brief_keys = ("train/loss", "train/reward", "eval/loss", "eval/error", "eval/fovea_found")

    config_module = config_lib
    experiment_class = RamExperiment


FAMILY = families.register(RamFamily())
