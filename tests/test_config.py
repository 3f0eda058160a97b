"""Config defaults, validation messages, config files and the command line's error path."""

import glob
import os
import subprocess
import sys

import pytest

from attnlab.config import ConfigError, apply_overrides, default_config, load_config, validate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_FILES = sorted(glob.glob(os.path.join(REPO, "configs", "*.py")))
EXPERIMENT_CONFIGS = sorted(glob.glob(os.path.join(REPO, "experiments", "*", "config.py")))


def test_every_config_file_and_its_quick_variant_validate():
    assert len(CONFIG_FILES) >= 3
    for path in CONFIG_FILES:
        validate(load_config(path))
        validate(load_config(path + ":quick"))


def test_unknown_config_argument_is_refused():
    with pytest.raises(ValueError, match="valid: quick"):
        load_config(os.path.join(REPO, "configs", "reverse.py") + ":fast")


def _error(**changes):
    config = default_config()
    for dotted, value in changes.items():
        section, _, name = dotted.rpartition("__")
        target = config
        for part in section.split("__") if section else []:
            target = target[part]
        target[name] = value
    with pytest.raises(ConfigError) as info:
        validate(config)
    return str(info.value)


def test_unknown_score_names_the_valid_ones():
    msg = _error(model__score="bilinear")
    assert "config.model.score='bilinear'" in msg
    for name in ("dot", "general", "additive", "concat", "location", "none"):
        assert name in msg


def test_negative_and_zero_sizes_are_named():
    msg = _error(model__encoder__hidden_dim=-4)
    assert "config.model.encoder.hidden_dim=-4" in msg and "> 0" in msg
    assert "config.data.batch_size=0" in _error(data__batch_size=0)


def test_dot_with_mismatched_sizes_names_both_sizes():
    # Bidirectional encoder of 128 per direction gives keys of 256; the decoder state is 100.
    msg = _error(model__score="dot", model__decoder_hidden_dim=100)
    assert "decoder_hidden_dim=100" in msg and "256" in msg


def test_cross_field_rules():
    assert "multiple of train.log_every" in _error(train__eval_every=150)
    assert "must exceed data.max_len" in _error(data__long_min_len=10)
    assert "zero_v=False" in _error(model__attention__normalize=True)
    assert "data.min_len" in _error(data__min_len=30)


def test_all_errors_are_reported_at_once():
    msg = _error(model__score="nope", data__name="translate", optim__learning_rate=-1.0)
    assert "model.score" in msg and "data.name" in msg and "optim.learning_rate" in msg


def test_dot_with_matching_sizes_is_valid():
    config = default_config()
    config.model.score = "dot"
    config.model.decoder_hidden_dim = 256
    validate(config)


def _cli(*args):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run(
        [sys.executable, "-m", "attnlab", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )


def test_cli_bad_value_exits_2_with_a_readable_message(tmp_path):
    result = _cli(
        "train",
        "--config=configs/reverse.py:quick",
        "--config.model.score=nope",
        f"--workdir={tmp_path}",
    )
    assert result.returncode == 2
    assert "config.model.score='nope' is invalid" in result.stderr
    assert "Traceback" not in result.stderr
    verbose = _cli(
        "train",
        "--config=configs/reverse.py:quick",
        "--config.model.score=nope",
        f"--workdir={tmp_path}",
        "--verbose",
    )
    assert verbose.returncode == 2 and "Traceback" in verbose.stderr


def test_cli_misspelt_field_is_refused(tmp_path):
    result = _cli(
        "train",
        "--config=configs/reverse.py:quick",
        "--config.model.scor=dot",
        f"--workdir={tmp_path}",
    )
    assert result.returncode == 2 and "scor" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 3
    wrong_type = _cli(
        "train",
        "--config=configs/reverse.py:quick",
        "--config.train.num_steps=many",
        f"--workdir={tmp_path}",
    )
    assert wrong_type.returncode == 2 and "num_steps" in wrong_type.stderr


def test_cli_sweep_dry_run_lists_every_trial_with_common_overrides(tmp_path):
    result = _cli(
        "sweep",
        "--config=configs/sweeps/scores.py",
        f"--workdir={tmp_path}",
        "--sweep.dry_run=true",
        "--config.train.num_steps=50",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 80
    assert "decoder=luong,score=general,seed=4" in result.stdout
    assert all("'train.num_steps': 50" in line for line in lines)
    assert not os.listdir(tmp_path)  # a dry run writes nothing


def test_cli_compare_without_runs_exits_2(tmp_path):
    result = _cli("compare", str(tmp_path))
    assert result.returncode == 2
    assert "no completed runs" in result.stderr


def test_cli_unknown_command_is_a_usage_error():
    result = _cli("evaluate")
    assert result.returncode != 0 and "train,sweep,compare" in result.stderr


def test_every_experiment_config_and_each_trial_validates():
    from attnlab.sweep import load_sweep

    assert len(EXPERIMENT_CONFIGS) >= 2
    for path in EXPERIMENT_CONFIGS:
        for arg in ("", ":sort") if "score_functions" in path else ("",):
            for trial in load_sweep(path + arg):
                validate(apply_overrides(load_config(path + arg), trial.overrides))


def test_cli_missing_config_file_exits_2(tmp_path):
    result = _cli("train", "--config=configs/nope.py:quick", f"--workdir={tmp_path}")
    assert result.returncode == 2 and "configs/nope.py" in result.stderr
    assert "Traceback" not in result.stderr
