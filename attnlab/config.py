"""The one base config: every field attnlab reads, its default, and why.

`configs/<experiment>.py` files call `default_config()` and override only what differs. Every
field can be overridden on the command line (`--config.model.score=general`). `validate()` runs
before any work and reports every bad field at once, naming the value and what is allowed.
"""

from __future__ import annotations

import importlib.util
import os

import ml_collections

from attnlab.data.synthetic import TASKS
from attnlab.decoders import ATTENTION_KINDS, FLOWS, INIT_STATES
from attnlab.hard import POLICIES as HARD_POLICIES
from attnlab.rnn import CELLS
from attnlab.scores import SCORE_NAMES

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine")
SEED_BATCHES = ("shared", "independent")
SAME_SIZE_SCORES = ("dot", "scaled_dot", "concat_shared")
REAL_DATA = ("g2p", "dates")
REWARDS = ("step_loss", "sequence_accuracy")
BASELINES = ("moving_average", "learned", "none")
OVERLONG = ("drop", "truncate")
TOKENIZERS = ("char", "sentencepiece")
SUBWORD_MODELS = ("unigram", "bpe")


class ConfigError(ValueError):
    """A config value is invalid; the message names each field, its value and what is allowed."""


def default_config() -> ml_collections.ConfigDict:
    """Every field with its default; a trained `reverse` model in a few minutes on a CPU."""
    c = ml_collections.ConfigDict()
    c.seed = 0  # parameter init and batch order; the data itself comes from data.seed
    c.num_seeds = 1  # K > 1: seeds seed..seed+K-1 trained together in one vmapped program
    c.seed_batches = "shared"  # shared: every seed sees the same batches | independent

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

    c.optim = o = ml_collections.ConfigDict()
    o.optimizer = "adam"  # adam | adamw | sgd
    o.learning_rate = 3e-3  # peak learning rate; Adam at 3e-3 trains these small RNNs fast
    o.schedule = "constant"  # constant | cosine (decays to 0 at train.num_steps)
    o.warmup_steps = 100  # linear warm-up from 0 to the peak
    o.grad_clip_norm = 1.0  # clip by global norm (0 = off): RNN gradients spike late otherwise
    o.weight_decay = 0.0  # adamw only
    o.momentum = 0.9  # sgd only

    c.train = t = ml_collections.ConfigDict()
    t.num_steps = 4000  # optimisation steps
    t.log_every = 100  # train metrics to metrics.jsonl (the only host syncs in the loop)
    t.eval_every = 1000  # validation + longer split (a multiple of log_every)
    t.ckpt_every = 1000  # orbax checkpoint; a re-run resumes from the latest one
    t.max_to_keep = 2  # the last checkpoints kept (resume uses the latest)
    t.keep_best = 0  # also keep this many best checkpoints by best_metric (at eval steps)
    t.best_metric = "eval/seq_accuracy"  # loss, perplexity, aer, cog_offset, per, wer: lower wins
    t.num_heatmaps = 4  # validation examples drawn to attention/*.png at the end
    t.tensorboard = True  # also write TensorBoard events (scalars + hparams) to workdir/tb
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


def require(errors: list[str], ok: bool, field: str, value, allowed: str) -> None:
    """Appends `config.<field>=<value> is invalid: <allowed>` to `errors` unless `ok` (every
    family's `validate` collects all errors this way, then raises once)."""
    if not ok:
        errors.append(f"config.{field}={value!r} is invalid: {allowed}")


def require_positive(errors, cfg, prefix, names):
    """Each field of `cfg` in `names` must be an int > 0."""
    for name in names:
        value = cfg[name]
        require(
            errors, isinstance(value, int) and value > 0, f"{prefix}{name}", value, "must be > 0"
        )


def require_full_batch(errors, d):
    """The training set must fill one batch (training uses full batches only)."""
    require(
        errors,
        d.num_train >= d.batch_size,
        "data.num_train",
        d.num_train,
        f"must be >= data.batch_size ({d.batch_size})",
    )


def require_choice(errors, cfg, prefix, name, choices):
    """Field `name` of `cfg` must be one of `choices`."""
    value = cfg[name]
    require(
        errors, value in choices, f"{prefix}{name}", value, f"must be one of {', '.join(choices)}"
    )


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


def _validate_model(errors, m):
    require_positive(errors, m, "model.", ["embed_dim", "decoder_hidden_dim"])
    require_positive(errors, m.encoder, "model.encoder.", ["hidden_dim", "num_layers"])
    require_positive(errors, m.attention, "model.attention.", ["attn_dim", "max_source_len"])
    require_choice(errors, m.encoder, "model.encoder.", "cell", CELLS)
    require_choice(errors, m, "model.", "decoder_cell", CELLS)
    require_choice(errors, m, "model.", "decoder", FLOWS)
    require_choice(errors, m, "model.", "score", SCORE_NAMES)
    require_choice(errors, m, "model.", "init_state", INIT_STATES)
    require_choice(errors, m.attention, "model.attention.", "kind", ATTENTION_KINDS)
    if m.encoder.self_attention:
        require_choice(
            errors, m.encoder, "model.encoder.", "self_attention", tuple(SCORE_NAMES[:-1])
        )
    require_positive(errors, m.attention, "model.attention.", ["window"])
    require_choice(errors, m.attention, "model.attention.", "hard_policy", HARD_POLICIES)
    require(
        errors,
        m.attention.hard_std > 0,
        "model.attention.hard_std",
        m.attention.hard_std,
        "must be > 0",
    )
    _validate_reinforce(errors, m.reinforce)
    if m.attention.kind == "hard":
        require(
            errors,
            m.score != "none",
            "model.attention.kind",
            "hard",
            "needs a score to sample from (model.score is 'none')",
        )
    elif m.attention.kind != "soft":
        require(
            errors,
            m.decoder == "luong" and m.score not in ("location", "none"),
            "model.attention.kind",
            m.attention.kind,
            f"local attention needs model.decoder=luong and a content-based score (got "
            f"decoder={m.decoder!r}, score={m.score!r})",
        )
    key_dim = m.encoder.hidden_dim * (2 if m.encoder.bidirectional else 1)
    if m.score in SAME_SIZE_SCORES:
        require(
            errors,
            m.decoder_hidden_dim == key_dim,
            "model.score",
            m.score,
            f"needs query size = key size, but model.decoder_hidden_dim={m.decoder_hidden_dim}"
            f" and the encoder states have size {key_dim} (model.encoder.hidden_dim="
            f"{m.encoder.hidden_dim}, bidirectional={m.encoder.bidirectional}); use "
            "general/additive/concat or match the sizes",
        )
    if m.init_state == "final":
        require(
            errors,
            m.decoder_hidden_dim == key_dim,
            "model.init_state",
            m.init_state,
            f"needs model.decoder_hidden_dim ({m.decoder_hidden_dim}) = encoder state size "
            f"({key_dim}); use tanh_proj",
        )
    if m.attention.normalize:
        require(
            errors,
            not m.attention.zero_v,
            "model.attention.normalize",
            True,
            "divides by ||v||, so it needs model.attention.zero_v=False",
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


def validate_optim_train(errors, o, t):
    """The `optim` and `train` sections (shared by every model family)."""
    require(errors, t.keep_best >= 0, "train.keep_best", t.keep_best, "must be >= 0 (0 = off)")
    require(
        errors,
        "/" in t.best_metric,
        "train.best_metric",
        t.best_metric,
        "must name an evaluated metric, e.g. eval/seq_accuracy or eval/loss",
    )
    require_choice(errors, o, "optim.", "optimizer", OPTIMIZERS)
    require_choice(errors, o, "optim.", "schedule", SCHEDULES)
    require(errors, o.learning_rate > 0, "optim.learning_rate", o.learning_rate, "must be > 0")
    require(errors, o.warmup_steps >= 0, "optim.warmup_steps", o.warmup_steps, "must be >= 0")
    require(
        errors,
        o.grad_clip_norm >= 0,
        "optim.grad_clip_norm",
        o.grad_clip_norm,
        "must be >= 0 (0 = off)",
    )
    require(errors, o.weight_decay >= 0, "optim.weight_decay", o.weight_decay, "must be >= 0")
    require_positive(
        errors, t, "train.", ["num_steps", "log_every", "eval_every", "ckpt_every", "max_to_keep"]
    )
    require(errors, t.num_heatmaps >= 0, "train.num_heatmaps", t.num_heatmaps, "must be >= 0")
    if t.log_every > 0 and t.eval_every > 0:
        require(
            errors,
            t.eval_every % t.log_every == 0,
            "train.eval_every",
            t.eval_every,
            f"must be a multiple of train.log_every ({t.log_every})",
        )


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises `ConfigError` listing every invalid field, its value and what is allowed.

    A config of another model family (`family = "ram"`: the recurrent attention model) is
    checked by that family's own `validate`."""
    if config.get("family") == "ram":
        from attnlab.ram.config import validate as validate_ram

        return validate_ram(config)
    errors: list[str] = []
    require(
        errors,
        isinstance(config.seed, int) and config.seed >= 0,
        "seed",
        config.seed,
        "must be an int >= 0",
    )
    require(errors, config.num_seeds >= 1, "num_seeds", config.num_seeds, "must be >= 1")
    require_choice(errors, config, "", "seed_batches", SEED_BATCHES)
    _validate_data(errors, config.data)
    _validate_model(errors, config.model)
    validate_optim_train(errors, config.optim, config.train)
    require_positive(errors, config.eval, "eval.", ["beam_size"])
    require(
        errors,
        config.eval.length_penalty >= 0,
        "eval.length_penalty",
        config.eval.length_penalty,
        "must be >= 0 (0: no length normalisation)",
    )
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))


def load_config(spec: str) -> ml_collections.ConfigDict:
    """Loads `path/to/config.py[:arg]` the way `--config=` does: `get_config(arg)` of the file.

    Only the named file is executed. Raises `ConfigError` when the file is missing or has no
    `get_config`.
    """
    path, _, arg = spec.partition(":")
    module = load_config_module(path)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"config file '{path}' defines no get_config()")
    return module.get_config(arg) if arg else module.get_config()


def load_config_module(path: str):
    """Executes the config file at `path` (and nothing else) and returns it as a module."""
    if not os.path.isfile(path):
        raise ConfigError(f"config file '{path}' not found")
    module_spec = importlib.util.spec_from_file_location("_attnlab_config", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def flatten(tree: dict, prefix: str = "") -> dict:
    """Nested dict -> dotted keys: `{"model": {"score": "dot"}}` -> `{"model.score": "dot"}`."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def apply_overrides(
    config: ml_collections.ConfigDict, overrides: dict
) -> ml_collections.ConfigDict:
    """Sets dotted fields (`{"model.score": "dot"}`) as `--config.model.score=dot` would; an
    unknown field raises (the config is locked)."""
    for key, value in overrides.items():
        section, _, name = key.rpartition(".")
        target = config
        for part in section.split(".") if section else []:
            target = target[part]
        target[name] = value
    return config
