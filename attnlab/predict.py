"""Predictions of a trained run for new inputs: `python -m attnlab predict --workdir=DIR`.

The run is rebuilt from its own `config.json` (data only, no code from the work directory is
executed): the same vocabularies and tokenizers (they are a deterministic function of the
config), the model, and the parameters of the latest checkpoint. Each input line is one source:
text for real data sets (a word for g2p, a date for dates, a sentence for tfds:...), space
separated symbols for the synthetic tasks. Unknown tokens become `<unk>` and are counted; an
empty line gives an empty prediction and is counted, never an error. Decoding uses the run's
`eval.beam_size` (greedy when 1), up to `max_len` steps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from attnlab import beam, families, generate, plots
from attnlab.config import FAMILY, validate
from attnlab.config_lib import ConfigError
from attnlab.data.synthetic import TASKS as SYNTHETIC
from attnlab.data.vocab import PAD_ID, UNK_ID

# A source may be this many times the longest the run trained or was tested on (length
# generalisation can be probed) before it is cut.
MAX_SOURCE_FACTOR = 2


@dataclasses.dataclass
class Prediction:
    """One input line's result: its source tokens, the output tokens and text, the attention
    weights `[steps, len(source)]` (one row per output token, plus the end token's row when it
    was produced before `max_len`), the number of unknown source tokens, and how many tokens
    were cut from a source longer than the model takes (`Predictor.max_source_len`)."""

    source: list[str]
    output: list[str]
    text: str
    weights: np.ndarray
    unknown: int
    cut: int = 0


class Predictor:
    """A trained run loaded for prediction (see the module docstring): the latest
    checkpoint's parameters of seed `seed_index` (0: the run's first seed), decoding with
    `beam_size` (None: the run's `eval.beam_size`). `attnlab.load_run(workdir).predictor()`
    builds one too. A missing or damaged `config.json`, or a run of another family, raises
    `ConfigError`; a run without a checkpoint, `CheckpointError`."""

    def __init__(self, workdir: str, seed_index: int = 0, beam_size: int | None = None):
        # On top of today's defaults: a run saved before a field existed still loads.
        self.config = families.saved_config(workdir)
        if families.name_of(self.config) != FAMILY:
            raise ConfigError(
                f"{workdir} holds a run of the {families.name_of(self.config)} family: predict "
                f"reads {FAMILY} runs only"
            )
        validate(self.config)
        c = self.config
        if not 0 <= seed_index < c.num_seeds:
            raise ConfigError(
                f"seed_index={seed_index} is invalid: the run has {c.num_seeds} seeds"
            )
        from attnlab import runner  # the run's experiment and train state layout

        experiment, state, _ = runner.restore(c, workdir)
        self.data, self.model = experiment.data, experiment.model
        self.step = int(np.asarray(state.step)[seed_index])
        self.params = jax.tree.map(lambda x: x[seed_index], state.params)
        self.beam_size = c.eval.beam_size if beam_size is None else beam_size
        if self.beam_size < 1:
            raise ConfigError(f"beam_size={self.beam_size} is invalid: must be >= 1")
        self._decode = jax.jit(self._decode_batch, static_argnums=(3,))
        # Decoding buffers grow with batch x (2 S + 10) x S: a source is cut to the longest one
        # the run saw (its longer split included), times MAX_SOURCE_FACTOR, or the
        # positions a location score can weigh, if fewer.
        d = c.data
        longest = max(d.max_len, d.long_max_len if d.name in SYNTHETIC and d.num_long else 0)
        self.max_source_len = MAX_SOURCE_FACTOR * longest
        if c.model.score == "location":
            self.max_source_len = min(self.max_source_len, c.model.attention.max_source_len)

    def tokenize(self, line: str) -> list[str]:
        """A line's source tokens (characters, pieces or space-separated symbols)."""
        line = line.rstrip("\n")
        if self.data.src_tokenize is not None:
            return self.data.src_tokenize(line)
        return line.split()

    def _decode_batch(self, params, src, src_len, max_len: int):
        if self.beam_size > 1:
            alpha = self.config.eval.length_penalty
            out = beam.beam_search(self.model, params, src, src_len, max_len, self.beam_size, alpha)
            return out.tokens[:, 0], out.alpha[:, 0], out.length[:, 0]
        return generate.greedy(self.model, params, src, src_len, max_len)

    def predict(
        self, lines: Sequence[str], max_len: int = 0, batch_size: int = 64
    ) -> list[Prediction]:
        """Predictions for `lines`, in order. `max_len`: most output tokens (0: twice the
        longest source plus 10); inputs are padded to multiples of `data.bucket_step`."""
        sources = [self.tokenize(line) for line in lines]
        cut = [max(0, len(s) - self.max_source_len) for s in sources]
        sources = [s[: self.max_source_len] for s in sources]
        vocab = self.data.src_vocab
        ids = [vocab.encode(s) if s else np.zeros((0,), np.int32) for s in sources]
        longest = max([len(s) for s in sources], default=0)
        limit = 2 * self.max_source_len + 10
        if max_len > limit:
            raise ConfigError(
                f"max_len={max_len} is invalid: at most {limit} (2 x the longest source + 10)"
            )
        max_len = max_len or 2 * longest + 10
        step = self.config.data.bucket_step
        width = step * max(1, -(-longest // step))
        results = []
        for start in range(0, len(ids), batch_size):
            chunk = ids[start : start + batch_size]
            src = np.full((batch_size, width), PAD_ID, np.int32)
            src_len = np.zeros((batch_size,), np.int32)
            for r, x in enumerate(chunk):
                src[r, : len(x)], src_len[r] = x, len(x)
            tokens, alpha, length = jax.device_get(
                self._decode(self.params, jnp.asarray(src), jnp.asarray(src_len), max_len)
            )
            for r, x in enumerate(chunk):
                source = sources[start + r]
                if not source:
                    results.append(Prediction([], [], "", np.zeros((0, 0)), 0))
                    continue
                n = int(length[r])
                output = self.data.tgt_vocab.decode(tokens[r, :n])
                text = self.data.detokenize(output) if self.data.detokenize else " ".join(output)
                weights = np.asarray(alpha[r, :n, : len(x)])
                unknown = int(np.sum(x == UNK_ID))
                results.append(Prediction(source, output, text, weights, unknown, cut[start + r]))
        return results


def draw(prediction: Prediction, path: str | None = None, title: str | None = None):
    """The attention heat map of one prediction (rows: output tokens and the end token;
    columns: source tokens), saved as a PNG at `path` unless it is None, and returned as a
    matplotlib `Figure` (a notebook shows it)."""
    labels = prediction.output + ["</s>"]
    return plots.plot_attention(
        prediction.weights, prediction.source, labels[: len(prediction.weights)], path, title
    )
