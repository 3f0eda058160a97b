"""The seq2seq family: attention in sequence-to-sequence models, trained by the runner.

What is this family's (the runner, `attnlab.runner`, does the rest): the data (`get_datasets`),
the model (`models.build_model`), the loss (cross-entropy, plus hard attention's REINFORCE
objective), evaluation (teacher-forced loss and alignment metrics, greedy or beam-search exact
match, PER/WER or BLEU/chrF on real data, exact matches per source length), and the attention
heat maps. Metrics: `loss`, `perplexity`, `token_accuracy`, `seq_accuracy`, `align_accuracy`,
`aer`, `cog_offset`, `attention_entropy`, `per`, `wer`, `bleu`, `chrf`, under `eval/` (the
validation split), `eval_long/` (the longer split) and `test/`.

Work directory additions: `attention/*.png` (heat maps of the first validation examples) and
`attention/examples.json` (the same as data); `summary.json` adds `seq_accuracy_by_length`,
`attention_maps`, `decoding` and, for real data, `data_filter`.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from attnlab import beam, devices, families, hard, models, plots, text_metrics, writers
from attnlab import config as config_lib
from attnlab import metrics as metrics_lib
from attnlab.data.pipeline import TrainStream, get_datasets, stack_batches
from attnlab.devices import Compiled
from attnlab.kinds import KINDS
from attnlab.scores import SCORE_NAMES

# Metric-name prefix of each evaluated split (a contract: compare and later tools read these).
SPLIT_PREFIX = {"validation": "eval", "long": "eval_long", "test": "test"}
# Every metric an evaluation may log -> whether higher is better.
_DIRECTIONS = {
    "loss": False,
    "perplexity": False,
    "token_accuracy": True,
    "seq_accuracy": True,
    "align_accuracy": True,
    "aer": False,
    "cog_offset": False,
    "attention_entropy": False,
    "per": False,
    "wer": False,
    "bleu": True,
    "chrf": True,
}
METRICS = {f"{p}/{m}": up for p in SPLIT_PREFIX.values() for m, up in _DIRECTIONS.items()}


def make_loss(model, reinforce_cfg=None):
    """The pure `loss(params, batch, state) -> (loss, (sums, state_updates))` of one seed, which
    `runner.make_train_step` differentiates.

    The loss is the mean cross-entropy over real target tokens. With hard attention the
    positions are sampled (noise from the state's key folded with the step) and the policy's
    REINFORCE objective (`hard.policy_objective`, configured by `reinforce_cfg`, i.e.
    `config.model.reinforce`) is added; its terms are logged apart from the cross-entropy, and
    the moving-average baseline is the state update.
    """
    kind = model.decoder.attention

    def loss_fn(params, batch, state):
        args = (batch["src"], batch["src_len"], batch["tgt_in"])
        if not kind.stochastic:
            logits, _ = models.apply_batch(model, params, *args)
            sums = metrics_lib.token_sums(logits, batch["tgt_out"], batch["tgt_len"])
            return sums["loss_sum"] / jnp.maximum(sums["tokens"], 1.0), (sums, {})
        key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
        width = kind.noise_width(batch["src"].shape[1])  # noise per step
        uniform = hard.draw_uniform(key, batch["tgt_in"].shape + (width,))
        logits, _, policy = models.sample_batch(model, params, *args, uniform)
        sums = metrics_lib.token_sums(logits, batch["tgt_out"], batch["tgt_len"])
        mask = jnp.arange(logits.shape[1])[None, :] < batch["tgt_len"][:, None]
        rewards = hard.step_rewards(logits, batch["tgt_out"], mask, reinforce_cfg.reward)
        policy_loss, moving, policy_sums = hard.policy_objective(
            policy, rewards, mask, state.reward_baseline, state.step, reinforce_cfg
        )
        loss = sums["loss_sum"] / jnp.maximum(sums["tokens"], 1.0) + policy_loss
        return loss, (dict(sums, **policy_sums), {"reward_baseline": moving})

    return loss_fn


def make_eval_step(model, alignment: bool):
    """`eval_step(params, batch) -> sums`: teacher-forced loss/accuracy (+ alignment sums)."""

    def eval_step(params, batch):
        logits, alpha = models.apply_batch(
            model, params, batch["src"], batch["src_len"], batch["tgt_in"]
        )
        sums = metrics_lib.token_sums(logits, batch["tgt_out"], batch["tgt_len"])
        if alignment:
            align = metrics_lib.alignment_sums(
                alpha, batch["align"], batch["src_len"], batch["tgt_len"]
            )
            sums = dict(sums, **align)
        return sums

    return eval_step


def make_generate_step(model, beam_size: int = 1, length_penalty: float = 0.6):
    """`generate_step(params, batch) -> (tokens, alpha, length, correct [B])`: greedy decoding,
    or the best hypothesis of a beam search when `beam_size > 1`; at most as many steps as the
    batch's padded target length."""

    def generate_step(params, batch):
        max_len = batch["tgt_out"].shape[1]
        if beam_size > 1:
            best = beam.beam_search(
                model, params, batch["src"], batch["src_len"], max_len, beam_size, length_penalty
            )
            tokens, alpha, length = best.tokens[:, 0], best.alpha[:, 0], best.length[:, 0]
        else:
            tokens, alpha, length = models.generate_batch(
                model, params, batch["src"], batch["src_len"], max_len
            )
        correct = metrics_lib.sequence_correct(tokens, batch["tgt_out"], batch["tgt_len"])
        return tokens, alpha, length, correct

    return generate_step


class TextScorer:
    """Text metrics of one split's generated outputs, per seed: PER/WER against every
    reference (g2p) or corpus BLEU/chrF (translation), from `Datasets` of a real data set."""

    def __init__(self, data, split: str, num_seeds: int):
        self.kind, self.vocab, self.detokenize = data.text_metrics, data.tgt_vocab, data.detokenize
        self.references = data.references[split]
        self.sums = [{} for _ in range(num_seeds)]
        self.hypotheses = [[] for _ in range(num_seeds)]
        self.row = 0

    def add(self, tokens, length, tgt_len) -> None:
        """One batch of outputs: `tokens [K, B, T]`, `length [K, B]`, `tgt_len [B]`."""
        rows = [r for r in range(len(tgt_len)) if tgt_len[r] > 0]
        refs = self.references[self.row : self.row + len(rows)]
        self.row += len(rows)
        for k in range(len(self.sums)):
            hyps = [self.vocab.decode(tokens[k, r, : length[k, r]]) for r in rows]
            if self.kind == "g2p":
                sums = text_metrics.g2p_error_sums(hyps, refs)
                self.sums[k] = metrics_lib.add(self.sums[k], sums)
            else:
                self.hypotheses[k] += [self.detokenize(h) for h in hyps]

    def metrics(self, k: int) -> dict:
        if self.kind == "g2p":
            return {"per": text_metrics.per(self.sums[k]), "wer": text_metrics.wer(self.sums[k])}
        refs = [self.detokenize(r[0]) for r in self.references[: self.row]]
        hyps = self.hypotheses[k]
        return {"bleu": text_metrics.bleu(hyps, refs), "chrf": text_metrics.chrf(hyps, refs)}


def evaluate(programs, params, batches, prefix: str, mesh, num_seeds: int, text=None):
    """Evaluates every seed's model on one split.

    Returns per seed (lists of length `num_seeds`) the metrics under `prefix/` and the exact
    matches of the generated output by source length (`{length: [correct, total]}`), plus the
    per-batch outputs `(tokens, alpha, length)` with a leading seed axis. `text`: a `TextScorer`
    that adds PER/WER or BLEU/chrF.
    """
    totals, by_length, outputs = [{} for _ in range(num_seeds)], [{} for _ in range(num_seeds)], []
    for batch in batches:
        sharded = devices.shard_batch(batch, mesh)
        sums = devices.to_host(programs["eval"](params, sharded))
        tokens, alpha, length, correct = programs["generate"](params, sharded)
        correct = devices.to_host(correct)
        if text is not None:
            text.add(*devices.to_host((tokens, length)), batch["tgt_len"])
        for k in range(num_seeds):
            seq = {"seq_correct": correct[k].sum(), "sequences": (batch["tgt_len"] > 0).sum()}
            totals[k] = metrics_lib.add(metrics_lib.add(totals[k], _seed_slice(sums, k)), seq)
            metrics_lib.accuracy_by_length(
                correct[k], batch["src_len"], batch["tgt_len"], by_length[k]
            )
        outputs.append((tokens, alpha, length))
    metrics = [metrics_lib.normalize(t) for t in totals]
    if text is not None:
        metrics = [dict(m, **text.metrics(k)) for k, m in enumerate(metrics)]
    metrics = [{f"{prefix}/{n}": v for n, v in m.items()} for m in metrics]
    return metrics, outputs, by_length


def _seed_slice(tree, k: int):
    return jax.tree.map(lambda x: x[k], tree)


def draw_heatmaps(workdir: str, data, outputs, count: int, seed: int = 0) -> list[str]:
    """PNG heat maps of the greedy attention for the first `count` validation examples.

    The same examples are saved as data in `attention/examples.json` (source and output tokens,
    weights `[T, S]`), which `compare` reads to put one example side by side across variants.
    `seed` picks the model along the seed axis of `outputs`.
    """
    paths, examples, directory = [], [], os.path.join(workdir, "attention")
    os.makedirs(directory, exist_ok=True)
    batch = data.eval["validation"][0]
    tokens, alpha, length = (np.asarray(x)[seed] for x in outputs["validation"][0])
    for row in range(min(count, int(np.sum(batch["tgt_len"] > 0)))):
        src_len, n = int(batch["src_len"][row]), int(length[row])
        src = data.src_vocab.decode(batch["src"][row, :src_len], strip=False)
        hyp = data.tgt_vocab.decode(tokens[row, :n], strip=False)
        path = os.path.join(directory, f"validation_{row:02d}.png")
        weights = alpha[row, :n, :src_len]
        plots.plot_attention(weights, src, hyp, path, title=f"validation #{row}")
        paths.append(path)
        examples.append({"source": src, "output": hyp, "weights": weights.tolist()})
    writers.write_json_atomic(os.path.join(directory, "examples.json"), examples)
    return paths


class Seq2SeqExperiment(families.Experiment):
    """One seq2seq run's data, model, loss and evaluation (see `families.Experiment`)."""

    def __init__(self, config, mesh):
        self.config, self.mesh = config, mesh
        self.num_seeds = config.num_seeds
        self.data = data = get_datasets(config.data, config.seed)
        self.model = model = models.build_model(config, data.src_vocab.size, data.tgt_vocab.size)
        self.loss = make_loss(model, config.model.reinforce)
        # Alignment metrics where the data has gold alignments (synthetic tasks, dates).
        has_gold = any(ex.align is not None for ex in data.examples["validation"])
        alignment = config.model.score != "none" and has_gold
        self.programs = {
            "eval": Compiled(jax.vmap(make_eval_step(model, alignment), in_axes=(0, None))),
            "generate": Compiled(jax.vmap(make_generate_step(model), in_axes=(0, None))),
        }
        ev = config.eval
        if ev.beam_size > 1:  # the final evaluation decodes with beam search
            step = make_generate_step(model, ev.beam_size, ev.length_penalty)
            self.programs["final_generate"] = Compiled(jax.vmap(step, in_axes=(0, None)))

    def init_params(self, rng):
        return models.init_params(self.model, rng)

    def train_stream(self, seed: int):
        train = self.data.train
        if seed == self.config.seed:
            return train
        return TrainStream(train.examples, train.batch_size, train.bucket_step, seed)

    def stack_batches(self, batches):
        return stack_batches(batches)

    def train_record(self, sums: dict) -> dict:
        return {f"train/{k}": v for k, v in metrics_lib.normalize(sums).items()}

    def evaluate(self, params, final: bool = False):
        """Validation and longer split (periodic), plus test and the final decoding (final)."""
        splits = ("validation", "long", "test") if final else ("validation", "long")
        k = self.num_seeds
        results, outputs, by_length = [{} for _ in range(k)], {}, [{} for _ in range(k)]
        programs = self.programs
        if final and "final_generate" in programs:
            programs = dict(programs, generate=programs["final_generate"])
        for split in splits:
            if split in self.data.eval:
                prefix = SPLIT_PREFIX[split]
                text = TextScorer(self.data, split, k) if self.data.text_metrics else None
                metrics, outputs[split], tables = evaluate(
                    programs, params, self.data.eval[split], prefix, self.mesh, k, text
                )
                for seed in range(k):
                    results[seed].update(metrics[seed])
                    by_length[seed][prefix] = tables[seed]
        # greedy exact matches per source length: {prefix: {length: [correct, total]}}
        extras = [{"seq_accuracy_by_length": table} for table in by_length]
        return results, extras, outputs

    def artefacts(self, run_dir: str, outputs, k: int) -> dict:
        shown = {"validation": [devices.to_host(outputs["validation"][0])]}  # the first batch
        count = self.config.train.num_heatmaps
        paths = draw_heatmaps(run_dir, self.data, shown, count, seed=k)
        return {"attention_maps": [os.path.relpath(p, run_dir) for p in paths]}

    def summary_fields(self) -> dict:
        ev = self.config.eval
        fields = {
            "decoding": (
                f"beam {ev.beam_size}, length penalty {ev.length_penalty}"
                if ev.beam_size > 1
                else "greedy"
            )
        }
        if self.data.filter_counts:  # real data: what the length policy dropped or cut
            fields["data_filter"] = self.data.filter_counts
        return fields


class Seq2SeqFamily(families.Family):
    """Attention in sequence-to-sequence models (`attnlab.config` is its config)."""

    name = config_lib.FAMILY
    metrics = METRICS
    report_metrics = (
        "eval/seq_accuracy",
        "eval/token_accuracy",
        "eval/align_accuracy",
        "eval_long/seq_accuracy",
        "test/seq_accuracy",
        "eval/loss",
        # real data sets: shown where the runs have them
        "eval/wer",
        "eval/per",
        "test/wer",
        "test/per",
        "eval/bleu",
        "eval/chrf",
        "test/bleu",
        "test/chrf",
    )
    facet_field = "model.decoder"
    fixed_colors = (*SCORE_NAMES, *KINDS)
    throughput = ("tokens", "train/tokens_per_sec")
    progress_keys = {"loss": "train/loss", "tok/s": "train/tokens_per_sec"}
    brief_keys = ("train/loss", "eval/loss", "eval/seq_accuracy", "eval/align_accuracy")

    config_module = config_lib
    experiment_class = Seq2SeqExperiment


FAMILY = families.register(Seq2SeqFamily())
