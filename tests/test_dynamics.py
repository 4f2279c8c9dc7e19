"""Learning dynamics: weight snapshots, jumps of D_i between levels, sudden loss drops."""
import numpy as np
import pytest
import torch

import monosemantic.experiments.dynamics as dyn
from monosemantic.cli import main
from monosemantic.runs import load_tensors, read_run
from monosemantic.toy.sampler import importance, probabilities
from monosemantic.toy.train import kept_snapshots, kept_tensors, train_toy


def test_jumps_and_sudden_drops_on_hand_built_traces():
    steps = list(range(0, 1000, 20))  # 50 snapshots, 20 steps apart: a jump is > 0.1 within 5 of them
    t = np.arange(50)
    D = np.stack([np.where(t < 20, 2 / 3, 0.5),  # one jump from 2/3 to 1/2 at snapshot 20
                  0.2 + 0.3 * t / 49,  # a slow drift: 0.03 per 100 steps, never a jump
                  np.full(50, 1.0)], axis=1)
    jumps = dyn.find_jumps(D, steps)
    assert len(jumps) == 1 and jumps[0]["feature"] == 0 and jumps[0]["levels"] == ["2/3", "1/2"]
    assert jumps[0]["steps"][0] <= 400 <= jumps[0]["steps"][1]
    loss = 1.0 - 0.001 * t
    loss[30:] -= 0.05  # one sudden drop between snapshots 29 and 30
    assert dyn.sudden_drops(loss) == [29]


def test_snapshots_have_a_step_axis_and_end_at_the_trained_weights():
    run = train_toy("relu-output", 5, 2, probabilities([0.5, 0.9], 5), importance(5, 0.9), steps=30, seeds=2,
                    snapshot_every=10)
    snaps = kept_snapshots(run)
    assert snaps["step"].tolist() == [0, 10, 20, 30]
    assert snaps["W"].shape == (4, 2, 2, 5) and snaps["b"].shape == (4, 2, 5)
    torch.testing.assert_close(snaps["W"][-1], kept_tensors(run)["W"])
    assert not torch.equal(snaps["W"][0], snaps["W"][1])  # copies, not views of the live weights


def test_dynamics_measures_every_snapshot(tmp_path):
    res = dyn.dynamics(n=6, m=2, density=0.3, steps=60, snapshot_every=20, out=tmp_path / "run")
    assert res["steps"] == [0, 20, 40, 60] and np.asarray(res["D"]).shape == (4, 6) and len(res["loss"]) == 4
    assert 0 <= res["jumps_with_sudden_drop"] <= res["jumps_detected"]
    _, result, tensors = read_run(tmp_path / "run")
    snaps = load_tensors(tmp_path / "run" / "snapshots.safetensors")
    assert snaps["W"].shape == (4, 1, 2, 6) and result["loss"] == pytest.approx(res["loss"])
    torch.testing.assert_close(snaps["W"][-1], tensors["W"])


@pytest.mark.parametrize("every", ["0", "-5", "101"])
def test_cli_snapshot_period_must_fit_the_run(tmp_path, capsys, every):
    with pytest.raises(SystemExit) as e:
        main(["toy", "train", "--out", str(tmp_path / "r"), "--n", "3", "--m", "2", "--steps", "100",
              "--snapshot-every", every])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "snapshot" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_cli_writes_snapshots(tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["toy", "train", "--out", str(tmp_path / "r"), "--n", "3", "--m", "2", "--steps", "20",
              "--snapshot-every", "10", "--sparsity", "0.5", "--sparsity", "0.9", "--no-progress"])
    assert e.value.code == 0
    _, _, tensors = read_run(tmp_path / "r")
    assert tensors["W"].shape == (2, 2, 3)  # model.safetensors
    snaps = load_tensors(tmp_path / "r" / "snapshots.safetensors")
    assert snaps["W"].shape == (3, 2, 2, 3) and snaps["step"].tolist() == [0, 10, 20]


def test_cli_dynamics_bad_period(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["toy", "dynamics", "--out", str(tmp_path / "d"), "--steps", "50", "--snapshot-every", "60"])
    assert e.value.code == 2 and capsys.readouterr().err.startswith("error:")
    assert not (tmp_path / "d").exists()


def test_dynamics_refuses_no_snapshots_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["toy", "dynamics", "--n", "4", "--m", "2", "--steps", "5", "--snapshot-every", "0", "--no-progress",
              "--out", str(tmp_path / "dyn")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: snapshot_every must be at least 1") and "\n" not in err
    assert not (tmp_path / "dyn").exists()
