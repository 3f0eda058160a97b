"""Grapheme-to-phoneme on CMUdict: one main model, and score functions compared on the same data.

    # the main result (configs/g2p.py: BiLSTM 256 encoder, Luong order, general score, beam 5)
    python -m attnlab train --config=configs/g2p.py --workdir=runs/g2p
    # three score functions at a smaller size, same split, same beam
    python -m attnlab sweep --config=experiments/g2p_cmudict/config.py --workdir=runs/g2p_scores
    python -m attnlab compare runs/g2p_scores --metric=test/wer

The comparison model: bidirectional LSTM 128 per direction, LSTM decoder 128, embeddings 64,
Luong order, 4000 steps of batch 128 with cosine decay, test decoded with a beam of 5; one seed
per score (`--config.num_seeds=3` gives three, at three times the cost on a CPU).
"""

import os

from attnlab.config_lib import load_config

_MAIN = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "g2p.py")


def get_config(arg: str | None = None):
    config = load_config(_MAIN)
    m = config.model
    m.embed_dim = 64
    m.encoder.hidden_dim = m.decoder_hidden_dim = m.attention.attn_dim = 128
    config.train.num_steps, config.train.eval_every = 4000, 2000
    return config


def get_sweep(arg: str | None = None):
    return {"model.score": ["general", "additive", "concat"]}
