"""Self-attention over the encoder states: masked, residual + layer norm, against NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnlab.encoders import Encoder


def _encoder(score):
    return Encoder(vocab_size=10, embed_dim=4, hidden_dim=3, self_attention=score)


@pytest.mark.parametrize("score", ["dot", "general", "additive"])
def test_self_attention_layer_matches_numpy_and_masks_padding(score):
    src = jnp.array([4, 5, 6, 7, 0, 0], jnp.int32)
    enc = _encoder(score)
    params = enc.init(jax.random.key(0), src, jnp.array(4))["params"]
    out, final, mask = enc.apply({"params": params}, src, jnp.array(4))
    plain = Encoder(vocab_size=10, embed_dim=4, hidden_dim=3)
    rnn_params = {k: v for k, v in params.items() if k != "self_attention"}
    h, _, _ = plain.apply({"params": rnn_params}, src, jnp.array(4))
    h = np.asarray(h, np.float64)[:4]
    layer = params["self_attention"]
    p = next((v for k, v in layer.items() if k != "norm"), {})  # the score's parameters
    if score == "dot":
        e = h @ h.T
    elif score == "general":
        e = h @ np.asarray(p["W"]) @ h.T  # e_ij = h_i^T W h_j
    else:
        wq, wk, v = (np.asarray(p[k]) for k in ("W_q", "W_k", "v"))
        e = np.tanh((h @ wq)[:, None, :] + (h @ wk)[None, :, :]) @ v
    alpha = np.exp(e - e.max(1, keepdims=True))
    alpha /= alpha.sum(1, keepdims=True)
    x = h + alpha @ h
    x = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-6)
    x = x * np.asarray(layer["norm"]["scale"]) + np.asarray(layer["norm"]["bias"])
    np.testing.assert_allclose(np.asarray(out)[:4], x, rtol=1e-4, atol=1e-5)
    assert np.all(np.asarray(out)[4:] == 0.0)  # padded positions stay zero
    # Padding never influences real positions: change the padded tokens, same output.
    other = enc.apply({"params": params}, src.at[4:].set(9), jnp.array(4))[0]
    np.testing.assert_allclose(np.asarray(other)[:4], np.asarray(out)[:4], rtol=1e-6)


def test_self_attention_trains_through_the_runner(tmp_path):
    from test_train import tiny_config

    from attnlab import runner

    config = tiny_config()
    config.model.encoder.self_attention = "general"
    config.train.num_steps = 20
    summary = runner.train_and_evaluate(config, str(tmp_path))
    assert summary["status"] == "completed" and np.isfinite(summary["eval/loss"])
