"""The seq2seq family's base config: every field attnlab reads, its default, and why.

`configs/<experiment>.py` files call `default_config()` and override only what differs. Every
field can be overridden on the command line (`--config.model.score=general`). `validate()` runs
before any work and reports every bad field at once, naming the value and what is allowed. The
top-level, `optim` and `train` fields are every family's (`attnlab.config_lib`); the choices
and constraints of scores and attention kinds are declared by those components themselves
(`attnlab.scores`, `attnlab.kinds`), not listed here.
"""

from __future__ import annotations

import ml_collections

from attnlab.config_lib import (
    add_run_fields,
    optim_section,
    raise_if,
    require,
    require_choice,
    require_full_batch,
    require_positive,
    train_section,
    validate_optim_train,
    validate_run_fields,
)
from attnlab.data.synthetic import TASKS
from attnlab.decoders import FLOWS, INIT_STATES
from attnlab.kinds import KINDS, kind_errors
from attnlab.models import COMPUTE_DTYPES
from attnlab.rnn import CELLS
from attnlab.scores import NO_ATTENTION, SCORES, is_content_based, needs_equal_sizes, option_errors

FAMILY = "seq2seq"
REAL_DATA = ("g2p", "dates")
REWARDS = ("step_loss", "sequence_accuracy")
BASELINES = ("moving_average", "learned", "none")
OVERLONG = ("drop", "truncate")
TOKENIZERS = ("char", "sentencepiece")
SUBWORD_MODELS = ("unigram", "bpe")
MAX_LAYERS = 16


def default_config() -> ml_collections.ConfigDict:
    """Every field with its default; a trained `reverse` model in a few minutes on a CPU."""
    c = ml_collections.ConfigDict()
    add_run_fields(c, FAMILY)

    c.data = d = ml_collections.ConfigDict()
    # copy | reverse | sort: synthetic tasks with gold alignments; g2p (CMUdict), dates (CLDR),
    # or tfds:<name> (any TFDS translation set, e.g. tfds:wmt14_translate/de-en)
    d.name = "reverse"
    d.vocab_size = 10  # symbols, not counting <pad> <s> </s> <unk>
    d.min_len = 5  # shortest training/validation/test source
    d.max_len = 20  # longest training/validation/test source
    d.long_min_len = 21  # the held-out longer split starts past the training range...
    d.long_max_len = 30  # ...and ends here: measures length generalisation
    d.num_train = 20000  # training examples (fixed set, reshuffled every epoch)
    d.num_valid = 500  # validation examples (periodic eval, heat maps)
    d.num_test = 500  # test examples (evaluated once, at the end)
    d.num_long = 500  # longer-split examples; 0 disables the split
    d.batch_size = 64  # training batch (full batches only: one compiled shape per bucket)
    d.eval_batch_size = 256  # eval/decode batch; the last one is padded with empty rows
    d.bucket_step = 8  # pad lengths up to a multiple of this: few shapes, few compiles
    d.seed = 0  # data generation seed, fixed so every model seed sees the same data
    # Real data sets (g2p, dates, tfds:...): num_train/num_valid/num_test cap each split
    # (num_long is not used: they have no longer split).
    d.data_dir = ""  # TFDS data directory ("" = $TFDS_DATA_DIR or ~/tensorflow_datasets)
    d.max_tgt_len = 64  # longest target in tokens (max_len bounds the source)
    d.overlong = "drop"  # drop | truncate: sequences past max_len / max_tgt_len (counted)
    d.g2p_stress = False  # g2p: keep the stress digits of the phonemes (AH0 vs AH)
    d.tokenizer = "char"  # tfds:...: char | sentencepiece (trained on the training split)
    d.subword_vocab_size = 8000  # sentencepiece: pieces per side
    d.subword_model = "unigram"  # sentencepiece: unigram | bpe

    c.model = m = ml_collections.ConfigDict()
    m.embed_dim = 64  # source and target embedding size
    m.encoder = e = ml_collections.ConfigDict()
    e.cell = "gru"  # gru | lstm | simple
    e.hidden_dim = 128  # per direction; keys are 2x this when bidirectional
    e.num_layers = 1  # stacked layers
    e.bidirectional = True  # Bahdanau et al. 2015's encoder; keys see both directions
    e.self_attention = ""  # "" = off, or a score name: one self-attention layer over the states
    m.decoder = "bahdanau"  # bahdanau (attend with s_{t-1}, then RNN) | luong (RNN, then attend)
    m.decoder_cell = "gru"  # gru | lstm | simple
    m.decoder_hidden_dim = 128  # decoder state size = query size of the score
    m.score = "additive"  # dot|scaled_dot|general|additive|concat|concat_shared|location|none
    # tanh_proj: tanh(W f + b) of the encoder final state f (Bahdanau App. A.2.2) | final | zeros
    m.init_state = "tanh_proj"
    m.deep_output = True  # Bahdanau order: logits from [s_t; c_t; emb(y_{t-1})] (else s_t)
    m.input_feeding = True  # Luong order: feed h~_{t-1} to the RNN (Luong et al. 2015, §3.3)
    m.attentional_tanh = True  # Luong order: h~ = tanh(W_c[c; s]) (Eq. 5); False drops the tanh
    # Compute type of matmuls and activations: float32 | bfloat16 (mixed precision: float32
    # parameters, softmax, scores, logits, loss and metrics; the normal setting on GPU and TPU)
    m.dtype = "float32"
    m.unroll = 1  # recurrence steps per loop iteration, training and greedy decoding (same numbers)
    m.attention = a = ml_collections.ConfigDict()
    a.attn_dim = 128  # hidden size A of additive / concat / concat_shared scores
    a.bias = False  # bias inside the tanh; Bahdanau et al. 2015 (App. A.1.2) has none
    a.zero_v = True  # additive: v = 0 at init, uniform attention at step 0 (Bahdanau App. B.1)
    a.normalize = False  # additive: weight-normed v, learned scale + bias ("normed Bahdanau")
    a.key_identity = False  # concat: key block of W_a fixed to I (Luong et al. 2015, footnote 15)
    a.max_source_len = 64  # location: S_max rows of W_a; later positions get no weight
    # soft (global) | local_m (window at p_t = t) | local_p (predicted p_t): Luong et al. 2015
    # §3.2, Luong order and content-based scores only; scores cost O(window), not O(S)
    a.kind = "soft"
    a.window = 8  # local attention: half-width D (Gaussian sigma = D / 2)
    a.local_m_gaussian = False  # local_m: also multiply by the Gaussian (the paper: Eq. 7 alone)
    # hard: one source position per step, sampled in training, argmax / mean at evaluation
    a.hard_policy = "categorical"  # categorical: from softmax(scores) | gaussian: a location
    a.hard_std = 1.0  # gaussian policy: sigma in source positions (the start value if learned)
    a.hard_learned_std = False  # gaussian policy: learn log sigma with the policy
    # How hard attention's policy is trained (REINFORCE, reinforce.py); read only by kind=hard.
    m.reinforce = r = ml_collections.ConfigDict()
    r.reward = "step_loss"  # step_loss: -cross-entropy of the step | sequence_accuracy (0/1)
    r.baseline = "moving_average"  # moving_average | learned (b = w^T s + c, regressed) | none
    r.baseline_decay = 0.99  # moving_average: b <- decay b + (1 - decay) mean reward
    r.policy_weight = 1.0  # weight of the REINFORCE surrogate in the loss
    r.entropy_weight = 0.01  # bonus for the policy's entropy (keeps it exploring early)
    r.baseline_weight = 1.0  # learned baseline: weight of its squared error

    c.eval = ev = ml_collections.ConfigDict()
    ev.beam_size = 1  # final evaluation: 1 = greedy, > 1 = beam search (periodic evals: greedy)
    ev.length_penalty = 0.6  # beam search: alpha of ((5 + |Y|) / 6) ** alpha (Wu et al. 2016)

    c.optim = optim_section()
    c.train = train_section(best_metric="eval/seq_accuracy")
    return c


def quick(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Shrinks a config to a model and task that train in well under a minute on 2 CPU cores.

    Used by every `configs/<task>.py:quick`, by the tests and by smoke runs: lengths 3-10
    (longer split 11-15), hidden size 64, 600 steps with a cosine-decayed learning rate. One
    length bucket (16) means one compiled train step.
    """
    d, m, t = config.data, config.model, config.train
    d.min_len, d.max_len, d.long_min_len, d.long_max_len = 3, 10, 11, 15
    d.num_train, d.num_valid, d.num_test, d.num_long = 10000, 256, 256, 256
    d.bucket_step = 16
    m.embed_dim = 32
    m.encoder.hidden_dim = m.decoder_hidden_dim = m.attention.attn_dim = 64
    t.num_steps, t.log_every, t.eval_every, t.ckpt_every = 600, 100, 300, 300
    # Decay to 0: a constant rate left 600-step runs mid-spike, so the final figure hung on
    # float rounding (0.75 vs 0.99 from two numerically equivalent programs).
    config.optim.schedule = "cosine"
    return config


def _validate_data(errors, d):
    real = d.name in REAL_DATA or str(d.name).startswith("tfds:")
    require(
        errors,
        d.name in TASKS or real,
        "data.name",
        d.name,
        f"must be one of {', '.join(TASKS)}, {', '.join(REAL_DATA)} or tfds:<dataset name>",
    )
    if str(d.name).startswith("tfds:"):
        from attnlab.data.text import parse_tfds_name

        try:
            parse_tfds_name(d.name)
        except ValueError as err:
            errors.append(f"config.data.name={d.name!r} is invalid: {err}")
    require_positive(errors, d, "data.", ["max_tgt_len", "subword_vocab_size"])
    require_choice(errors, d, "data.", "overlong", OVERLONG)
    require_choice(errors, d, "data.", "tokenizer", TOKENIZERS)
    require_choice(errors, d, "data.", "subword_model", SUBWORD_MODELS)
    require_positive(
        errors, d, "data.", ["vocab_size", "min_len", "max_len", "num_train", "num_valid"]
    )
    require_positive(
        errors, d, "data.", ["num_test", "batch_size", "eval_batch_size", "bucket_step"]
    )
    require(
        errors,
        d.min_len <= d.max_len,
        "data.min_len",
        d.min_len,
        f"must be <= data.max_len ({d.max_len})",
    )
    require(
        errors, d.num_long >= 0, "data.num_long", d.num_long, "must be >= 0 (0 disables the split)"
    )
    if d.num_long > 0:
        require(
            errors,
            d.long_min_len > d.max_len,
            "data.long_min_len",
            d.long_min_len,
            f"must exceed data.max_len ({d.max_len}): the split measures unseen lengths",
        )
        require(
            errors,
            d.long_max_len >= d.long_min_len,
            "data.long_max_len",
            d.long_max_len,
            f"must be >= data.long_min_len ({d.long_min_len})",
        )
    require_full_batch(errors, d)
    if d.name in TASKS and not errors:
        space = _source_space(d.vocab_size, d.min_len, d.max_len)
        wanted = d.num_train + d.num_valid + d.num_test
        require(
            errors,
            space >= wanted,
            "data.vocab_size",
            d.vocab_size,
            f"leaves {space} distinct sources of lengths {d.min_len}-{d.max_len}, fewer than the "
            f"{wanted} training, validation and test examples; raise data.vocab_size or the "
            "lengths, or lower data.num_*",
        )


def _source_space(vocab_size: int, min_len: int, max_len: int, cap: int = 10**12) -> int:
    """How many distinct sources of lengths min_len..max_len exist (counted up to `cap`)."""
    if vocab_size <= 1:
        return min(max_len - min_len + 1, cap)
    space = 0
    for n in range(min_len, max_len + 1):
        space += vocab_size**n
        if space >= cap:
            return cap
    return space


def _validate_model(errors, m):
    require_positive(errors, m, "model.", ["embed_dim", "decoder_hidden_dim", "unroll"])
    require_positive(errors, m.encoder, "model.encoder.", ["hidden_dim", "num_layers"])
    require_positive(
        errors, m.attention, "model.attention.", ["attn_dim", "max_source_len", "window"]
    )
    require(
        errors,
        m.attention.hard_std > 0,
        "model.attention.hard_std",
        m.attention.hard_std,
        "must be > 0",
    )
    require(
        errors,
        m.encoder.num_layers <= MAX_LAYERS,
        "model.encoder.num_layers",
        m.encoder.num_layers,
        f"must be <= {MAX_LAYERS} (every layer is a separate traced RNN)",
    )
    require_choice(errors, m.encoder, "model.encoder.", "cell", CELLS)
    require_choice(errors, m, "model.", "decoder_cell", CELLS)
    require_choice(errors, m, "model.", "decoder", FLOWS)
    score_names = (*SCORES, NO_ATTENTION)  # read now: a score registered at run time counts
    require_choice(errors, m, "model.", "score", score_names)
    require_choice(errors, m, "model.", "init_state", INIT_STATES)
    require_choice(errors, m, "model.", "dtype", COMPUTE_DTYPES)
    require_choice(errors, m.attention, "model.attention.", "kind", tuple(KINDS))
    if m.encoder.self_attention:
        require_choice(errors, m.encoder, "model.encoder.", "self_attention", tuple(SCORES))
    _validate_reinforce(errors, m.reinforce)
    key_dim = m.encoder.hidden_dim * (2 if m.encoder.bidirectional else 1)
    if m.score in score_names:
        for message in option_errors(m.score, dict(m.attention)):
            errors.append(f"config.model.score={m.score!r} is invalid: {message}")
        if needs_equal_sizes(m.score):
            require(
                errors,
                m.decoder_hidden_dim == key_dim,
                "model.score",
                m.score,
                f"needs query size = key size, but model.decoder_hidden_dim="
                f"{m.decoder_hidden_dim} and the encoder states have size {key_dim} "
                f"(model.encoder.hidden_dim={m.encoder.hidden_dim}, bidirectional="
                f"{m.encoder.bidirectional}); use general/additive/concat or match the sizes",
            )
        if m.attention.kind in KINDS:
            errors += kind_errors(m, is_content_based(m.score))
    if m.init_state == "final":
        require(
            errors,
            m.decoder_hidden_dim == key_dim,
            "model.init_state",
            m.init_state,
            f"needs model.decoder_hidden_dim ({m.decoder_hidden_dim}) = encoder state size "
            f"({key_dim}); use tanh_proj",
        )


def _validate_reinforce(errors, r):
    require_choice(errors, r, "model.reinforce.", "reward", REWARDS)
    require_choice(errors, r, "model.reinforce.", "baseline", BASELINES)
    require(
        errors,
        0 <= r.baseline_decay < 1,
        "model.reinforce.baseline_decay",
        r.baseline_decay,
        "must be in [0, 1)",
    )
    for name in ("policy_weight", "entropy_weight", "baseline_weight"):
        require(errors, r[name] >= 0, f"model.reinforce.{name}", r[name], "must be >= 0")


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises `ConfigError` listing every invalid field, its value and what is allowed."""
    errors: list[str] = []
    require(errors, config.family == FAMILY, "family", config.family, f"must be {FAMILY!r}")
    validate_run_fields(errors, config)
    _validate_data(errors, config.data)
    _validate_model(errors, config.model)
    validate_optim_train(errors, config.optim, config.train, config.data.num_valid)
    require_positive(errors, config.eval, "eval.", ["beam_size"])
    require(
        errors,
        config.eval.length_penalty >= 0,
        "eval.length_penalty",
        config.eval.length_penalty,
        "must be >= 0 (0: no length normalisation)",
    )
    raise_if(errors)


def memory_estimate(config: ml_collections.ConfigDict) -> list:
    """The big allocations of one run (`attnlab.resources`), float32, order of magnitude.

    Shapes: B = data.batch_size, S = longest source (bucketed), T = longest target, V the
    vocabulary, D the decoder state, K = num_seeds (every seed holds its own copy). Training
    keeps, per target step, the decoder's gates, the attention weights and the MLP scores'
    [S, A] tanh pre-activations, and the logits; evaluation decodes up to 2S + 10 steps with
    `eval.beam_size` hypotheses per example."""
    from attnlab.resources import Need

    d, m = config.data, config.model
    e = m.encoder
    synthetic = d.name in TASKS
    longest = max(d.max_len, d.long_max_len if synthetic and d.num_long else 0)
    src = -(-longest // d.bucket_step) * d.bucket_step  # bucketed
    tgt = longest + 1 if synthetic else d.max_tgt_len + 1
    if synthetic:
        vocab = d.vocab_size + 4
    else:
        vocab = d.subword_vocab_size + 4 if d.tokenizer == "sentencepiece" else 512
    dirs = 2 if e.bidirectional else 1
    key, dec, emb, attn = dirs * e.hidden_dim, m.decoder_hidden_dim, m.embed_dim, m.attention
    params = (
        2 * vocab * emb  # embeddings
        + e.num_layers * dirs * 4 * (max(emb, key) + e.hidden_dim + 1) * e.hidden_dim
        + 4 * (emb + 2 * key + dec + 1) * dec  # decoder cell, input feeding, output layer
        + (key + dec + 1) * attn.attn_dim
        + dec * key
        + dec * attn.max_source_len
        + (dec + key + emb) * vocab  # logits
    )
    mlp = m.score in ("additive", "concat", "concat_shared")
    per_example = tgt * (8 * dec + 2 * key + 2 * src * (attn.attn_dim if mlp else 1) + 3 * vocab)
    per_example += src * e.num_layers * dirs * e.hidden_dim * 8  # encoder gates
    k = config.num_seeds
    decode = 2 * src + 10
    beam = config.eval.beam_size
    train = 4 * k * (4 * params + d.batch_size * per_example)
    evaluate = 4 * k * (params + d.eval_batch_size * beam * decode * (src + 2 * vocab + 4 * dec))
    examples = d.num_train + d.num_valid + d.num_test + (d.num_long if synthetic else 0)
    host = examples * (400 + 16 * (src + tgt)) if synthetic else 0
    sizes = ("model.embed_dim", "model.encoder.hidden_dim", "model.decoder_hidden_dim")
    return [
        Need(
            "training (parameters, optimiser state, activations)",
            train,
            ("num_seeds", "data.batch_size", "data.max_len", "data.vocab_size", *sizes),
        ),
        Need(
            "the final evaluation (decoding buffers)",
            evaluate,
            ("eval.beam_size", "data.eval_batch_size", "data.max_len", "num_seeds"),
        ),
        Need("the data set on the host", host, ("data.num_train", "data.max_len")),
    ]
