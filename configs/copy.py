"""Copy a sequence of 5-20 symbols; the longer split has 21-30 symbols, never seen in training.

    python -m attnlab train --config=configs/copy.py --workdir=runs/copy
    python -m attnlab train --config=configs/copy.py:quick --workdir=runs/copy_quick

The gold alignment is the diagonal. `:quick` (lengths 3-10, 600 steps) reaches
eval/seq_accuracy >= 0.95 and eval/align_accuracy >= 0.9 in both decoder orders.
"""

from attnlab.config import default_config, quick


def get_config(arg: str | None = None):
    config = default_config()
    config.data.task = "copy"
    if arg == "quick":
        return quick(config)
    if arg:
        raise ValueError(f"unknown config argument '{arg}'; valid: quick")
    return config
