"""One name per concept across commands: renamed options keep their old spelling (hidden from --help), missing
parent directories are made, and `sae train --holdout` / `sae score` agree on which rows are held out."""
import functools
import json

import numpy as np
import pytest

import monosemantic.cli as cli
from monosemantic.data import load_data


def run(capsys, *args, code=0):
    with pytest.raises(SystemExit) as e:
        cli.main([str(a) for a in args])
    out = capsys.readouterr()
    assert e.value.code == code, out.err
    return out


class Called(Exception):
    pass


def capture(monkeypatch, target, name):
    """Replace the experiment `name` of `target` with one that records its arguments and stops the command."""
    seen = []

    @functools.wraps(getattr(target, name))  # keeps the signature the CLI reads its defaults from
    def fake(*args, **kw):
        seen.append((args, kw))
        raise Called

    monkeypatch.setattr(target, name, fake)
    return seen


def called_with(capsys, seen, *args):
    with pytest.raises(Called):
        cli.main([str(a) for a in args])
    capsys.readouterr()
    return seen.pop()


def test_data_synth_old_and_new_spellings_draw_the_same_data(tmp_path, capsys):
    run(capsys, "data", "synth", "--n", 16, "--m", 8, "--k", 2, "--samples", 300, "--out", tmp_path / "new.npz")
    run(capsys, "data", "synth", "--n-features", 16, "--d", 8, "--k", 2, "--samples", 300, "--out", tmp_path / "old.npz")
    new, old = load_data(tmp_path / "new.npz"), load_data(tmp_path / "old.npz")
    assert new.X.shape == (300, 8) and new.F.shape == (16, 8)
    np.testing.assert_array_equal(new.X, old.X)
    kw = ["data", "synth", "--kind", "sharkey", "--n", 16, "--m", 8, "--k", 2, "--samples", 300]
    run(capsys, *kw, "--frequency-decay", 0.9, "--out", tmp_path / "s_new.npz")
    run(capsys, *kw, "--decay", 0.9, "--out", tmp_path / "s_old.npz")
    run(capsys, *kw, "--out", tmp_path / "s_default.npz")
    a, b, c = (load_data(tmp_path / f"s_{x}.npz").X for x in ("new", "old", "default"))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)  # the option did something
    err = run(capsys, "data", "synth", "--n", 16, "--n-features", 12, "--out", tmp_path / "x.npz", code=2).err
    assert err.startswith("error: --n-features is the old spelling of --n") and err.count("\n") == 1


@pytest.mark.slow
def test_renamed_options_reach_the_experiment_alike(monkeypatch, capsys, tmp_path):
    import monosemantic.experiments.road1 as road1

    seen = capture(monkeypatch, cli, "dynamics_run")
    new = called_with(capsys, seen, "toy", "dynamics", "--sparsity", 0.75, "--out", tmp_path / "a")
    old = called_with(capsys, seen, "toy", "dynamics", "--density", 0.25, "--out", tmp_path / "a")
    default = called_with(capsys, seen, "toy", "dynamics", "--out", tmp_path / "a")
    assert new[0][2] == pytest.approx(0.25) and old[0][2] == 0.25 and default[0][2] == 0.25
    assert new[0][:2] == old[0][:2] and new[0][3:] == old[0][3:]

    seen = capture(monkeypatch, road1, "moe_run")
    new = called_with(capsys, seen, "road1", "moe", "--active-experts", 2, "--out", tmp_path / "m")
    old = called_with(capsys, seen, "road1", "moe", "--k", 2, "--out", tmp_path / "m")
    assert new[0][0].k == old[0][0].k == 2 and new[0][0] == old[0][0]

    seen = capture(monkeypatch, cli, "protocols_run")
    new = called_with(capsys, seen, "phase", "protocols", "--seeds", 3, "--out", tmp_path / "p")
    old = called_with(capsys, seen, "phase", "protocols", "--starts", 3, "--out", tmp_path / "p")
    assert new[0][4] == old[0][4] == 3 and new[0][:4] == old[0][:4]


def _experiment(monkeypatch, command):
    """(seen, the values a list option reached the experiment with) for the commands whose lists were renamed."""
    import monosemantic.experiments.hybrids as hybrids
    import monosemantic.experiments.lm as lm
    import monosemantic.experiments.road1 as road1
    import monosemantic.experiments.road2 as road2

    target, name, read = {"transition": (cli, "transition_run", lambda call: list(call[0][2])),
                          "road2": (road2, "toy_recovery_run", lambda call: call[0][0].ratios),
                          "road1": (road1, "l1_run", lambda call: call[0][0].lambdas),
                          "road3": (hybrids, "front_run", lambda call: call[0][0].road1),
                          "lm": (lm, "roads", lambda call: call[0][0].l1)}[command[0]]
    return capture(monkeypatch, target, name), read


RENAMED_LISTS = [(("transition",), "--n-over-m", "--ratios", [2, 8], [2, 4, 8, 16]),
                 (("road2", "toy"), "--expansion", "--ratios", [0.5, 3.0], [0.5, 1.0, 2.0, 4.0]),
                 (("road1", "l1"), "--l1", "--lambdas", [0.0, 0.25], None),
                 (("road3",), "--road1-l1", "--road1", [0.2, 0.4], [0.1, 0.3, 0.5, 0.7, 1.0])]


@pytest.mark.parametrize("command, new, old, values, default", RENAMED_LISTS)
def test_renamed_list_options_reach_the_experiment_alike(monkeypatch, capsys, tmp_path, command, new, old, values,
                                                         default):
    seen, read = _experiment(monkeypatch, command)
    head = [*command, "--no-progress", "--out", tmp_path / "o"]
    assert read(called_with(capsys, seen, *head, new, *values)) == values  # several values after one flag
    assert read(called_with(capsys, seen, *head, old, *values)) == values
    assert read(called_with(capsys, seen, *head, *[a for v in values for a in (new, v)])) == values  # flag repeated
    assert read(called_with(capsys, seen, *head, new, *values, old, *values)) == values  # the same values twice
    if default is not None:
        assert read(called_with(capsys, seen, *head)) == default
    err = run(capsys, *head, new, *values, old, values[0], code=2).err
    assert err == f"error: {old} is the old spelling of {new}; give one of them\n"


def test_lm_roads_takes_l1_strengths_like_every_list_option(monkeypatch, capsys, tmp_path):
    seen, read = _experiment(monkeypatch, ("lm",))
    head = ["lm", "roads", "--no-progress", "--out", tmp_path / "o"]
    spaced = read(called_with(capsys, seen, *head, "--l1", 0.3, 0.01, 0.1, 0.03))
    assert spaced == [0.01, 0.03, 0.1, 0.3]
    assert read(called_with(capsys, seen, *head, "--l1", "0.01,0.03,0.1,0.3")) == spaced  # the old comma form
    err = run(capsys, *head, "--l1", 0.01, 0.03, code=2).err
    assert err.startswith("error: --l1:") and err.count("\n") == 1
    err = run(capsys, *head, "--l1", "0.01,x", code=2).err
    assert err.startswith("error: --l1: not a list of numbers") and err.count("\n") == 1


def test_errors_name_the_option_given_not_the_config_field(capsys, tmp_path):
    err = run(capsys, "road2", "toy", "--out", tmp_path / "r", "--expansion", 100, code=2).err
    assert err.startswith("error: --expansion: dictionary sizes must lie in (0, 64n]") and err.count("\n") == 1
    err = run(capsys, "road1", "l1", "--out", tmp_path / "l", "--l1", -0.1, code=2).err
    assert err.startswith("error: --l1:") and err.count("\n") == 1
    err = run(capsys, "road3", "--out", tmp_path / "h", "--road1-l1", 0, code=2).err
    assert err.startswith("error: --road1-l1:") and err.count("\n") == 1


def test_an_option_of_one_value_refuses_a_second(capsys, tmp_path):
    # --l1 takes several values in road1 l1, but one in toy train: a second is an error, not silently the last
    err = run(capsys, "toy", "train", "--l1", 0.1, 0.2, "--out", tmp_path / "t", code=2).err
    assert err.startswith("error:") and "0.2" in err and err.count("\n") == 1
    assert not (tmp_path / "t").exists()


def test_circuits_takes_progress_like_every_command_that_computes(monkeypatch, capsys, tmp_path):
    seen = capture(monkeypatch, cli, "circuits_run")
    for flag in ("--progress", "--no-progress"):
        args, _ = called_with(capsys, seen, "circuits", tmp_path / "run", "--out", tmp_path / "c", flag)
        assert args[5] is False  # off a terminal, never a bar
    assert "--progress" in run(capsys, "circuits", "--help").out


@pytest.mark.parametrize("command, old, new", [
    (("data", "synth"), ("--n-features", "--d", "--decay"), ("--n", "--m", "--frequency-decay")),
    (("sae", "score"), ("--truth",), ("--data",)), (("toy", "dynamics"), ("--density",), ("--sparsity",)),
    (("road1", "moe"), ("--k",), ("--active-experts",)), (("phase", "protocols"), ("--starts",), ("--seeds",)),
    (("transition",), ("--ratios",), ("--n-over-m",)), (("road2", "toy"), ("--ratios",), ("--expansion",)),
    (("road1", "l1"), ("--lambdas",), ("--l1",)), (("road3",), ("--road1",), ("--road1-l1",))])
def test_old_spellings_are_hidden_from_help(capsys, command, old, new):
    text = run(capsys, *command, "--help").out
    assert not any(f"{o} " in text for o in old), text
    assert all(f"{o} " in text for o in new), text


@pytest.mark.slow
def test_missing_parent_directories_are_made(tmp_path, capsys):
    deep = tmp_path / "a" / "b"
    run(capsys, "data", "synth", "--n", 16, "--m", 8, "--k", 2, "--samples", 2000, "--out", deep / "data" / "d.npz")
    run(capsys, "toy", "train", "--n", 4, "--m", 2, "--sparsity", 0.5, "--steps", 20, "--eval-batch", 64,
        "--no-progress", "--out", deep / "toy" / "run")
    run(capsys, "sae", "train", "--data", deep / "data" / "d.npz", "--latents", 16, "--k", 2, "--samples", 2560,
        "--no-progress", "--out", deep / "sae" / "run")
    run(capsys, "unfold", "--data", deep / "data" / "d.npz", "--dictionary", deep / "sae" / "run",
        "--no-progress", "--out", deep / "unfold" / "run")
    run(capsys, "features", "list", deep / "sae" / "run", "--limit", 1, "--no-progress", "--out", deep / "feat" / "run")
    run(capsys, "report", deep / "toy" / "run", "--out", deep / "report" / "page")
    for p in ("toy/run/result.json", "sae/run/cfg.json", "unfold/run/result.json", "feat/run/features.json",
              "report/page/report.html"):
        assert (deep / p).is_file(), p


def test_holdout_rows_are_the_rows_score_uses_and_names(tmp_path, capsys):
    data = tmp_path / "d.npz"
    run(capsys, "data", "synth", "--n", 16, "--m", 8, "--k", 2, "--samples", 3000, "--out", data)
    out = run(capsys, "sae", "train", "--data", data, "--latents", 16, "--k", 2, "--samples", 2560, "--holdout", 0.2,
              "--no-progress", "--out", tmp_path / "sae")
    config = json.loads((tmp_path / "sae" / "config.json").read_text())
    assert config["holdout"] == 0.2 and config["holdout_rows"] == 600 and config["train_rows"] == 2400
    assert "600 rows held out" in out.err
    run(capsys, "sae", "score", tmp_path / "sae", "--data", data, "--no-progress")
    scores = json.loads((tmp_path / "sae" / "scores.json").read_text())
    assert scores["samples"] == 600 and scores["rows"] == "the last 600 of 3000 held-out rows (kept out of " \
                                                          "training by --holdout)"
    run(capsys, "sae", "score", tmp_path / "sae", "--truth", data, "--n-eval", 1000, "--no-progress")
    scores = json.loads((tmp_path / "sae" / "scores.json").read_text())
    assert scores["samples"] == 1000 and "the last 600 held out, the rest trained on" in scores["rows"]
    other = tmp_path / "other.npz"
    run(capsys, "data", "synth", "--n", 16, "--m", 8, "--k", 2, "--samples", 500, "--seed", 1, "--out", other)
    run(capsys, "sae", "score", tmp_path / "sae", "--data", other, "--no-progress")
    scores = json.loads((tmp_path / "sae" / "scores.json").read_text())
    assert scores["rows"] == "all 500 rows of a file the dictionary was not trained on"
    # without --holdout the training rows are named as such, not as held out
    run(capsys, "sae", "train", "--data", other, "--latents", 16, "--k", 2, "--samples", 2560, "--no-progress",
        "--out", tmp_path / "sae2")
    run(capsys, "sae", "score", tmp_path / "sae2", "--data", other, "--no-progress")
    scores = json.loads((tmp_path / "sae2" / "scores.json").read_text())
    assert scores["rows"] == "all 500 rows of the training data (trained on: not held out)"
    err = run(capsys, "sae", "train", "--data", other, "--holdout", 1.5, "--out", tmp_path / "x", code=2).err
    assert err.startswith("error:") and "holdout" in err


def test_score_finds_its_training_file_from_another_directory(tmp_path, capsys, monkeypatch):
    data = tmp_path / "d.npz"
    run(capsys, "data", "synth", "--n", 16, "--m", 8, "--k", 2, "--samples", 1000, "--out", data)
    monkeypatch.chdir(tmp_path)
    run(capsys, "sae", "train", "--data", "d.npz", "--latents", 16, "--k", 2, "--samples", 2560, "--holdout", 0.1,
        "--no-progress", "--out", "sae")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    run(capsys, "sae", "score", "../sae", "--data", "../d.npz", "--no-progress")
    scores = json.loads((tmp_path / "sae" / "scores.json").read_text())
    assert scores["samples"] == 100 and "held-out rows" in scores["rows"]
