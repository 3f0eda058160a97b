"""Tests for attnlab.writers: JSONL round trip, truncation on resume, atomic JSON, TensorBoard."""

import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from attnlab.trackers import create_writer
from attnlab.writers import (
    JsonlWriter,
    MultiWriter,
    TensorBoardWriter,
    read_jsonl,
    to_jsonable,
    write_json_atomic,
)


def _read_scalar_events(logdir):
    """Parse all event files in `logdir` (TFRecord framing) into (tag, step, value) triples."""
    from tensorboardX.proto import event_pb2

    triples = []
    for name in sorted(os.listdir(logdir)):
        with open(os.path.join(logdir, name), "rb") as f:
            data = f.read()
        pos = 0
        # Record: uint64 length, uint32 length crc, payload, uint32 payload crc.
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            payload = data[pos + 12 : pos + 12 + length]
            pos += 12 + length + 4
            event = event_pb2.Event.FromString(payload)
            for v in event.summary.value:
                triples.append((v.tag, event.step, v.simple_value))
    return triples


def test_jsonl_round_trip_one_line_per_call(tmp_path):
    path = tmp_path / "m.jsonl"
    with JsonlWriter(path) as w:
        w.write_scalars(1, {"loss": np.float32(0.5), "tokens": np.int64(7)})
        w.write_scalars(2, {"loss": 0.25, "acc": np.asarray(0.75)})
        w.write_scalars(3, {"loss": float("nan")})
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    records = read_jsonl(path)
    assert records == [
        {"step": 1, "loss": 0.5, "tokens": 7},
        {"step": 2, "loss": 0.25, "acc": 0.75},
        {"step": 3, "loss": None},
    ]
    assert isinstance(records[0]["tokens"], int)


def test_jsonl_reopen_appends_and_drops_partial_line(tmp_path):
    path = tmp_path / "m.jsonl"
    with JsonlWriter(path) as w:
        w.write_scalars(1, {"loss": 1.0})
    # Simulate a writer killed in the middle of a line.
    with open(path, "a") as f:
        f.write('{"step": 2, "lo')
    assert read_jsonl(path) == [{"step": 1, "loss": 1.0}]
    with JsonlWriter(path) as w:
        w.write_scalars(2, {"loss": 0.5})
    assert read_jsonl(path) == [{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5}]


def test_jsonl_rejects_step_as_metric_name(tmp_path):
    with JsonlWriter(tmp_path / "m.jsonl") as w, pytest.raises(ValueError, match="reserved"):
        w.write_scalars(1, {"step": 3.0})


def test_truncate_after_keeps_exactly_steps_up_to_n_and_keeps_writing(tmp_path):
    path = tmp_path / "m.jsonl"
    w = JsonlWriter(path)
    for step in range(10):
        w.write_scalars(step, {"loss": float(step)})
    w.truncate_after(4)
    assert [r["step"] for r in read_jsonl(path)] == [0, 1, 2, 3, 4]
    # The writer keeps appending to the rewritten file, not to the replaced one.
    w.write_scalars(5, {"loss": 5.0})
    w.close()
    assert [r["step"] for r in read_jsonl(path)] == [0, 1, 2, 3, 4, 5]
    assert os.listdir(tmp_path) == ["m.jsonl"]


def test_create_writer_resume_removes_later_steps(tmp_path):
    with create_writer(tmp_path, loggers=()) as w:
        for step in (10, 20, 30):
            w.write_scalars(step, {"loss": 1.0})
    with create_writer(tmp_path, loggers=(), resume_step=20) as w:
        w.write_scalars(30, {"loss": 0.5})
    records = read_jsonl(tmp_path / "metrics.jsonl")
    assert [(r["step"], r["loss"]) for r in records] == [(10, 1.0), (20, 1.0), (30, 0.5)]


def test_write_json_atomic_replaces_content_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "result.json"
    write_json_atomic(path, {"b": 1, "a": [1, 2]})
    write_json_atomic(
        path,
        {"z": np.float32(1.5), "a": np.arange(3), "inf": float("inf"), "t": (np.bool_(True),)},
    )
    text = path.read_text()
    assert json.loads(text) == {"a": [0, 1, 2], "inf": None, "t": [True], "z": 1.5}
    assert text.index('"a"') < text.index('"z"')  # sorted keys
    assert text.startswith('{\n  "a"')  # indent 2
    assert os.listdir(tmp_path) == ["result.json"]


def test_write_json_atomic_failure_keeps_old_file(tmp_path):
    path = tmp_path / "result.json"
    write_json_atomic(path, {"ok": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"ok": 1}
    assert os.listdir(tmp_path) == ["result.json"]


def test_to_jsonable_nested_nonfinite():
    assert to_jsonable({1: [np.nan, np.float64(2.0)], "x": np.array([[1.0, np.inf]])}) == {
        "1": [None, 2.0],
        "x": [[1.0, None]],
    }


def test_tensorboard_writer_writes_readable_events(tmp_path):
    logdir = tmp_path / "tb"
    w = MultiWriter([TensorBoardWriter(logdir), JsonlWriter(tmp_path / "m.jsonl")])
    w.write_scalars(1, {"loss": 2.0, "acc": np.float32(0.5)})
    w.write_scalars(2, {"loss": 1.0})
    w.close()
    files = os.listdir(logdir)
    assert files and all(os.path.getsize(logdir / f) > 0 for f in files)
    assert sorted(_read_scalar_events(logdir)) == [
        ("acc", 1, 0.5),
        ("loss", 1, 2.0),
        ("loss", 2, 1.0),
    ]
    assert len(read_jsonl(tmp_path / "m.jsonl")) == 2


def test_importing_writers_does_not_import_tensorboardx():
    code = "import sys, attnlab.writers; assert 'tensorboardX' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
