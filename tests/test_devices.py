"""Data parallelism: a run on 4 (fake CPU) devices matches the same run on 1 device, and two
processes with 2 devices each (`jax.distributed`) match one process with 4."""

import json
import os
import subprocess
import sys

import pytest

from attnlab import devices
from attnlab.config_lib import ConfigError

SCRIPT = """
import json, os, sys
import jax
if len(sys.argv) > 2:  # coordinator address, process count, process id
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
sys.path.insert(0, os.path.join(os.getcwd(), "tests"))
from test_devices import tiny_config
from attnlab import runner
summary = runner.train_and_evaluate(tiny_config(), sys.argv[1])
summary["device_count"] = jax.device_count()
print("SUMMARY" + json.dumps(summary))
"""
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config():
    """20 steps of a 16-unit model: the runs these tests compare."""
    from attnlab.config import default_config, quick

    c = quick(default_config())
    c.data.num_train, c.data.num_valid, c.data.num_test, c.data.num_long = 640, 64, 64, 64
    c.data.eval_batch_size = 64
    c.model.encoder.hidden_dim = c.model.decoder_hidden_dim = c.model.attention.attn_dim = 16
    c.train.num_steps, c.train.log_every, c.train.eval_every, c.train.ckpt_every = 20, 10, 20, 20
    c.train.num_heatmaps = 0
    return c


def _env(device_count):
    return dict(
        os.environ,
        XLA_FLAGS=f"--xla_force_host_platform_device_count={device_count}",
        JAX_PLATFORMS="cpu",
        JAX_DISABLE_MOST_OPTIMIZATIONS="true",
    )


def _summary(stdout):
    line = next(x for x in stdout.splitlines() if x.startswith("SUMMARY"))
    return json.loads(line[len("SUMMARY") :])


def _run(workdir, device_count):
    env = _env(device_count)
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(workdir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return _summary(out.stdout)


def test_four_devices_match_one_device(tmp_path):
    import jax

    from attnlab import runner

    assert jax.device_count() == 1  # this process: the one-device run
    one = runner.train_and_evaluate(tiny_config(), str(tmp_path / "one"))
    four = _run(tmp_path / "four", 4)
    assert four["device_count"] == 4
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


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path):
    """Multi-host in miniature: 2 processes x 2 CPU devices, one mesh, one shared workdir."""
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        address = f"localhost:{s.getsockname()[1]}"
    workdir = tmp_path / "two_processes"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT, str(workdir), address, "2", str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(2),
            cwd=REPO,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-2000:]
    first, second = (_summary(out) for out, _ in outputs)
    one = _run(tmp_path / "one", 4)
    assert first["device_count"] == second["device_count"] == 4
    for key in ("eval/loss", "eval_long/loss", "test/loss", "test/seq_accuracy"):
        assert first[key] == pytest.approx(one[key], rel=1e-4), key
        assert second[key] == first[key], key  # every process sees the same global result
    written = json.load(open(workdir / "summary.json"))  # written once, by process 0
    assert written["eval/loss"] == first["eval/loss"]
    steps = [json.loads(x)["step"] for x in open(workdir / "metrics.jsonl")]
    assert steps == [10, 20]  # one writer: no line written twice
    assert sorted(os.listdir(workdir / "checkpoints")) == ["20"]
