"""Every score function in both decoder orders, 5 seeds each (Luong et al. 2015, Table 4's
comparison of attention variants, here on synthetic tasks and with confidence intervals).

    python -m attnlab sweep --config=experiments/score_functions/config.py:reverse \
        --workdir=runs/score_functions/reverse
    python -m attnlab sweep --config=experiments/score_functions/config.py:sort \
        --workdir=runs/score_functions/sort
    python -m attnlab compare runs/score_functions/reverse
    python -m attnlab compare runs/score_functions/sort

The `:quick` model (bidirectional GRU 64, lengths 3-10, 600 steps, cosine decay). Scores that
need equal query and key sizes (dot, scaled_dot, concat_shared) get a decoder of 128 = the
bidirectional key size. 8 scores x 2 orders = 16 runs per task, each training its 5 seeds in one
vmapped program with independent batch orders.
"""

from attnlab.config import default_config, quick
from attnlab.scores import SCORE_NAMES, needs_equal_sizes


def get_config(arg: str | None = None):
    config = quick(default_config())
    config.data.name = arg or "reverse"
    config.num_seeds, config.seed_batches = 5, "independent"
    return config


def get_sweep(arg: str | None = None):
    key_dim = 2 * get_config(arg).model.encoder.hidden_dim
    trials = []
    for decoder in ("bahdanau", "luong"):
        for score in SCORE_NAMES:
            trial = {"model.decoder": decoder, "model.score": score}
            if needs_equal_sizes(score):
                trial["model.decoder_hidden_dim"] = key_dim
            trials.append(trial)
    return trials
