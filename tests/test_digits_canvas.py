"""The `attnlab_digits_canvas` builder: digits (enlarged to 16x16) kept intact at the recorded
place, clutter where asked, a fixed split by image, the same data from two builds, and a task
that a glimpse on the digit can solve."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from attnlab.data.builders import DigitsCanvasConfig, digits_canvas, load_arrays

SPLITS = ("train", "validation", "test")
SIZES = {"train_size": 600, "validation_size": 120, "test_size": 120}
DIGIT = 16  # 8x8 digits, each pixel repeated 2x2


def _load(data_dir, config):
    return {s: load_arrays("digits", s, data_dir=str(data_dir), config=config) for s in SPLITS}


@pytest.fixture(scope="module")
def digits():
    return digits_canvas.digit_images()


@pytest.fixture(scope="module")
def cluttered(tmp_path_factory):
    """A small cluttered config built twice into different directories."""
    config = DigitsCanvasConfig(name="test_cluttered", canvas_size=24, clutter=5, **SIZES)
    return [_load(tmp_path_factory.mktemp(f"canvas{i}"), config) for i in range(2)]


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    config = DigitsCanvasConfig(name="test_plain", canvas_size=20, clutter=0, **SIZES)
    return _load(tmp_path_factory.mktemp("plain"), config)


def _outside_box(image, position):
    mask = np.ones(image.shape, bool)
    r, c = position
    mask[r : r + DIGIT, c : c + DIGIT] = False
    return image[mask]


def test_registered_with_plain_and_cluttered_configs(tmp_path):
    builder = tfds.builder("attnlab_digits_canvas/cluttered", data_dir=str(tmp_path))
    assert isinstance(builder, digits_canvas.AttnlabDigitsCanvas)
    assert builder.info.file_format.value == "array_record"
    assert builder.builder_config.clutter > 0
    plain = tfds.builder("attnlab_digits_canvas", data_dir=str(tmp_path)).builder_config
    assert plain.name == "plain" and plain.clutter == 0


def test_the_digit_is_intact_at_its_position(cluttered, plain, digits):
    images, labels = digits
    for data in (cluttered[0], plain):
        for split in SPLITS:
            d = data[split]
            assert d["image"].dtype == np.uint8
            for image, label, (r, c), index in zip(
                d["image"], d["label"], d["position"], d["digit_index"], strict=True
            ):
                np.testing.assert_array_equal(image[r : r + DIGIT, c : c + DIGIT], images[index])
                assert label == labels[index]


def test_clutter_only_where_asked(cluttered, plain):
    for split in SPLITS:
        d = plain[split]
        assert all(
            not _outside_box(x, p).any() for x, p in zip(d["image"], d["position"], strict=True)
        )
        d = cluttered[0][split]
        with_ink = [
            _outside_box(x, p).any() for x, p in zip(d["image"], d["position"], strict=True)
        ]
        assert np.mean(with_ink) > 0.9  # 5 fragments: almost never all blank or all hidden


def test_builds_are_deterministic_and_split_by_image(cluttered):
    first, second = cluttered
    for split in SPLITS:
        for key in first[split]:
            np.testing.assert_array_equal(first[split][key], second[split][key])
    pools = {s: set(first[s]["digit_index"].tolist()) for s in SPLITS}
    assert not pools["train"] & pools["validation"]
    assert not pools["train"] & pools["test"]
    assert not pools["validation"] & pools["test"]
    assert len(pools["validation"]) == 120  # 120 of the 250 validation digits, each once
    assert {len(first[s]["label"]) for s in SPLITS} == {600, 120}
    # positions cover the canvas, not one corner
    positions = first["train"]["position"]
    assert positions.min() == 0 and positions.max() == 24 - DIGIT


def test_compose_writes_the_digit_over_clutter():
    digit = np.full((2, 2), 7, np.uint8)
    piece = np.full((2, 2), 9, np.uint8)
    canvas = digits_canvas.compose(digit, 4, (1, 1), [(piece, (0, 0)), (piece, (2, 2))])
    expected = [[9, 9, 0, 0], [9, 7, 7, 0], [0, 7, 7, 9], [0, 0, 9, 9]]
    np.testing.assert_array_equal(canvas, expected)


def test_a_glimpse_on_the_digit_is_enough_to_classify_it(digits):
    """The task is solvable by looking in the right place: a logistic regression on the default
    sensor's glimpse (8x8 at scales 8, 16, 32) centred on the digit of a cluttered 32x32 canvas
    (the `ram_digits.py:cluttered` task) classifies held-out digits with <= 5% error."""
    import jax
    from sklearn.linear_model import LogisticRegression

    from attnlab.ram.data import digit_centres
    from attnlab.ram.glimpse import glimpse

    images, labels = digits
    pools = digits_canvas.split_pools(len(images))
    sensor = jax.jit(jax.vmap(lambda x, loc: glimpse(x, loc, 8, 3)))
    features = {}
    for split_index, split in enumerate(("train", "test")):
        pool = pools[split]
        drawn = [
            digits_canvas.draw_example(np.random.default_rng([0, split_index, i]), images[pool],
                                       i, 32, 4, 5)
            for i in range(len(pool))
        ]  # fmt: skip
        canvases = np.stack([c for c, _ in drawn])[..., None] / 255.0
        centres = digit_centres(np.stack([p for _, p in drawn]), DIGIT, (32, 32))
        patches = np.asarray(sensor(canvases.astype(np.float32), centres))
        features[split] = (patches.reshape(len(pool), -1), labels[pool])
    classifier = LogisticRegression(max_iter=3000).fit(*features["train"])
    error = 1.0 - classifier.score(*features["test"])
    assert error <= 0.05, error
