"""Config defaults, validation messages, config files and the command line's error path."""

import glob
import os

import pytest

from attnlab.config import default_config
from attnlab.config_lib import ConfigError, apply_overrides, load_config
from attnlab.families import validate

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


def test_cli_bad_value_exits_2_with_a_readable_message(cli, tmp_path):
    args = ("train", "--config=configs/reverse.py:quick", "--config.model.score=nope")
    code, _, err = cli(*args, f"--workdir={tmp_path}")
    assert code == 2 and "config.model.score='nope' is invalid" in err
    assert "Traceback" not in err
    code, _, err = cli(*args, f"--workdir={tmp_path}", "--verbose")
    assert code == 2 and "Traceback" in err


def test_cli_misspelt_field_or_wrong_type_is_one_line(cli, tmp_path):
    code, _, err = cli("train", "--config=configs/reverse.py:quick", "--config.model.scor=dot",
                       f"--workdir={tmp_path}")  # fmt: skip
    assert code == 2 and "unknown config field 'scor'" in err and 'Did you mean "score"' in err
    assert err.count("\n") == 1
    code, _, err = cli("train", "--config=configs/reverse.py:quick",
                       "--config.train.num_steps=many", f"--workdir={tmp_path}")  # fmt: skip
    assert code == 2 and "--config.train.num_steps=many" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "args, message",
    [
        ((), "no subcommand; usage: python -m attnlab {train,sweep,compare,predict,config}"),
        (("evaluate",), "unknown subcommand 'evaluate'"),
        (("train", "--config=configs/reverse.py"), "train needs --workdir"),
        (("sweep", "--workdir=x"), "sweep needs --config"),
        (("predict",), "predict needs --workdir"),
        (("compare",), "compare needs at least one DIR"),
        (("train", "--config=configs/reverse.py:bogus", "--workdir=x"),
         "config file 'configs/reverse.py': unknown config argument 'bogus'; valid: quick"),
        (("train", "--config=configs/nope.py:quick", "--workdir=x"),
         "config file 'configs/nope.py' not found"),
        (("compare", "x", "--workdir=y"), "Unknown command line flag 'workdir'"),
        (("train", "--config=configs/reverse.py", "--workdir=x", "extra"),
         "unexpected argument(s) extra for train"),
        (("train", "--config=configs/reverse.py:quick", "--config.model.attention.kind=bogus",
          "--workdir=x"),
         "config.model.attention.kind='bogus' is invalid: must be one of soft, local_m, local_p"),
    ],
)  # fmt: skip
def test_cli_usage_errors_are_one_line_and_exit_2(cli, args, message):
    code, out, err = cli(*args)
    assert code == 2 and message in err and err.count("\n") == 1 and out == ""


@pytest.mark.parametrize(
    "text, message",
    [
        ("x = (\n", "failed: SyntaxError: '(' was never closed"),
        ("X = 1\n", "defines no get_config()"),
    ],
)
def test_cli_a_broken_config_file_is_one_line_and_exit_2(cli, tmp_path, text, message):
    config = tmp_path / "broken.py"
    config.write_text(text)
    code, out, err = cli("train", f"--config={config}", f"--workdir={tmp_path / 'run'}")
    assert code == 2 and message in err and err.count("\n") == 1 and out == ""
    assert not (tmp_path / "run").exists()


def test_cli_help_lists_the_subcommands_and_each_subcommand_its_own_flags(cli):
    code, out, _ = cli("--help")
    assert code == 0 and all(c in out for c in ("train", "sweep", "compare", "predict", "config"))
    code, out, _ = cli("compare", "--help")
    assert code == 0 and "--metric" in out and "--workdir" not in out
    code, out, _ = cli("train", "--help")
    assert code == 0 and "--workdir (required)" in out and "--metric" not in out


def test_cli_config_prints_the_resolved_validated_config(cli):
    code, out, _ = cli("config", "--config=configs/reverse.py:quick", "--config.model.score=dot",
                       "--config.model.decoder_hidden_dim=128")  # fmt: skip
    assert code == 0 and "score: dot" in out and "num_steps: 600" in out
    code, _, err = cli("config", "--config=configs/reverse.py", "--config.model.score=dot")
    assert code == 2 and "needs query size = key size" in err


def test_cli_sweep_dry_run_lists_every_trial_with_common_overrides(cli, tmp_path):
    code, out, err = cli("sweep", "--config=configs/sweeps/scores.py", f"--workdir={tmp_path}",
                         "--sweep.dry_run=true", "--config.train.num_steps=50")  # fmt: skip
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 80
    assert "decoder=luong,score=general,seed=4" in out
    assert all("'train.num_steps': 50" in line for line in lines)
    assert not os.listdir(tmp_path)  # a dry run writes nothing


def test_cli_compare_without_runs_exits_2(cli, tmp_path):
    code, _, err = cli("compare", str(tmp_path))
    assert code == 2 and "no completed runs" in err


def test_every_experiment_config_and_each_trial_validates():
    from attnlab.sweep import load_sweep

    assert len(EXPERIMENT_CONFIGS) >= 2
    for path in EXPERIMENT_CONFIGS:
        for arg in ("", ":dates", ":g2p") if "score_functions" in path else ("",):
            for trial in load_sweep(path + arg):
                validate(apply_overrides(load_config(path + arg), trial.overrides))
