"""Speed benchmark: train and greedy-decode a fixed model for every score x decoder order.

    python scripts/bench.py                          # all scores x both orders (~15 min, 2 cores)
    python scripts/bench.py --scores=additive --decoders=luong --steps=100

Fixed model (the one docs/speed.md reports): bidirectional GRU encoder (hidden 128,
embedding 64), GRU decoder hidden 128, batch 64, `reverse` with lengths 5-30. Scores that need
equal query and key sizes (dot, scaled_dot, concat_shared) run with decoder hidden 256 (= the
bidirectional key size) and are marked so. Columns:
- train tok/s: real target tokens (end token included) per second of training steps, after
  every program has been compiled.
- decode sent/s: validation sentences per second of greedy decoding (batch 64, or
  `--decode-batch`; to the end token or the target's padded length), after compilation.
- compile s: seconds compiling the train programs (one per length bucket) + the decoder.
- train MiB: XLA's peak buffer size of the largest train program (arguments + temporaries).
"""

from __future__ import annotations

import argparse
import functools
import time

import jax

from attnlab import models, runner, train
from attnlab.config import default_config, validate
from attnlab.data.pipeline import get_datasets
from attnlab.devices import Compiled
from attnlab.scores import SCORE_NAMES, needs_equal_sizes


def bench_config(score: str, decoder: str, decode_batch: int = 64):
    c = default_config()
    c.data.name, c.data.min_len, c.data.max_len = "reverse", 5, 30
    c.data.num_long, c.data.num_train, c.data.num_valid = 0, 12800, 1024
    c.data.batch_size, c.data.eval_batch_size, c.data.bucket_step = 64, decode_batch, 16
    c.model.embed_dim, c.model.encoder.hidden_dim = 64, 128
    c.model.decoder, c.model.score = decoder, score
    c.model.decoder_hidden_dim = 256 if needs_equal_sizes(score) else 128
    validate(c)
    return c


def peak_mib(compiled) -> float:
    m = compiled.memory_analysis()
    return (m.argument_size_in_bytes + m.temp_size_in_bytes + m.output_size_in_bytes) / 2**20


def bench_one(score: str, decoder: str, steps: int, decode_batch: int) -> dict:
    c = bench_config(score, decoder, decode_batch)
    data = get_datasets(c.data, c.seed)
    model = models.build_model(c, data.src_vocab.size, data.tgt_vocab.size)
    tx, _ = runner.create_optimizer(c.optim, steps)
    state = runner.create_train_state(functools.partial(models.init_params, model), tx, c.seed)
    loss = train.make_loss(model, c.model.reinforce)
    step_fn = Compiled(runner.make_train_step(loss, tx), donate_argnums=(0,))
    gen_fn = Compiled(train.make_generate_step(model))
    batches = [data.train.batch(i) for i in range(steps)]
    for b in {(b["src"].shape, b["tgt_in"].shape): b for b in batches}.values():
        state, _ = step_fn(state, b)  # compile every train bucket first
    eval_batches = data.eval["validation"]
    jax.block_until_ready(gen_fn(state.params, eval_batches[0]))
    for b in eval_batches:  # and every decode bucket
        jax.block_until_ready(gen_fn(state.params, b))
    start = time.perf_counter()
    for b in batches:
        state, sums = step_fn(state, b)
    jax.block_until_ready(state)
    train_s = time.perf_counter() - start
    tokens = sum(float(b["tgt_len"].sum()) for b in batches)
    start = time.perf_counter()
    for b in eval_batches:
        jax.block_until_ready(gen_fn(state.params, b))
    decode_s = time.perf_counter() - start
    sentences = sum(int((b["tgt_len"] > 0).sum()) for b in eval_batches)
    return {
        "score": score + (" (dec 256)" if needs_equal_sizes(score) else ""),
        "decoder": decoder,
        "train tok/s": tokens / train_s,
        "decode sent/s": sentences / decode_s,
        "compile s": step_fn.compile_seconds + gen_fn.compile_seconds,
        "train MiB": max(peak_mib(p) for p in step_fn.programs.values()),
    }


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scores", default=",".join(SCORE_NAMES))
    parser.add_argument("--decoders", default="bahdanau,luong")
    parser.add_argument("--steps", type=int, default=200, help="timed train steps per config")
    parser.add_argument("--decode-batch", type=int, default=64, help="greedy decoding batch size")
    args = parser.parse_args()
    platform = jax.devices()[0].platform
    print(
        f"jax {jax.__version__} on {platform}, {jax.device_count()} device(s), "
        f"train batch 64, decode batch {args.decode_batch}, {args.steps} timed steps"
    )
    header = "| score | decoder | train tok/s | decode sent/s | compile s | train MiB |"
    print(header + "\n|---|---|---:|---:|---:|---:|", flush=True)
    for decoder in args.decoders.split(","):
        for score in args.scores.split(","):
            r = bench_one(score, decoder, args.steps, args.decode_batch)
            print(
                f"| {r['score']} | {r['decoder']} | {r['train tok/s']:,.0f} | "
                f"{r['decode sent/s']:,.0f} | {r['compile s']:.1f} | {r['train MiB']:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
