"""The recurrent attention model (Mnih et al. 2014) on scikit-learn's 8x8 digits, enlarged to
16x16, placed on a 32x32 canvas (generated on first use, no download): the quick task that
needs nothing prepared. The paper's MNIST tasks are `configs/ram_mnist.py`.

    python -m attnlab train --config=configs/ram_digits.py --workdir=runs/ram_digits
    python -m attnlab train --config=configs/ram_digits.py:quick --workdir=runs/ram_quick
    python -m attnlab train --config=configs/ram_digits.py:cluttered --workdir=runs/ram_clutter

The argument takes comma-separated words: `quick` (a smaller model and 1500 steps: well under a
minute on 2 CPU cores) and `cluttered` (4 fragments of 5x5 pixels of other digits on every
canvas: the paper's proportions, whose 8x8 fragments are 0.29 of a 28-pixel digit's side).
Glimpses: 4 of 3 scales (8, 16 and 32 pixels, each seen as 8x8: the middle one holds a whole
digit), GRU core.
"""

from attnlab.ram.config import default_config, quick


def get_config(arg: str | None = None):
    config = default_config()
    words = set(filter(None, (arg or "").split(",")))
    unknown = words - {"quick", "cluttered"}
    if unknown:
        raise ValueError(f"unknown argument(s) {sorted(unknown)}: use quick and/or cluttered")
    if "cluttered" in words:
        config.data.clutter, config.data.clutter_size = 4, 5
    if "quick" in words:
        config = quick(config)
    return config
