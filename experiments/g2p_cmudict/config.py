"""Grapheme-to-phoneme on CMUdict: one main model, and score functions compared on the same data.

    # the main result (configs/g2p.py: BiLSTM 256 encoder, Luong order, general score, beam 5)
    python -m attnlab train --config=configs/g2p.py --workdir=runs/g2p
    # four score functions at a smaller size, same split, same beam
    python -m attnlab sweep --config=experiments/g2p_cmudict/config.py --workdir=runs/g2p_scores
    python -m attnlab compare runs/g2p_scores --metric=test/wer

The comparison model: bidirectional LSTM 128 per direction, LSTM decoder 128 (256 for `dot`,
which needs the query size to equal the key size), Luong order, 5000 steps of batch 128 with
cosine decay, test decoded with a beam of 5.
"""

import os

from attnlab.config import load_config

_MAIN = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "g2p.py")


def get_config(arg: str | None = None):
    config = load_config(_MAIN)
    m = config.model
    m.embed_dim = 64
    m.encoder.hidden_dim = m.decoder_hidden_dim = m.attention.attn_dim = 128
    config.train.num_steps, config.train.eval_every = 5000, 2500
    return config


def get_sweep(arg: str | None = None):
    key_dim = 2 * get_config(arg).model.encoder.hidden_dim
    return [
        {"model.score": "general"},
        {"model.score": "additive"},
        {"model.score": "concat"},
        {"model.score": "dot", "model.decoder_hidden_dim": key_dim},
    ]
