import json
import os

import pytest
import torch
from safetensors.torch import load_file

from monosemantic.cli import main


def run(args, capsys):
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


SMALL = ["toy", "train", "--n", 5, "--m", 2, "--steps", 50, "--batch", 64, "--eval-batch", 256, "--no-progress"]


def test_train_writes_a_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run(SMALL + ["--sparsity", 0, 0.8, 0.9, "--importance-decay", 0.9, "--seeds", 2,
                                   "--out", out], capsys)
    assert code == 0 and str(out) in stdout
    t = load_file(out / "model.safetensors")
    assert t["W"].shape == (3, 2, 5) and t["b"].shape == (3, 5) and t["W"].dtype == torch.float32
    res = json.loads((out / "result.json").read_text())
    assert len(res["loss"]) == 3 and res["wall_s"] > 0
    assert res["model_steps_per_s"] == pytest.approx(3 * 50 / res["wall_s"])
    assert all(min(seeds) == kept for seeds, kept in zip(res["loss_all_seeds"], res["loss"]))
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["sparsity"] == [0, 0.8, 0.9] and cfg["seed"] == 0 and "torch" in cfg["environment"]
    assert not [p for p in os.listdir(tmp_path) if p != "run"]  # no temporary leftovers

    code, stdout, _ = run(["toy", "measure", out], capsys)
    assert code == 0 and "measures.json" in stdout
    rows = json.loads((out / "measures.json").read_text())
    assert len(rows) == 3 and rows[1]["sparsity"] == 0.8


def test_same_seed_same_numbers(tmp_path, capsys):
    for name in ("a", "b"):
        assert run(SMALL + ["--sparsity", 0.5, "--out", tmp_path / name], capsys)[0] == 0
    assert torch.equal(load_file(tmp_path / "a/model.safetensors")["W"], load_file(tmp_path / "b/model.safetensors")["W"])


@pytest.mark.parametrize("args, words", [
    (["--sparsity", 1.0], "sparsity"),
    (["--sparsity", -0.2], "sparsity"),
    (["--n", 0], "n"),
    (["--steps", -5], "steps"),
    (["--importance", 1, 2], "importance"),
    (["--model", "cubic"], "model"),
    (["--n", "five"], "n"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, words):
    out = tmp_path / "run"
    code, _, err = run(SMALL + args + ["--out", out], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0]
    assert not out.exists()


def test_existing_output_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(SMALL + ["--out", out], capsys)[0] == 0
    before = (out / "model.safetensors").read_bytes()
    code, _, err = run(SMALL + ["--seed", 1, "--out", out], capsys)
    assert code == 2 and "exists" in err
    assert (out / "model.safetensors").read_bytes() == before  # the earlier result is intact
    assert run(SMALL + ["--seed", 1, "--out", out, "--overwrite"], capsys)[0] == 0
    assert (out / "model.safetensors").read_bytes() != before


def test_unwritable_output(tmp_path, capsys, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root writes anywhere: let the permission check see what others would
            import monosemantic.runs as runs

            monkeypatch.setattr(runs.os, "access", lambda path, mode: False)
        code, _, err = run(SMALL + ["--out", locked / "run"], capsys)
        assert code == 2 and "cannot write" in err
    finally:
        locked.chmod(0o700)


def test_divergence_is_reported_and_keeps_last_good_weights(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run(SMALL + ["--lr", 1e30, "--out", out], capsys)
    assert code == 2 and "non-finite" in err and "step" in err
    W = load_file(out / "model.safetensors")["W"]
    assert torch.isfinite(W).all()
    assert json.loads((out / "result.json").read_text())["diverged_at_step"] is not None


def test_measure_rejects_missing_or_corrupt_runs(tmp_path, capsys):
    code, _, err = run(["toy", "measure", tmp_path / "nothing"], capsys)
    assert code == 2 and "not a run directory" in err
    out = tmp_path / "run"
    assert run(SMALL + ["--out", out], capsys)[0] == 0
    (out / "model.safetensors").write_bytes(b"garbage")
    code, _, err = run(["toy", "measure", out], capsys)
    assert code == 2 and "corrupt" in err and len(err.strip().splitlines()) == 1


def test_output_under_a_file(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    code, _, err = run(SMALL + ["--out", tmp_path / "afile" / "sub" / "run"], capsys)
    assert code == 2 and "cannot create" in err
