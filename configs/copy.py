"""Copy a sequence of 5-20 symbols; the longer split has 21-30 symbols, never seen in training.

    python -m attnlab train --config=configs/copy.py --workdir=runs/copy
    python -m attnlab train --config=configs/copy.py:quick --workdir=runs/copy_quick

The gold alignment is the diagonal. Measured with `:quick` (seed 0, 2-core CPU, ~15 s):
Bahdanau/additive eval/seq_accuracy 1.000, eval/align_accuracy 1.000; Luong/general 1.000 and
1.000; the no-attention baseline 0.668. On the unseen lengths 11-15 (eval_long/seq_accuracy)
Luong/general keeps 0.723, Bahdanau/additive 0.207, the baseline 0.004.
"""

from attnlab.config import default_config, quick


def get_config(arg: str | None = None):
    config = default_config()
    config.data.name = "copy"
    if arg == "quick":
        return quick(config)
    if arg:
        raise ValueError(f"unknown config argument '{arg}'; valid: quick")
    return config
