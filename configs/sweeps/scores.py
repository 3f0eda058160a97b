"""Every score function x both decoder orders x 5 seeds on a synthetic task (quick model).

    python -m attnlab sweep --config=configs/sweeps/scores.py --workdir=runs/scores \
        --sweep.parallel=2
    python -m attnlab sweep --config=configs/sweeps/scores.py:sort --workdir=runs/scores_sort
    python -m attnlab compare runs/scores

The argument picks the task (reverse by default). 8 scores x 2 orders x 5 seeds = 80 trials of
the `:quick` model. Scores that need equal query and key sizes (dot, scaled_dot, concat_shared)
get a decoder of 128 = the bidirectional key size; the others keep the quick decoder of 64.
"""

from attnlab.config import default_config, quick
from attnlab.scores import SCORE_NAMES, needs_equal_sizes

SEEDS = (0, 1, 2, 3, 4)


def get_config(arg: str | None = None):
    config = quick(default_config())
    config.data.name = arg or "reverse"
    return config


def get_sweep(arg: str | None = None):
    key_dim = 2 * get_config(arg).model.encoder.hidden_dim
    trials = []
    for decoder in ("bahdanau", "luong"):
        for score in SCORE_NAMES:
            for seed in SEEDS:
                trial = {"model.decoder": decoder, "model.score": score, "seed": seed}
                if needs_equal_sizes(score):
                    trial["model.decoder_hidden_dim"] = key_dim
                trials.append(trial)
    return trials
