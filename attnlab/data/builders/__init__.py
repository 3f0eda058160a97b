"""TFDS datasets for attnlab: `attnlab_g2p` (CMUdict), `attnlab_dates` (CLDR dates) and
`attnlab_digits_canvas` (scikit-learn's digits on a canvas, for the recurrent attention model).

Importing this package registers the builders with TFDS, after which
`tfds.builder("attnlab_g2p")` and `tfds.data_source("attnlab_dates", ...)` find them. Both are
generated locally (no download) and written as array_record, the format TFDS reads without
TensorFlow; read them with `as_data_source()` / `tfds.data_source` (not `tfds.load`), or load
a whole split into memory with `load_split`::

    from attnlab.data.builders import load_split

    train = load_split("g2p", "train")          # [{"word": "tank", "phonemes": "T AE NG K", ...}]
    test = load_split("dates", "test", config="small")
    images = load_arrays("digits", "train", config="cluttered")  # {"image": uint8 [N, 32, 32]...}
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from attnlab.data.builders.dates import AttnlabDates, DatesConfig
from attnlab.data.builders.digits_canvas import AttnlabDigitsCanvas, DigitsCanvasConfig
from attnlab.data.builders.g2p import AttnlabG2p, G2pConfig
from attnlab.data.builders.mnist import AttnlabMnist

__all__ = [
    "AttnlabDates",
    "AttnlabDigitsCanvas",
    "AttnlabG2p",
    "AttnlabMnist",
    "DatesConfig",
    "DigitsCanvasConfig",
    "G2pConfig",
    "NAMES",
    "load_arrays",
    "load_split",
]

# Short names accepted by `load_split` and `load_arrays`, and the TFDS names they stand for.
NAMES = {
    "g2p": AttnlabG2p.name,
    "dates": AttnlabDates.name,
    "digits": AttnlabDigitsCanvas.name,
    "mnist": AttnlabMnist.name,
}


def load_split(
    name: str,
    split: str,
    data_dir: str | None = None,
    config: str | tfds.core.BuilderConfig | None = None,
    batch_size: int = 4096,
) -> list[dict[str, Any]]:
    """One split of an attnlab dataset as a list of python dicts, building it first if needed.

    Args:
      name: "g2p" or "dates", or the TFDS name ("attnlab_g2p", "attnlab_dates").
      split: a TFDS split, e.g. "train", "validation", "test" (or a slice like "train[:1000]").
      data_dir: where the dataset lives or is built; None means TFDS's default data directory
        (`$TFDS_DATA_DIR`, else `~/tensorflow_datasets`).
      config: a config name ("stress", "small", ...), a config instance, or None (default).
      batch_size: records per batched read (`__getitems__`; one read per record is slow).

    Returns:
      The examples in file order (fixed by the build). Text fields are `str`, sequences are
      lists (`pronunciations`: `list[str]`; the dates' `alignment`: `list[int]`), numbers are
      python numbers.
    """
    tfds.disable_progress_bar()  # a build prints one bar per split and shuffle otherwise
    builder = prepared(name, data_dir, config)
    source = builder.as_data_source(split=split)
    examples = []
    for start in range(0, len(source), batch_size):
        indices = range(start, min(start + batch_size, len(source)))
        examples.extend(_decode(x) for x in _read_batch(source, indices))
    return examples


def load_arrays(
    name: str,
    split: str,
    data_dir: str | None = None,
    config: str | tfds.core.BuilderConfig | None = None,
    batch_size: int = 4096,
) -> dict[str, np.ndarray]:
    """One split of a data set of fixed-shape features (images) as stacked numpy arrays,
    building it first if needed: `{feature: [N, ...]}` in file order. Arguments as for
    `load_split`; far faster than `load_split` for images (no conversion to lists)."""
    tfds.disable_progress_bar()
    builder = prepared(name, data_dir, config)
    source = builder.as_data_source(split=split)
    columns: dict[str, list] = {}
    for start in range(0, len(source), batch_size):
        for record in _read_batch(source, range(start, min(start + batch_size, len(source)))):
            for key, value in record.items():
                columns.setdefault(key, []).append(np.asarray(value))
    return {key: np.stack(values) for key, values in columns.items()}


def prepared(name: str, data_dir: str | None = None, config=None):
    """The TFDS builder of `name`, its data built first if needed (at once when they are
    there), under a lock on the data directory: processes that need the same data set at once
    (the trials of a parallel sweep) build it once; without the lock each builds its own copy
    and all but the first fail to move theirs into place. A data directory this process
    cannot write in is read without the lock."""
    builder = tfds.builder(NAMES.get(name, name), data_dir=data_dir, config=config)
    root = os.fspath(builder.data_dir_root)
    lock = None
    with contextlib.suppress(OSError):
        os.makedirs(root, exist_ok=True)
        lock = open(os.path.join(root, f".{builder.name}.lock"), "a")
    if lock is None:
        builder.download_and_prepare()
        return builder
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes (or this process dies)
        # made again under the lock: one made while another process built the data does not
        # know their splits
        builder = tfds.builder(NAMES.get(name, name), data_dir=data_dir, config=config)
        builder.download_and_prepare()
    return builder


def _read_batch(source, indices: range) -> list:
    """Records `indices` of a data source, in one batched read when the source allows it.

    `tfds.testing.mock_data` (tfds 4.9.10) installs an unbound `__getitems__` that raises
    TypeError when called; per-record reads work there, so fall back to them.
    """
    try:
        return source.__getitems__(indices)
    except TypeError:
        return [source[i] for i in indices]


def _decode(value):
    """Numpy/bytes to python values; text to `str` however it arrives.

    Real data arrive as bytes, `tfds.testing.mock_data` as str; sequences as lists of numpy
    scalars or as arrays.
    """
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, bytes | np.bytes_):
        return value.decode("utf-8")
    if isinstance(value, str | np.str_):
        return str(value)
    if isinstance(value, list | tuple):
        return [_decode(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_decode(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value
