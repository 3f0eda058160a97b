"""Metric writers with a small CLU-style interface: `write_scalars`, `flush`, `close`.

A run logs to `workdir/metrics.jsonl` (one JSON object per line, `{"step": ..., **scalars}`) and
to the loggers `train.loggers` names: TensorBoard event files in `workdir/tb`, and the
experiment trackers Weights & Biases and MLflow (`attnlab.trackers`, which also receive the
run's pictures and final summary, and whose `create_writer` makes a run's writer). JSON has no
NaN or Infinity, so every writer here stores non-finite floats as `null` (TensorBoard and the
trackers keep them as they are).

`write_json_atomic` writes whole JSON documents (configs, results) so that a reader never sees
half a file, even if the process is killed mid-write.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from attnlab.config_lib import ConfigError

METRICS_FILENAME = "metrics.jsonl"
TENSORBOARD_DIRNAME = "tb"


def to_jsonable(obj: Any) -> Any:
    """Convert `obj` into plain Python types that `json.dumps` accepts without loss of meaning.

    numpy (and jax) scalars and arrays become Python numbers and nested lists, tuples become lists,
    mapping keys become strings, and non-finite floats (NaN, +-Inf) become `None` (JSON `null`).
    Raises `TypeError` for objects with no JSON counterpart.
    """
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray) or hasattr(obj, "__array__"):
        # Covers jax arrays without importing jax here; `tolist` yields Python scalars.
        return to_jsonable(np.asarray(obj).tolist())
    raise TypeError(f"cannot convert {type(obj).__name__} to JSON: {obj!r}")


def _atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to a temporary file next to `path`, fsync it, then rename it over `path`."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    # Same directory, so `os.replace` is a rename within one filesystem and therefore atomic.
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    # os.open with mode 0o666 lets the umask decide permissions, like a plain `open(path, "w")`.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write `obj` as JSON (indent 2, sorted keys) to `path`.

    Values go through `to_jsonable`, so numpy values are accepted and non-finite floats are
    written as `null`. The file is replaced in one rename: readers see the old or the new
    content, never a partial file, and no temporary file is left behind.
    """
    text = json.dumps(to_jsonable(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"
    _atomic_write_text(path, text)


class DamagedFileError(ConfigError):
    """A file a run wrote cannot be read back (cut short, overwritten, not JSON); the message
    names the file, what is wrong and what to do."""


def read_json(path: str | os.PathLike, fix: str = "") -> Any:
    """The JSON content of `path`; a file that is not valid JSON (or not UTF-8) raises
    `DamagedFileError` naming it, the parser's complaint and `fix` (what the user can do)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as err:
        raise DamagedFileError(
            f"{os.fspath(path)} is damaged ({err}){'; ' + fix if fix else ''}"
        ) from err


def keep_aside(path: str | os.PathLike) -> str:
    """Renames a damaged file to `<path>.damaged` (or `.damaged.1`, `.2`, ... when taken), so a
    new one can be written without losing it; returns the new name."""
    target, n = f"{os.fspath(path)}.damaged", 0
    while os.path.exists(target):
        n += 1
        target = f"{os.fspath(path)}.damaged.{n}"
    os.replace(path, target)
    return target


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSON-lines file into a list of dicts, skipping blank lines.

    A last line without a trailing newline is ignored: it is a record that a writer was still
    appending (or was killed while appending). Any other malformed line raises
    `DamagedFileError` (a `ValueError`) naming the line.
    """
    with open(path, encoding="utf-8") as f:
        text = f.read()
    lines = text.split("\n")
    # After split, the last element is "" when the file ends with a newline, else a partial line.
    complete = lines[:-1]
    records = []
    for lineno, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise json.JSONDecodeError("not an object", line, 0)
            records.append(record)
        except json.JSONDecodeError as e:
            raise DamagedFileError(
                f"{os.fspath(path)}:{lineno} is damaged (not a JSON line: {e}); delete that line "
                "and the ones after it, and the same command resumes from the newest "
                "checkpoint the log still covers"
            ) from e
    return records


class MetricWriter:
    """Interface of all writers; also usable as a context manager that closes on exit."""

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        """Record the scalar metrics `scalars` at training step `step`."""
        raise NotImplementedError

    def write_hparams(self, hparams: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        """Record the run's hyper-parameters with its final metrics (default: nothing; the JSONL
        log has the resolved config beside it in `config.json`)."""

    def write_images(self, step: int, images: Mapping[str, str]) -> None:
        """Record the PNG files `images` (name -> path, e.g. `attention/validation_00`) drawn
        at `step` (default: nothing; they are in the work directory already)."""

    def write_summary(self, step: int, summary: Mapping[str, Any]) -> None:
        """Record the run's final summary (the values of `summary.json`) at `step` (default:
        nothing; `summary.json` is the run's own record)."""

    def flush(self) -> None:
        """Push buffered records to storage."""

    def close(self, status: str = "completed") -> None:
        """Flush and release resources; the writer must not be used afterwards. `status`: how
        the run ended, `completed`, `interrupted` or `failed` (a tracker records it)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close("completed" if exc_info[0] is None else "failed")


def _scalar_value(name: str, value: Any) -> int | float | None:
    """Convert one metric to a Python int/float (`None` when non-finite) for JSON."""
    value = to_jsonable(value)
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise TypeError(f"metric {name!r} must be a scalar number, got {value!r}")
    return value


class JsonlWriter(MetricWriter):
    """Appends one JSON line `{"step": step, **scalars}` per `write_scalars` call to `path`.

    Opening an existing file appends to it. Each line is written with a single write and flushed,
    so after a crash the file holds whole lines plus at most one partial last line; that partial
    line is dropped when the file is reopened (and ignored by `read_jsonl`).
    """

    def __init__(self, path: str | os.PathLike, keep=None, skip_empty: bool = False):
        """`keep(name) -> bool` selects the scalars this file holds (all by default);
        `skip_empty`: write no line for a call none of whose scalars are kept."""
        self.path = os.fspath(path)
        self._keep, self._skip_empty = keep, skip_empty
        self._drop_partial_last_line()
        self._file = open(self.path, "a", encoding="utf-8")

    def _drop_partial_last_line(self) -> None:
        """Cut the file back to its last newline, so new lines never glue onto a partial one."""
        if not os.path.exists(self.path):
            return
        with open(self.path, "rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        """Append one line `{"step": step, **scalars}`; non-finite values are written as null."""
        if "step" in scalars:
            raise ValueError("'step' is reserved for the step number and cannot be a metric name")
        if self._keep is not None:
            scalars = {k: v for k, v in scalars.items() if self._keep(k)}
        if self._skip_empty and not scalars:
            return
        record = {"step": int(step)}
        record.update({str(k): _scalar_value(k, v) for k, v in scalars.items()})
        self._file.write(json.dumps(record, allow_nan=False) + "\n")
        # Flushing every record keeps the log current for readers and loses nothing on a crash;
        # metrics are written rarely enough that the cost does not matter.
        self._file.flush()

    def flush(self) -> None:
        """Flush buffered lines to the operating system (nothing once closed)."""
        if not self._file.closed:
            self._file.flush()

    def close(self, status: str = "completed") -> None:
        """Close the file (idempotent)."""
        if not self._file.closed:
            self._file.close()

    def truncate_after(self, step: int) -> None:
        """Atomically rewrite the file keeping only records whose step is <= `step`.

        Used when a run resumes from a checkpoint taken at `step`: the steps after it will be
        logged again, so their old records are removed to avoid duplicated steps.
        """
        self._file.flush()
        kept = [r for r in read_jsonl(self.path) if r.get("step", math.inf) <= step]
        _atomic_write_text(self.path, "".join(json.dumps(r, allow_nan=False) + "\n" for r in kept))
        # The rename replaced the file, so the old handle points at the unlinked copy: reopen.
        self._file.close()
        self._file = open(self.path, "a", encoding="utf-8")


class TensorBoardWriter(MetricWriter):
    """Writes scalars as TensorBoard event files in `logdir` (through tensorboardX, no TF).

    `purge_step`: when resuming, TensorBoard discards earlier-written events with a step >=
    `purge_step`, so a resumed run does not show two curves over the same steps.
    """

    def __init__(self, logdir: str | os.PathLike, purge_step: int | None = None):
        # Imported here so that importing attnlab.writers does not need tensorboardX.
        from tensorboardX import SummaryWriter

        self.logdir = os.fspath(logdir)
        self._writer = SummaryWriter(logdir=self.logdir, purge_step=purge_step)
        self._closed = False

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        """Add every scalar as a TensorBoard scalar summary at `step`."""
        for name, value in scalars.items():
            self._writer.add_scalar(str(name), float(np.asarray(value)), global_step=int(step))

    def write_hparams(self, hparams: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        """The TensorBoard HParams view: scalar/str hyper-parameters and final metrics."""
        simple = {str(k): v for k, v in hparams.items() if isinstance(v, (bool, int, float, str))}
        finite = {
            str(k): float(v)
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and np.isfinite(v)
        }
        self._writer.add_hparams(simple, finite, name="hparams")

    def flush(self) -> None:
        """Flush pending events to the event file."""
        if not self._closed:
            self._writer.flush()

    def close(self, status: str = "completed") -> None:
        """Flush and close the event file (idempotent)."""
        if not self._closed:
            self._writer.close()
            self._closed = True


class MultiWriter(MetricWriter):
    """Forwards every call to each of `writers`, in order."""

    def __init__(self, writers: Iterable[MetricWriter]):
        self.writers = list(writers)

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        """Write `scalars` at `step` to every writer."""
        for w in self.writers:
            w.write_scalars(step, scalars)

    def write_hparams(self, hparams: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        """Forward the hyper-parameters and final metrics to each writer."""
        for writer in self.writers:
            writer.write_hparams(hparams, metrics)

    def write_images(self, step: int, images: Mapping[str, str]) -> None:
        """Forward the pictures to each writer."""
        for writer in self.writers:
            writer.write_images(step, images)

    def write_summary(self, step: int, summary: Mapping[str, Any]) -> None:
        """Forward the final summary to each writer."""
        for writer in self.writers:
            writer.write_summary(step, summary)

    def flush(self) -> None:
        """Flush every writer."""
        for w in self.writers:
            w.flush()

    def close(self, status: str = "completed") -> None:
        """Close every writer (all of them, even when one fails: its error comes after)."""
        errors = []
        for w in self.writers:
            try:
                w.close(status)
            except Exception as err:  # noqa: BLE001
                errors.append(err)
        if errors:
            raise errors[0]


def pictures(run_dir: str | os.PathLike, fields: Mapping[str, Any]) -> dict[str, str]:
    """The pictures among a family's summary fields (`Experiment.artefacts`): every `.png`
    path (relative to `run_dir`), alone or in a list, by its name without the extension:
    `{"attention_maps": ["attention/validation_00.png"]}` ->
    `{"attention/validation_00": "<run_dir>/attention/validation_00.png"}`."""
    found = {}
    for value in fields.values():
        for item in value if isinstance(value, list | tuple) else [value]:
            if isinstance(item, str) and item.endswith(".png"):
                found[item[: -len(".png")]] = os.path.join(os.fspath(run_dir), item)
    return found


TIMING_FILENAME = "timing.jsonl"


def logged_records(*paths: str | os.PathLike) -> list[dict]:
    """The records of the JSON-lines logs `paths` (those that exist) merged by step, in step
    order: `metrics.jsonl` and `timing.jsonl` together give every scalar logged at each step."""
    by_step: dict[int, dict] = {}
    for path in paths:
        if os.path.exists(path):
            for record in read_jsonl(path):
                if "step" in record:
                    by_step.setdefault(int(record["step"]), {}).update(record)
    return [by_step[step] for step in sorted(by_step)]
