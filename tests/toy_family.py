"""A toy model family defined, registered and configured by this one file: linear regression
`y = w . x + b` on fixed random data. The runner trains it without knowing it (tests/
test_families.py):

    python -m attnlab train --config=tests/toy_family.py --workdir=runs/toy

`TOY_STEP_SECONDS` in the environment slows each training batch down (so that a test can stop
a run in the middle); it changes no result. With `train.num_heatmaps > 0` the run draws one
picture, `fit/validation.png` (predictions against targets), as a family's pictures go.
"""

import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from attnlab import devices, families
from attnlab.config_lib import (
    add_run_fields,
    config_words,
    optim_section,
    raise_if,
    require,
    require_full_batch,
    require_positive,
    train_section,
    validate_optim_train,
    validate_run_fields,
)

NAME = "toy"
DIM = 4


def default_config():
    c = ml_collections.ConfigDict()
    add_run_fields(c, NAME)
    c.data = d = ml_collections.ConfigDict()
    d.num_train, d.num_valid, d.num_test = 512, 128, 128
    d.batch_size, d.eval_batch_size = 32, 64
    d.noise = 0.1  # standard deviation of the targets' noise
    d.seed = 0
    c.model = ml_collections.ConfigDict({"init_scale": 0.1})
    c.optim = optim_section()
    c.optim.learning_rate, c.optim.warmup_steps = 0.05, 0
    c.train = t = train_section(best_metric="eval/mse")
    t.num_steps, t.log_every, t.eval_every, t.ckpt_every = 60, 10, 20, 20
    t.num_heatmaps, t.loggers = 0, ""
    return c


def validate(config) -> None:
    errors = []
    validate_run_fields(errors, config)
    d = config.data
    require_positive(errors, d, "data.", ["num_train", "num_valid", "num_test", "batch_size"])
    require_full_batch(errors, d)
    require(errors, d.noise >= 0, "data.noise", d.noise, "must be >= 0")
    validate_optim_train(errors, config.optim, config.train, d.num_valid)
    raise_if(errors)


class Stream:
    """Training batches, a pure function of the step: rows drawn by `default_rng([seed, step])`."""

    def __init__(self, x, y, batch_size: int, seed: int):
        self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed

    def batch(self, step: int) -> dict:
        delay = float(os.environ.get("TOY_STEP_SECONDS", "0"))
        if delay:
            time.sleep(delay)
        rows = np.random.default_rng([self.seed, step]).integers(0, len(self.x), self.batch_size)
        return {"x": self.x[rows], "y": self.y[rows]}


def eval_step(params, batch):
    err = batch["x"] @ params["w"] + params["b"] - batch["y"]
    return {"squared_sum": jnp.sum(batch["mask"] * err**2), "examples": jnp.sum(batch["mask"])}


class ToyExperiment(families.Experiment):
    def __init__(self, config, mesh):
        self.config, self.mesh = config, mesh
        d = config.data
        rng = np.random.default_rng(d.seed)
        w_true = rng.normal(size=DIM).astype(np.float32)
        self.splits = {}
        for name, size in (
            ("train", d.num_train),
            ("validation", d.num_valid),
            ("test", d.num_test),
        ):
            x = rng.normal(size=(size, DIM)).astype(np.float32)
            y = (x @ w_true + 0.5 + d.noise * rng.normal(size=size)).astype(np.float32)
            self.splits[name] = (x, y)
        self.programs = {"eval": devices.Compiled(jax.vmap(eval_step, in_axes=(0, None)))}

    def init_params(self, rng):
        scale = self.config.model.init_scale
        return {"w": scale * jax.random.normal(rng, (DIM,)), "b": jnp.zeros(())}

    def loss(self, params, batch, state):
        err = batch["x"] @ params["w"] + params["b"] - batch["y"]
        count = jnp.float32(err.shape[0])
        return jnp.mean(err**2), ({"loss_sum": jnp.sum(err**2), "examples": count}, {})

    def train_stream(self, seed: int):
        x, y = self.splits["train"]
        return Stream(x, y, self.config.data.batch_size, seed)

    def train_record(self, sums: dict) -> dict:
        return {"train/loss": float(sums["loss_sum"]) / float(sums["examples"])}

    def evaluate(self, params, final: bool = False):
        k, size = self.config.num_seeds, self.config.data.eval_batch_size
        metrics = [{} for _ in range(k)]
        predictions = None
        for split, prefix in (("validation", "eval"), ("test", "test"))[: 2 if final else 1]:
            x, y = self.splits[split]
            totals = np.zeros((k, 2))
            for start in range(0, len(x), size):
                rows = np.arange(start, start + size) % len(x)
                mask = (np.arange(start, start + size) < len(x)).astype(np.float32)
                batch = {"x": x[rows], "y": y[rows], "mask": mask}
                sums = devices.to_host(
                    self.programs["eval"](params, devices.shard_batch(batch, self.mesh))
                )
                totals += np.stack([sums["squared_sum"], sums["examples"]], axis=1)
            if split == "validation":
                predictions = np.einsum("nd,kd->kn", x, np.asarray(params["w"]))
                predictions = predictions + np.asarray(params["b"])[:, None]
            for seed in range(k):
                metrics[seed][f"{prefix}/mse"] = float(totals[seed, 0] / totals[seed, 1])
        return metrics, [{} for _ in range(k)], predictions

    def artefacts(self, run_dir: str, outputs, k: int) -> dict:
        count = self.config.train.num_heatmaps
        if count == 0:
            return {}
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(2, 2))
        FigureCanvasAgg(fig)
        fig.add_subplot().scatter(self.splits["validation"][1][:count], outputs[k][:count])
        os.makedirs(os.path.join(run_dir, "fit"), exist_ok=True)
        fig.savefig(os.path.join(run_dir, "fit", "validation.png"), dpi=40)
        return {"fit_plot": "fit/validation.png"}


class ToyFamily(families.Family):
    name = NAME
    metrics = {"eval/mse": False, "test/mse": False}
    report_metrics = ("eval/mse", "test/mse")
    throughput = ("examples", "train/examples_per_sec")
    brief_keys = ("train/loss", "eval/mse")

    def default_config(self):
        return default_config()

    def validate(self, config) -> None:
        validate(config)

    def build(self, config, mesh):
        return ToyExperiment(config, mesh)


families.register(ToyFamily())


def get_config(arg=None):
    config_words(arg, ())
    return default_config()
