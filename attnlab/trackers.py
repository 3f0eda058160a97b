"""Experiment trackers as metric writers: Weights & Biases (`WandbWriter`) and MLflow
(`MlflowWriter`), chosen by name in `train.loggers`; `create_writer` makes a run's writer, the
JSONL files and TensorBoard of `attnlab.writers` with the trackers the run names.

Each is an optional extra (`pip install "attnlab[wandb]"`, `pip install "attnlab[mlflow]"`),
imported only when a run asks for it; `check_installed` turns a missing one into a one-line
`ConfigError` naming the install command, before the run does any work.

A tracked run gets every scalar of the log at the log's steps (the same as `metrics.jsonl`, and
the speed of `timing.jsonl`), the flattened config as its parameters, the pictures the family
draws (attention heat maps, glimpse paths) at the last step, and the final summary.

Resume: the tracked run's id is kept in `<run dir>/tracking.json`, and a run that resumes (the
same command again, after a kill or a signal) continues that tracked run. Every step reaches it
once: when a writer opens, it asks the tracker for the last step it holds (MLflow: its store;
W&B online: the server, through the run's next step; W&B offline: the transaction logs of the
run's earlier processes in its `wandb/` folder), sends from the run's own log the steps after
it (`catch_up`: a killed process may have taken to its grave records that its tracker had not
written out yet), and from then on sends only steps after it. The steps a resumed run trains
again are therefore not sent twice: the tracked run keeps the values it got the first time,
which training again reproduces exactly (speed aside).
"""

from __future__ import annotations

import abc
import importlib
import json
import math
import os
import struct
import time
import uuid
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from absl import logging

from attnlab.config_lib import LOGGERS, ConfigError, flatten
from attnlab.writers import (
    METRICS_FILENAME,
    TENSORBOARD_DIRNAME,
    TIMING_FILENAME,
    JsonlWriter,
    MetricWriter,
    MultiWriter,
    TensorBoardWriter,
    logged_records,
    read_json,
    to_jsonable,
    write_json_atomic,
)

TRACKING_FILENAME = "tracking.json"
DEFAULT_PROJECT = "attnlab"  # W&B project and MLflow experiment unless the environment names one
# tracker -> the modules it imports (MLflow's local SQLite store needs the two database ones)
MODULES = {"wandb": ("wandb",), "mlflow": ("mlflow", "sqlalchemy", "alembic")}
# a run's end -> MLflow's run status
MLFLOW_STATUS = {"completed": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
KINDS = ("scalars", "images", "summary")  # what a tracker may already hold, by step


@dataclass(frozen=True)
class RunInfo:
    """What a tracked run is called and described by: `name` (its directory, e.g. `runs/q` or
    `runs/q/seed_1`), `params` (the flattened config, `{"model.score": "dot", ...}`) and `group`
    (the work directory that the seeds of a several-seed run share; None for one seed)."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    group: str | None = None


def install_command(tracker: str) -> str:
    return f'pip install "attnlab[{tracker}]" (in a checkout: pip install -e ".[{tracker}]")'


def import_tracker(tracker: str, modules: Iterable[str] | None = None):
    """Imports the tracker's modules (`MODULES`) and returns the first; a missing one is a
    one-line `ConfigError` naming the install command."""
    loaded = []
    for module in MODULES[tracker] if modules is None else modules:
        try:
            loaded.append(importlib.import_module(module))
        except ImportError as err:
            reason = " ".join(str(err).split())
            raise ConfigError(
                f"train.loggers={tracker} needs the {tracker} extra ({reason}): "
                f"{install_command(tracker)}"
            ) from err
    return loaded[0]


def check_installed(loggers: Iterable[str]) -> None:
    """Raises `ConfigError` (one line, the install command) for a tracker among `loggers` whose
    package is missing; MLflow's database packages are needed only for a database store."""
    for name in loggers:
        if name == "wandb":
            import_tracker("wandb")
        elif name == "mlflow":
            mlflow = import_tracker("mlflow", ["mlflow"])
            if _is_database(mlflow.get_tracking_uri()):
                import_tracker("mlflow")


def _is_database(uri: str) -> bool:
    return uri.split(":", 1)[0].split("+", 1)[0] in ("sqlite", "postgresql", "mysql", "mssql")


class TrackingRecord:
    """`<run dir>/tracking.json`: per tracker (`"wandb"`, `"mlflow"`), the tracked run's id and
    where it lives. A change re-reads the file first (two trackers share it) and is written
    atomically."""

    def __init__(self, run_dir: str):
        self.path = os.path.join(run_dir, TRACKING_FILENAME)

    def read(self) -> dict:
        if not os.path.exists(self.path):
            return {}
        data = read_json(self.path, "delete it to start new tracked runs")
        return data if isinstance(data, dict) else {}

    def get(self, tracker: str) -> dict:
        entry = self.read().get(tracker)
        return dict(entry) if isinstance(entry, dict) else {}

    def put(self, tracker: str, entry: dict) -> None:
        data = self.read()
        data[tracker] = entry
        write_json_atomic(self.path, data)


def _floats(scalars: Mapping[str, Any]) -> dict[str, float]:
    """Python floats; `None` (a non-finite value, as `metrics.jsonl` writes it) is NaN."""
    return {str(k): math.nan if v is None else float(np.asarray(v)) for k, v in scalars.items()}


class TrackerWriter(MetricWriter, abc.ABC):
    """What both trackers share: `tracking.json`, and `last`, the last step of each kind of
    record (`KINDS`) that the tracked run holds; only later steps are sent (steps only grow)."""

    name = ""

    def __init__(self, run_dir: str):
        self.run_dir = run_dir
        self.record = TrackingRecord(run_dir)
        self.entry = self.record.get(self.name)
        self.last = dict.fromkeys(KINDS, -1)
        self.closed = False

    def _save(self) -> None:
        self.record.put(self.name, self.entry)

    def _is_new(self, kind: str, step: int) -> bool:
        return int(step) > self.last[kind]

    def _sent(self, kind: str, step: int) -> None:
        self.last[kind] = int(step)

    @abc.abstractmethod
    def _send_scalars(self, step: int, values: dict[str, float]) -> None:
        """Sends `values` at `step` to the tracked run (each tracker's own call)."""

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        """Sends the scalars at `step`, unless the tracked run holds that step already."""
        if self._is_new("scalars", step):
            self._send_scalars(int(step), _floats(scalars))
            self._sent("scalars", step)

    def catch_up(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Sends the run's own log records (`{"step": ..., **scalars}`, in step order) that the
        tracked run lacks."""
        for record in records:
            self.write_scalars(record["step"], {k: v for k, v in record.items() if k != "step"})


class WandbWriter(TrackerWriter):
    """A Weights & Biases run (see the module docstring). Online or offline, the project, the
    entity and the folder follow W&B's environment (`WANDB_MODE`, `WANDB_PROJECT`,
    `WANDB_ENTITY`, `WANDB_DIR`, `WANDB_NAME`, `WANDB_RUN_GROUP`, ...); without them the project
    is `attnlab`, the run is named after its directory, and W&B's files go to `<run dir>/wandb`.
    """

    name = "wandb"

    def __init__(self, run_dir: str, info: RunInfo):
        super().__init__(run_dir)
        wandb = import_tracker("wandb")
        if not self.entry.get("run_id"):
            # saved before the run starts, so a kill during start-up continues the same run
            self.entry["run_id"] = uuid.uuid4().hex[:12]
            self._save()
        env = os.environ
        self.run = wandb.init(
            id=self.entry["run_id"],
            resume="allow",
            project=None if "WANDB_PROJECT" in env else DEFAULT_PROJECT,
            name=None if "WANDB_NAME" in env else info.name,
            group=None if "WANDB_RUN_GROUP" in env else info.group,
            dir=None if "WANDB_DIR" in env else run_dir,
            config=dict(info.params),
            reinit="create_new",  # several seeds: one W&B run each, open together
        )
        if self.run.offline:  # what this run's earlier processes wrote to their logs
            here = Path(self.run.dir).parent  # run.dir: <wandb dir>/offline-run-<time>-<id>/files
            self.last.update(wandb_held_steps(here.parent, self.run.id, exclude=here))
        else:  # the server's: the run's next step follows the last one it holds
            for kind in ("scalars", "images"):
                self.last[kind] = max(self.last[kind], self.run.step - 1)
        self.entry.update(project=self.run.project, offline=bool(self.run.offline))
        self._save()

    def _send_scalars(self, step: int, values: dict[str, float]) -> None:
        """One history row at `step`."""
        self.run.log(values, step=step)

    def write_images(self, step: int, images: Mapping[str, str]) -> None:
        """Logs each PNG as a `wandb.Image` under its name (`attention/validation_00`)."""
        if images and self._is_new("images", step):
            import wandb

            self.run.log({k: wandb.Image(path) for k, path in images.items()}, step=int(step))
            self._sent("images", step)

    def write_summary(self, step: int, summary: Mapping[str, Any]) -> None:
        """Sets the run's summary (what W&B's run table shows) to `summary`'s values."""
        self.run.summary.update(to_jsonable(dict(summary)))

    def close(self, status: str = "completed") -> None:
        """Finishes the W&B run: exit code 0 when completed, else 1 (interrupted runs are
        marked preempting first: the same command resumes them)."""
        if self.closed:
            return
        self.closed = True
        if status == "interrupted":
            self.run.mark_preempting()
        self.run.finish(exit_code=0 if status == "completed" else 1)


def wandb_records(data: bytes) -> list:
    """The records of a W&B transaction log (the bytes of a `run-<id>.wandb`), as W&B's own
    protobuf records (`wandb.proto.wandb_internal_pb2.Record`). The file is a 7-byte header
    (`:W&B`, a magic number, a version), then LevelDB-log framing: 32 KiB blocks of chunks,
    each with a CRC-32, a length and a type (full, first, middle, last). W&B writes the file
    out in blocks, so a killed process leaves a shorter one: reading stops at the first
    incomplete or damaged chunk."""
    from wandb.proto import wandb_internal_pb2

    if data[:4] != b":W&B":
        return []
    pos, records, pending = 7, [], b""
    while pos + 7 <= len(data):
        room = 32768 - pos % 32768
        if room < 7:  # a block's tail too short for a chunk header is padding
            pos += room
            continue
        checksum, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        if kind not in (1, 2, 3, 4) or len(chunk) < length:
            break  # padding, or the end of what reached the disk
        if zlib.crc32(bytes([kind]) + chunk) != checksum:
            break
        pos += 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def wandb_held_steps(wandb_dir: str | os.PathLike, run_id: str, exclude=None) -> dict:
    """The last history step of scalars and of images that the logs of W&B run `run_id` under
    `wandb_dir` hold (`{"scalars": s, "images": s}`, -1 when none), except the folder
    `exclude` (the process's own). A log W&B can no longer read counts as holding nothing: its
    steps are then sent again rather than lost."""
    held = {"scalars": -1, "images": -1}
    for log in sorted(Path(wandb_dir).glob(f"*-{run_id}/run-{run_id}.wandb")):
        if exclude is not None and log.parent == Path(exclude):
            continue
        try:
            records = wandb_records(log.read_bytes())
        except Exception as err:  # noqa: BLE001  (a W&B whose log format changed)
            logging.warning("cannot read W&B's log %s (%s): its steps are sent again", log, err)
            continue
        for record in records:
            if record.WhichOneof("record_type") != "history":
                continue
            step, images = record.history.step.num, {}  # top-level key -> whether an image
            for item in record.history.item:
                key = item.key or item.nested_key[0]
                if key == "_step":
                    step = int(json.loads(item.value_json))
                images[key] = images.get(key, False) or '"image-file"' in item.value_json
            for key, image in images.items():
                if not key.startswith("_"):
                    kind = "images" if image else "scalars"
                    held[kind] = max(held[kind], step)
    return held


class MlflowWriter(TrackerWriter):
    """An MLflow run (see the module docstring), written through `MlflowClient`.

    The store is `MLFLOW_TRACKING_URI`; without it, the store the run began in (kept in
    `tracking.json`), else MLflow's default (a SQLite file `mlflow.db` in the current directory,
    artifacts in `mlruns/` beside it: `mlflow ui` started there shows the runs). The experiment
    is `MLFLOW_EXPERIMENT_ID` or `MLFLOW_EXPERIMENT_NAME`, else `attnlab`.

    Metrics keep the log's names (`train/loss`, `eval/...`); the summary's numbers are metrics
    `summary/<name>` at the last step, and the whole summary is the artifact `summary.json`;
    pictures are artifacts under their folder (`attention/validation_00.png`)."""

    name = "mlflow"

    def __init__(self, run_dir: str, info: RunInfo):
        super().__init__(run_dir)
        mlflow = import_tracker("mlflow", ["mlflow"])
        from mlflow.entities import Param
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        if "MLFLOW_TRACKING_URI" in os.environ or not self.entry.get("tracking_uri"):
            uri = mlflow.get_tracking_uri()
        else:
            uri = self.entry["tracking_uri"]
        if _is_database(uri):
            import_tracker("mlflow")
        self.client = client = MlflowClient(uri)
        run, run_id = None, self.entry.get("run_id")
        if run_id and self.entry.get("tracking_uri") != uri:
            logging.warning(
                "MLflow run %s is in %s, MLFLOW_TRACKING_URI names %s: a new run starts there",
                run_id,
                self.entry.get("tracking_uri"),
                uri,
            )
        elif run_id:
            try:
                run = client.get_run(run_id)
            except MlflowException:
                logging.warning("MLflow run %s is not in %s: a new run starts", run_id, uri)
        if run is None:
            tags = {"attnlab.run_dir": os.path.abspath(run_dir)}
            if info.group:
                tags["attnlab.group"] = info.group
            experiment = _experiment_id(client, uri)
            run = client.create_run(experiment, tags=tags, run_name=info.name)
            self.entry = {"run_id": run.info.run_id, "tracking_uri": uri}
            self._save()
        else:
            client.update_run(run.info.run_id, status="RUNNING")
            self._read_held_steps(run)
        self.run_id = run.info.run_id
        # MLflow never changes a logged parameter: only those the run lacks are logged
        have = run.data.params
        params = [Param(k, _param_value(v)) for k, v in info.params.items() if str(k) not in have]
        for start in range(0, len(params), 100):  # MLflow's limit per batch
            client.log_batch(self.run_id, params=params[start : start + 100])
        changed = sorted(
            k for k, v in info.params.items() if k in have and have[k] != _param_value(v)
        )
        if changed:
            logging.warning("MLflow keeps the run's first values of %s", ", ".join(changed))

    def _read_held_steps(self, run) -> None:
        """The last step of the scalars and of the summary that the store holds (MLflow logs
        synchronously: what it took is there). Pictures are artifacts: sent again, replaced."""
        for key in run.data.metrics:
            kind = "summary" if key.startswith("summary/") else "scalars"
            steps = [m.step for m in self.client.get_metric_history(run.info.run_id, key)]
            self.last[kind] = max([self.last[kind], *steps])

    def _send_scalars(self, step: int, values: dict[str, float]) -> None:
        """Every value as a metric at `step`, in batches of MLflow's limit (1000)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in values.items()]
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[start : start + 1000])

    def write_images(self, step: int, images: Mapping[str, str]) -> None:
        """Each PNG as an artifact in its folder (a second upload replaces the first)."""
        for name, path in images.items():
            folder = os.path.dirname(name)
            self.client.log_artifact(self.run_id, path, artifact_path=folder or None)

    def write_summary(self, step: int, summary: Mapping[str, Any]) -> None:
        """`summary.json` as an artifact, and its numbers as metrics `summary/<name>`."""
        values = to_jsonable(dict(summary))
        self.client.log_dict(self.run_id, values, "summary.json")
        if self._is_new("summary", step):
            numbers = {
                f"summary/{k}": float(v)
                for k, v in flatten(values).items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            }
            self._send_scalars(int(step), numbers)
            self._sent("summary", step)

    def close(self, status: str = "completed") -> None:
        """Ends the MLflow run as FINISHED, FAILED or KILLED (interrupted)."""
        if self.closed:
            return
        self.closed = True
        self.client.set_terminated(self.run_id, MLFLOW_STATUS.get(status, "FAILED"))


def _param_value(value: Any) -> str:
    """A config value as MLflow's parameter string: strings as they are, anything else as JSON
    (as in `config.json`), cut to MLflow's limit of 6000 characters."""
    text = value if isinstance(value, str) else json.dumps(to_jsonable(value))
    return text[:6000]


def _experiment_id(client, uri: str) -> str:
    """The id of the experiment `MLFLOW_EXPERIMENT_ID` / `MLFLOW_EXPERIMENT_NAME` names, else
    `attnlab`. One that is missing is created; in a SQLite store, with its artifacts in
    `mlruns/` beside the database file (MLflow's own default puts them in the current
    directory's `mlruns/`, the same place for the default store `./mlflow.db`). A run of a
    parallel sweep may have just created it."""
    from mlflow.exceptions import MlflowException

    if os.environ.get("MLFLOW_EXPERIMENT_ID"):
        return os.environ["MLFLOW_EXPERIMENT_ID"]
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_PROJECT
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    artifacts = None
    if uri.startswith("sqlite:///"):
        database = Path(uri[len("sqlite:///") :]).resolve()
        artifacts = (database.parent / "mlruns" / name).as_uri()
    try:
        return client.create_experiment(name, artifact_location=artifacts)
    except MlflowException:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


TRACKERS = {"wandb": WandbWriter, "mlflow": MlflowWriter}


def create_writer(
    workdir: str | os.PathLike,
    loggers: Iterable[str] = ("tensorboard",),
    resume_step: int | None = None,
    timing_keys: Iterable[str] = (),
    run=None,
) -> MultiWriter:
    """Create the run's writer: `workdir/metrics.jsonl` (results), `workdir/timing.jsonl`
    (speed: the fields named in `timing_keys`, e.g. `train/tokens_per_sec`), plus the
    `loggers` (names of `config_lib.LOGGERS`): TensorBoard (both) in `workdir/tb`, and the
    experiment trackers `wandb` and `mlflow` (this module; `run`, a `RunInfo`,
    names the tracked run and gives its parameters; by default it is named after `workdir`).

    Results and timing live in separate files so that two runs of the same config and seed
    give byte-identical `metrics.jsonl` (timing varies from run to run).

    `resume_step`: the step of the checkpoint the run resumes from, or None for a run that does
    not resume. When given, JSONL records after that step are removed and TensorBoard is told to
    purge events after it, so steps that will be trained again are not logged twice. With None,
    an existing log is appended to as it is. A tracker first gets the steps of the log that
    its run lacks, then only steps after those it holds.
    """
    workdir = os.fspath(workdir)
    loggers = list(loggers)
    unknown = sorted(set(loggers) - set(LOGGERS))
    if unknown:
        raise ConfigError(
            f"unknown logger {', '.join(unknown)}: the loggers are {', '.join(LOGGERS)}"
        )
    os.makedirs(workdir, exist_ok=True)
    timing_keys = frozenset(timing_keys)
    jsonl = JsonlWriter(
        os.path.join(workdir, METRICS_FILENAME), keep=lambda k: k not in timing_keys
    )
    timing = JsonlWriter(
        os.path.join(workdir, TIMING_FILENAME), keep=timing_keys.__contains__, skip_empty=True
    )
    if resume_step is not None:
        jsonl.truncate_after(resume_step)
        timing.truncate_after(resume_step)
    writers = MultiWriter([jsonl, timing])
    try:
        if "tensorboard" in loggers:
            purge_step = None if resume_step is None else resume_step + 1
            tb_dir = os.path.join(workdir, TENSORBOARD_DIRNAME)
            writers.writers.append(TensorBoardWriter(tb_dir, purge_step=purge_step))
        tracked = [name for name in loggers if name != "tensorboard"]
        if tracked:
            run = run or RunInfo(name=workdir)
            logged = logged_records(jsonl.path, timing.path)
            for name in tracked:
                tracker = TRACKERS[name](workdir, run)
                writers.writers.append(tracker)
                tracker.catch_up(logged)  # the log's steps that the tracked run lacks
    except BaseException:
        writers.close("failed")
        raise
    return writers
