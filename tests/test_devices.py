"""Data parallelism: a run on 4 (fake CPU) devices matches the same run on 1 device."""

import json
import os
import subprocess
import sys

import pytest

from attnlab import devices
from attnlab.config import ConfigError

SCRIPT = """
import json, sys
import jax
from attnlab import train
from attnlab.config import default_config, quick
c = quick(default_config())
c.data.num_train, c.data.num_valid, c.data.num_test, c.data.num_long = 640, 64, 64, 64
c.data.eval_batch_size = 64
c.model.encoder.hidden_dim = c.model.decoder_hidden_dim = c.model.attention.attn_dim = 16
c.train.num_steps, c.train.log_every, c.train.eval_every, c.train.ckpt_every = 20, 10, 20, 20
c.train.num_heatmaps = 0
summary = train.train_and_evaluate(c, sys.argv[1])
summary["device_count"] = jax.device_count()
print("SUMMARY" + json.dumps(summary))
"""


def _run(workdir, device_count):
    env = dict(
        os.environ,
        XLA_FLAGS=f"--xla_force_host_platform_device_count={device_count}",
        JAX_PLATFORMS="cpu",
        JAX_DISABLE_MOST_OPTIMIZATIONS="true",
    )
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(workdir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("SUMMARY"))
    return json.loads(line[len("SUMMARY") :])


def test_four_devices_match_one_device(tmp_path):
    one = _run(tmp_path / "one", 1)
    four = _run(tmp_path / "four", 4)
    assert one["device_count"] == 1 and four["device_count"] == 4
    for key in ("eval/loss", "eval_long/loss", "test/loss"):
        assert four[key] == pytest.approx(one[key], rel=1e-4), key
    for key in ("eval/token_accuracy", "test/token_accuracy", "eval/align_accuracy"):
        assert four[key] == pytest.approx(one[key], abs=0.01), key


def test_batch_must_split_evenly_over_devices():
    import jax

    mesh = devices.make_mesh([jax.devices()[0]] * 1)
    devices.check_batch_sizes(mesh, batch_size=7)  # one device takes any size
    fake = type("FakeMesh", (), {"devices": type("D", (), {"size": 4})()})()
    with pytest.raises(ConfigError, match="batch_size=6 is invalid.*4 devices"):
        devices.check_batch_sizes(fake, batch_size=6)
