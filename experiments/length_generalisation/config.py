"""Attention against the no-attention baseline as the source grows past the training lengths.

    python -m attnlab sweep --config=experiments/length_generalisation/config.py \
        --workdir=runs/length_generalisation
    python -m attnlab compare runs/length_generalisation

The analogue of Bahdanau et al. 2015, Fig. 2 (RNNsearch against RNNencdec by sentence length),
on `reverse`: trained on lengths 3-10, evaluated on 3-10 and on 11-20 (never seen). Three
variants (Bahdanau order with the additive score, Luong order with the general score, and the
`none` baseline), 5 seeds each, trained as one vmapped program per variant.
"""

from attnlab.config import default_config, quick


def get_config(arg: str | None = None):
    config = quick(default_config())
    config.data.name = "reverse"
    config.data.long_min_len, config.data.long_max_len, config.data.num_long = 11, 20, 500
    config.num_seeds, config.seed_batches = 5, "independent"
    return config


def get_sweep(arg: str | None = None):
    return [
        {"model.decoder": "bahdanau", "model.score": "additive"},
        {"model.decoder": "luong", "model.score": "general"},
        {"model.decoder": "bahdanau", "model.score": "none"},
    ]
