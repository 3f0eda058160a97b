"""Sort 5-20 symbols (a stable sort); the longer split has 21-30 symbols, never seen in training.

    python -m attnlab train --config=configs/sort.py --workdir=runs/sort
    python -m attnlab train --config=configs/sort.py:quick --workdir=runs/sort_quick

The gold alignment is the stable sorting permutation; with repeated symbols any of their
positions would do, so align_accuracy stays well below 1. Measured with `:quick` (seed 0,
2-core CPU, ~20 s): Bahdanau/additive eval/seq_accuracy 0.969 (align 0.703); Luong/general
0.836 (align 0.719); the no-attention baseline 0.996: sorting needs only the symbol counts,
which the final encoder state holds, so attention does not help here.
"""

from attnlab.config import default_config, quick


def get_config(arg: str | None = None):
    config = default_config()
    config.data.task = "sort"
    if arg == "quick":
        return quick(config)
    if arg:
        raise ValueError(f"unknown config argument '{arg}'; valid: quick")
    return config
