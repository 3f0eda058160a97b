"""`attnlab_digits_canvas`: scikit-learn's 8x8 digits, enlarged (16x16 by default), placed at
random on a larger canvas,
optionally cluttered with fragments of other digits (the small offline analogue of the
translated and cluttered MNIST of Mnih et al. 2014, §4.1).

A TFDS builder that generates its data (no download) from `sklearn.datasets.load_digits`, which
ships with scikit-learn. See `DESCRIPTION` for the exact rules. `compose` and `draw_example`
are also used to put MNIST digits on a 60x60 canvas on the fly (`attnlab.ram.data`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from attnlab.data.builders.base import ArrayRecordBuilder

# Each 8x8 digit is enlarged to 16x16 by default: small enough to move on a 32x32 canvas, large
# enough that the middle glimpse scale still sees the digit whole at 8x8.
DIGIT_SCALE = 2
SOURCE_SIZE = 8

# The digits split by image (fixed, independent of the config): a permutation of the 1797
# images by this seed; the first 250 are validation, the next 250 test, the rest train.
SPLIT_SEED = 2014
NUM_HELD_OUT = 250
_SPLITS = ("train", "validation", "test")

DESCRIPTION = """\
scikit-learn's handwritten digits (`sklearn.datasets.load_digits`: 1797 images of 8x8 pixels,
values 0-16, from the UCI optical recognition data set), each pixel repeated into a
`digit_scale x digit_scale` block (nearest-neighbour enlargement: 16x16 digits by default),
placed at random on a larger square canvas, optionally with clutter.

Split (by image, the same for every config): the 1797 images are permuted with
`np.random.default_rng(2014)`; the first 250 are the validation digits, the next 250 the test
digits and the other 1297 the training digits. (The source does not record writers, so a
writer may appear in two splits.)

Examples: example `i` of a split uses digit `pool[i % len(pool)]` of that split's pool (so a
split larger than its pool shows each digit several times, at different places) and draws,
from `np.random.default_rng([seed, split_index, i])` (split_index 0/1/2 for train/validation/
test): `clutter` fragments, each a random `clutter_size` square crop of another random digit of
the same pool, at a random position on the canvas (overlapping fragments keep the brighter
pixel); then the digit's top-left corner, uniform over the positions that keep it inside the
canvas. The digit is written last and replaces whatever lies under its box, so the box holds
exactly the digit. Pixel values are the digits' 0-16 scaled to 0-255 (`round(v * 255 / 16)`).

Features: `image` (uint8 [canvas_size, canvas_size]), `label` (0-9), `position` (int32 [2]:
row and column of the digit's top-left pixel), `digit_index` (int32: index of the digit in
`load_digits()`).
"""

_CITATION = """\
@misc{uci_digits,
  title = {Optical Recognition of Handwritten Digits},
  author = {Alpaydin, E. and Kaynak, C.},
  year = {1998},
  howpublished = {UCI Machine Learning Repository},
}
"""


@dataclasses.dataclass(eq=False)
class DigitsCanvasConfig(tfds.core.BuilderConfig):
    """Config of `attnlab_digits_canvas`: canvas, clutter, split sizes and placement seed.

    Any instance can be passed as `config=`; `config_name(...)` gives the name attnlab uses
    for a combination of fields, so equal fields share one prepared copy.
    """

    canvas_size: int = 32
    digit_scale: int = DIGIT_SCALE
    clutter: int = 0
    clutter_size: int = 4
    train_size: int = 12_000
    validation_size: int = 1_000
    test_size: int = 1_000
    seed: int = 0

    def split_sizes(self) -> dict[str, int]:
        return {
            "train": self.train_size,
            "validation": self.validation_size,
            "test": self.test_size,
        }


def config_name(
    canvas_size: int,
    clutter: int,
    clutter_size: int,
    sizes: tuple[int, int, int],
    seed: int,
    digit_scale: int = DIGIT_SCALE,
) -> str:
    """The config name for these fields, e.g. `c32_d16_n4x5_12000-1000-1000_s0`."""
    sizes_text = "-".join(map(str, sizes))
    digit = SOURCE_SIZE * digit_scale
    return f"c{canvas_size}_d{digit}_n{clutter}x{clutter_size}_{sizes_text}_s{seed}"


def digit_images(scale: int = DIGIT_SCALE) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as `(uint8 [1797, 8 scale, 8 scale] in 0-255, int64 labels
    [1797])`, each pixel repeated into a `scale x scale` block."""
    from sklearn.datasets import load_digits  # imported here: only building needs it

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    images = images.repeat(scale, axis=1).repeat(scale, axis=2)
    return images, digits.target.astype(np.int64)


def split_pools(num_images: int) -> dict[str, np.ndarray]:
    """Indices of each split's digits under the fixed split rule (see `DESCRIPTION`)."""
    order = np.random.default_rng(SPLIT_SEED).permutation(num_images)
    return {
        "validation": order[:NUM_HELD_OUT],
        "test": order[NUM_HELD_OUT : 2 * NUM_HELD_OUT],
        "train": order[2 * NUM_HELD_OUT :],
    }


def compose(digit: np.ndarray, canvas_size: int, position, fragments=()) -> np.ndarray:
    """A canvas `[canvas_size, canvas_size]` with `fragments` (`(patch [p, p], (row, col))`,
    combined by maximum) and then `digit [h, w]` written over its box at `position`."""
    canvas = np.zeros((canvas_size, canvas_size), digit.dtype)
    for piece, (row, col) in fragments:
        box = (slice(row, row + piece.shape[0]), slice(col, col + piece.shape[1]))
        canvas[box] = np.maximum(canvas[box], piece)
    row, col = position
    h, w = digit.shape
    canvas[row : row + h, col : col + w] = digit
    return canvas


def draw_example(
    rng: np.random.Generator,
    images: np.ndarray,
    index: int,
    canvas_size: int,
    clutter: int,
    clutter_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Image `index` of `images [N, h, w]` on a cluttered canvas; returns `(canvas, position)`.

    Clutter: `clutter` random `clutter_size` square crops of other images of `images` at random
    canvas positions; then the digit at a uniformly random position inside the canvas.
    """
    n, h, w = images.shape
    if canvas_size < max(h, w) or clutter_size > min(h, w):
        raise ValueError(
            f"a canvas of {canvas_size} must hold the {h}x{w} digits and clutter of "
            f"{clutter_size} must fit in them"
        )
    fragments = []
    for _ in range(clutter):
        other = int(rng.integers(n - 1)) if n > 1 else 0
        other += other >= index and n > 1  # any image but the digit itself
        r, c = rng.integers(0, h - clutter_size + 1), rng.integers(0, w - clutter_size + 1)
        piece = images[other, r : r + clutter_size, c : c + clutter_size]
        at = rng.integers(0, canvas_size - clutter_size + 1, size=2)
        fragments.append((piece, (int(at[0]), int(at[1]))))
    position = np.array(
        [rng.integers(0, canvas_size - h + 1), rng.integers(0, canvas_size - w + 1)], np.int32
    )
    return compose(images[index], canvas_size, position, fragments), position


def generate_split(config: DigitsCanvasConfig, split: str, images: np.ndarray, labels):
    """Yields `(key, example)` of one split (see `DESCRIPTION`); deterministic."""
    pool = split_pools(len(images))[split]
    pool_images = images[pool]
    split_index = _SPLITS.index(split)
    for i in range(config.split_sizes()[split]):
        rng = np.random.default_rng([config.seed, split_index, i])
        j = i % len(pool)
        canvas, position = draw_example(
            rng, pool_images, j, config.canvas_size, config.clutter, config.clutter_size
        )
        yield (
            i,
            {
                "image": canvas,
                "label": int(labels[pool[j]]),
                "position": position,
                "digit_index": np.int32(pool[j]),
            },
        )


class AttnlabDigitsCanvas(ArrayRecordBuilder):
    """8x8 digits at random positions on a canvas, with optional clutter (no download).

    Written as array_record (`ArrayRecordBuilder`); read it with `as_data_source()` /
    `tfds.data_source`, or into numpy arrays with `attnlab.data.builders.load_arrays`.
    """

    name = "attnlab_digits_canvas"
    VERSION = tfds.core.Version("2.0.0")
    RELEASE_NOTES = {
        "2.0.0": "Digits enlarged (digit_scale, 2 by default: 16x16), so that a glimpse sees "
        "the whole digit at one of its scales.",
        "1.0.0": "Initial release: sklearn digits on a canvas, fixed 1297/250/250 image split, "
        "seeded placement and clutter fragments.",
    }
    BUILDER_CONFIGS = [
        DigitsCanvasConfig(
            name="plain",
            description="One digit on a 32x32 canvas, no clutter; 12000 / 1000 / 1000.",
        ),
        DigitsCanvasConfig(
            name="cluttered",
            description="One digit on a 32x32 canvas with 6 fragments of 4x4; 12000 / 1000 / 1000.",
            clutter=6,
        ),
    ]
    DEFAULT_CONFIG_NAME = "plain"

    def _info(self) -> tfds.core.DatasetInfo:
        size = self.builder_config.canvas_size
        return self.dataset_info_from_configs(
            description=DESCRIPTION,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(
                        shape=(size, size), dtype=np.uint8, doc="The canvas, 0-255."
                    ),
                    "label": tfds.features.ClassLabel(num_classes=10),
                    "position": tfds.features.Tensor(
                        shape=(2,), dtype=np.int32, doc="Top-left pixel (row, col) of the digit."
                    ),
                    "digit_index": tfds.features.Scalar(
                        dtype=np.int32, doc="Index of the digit in sklearn's load_digits()."
                    ),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://archive.ics.uci.edu/dataset/80",
            citation=_CITATION,
            metadata=tfds.core.MetadataDict(),
            license="CC BY 4.0 (UCI optical recognition of handwritten digits).",
        )

    def _split_generators(self, dl_manager):
        """Loads the digits once and hands each split its generator (`dl_manager` unused)."""
        del dl_manager
        import sklearn

        images, labels = digit_images(self.builder_config.digit_scale)
        self.info.metadata.update({"sklearn_version": sklearn.__version__})
        config: DigitsCanvasConfig = self.builder_config
        return {
            split: self._generate_examples(config, split, images, labels)
            for split, size in config.split_sizes().items()
            if size > 0
        }

    def _generate_examples(self, config, split, images, labels):
        yield from generate_split(config, split, images, labels)
