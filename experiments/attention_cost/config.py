"""Accuracy of each attention kind on `reverse`, for the cost table next to it (3 seeds each).

    python -m attnlab sweep --config=experiments/attention_cost/config.py \
        --workdir=runs/attention_cost
    python -m attnlab compare runs/attention_cost --metric=test/seq_accuracy

Luong order throughout (local attention needs it), the `:quick` model (bidirectional GRU 64,
decoder 64) on sources of 5-20 symbols (longer split 21-30), 1500 steps with cosine decay.
Variants: global `general` and `additive`, `local_m` (Eq. 7; `local_m_gaussian`: times the
Gaussian of Eq. 10 too) and `local_p` with half-width D = 4 (a window of 9 of up to 20
positions), and hard attention sampling from the `general` scores
(`hard`, categorical) or from a Gaussian location policy (`hard_gaussian`), trained with
REINFORCE (negative step loss as reward, moving-average baseline, entropy bonus 0.01).
"""

from attnlab.config import default_config, quick
from attnlab.config_lib import apply_overrides

VARIANTS = {
    "general": {"model.score": "general"},
    "additive": {"model.score": "additive"},
    "local_m": {"model.attention.kind": "local_m"},  # Eq. 7 alone, as the paper
    "local_m_gaussian": {
        "model.attention.kind": "local_m",
        "model.attention.local_m_gaussian": True,
    },
    "local_p": {"model.attention.kind": "local_p"},
    "hard": {"model.attention.kind": "hard"},
    "hard_gaussian": {"model.attention.kind": "hard", "model.attention.hard_policy": "gaussian"},
}


def get_config(arg: str | None = None):
    config = quick(default_config())
    d, m = config.data, config.model
    d.min_len, d.max_len, d.long_min_len, d.long_max_len = 5, 20, 21, 30
    m.decoder, m.score, m.attention.window = "luong", "general", 4
    config.train.num_steps, config.train.eval_every = 1500, 500
    config.num_seeds, config.seed_batches = 3, "independent"
    return apply_overrides(config, VARIANTS[arg]) if arg else config  # arg: one variant alone


def get_sweep(arg: str | None = None):
    return list(VARIANTS.values())
