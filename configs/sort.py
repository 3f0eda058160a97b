"""Sort 5-20 symbols (a stable sort); the longer split has 21-30 symbols, never seen in training.

    python -m attnlab train --config=configs/sort.py --workdir=runs/sort
    python -m attnlab train --config=configs/sort.py:quick --workdir=runs/sort_quick

The gold alignment is the stable sorting permutation; with repeated symbols any of their
positions would do, so align_accuracy stays well below 1. Measured with `:quick` (seed 0,
2-core CPU, ~15-20 s): Bahdanau/additive eval/seq_accuracy 1.000 (align 0.696); Luong/general
0.984 (align 0.739); the no-attention baseline 0.996: sorting needs only the symbol counts,
which the final encoder state holds, so attention is not needed here (it does generalise
better to the unseen lengths 11-15: 0.422 for Bahdanau/additive against 0.352).
"""

from attnlab.config import default_config, quick


def get_config(arg: str | None = None):
    config = default_config()
    config.data.name = "sort"
    if arg == "quick":
        return quick(config)
    if arg:
        raise ValueError(f"unknown config argument '{arg}'; valid: quick")
    return config
