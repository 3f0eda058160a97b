"""The base of attnlab's TFDS builders: array_record files unless told otherwise.

TFDS writes tfrecord by default, which cannot be written or read without TensorFlow;
array_record is read with `as_data_source()` / `tfds.data_source`.
"""

from __future__ import annotations

import tensorflow_datasets as tfds


class ArrayRecordBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A `GeneratorBasedBuilder` whose default file format is array_record (not registered
    itself: only its subclasses are data sets)."""

    def __init__(self, *, file_format=None, **kwargs):
        super().__init__(file_format=file_format or "array_record", **kwargs)
