"""A run's work directory read back, for Python and notebooks: `load_run(workdir)`.

    run = attnlab.load_run("runs/quickstart")
    run.summary["test/seq_accuracy"]              # summary.json
    run.metrics["train/loss"]                     # metrics.jsonl as a DataFrame indexed by step
    run.predictor().predict(["3 1 4 1 5"])        # seq2seq runs: predictions for new inputs

Everything is read with the readers the runner and `compare` use (`writers.read_json`,
`writers.read_jsonl`), and predictions come from `attnlab.predict.Predictor`; nothing is
written. Any family's run loads (config, summary, metrics, timing, pictures, the latest
checkpoint through `restore()`); `predictor()` exists for seq2seq runs, whose inputs are text.
"""

from __future__ import annotations

import os

from attnlab import families
from attnlab.config_lib import ConfigError
from attnlab.writers import METRICS_FILENAME, DamagedFileError, read_json, read_jsonl


def _read_dict(path: str) -> dict | None:
    """The JSON object in `path`, None when there is no such file."""
    if not os.path.exists(path):
        return None
    value = read_json(path)
    if not isinstance(value, dict):
        raise DamagedFileError(f"{path} is damaged (not a JSON object)")
    return value


def read_metrics(run_dir: str):
    """`metrics.jsonl` as a pandas DataFrame indexed by `step`, one column per logged name
    (`train/loss`, `eval/seq_accuracy`, ...): NaN where a step did not log it (`eval/...` only
    at evaluation steps). Empty (no rows) before the first log line."""
    import pandas as pd

    path = os.path.join(run_dir, METRICS_FILENAME)
    records = read_jsonl(path) if os.path.exists(path) else []
    frame = pd.DataFrame.from_records(records)
    if "step" not in frame:
        return pd.DataFrame(index=pd.Index([], name="step", dtype="int64"))
    return frame.set_index("step").sort_index()


class SavedRun:
    """A run's work directory read back (`load_run`). Attributes:

    - `path`: the work directory, as given;
    - `config`: the resolved config the run saved (an `ml_collections.ConfigDict`, on top of
      its family's defaults: `train_and_evaluate(run.config, other_dir)` trains it again);
    - `family`: the family's name (`seq2seq`, `ram`, ...);
    - `summary`: `summary.json` (final metrics, `status`, `step`, ...; `{}` while the run has
      not finished);
    - `timing`: `timing.json` (speed, compile and wall seconds) or None when absent;
    - `metrics`: `metrics.jsonl` as a DataFrame indexed by `step` (see `read_metrics`); for a
      run of several seeds, indexed by `(seed, step)`;
    - `seeds`: the model seeds; `per_seed`: for several seeds, each seed's `SavedRun` (its
      `seed_<s>/` directory), else `[]`;
    - `pictures`: absolute paths of the PNG files the run drew (attention heat maps for
      seq2seq, glimpse paths for RAM).
    """

    def __init__(self, workdir: str):
        workdir = os.fspath(workdir)
        if os.path.exists(workdir) and not os.path.isdir(workdir):
            raise ConfigError(f"{workdir} is a file, not a run's work directory")
        self.path = workdir
        self.config = families.saved_config(workdir)
        self.family = families.name_of(self.config)
        self.summary = _read_dict(os.path.join(workdir, "summary.json")) or {}
        self.timing = _read_dict(os.path.join(workdir, "timing.json"))
        num_seeds = int(self.config.get("num_seeds", 1) or 1)
        first = int(self.config.get("seed", 0) or 0)
        self.seeds = [first + k for k in range(num_seeds)]
        self.per_seed = (
            [SavedRun(os.path.join(workdir, f"seed_{s}")) for s in self.seeds]
            if num_seeds > 1
            else []
        )
        if self.per_seed:
            import pandas as pd

            self.metrics = pd.concat(
                {s: r.metrics for s, r in zip(self.seeds, self.per_seed, strict=True)},
                names=["seed", "step"],
            )
        else:
            self.metrics = read_metrics(workdir)
        self._predictors: dict = {}

    @property
    def status(self) -> str:
        """`completed`, `failed` or `interrupted` (from `summary.json`); `unfinished` while
        there is no summary (the run is training, or was killed)."""
        return self.summary.get("status", "unfinished")

    @property
    def pictures(self) -> list[str]:
        """Absolute paths of the PNG files the run drew, as its summary lists them."""
        if self.per_seed:
            return [p for run in self.per_seed for p in run.pictures]
        paths = []
        for value in self.summary.values():
            if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
                paths += [
                    os.path.abspath(os.path.join(self.path, v)) for v in value if v.endswith(".png")
                ]
        return paths

    def predictor(self, seed_index: int = 0, beam_size: int | None = None):
        """An `attnlab.predict.Predictor` on the latest checkpoint of seed `seed_index` (0:
        the first seed), decoding with `beam_size` (None: the run's `eval.beam_size`; 1:
        greedy). Built on first use (it restores the checkpoint and compiles the decoder) and
        kept for the next call. Seq2seq runs only: a run of another family raises
        `ConfigError`. A `seed_<s>/` directory of a several-seed run predicts with that seed
        of the run above it (where the checkpoints are)."""
        from attnlab import predict

        if self.family != predict.FAMILY:
            raise ConfigError(
                f"{self.path} holds a run of the {self.family} family: predictions for new "
                f"inputs exist for {predict.FAMILY} runs only; its pictures are in "
                "run.pictures, its parameters in run.restore()"
            )
        key = (seed_index, beam_size)
        if key in self._predictors:
            return self._predictors[key]
        path, above = self._checkpointed()
        if above is not None:
            seed_index = above
        self._predictors[key] = predict.Predictor(path, seed_index, beam_size)
        return self._predictors[key]

    def _checkpointed(self) -> tuple[str, int | None]:
        """Where the run's checkpoints are: `(self.path, None)`, or for a `seed_<s>/`
        directory of a several-seed run `(the run above, s's index among its seeds)`."""
        parent = os.path.dirname(os.path.abspath(self.path))
        if (
            not os.path.isdir(os.path.join(self.path, "checkpoints"))
            and os.path.basename(os.path.abspath(self.path)) == f"seed_{self.seeds[0]}"
            and os.path.isdir(os.path.join(parent, "checkpoints"))
        ):
            above = families.saved_config(parent)
            seeds = [above.seed + k for k in range(above.num_seeds)]
            if self.seeds[0] in seeds:
                return parent, seeds.index(self.seeds[0])
        return self.path, None

    def restore(self):
        """The latest checkpoint read back (any family): `(experiment, state, step)` as
        `attnlab.runner.restore` gives them; `state.params` leaves carry a leading seed axis
        `[num_seeds, ...]` (for a `seed_<s>/` directory: every seed of the run above)."""
        from attnlab import runner

        path, above = self._checkpointed()
        config = self.config if above is None else families.saved_config(path)
        return runner.restore(config, path)

    def __repr__(self) -> str:
        step = self.summary.get("step")
        if step is None and len(self.metrics):
            step = int(self.metrics.index.get_level_values("step").max())
        return (
            f"SavedRun({self.path!r}, family={self.family}, status={self.status}, step={step}, "
            f"seeds={self.seeds})"
        )


def load_run(workdir: str) -> SavedRun:
    """The run in `workdir` read back (see `SavedRun`): its config, summary, log as a pandas
    DataFrame, timing, pictures and, for seq2seq runs, `predictor()`. A missing directory, one
    without `config.json`, or a damaged `config.json` / `summary.json` / `timing.json` /
    `metrics.jsonl` raises `ConfigError` with one line naming the file."""
    return SavedRun(workdir)
