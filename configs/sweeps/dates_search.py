"""A searched sweep: learning rate (log scale) x attention size x score on `dates` (the quick
model of configs/dates.py), 16 trials chosen by Optuna's TPE, the bad ones pruned half-way.

    python -m attnlab sweep --config=configs/sweeps/dates_search.py --workdir=runs/dates_search \
        --sweep.search=tpe --sweep.num_trials=16 --sweep.parallel=2 --sweep.prune=median
    python -m attnlab compare runs/dates_search

Each trial is one seed (0) of one configuration, ranked by its final validation seq_accuracy:
the search finds a good region, not a significant winner (for that, run the best few with
several seeds as a grid, e.g. configs/sweeps/scores.py). The three scores all use the
attention size (the hidden size A of their MLP); as in configs/sweeps/scores.py the decoder is
widened to the key size (128), which `concat_shared` needs. Re-running the command continues
the study in runs/dates_search/study.db; `--sweep.num_trials=24` adds 8 trials to it.
"""

import os

from attnlab.config_lib import load_config
from attnlab.search import Choice, Float, Int

DATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "dates.py")


def get_config(arg: str | None = None):
    config = load_config(DATES + ":quick")
    config.model.decoder_hidden_dim = 2 * config.model.encoder.hidden_dim  # = the key size
    return config


def get_search(arg: str | None = None):
    return {
        "optim.learning_rate": Float(3e-4, 3e-2, log=True),
        "model.attention.attn_dim": Int(16, 128, log=True),
        "model.score": Choice(["additive", "concat", "concat_shared"]),
        "seed": 0,
    }
