"""Every score x both decoder orders x 5 seeds on a synthetic task (quick model), all at the
same size.

    python -m attnlab sweep --config=configs/sweeps/scores.py --workdir=runs/scores \
        --sweep.parallel=2
    python -m attnlab sweep --config=configs/sweeps/scores.py:sort --workdir=runs/scores_sort
    python -m attnlab compare runs/scores

The argument picks the task (reverse by default). 8 scores x 2 orders x 5 seeds = 80 trials of
the `:quick` model with the decoder widened to the bidirectional key size (128), so that every
score, `dot` included, sees queries and keys of the same size and the variants differ in the
score alone. `experiments/score_functions/` is the full study.
"""

from attnlab.config import default_config, quick
from attnlab.scores import SCORE_NAMES

SEEDS = (0, 1, 2, 3, 4)


def get_config(arg: str | None = None):
    config = quick(default_config())
    config.data.name = arg or "reverse"
    config.model.decoder_hidden_dim = 2 * config.model.encoder.hidden_dim  # = the key size
    return config


def get_sweep(arg: str | None = None):
    return {"model.decoder": ["bahdanau", "luong"], "model.score": list(SCORE_NAMES), "seed": SEEDS}
