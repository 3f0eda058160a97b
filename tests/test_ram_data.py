"""RAM data: MNIST on a cluttered 60x60 canvas (under `tfds.testing.mock_data`), the clear
error when MNIST is not prepared, and batches that are a pure function of the step."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from attnlab.data.text import DatasetNotPreparedError
from attnlab.ram import data as data_lib
from attnlab.ram.config import default_config


def mnist_config(data_dir):
    config = default_config()
    d = config.data
    d.name, d.canvas_size, d.clutter, d.clutter_size = "tfds:mnist", 60, 4, 8
    d.num_train, d.num_valid, d.num_test, d.data_dir = 12, 5, 4, str(data_dir)
    return config.data


def test_mnist_digits_land_intact_on_a_cluttered_canvas(tmp_path):
    d = mnist_config(tmp_path)
    with tfds.testing.mock_data(num_examples=30):
        splits = data_lib.load(d)
        again = data_lib.load(d)
        source = tfds.data_source("mnist", split="train", data_dir=str(tmp_path), download=False)
        originals = [np.asarray(source[i]["image"]).reshape(28, 28) for i in range(30)]
        labels = [int(source[i]["label"]) for i in range(30)]
    assert {s: len(splits[s]) for s in splits} == {"train": 12, "validation": 5, "test": 4}
    for name, split in splits.items():
        assert split.images.shape[1:] == (60, 60) and split.images.dtype == np.uint8
        np.testing.assert_array_equal(split.images, again[name].images)  # deterministic
    # training: the first records of MNIST's train split; validation: its last ones
    for split, first in ((splits["train"], 0), (splits["validation"], 30 - 5)):
        for i, ((r, c), image) in enumerate(zip(split.positions, split.images, strict=True)):
            np.testing.assert_array_equal(image[r : r + 28, c : c + 28], originals[first + i])
            assert split.labels[i] == labels[first + i]
            outside = image.copy()
            outside[r : r + 28, c : c + 28] = 0
            assert outside.any()  # clutter around the digit (mock digits are random noise)


def test_mnist_not_prepared_says_how_to_prepare_it(tmp_path):
    with pytest.raises(DatasetNotPreparedError, match="download_and_prepare"):
        data_lib.load(mnist_config(tmp_path))


def test_batches_are_a_pure_function_of_the_step():
    rng = np.random.default_rng(0)
    split = data_lib.ImageSplit(
        rng.integers(0, 255, (100, 8, 8), dtype=np.uint8),
        np.arange(100, dtype=np.int32),
        np.zeros((100, 2), np.int32),
        4,  # 4x4 digits at the top left: centred on pixel (2, 2), -0.5 in [-1, 1]
    )
    stream = data_lib.ImageStream(split, 32, seed=3)
    np.testing.assert_array_equal(stream.batch(0)["target"], np.full((32, 2), -0.5))
    first = [stream.batch(s)["label"] for s in range(7)]
    fresh = data_lib.ImageStream(split, 32, seed=3)
    for step in (5, 2, 6):  # any order, no iterator state
        np.testing.assert_array_equal(fresh.batch(step)["label"], first[step])
    epoch = np.concatenate(first[:3])
    assert len(set(epoch.tolist())) == 96  # 3 full batches per epoch, no repeats
    batches = data_lib.eval_batches(split, 48)
    assert [b["mask"].sum() for b in batches] == [48, 48, 4]
    np.testing.assert_array_equal(np.concatenate([b["index"] for b in batches])[:100], range(100))


def test_fresh_canvases_are_new_every_step_and_a_pure_function_of_it():
    d = default_config().data
    d.canvas_size, d.clutter, d.clutter_size, d.batch_size, d.seed = 20, 3, 3, 16, 5
    rng = np.random.default_rng(0)
    digits = rng.integers(1, 256, (40, 8, 8), dtype=np.uint8)  # no zero pixel: easy to find
    labels = np.arange(40, dtype=np.int32) % 10
    stream = data_lib.FreshCanvasStream(digits, labels, d.batch_size, 1, d.seed, d)
    assert stream.batches_per_epoch == 2
    steps = {s: stream.canvases(s) for s in range(4)}
    again = data_lib.FreshCanvasStream(digits, labels, d.batch_size, 1, d.seed, d)
    for step in (3, 0):  # the same step gives the same batch, in any order, without state
        for key, value in again.canvases(step).items():
            np.testing.assert_array_equal(value, steps[step][key])
    np.testing.assert_array_equal(again.batch(2)["image"], steps[2]["image"])
    centres = (steps[2]["position"] + 4.0) / 20 * 2 - 1  # 8x8 digits on a 20x20 canvas
    np.testing.assert_allclose(again.batch(2)["target"], centres, rtol=1e-6)
    shown, with_clutter = [], []
    for batch in steps.values():
        assert batch["image"].shape == (16, 20, 20) and batch["image"].dtype == np.uint8
        for image, (r, c), label in zip(
            batch["image"], batch["position"], batch["label"], strict=True
        ):
            # the digit intact at the recorded position, with its label
            found = [i for i in range(40) if np.array_equal(digits[i], image[r : r + 8, c : c + 8])]
            assert len(found) == 1 and labels[found[0]] == label
            shown.append(found[0])
            outside = image.copy()
            outside[r : r + 8, c : c + 8] = 0
            with_clutter.append(outside.any())
    assert np.mean(with_clutter) > 0.9  # 3 fragments: rarely all under the digit
    # an epoch (2 steps) shows 32 different digits; the next epoch shows them on new canvases
    assert len(set(shown[:32])) == 32 and len(set(shown[32:])) == 32
    for a, b in ((0, 1), (0, 2), (1, 3)):
        assert not np.array_equal(steps[a]["image"], steps[b]["image"])
    # another data seed: the same digits in the same order, on other canvases
    other = data_lib.FreshCanvasStream(digits, labels, d.batch_size, 1, d.seed + 1, d).canvases(0)
    np.testing.assert_array_equal(other["label"], steps[0]["label"])
    assert not np.array_equal(other["position"], steps[0]["position"])
