"""The recurrent attention model on the cluttered digits canvas: test error against the number
of glimpses, for learned and for uniformly random glimpse locations (Mnih et al. 2014, §4.1).

    python -m attnlab sweep --config=experiments/visual_attention/config.py \
        --workdir=runs/visual_attention
    python -m attnlab compare runs/visual_attention --metric=test/error
    python experiments/visual_attention/summarize.py runs/visual_attention

scikit-learn's 8x8 digits on a 32x32 canvas with 4 fragments of 3x3 pixels of other digits
(generated, no download); glimpses of 3 scales (8, 16, 32 pixels, each seen as 8x8); GRU core
128, glimpse layers 64; 12,000 steps of batch 128 (4x the examples of the first version of this
experiment, 6000 steps of batch 64: the model was far from fitting even its training canvases),
Adam 3e-3 with cosine decay. 4 glimpse counts x 2 location modes x 3 seeds = 24 runs.
"""

from attnlab.ram.config import default_config, quick

GLIMPSES = (1, 2, 4, 6)
SEEDS = (0, 1, 2)


def get_config():
    config = quick(default_config())
    config.data.digit_scale = 1  # the digits' original 8x8, as this study was measured
    config.data.clutter, config.data.clutter_size = 4, 3
    config.data.num_train, config.data.num_valid, config.data.num_test = 12000, 1000, 1000
    config.data.batch_size = 128
    t = config.train
    t.num_steps, t.log_every, t.eval_every, t.ckpt_every = 12000, 200, 2000, 4000
    t.loggers = ""
    return config


def get_sweep():
    return {
        "model.locations": ["learned", "random"],
        "model.num_glimpses": list(GLIMPSES),
        "seed": list(SEEDS),
    }
