"""Reverse a sequence of 5-20 symbols; the longer split has 21-30 symbols, never seen in training.

    python -m attnlab train --config=configs/reverse.py --workdir=runs/reverse
    python -m attnlab train --config=configs/reverse.py:quick --workdir=runs/reverse_quick

The gold alignment is the anti-diagonal. Measured with `:quick` (seed 0, 2-core CPU, ~25 s):
Bahdanau/additive eval/seq_accuracy 0.992, eval/align_accuracy 0.998; Luong/general 0.984 and
0.997; the no-attention baseline 0.449. On the unseen lengths 11-15 (eval_long/seq_accuracy)
Luong/general keeps 0.633, Bahdanau/additive 0.109, the baseline 0.000.
"""

from attnlab.config import default_config, quick


def get_config(arg: str | None = None):
    config = default_config()
    config.data.task = "reverse"
    if arg == "quick":
        return quick(config)
    if arg:
        raise ValueError(f"unknown config argument '{arg}'; valid: quick")
    return config
