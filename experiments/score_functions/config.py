"""Every score function at the same size, in both decoder orders, on three kinds of evidence
(Luong et al. 2015, Table 4's comparison of attention variants, with confidence intervals).

    python -m attnlab sweep --config=experiments/score_functions/config.py:reverse \
        --workdir=runs/score_functions/reverse
    python -m attnlab sweep --config=experiments/score_functions/config.py:dates \
        --workdir=runs/score_functions/dates
    python -m attnlab sweep --config=experiments/score_functions/config.py:g2p \
        --workdir=runs/score_functions/g2p
    python -m attnlab compare runs/score_functions/reverse --metric=eval_long/seq_accuracy
    python -m attnlab compare runs/score_functions/dates --metric=test/aer
    python -m attnlab compare runs/score_functions/g2p --metric=test/wer

Fair: every score sees queries and keys of the same size (a bidirectional GRU encoder of 64 per
direction, so keys of 128; a GRU decoder of 128; attention size 128 for the MLP scores), the
same seeds and the same batches (`seed_batches = "independent"`: seed s sees the batch order of
a one-seed run with seed s, whatever the score). The evidence:

- `reverse`: lengths 3-10 in training, 11-15 in the longer split (length generalisation); 600
  steps with cosine decay; both orders; 5 seeds.
- `dates`: 9 locales x 7 formats -> ISO dates, character level, with gold character alignments
  for the year and numeric day/month digits (AER); the `:quick` recipe of `configs/dates.py`;
  both orders; 5 seeds.
- `g2p`: CMUdict, spelling -> phonemes, 3,000 steps of batch 64 (WER, PER, perplexity; greedy
  decoding); the Luong order; 3 seeds.

Each variant trains its seeds in one vmapped program (one process and one compile per variant).
"""

from attnlab.config import default_config, quick
from attnlab.config_lib import config_words
from attnlab.scores import SCORE_NAMES

TASKS = ("reverse", "dates", "g2p")
SEEDS = {"reverse": 5, "dates": 5, "g2p": 3}


def _task(arg: str | None) -> str:
    words = config_words(arg, TASKS)
    if len(words) > 1:
        raise ValueError(f"one task at a time: {', '.join(sorted(words))}")
    return words.pop() if words else "reverse"


def get_config(arg: str | None = None):
    task = _task(arg)
    config = quick(default_config())
    d, m, t = config.data, config.model, config.train
    d.name = task
    if task != "reverse":  # real data: every example of the length range, no longer split
        d.min_len, d.num_long, d.bucket_step = 1, 0, 16
    if task == "dates":  # as configs/dates.py:quick
        d.max_len, d.max_tgt_len = 48, 10
        d.num_train, d.num_valid, d.num_test = 20_000, 512, 512
    if task == "g2p":
        d.max_len, d.max_tgt_len, d.bucket_step = 32, 32, 8
        d.num_train, d.num_valid, d.num_test = 200_000, 1000, 1000
        m.embed_dim, m.decoder = 64, "luong"
        t.num_steps, t.log_every, t.eval_every, t.ckpt_every = 3000, 100, 1000, 1000
    m.encoder.cell = m.decoder_cell = "gru"
    m.encoder.hidden_dim = 64  # keys: 2 x 64 = 128, the query size of every score
    m.decoder_hidden_dim = m.attention.attn_dim = 128
    config.num_seeds, config.seed_batches = SEEDS[task], "independent"
    return config


def get_sweep(arg: str | None = None):
    axes = {"model.score": list(SCORE_NAMES)}
    if _task(arg) != "g2p":
        axes = {"model.decoder": ["bahdanau", "luong"], **axes}
    return axes
