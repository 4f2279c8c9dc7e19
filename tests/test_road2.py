"""Road 2 on toy activations: a model without superposition is recovered, the scores behave, a killed run resumes
to the same result, bad input is refused."""
import json

import numpy as np
import pytest
import torch

from monosemantic.cli import main
from monosemantic.experiments import road2
from monosemantic.experiments.road2 import Road2ToyConfig, recoverability, split_merge, toy_recovery
from monosemantic.experiments.sweeps import SweepWarning
from test_reliability import interrupted_at_call, without_timings
from monosemantic.toy.sampler import importance, probabilities
from monosemantic.toy.train import kept_tensors, train_toy


@pytest.mark.slow
def test_sae_recovers_a_model_without_superposition():
    """The linear model at S=0.9 keeps its top m features, orthogonally; an SAE on its h finds them."""
    run = train_toy("linear", 20, 5, probabilities(0.9, 20), importance(20, 0.7), steps=1500, batch=256, lr=1e-2)
    W = kept_tensors(run)["W"][0]
    r = recoverability(W, 0.9, "relu", 0.5, samples=40_000)
    assert r["represented"] == 5 and r["recovered"] == 5
    assert r["mmcs"] > 0.99, r  # measured 0.9966


def test_split_and_off_feature_atoms():
    F = np.eye(3)
    A = np.array([[1, 0, 0], [0.99, 0.1, 0], [0, 1, 0], [0, 0.7, 0.7]])
    assert split_merge(F, A) == {"split": 1, "off_feature": 1}


def test_toy_recovery_scores_every_dictionary():
    cfg = Road2ToyConfig(shapes=[(20, 5)], sparsity=[0.97], ratios=[0.5, 2.0], archs=["topk"], steps=300,
                         samples=3000, device="cpu")
    res = toy_recovery(cfg)
    (row,) = res["models"]
    assert [d["latents"] for d in row["dictionaries"]] == [10, 40]
    for d in row["dictionaries"]:
        assert 0 <= d["recovered"] <= row["represented"] <= 20 and 0 < d["mmcs"] <= 1
        assert 0 <= d["unfold_f1"] <= 1 and d["dead"] <= d["latents"]
    assert row["true_W"]["support_f1"] > max(d["unfold_f1"] for d in row["dictionaries"])
    assert row["expected_active"] == pytest.approx(row["represented"] * 0.03)


@pytest.mark.parametrize("args, message", [
    (["--expansion", 0], "(0, 64n]"),
    (["--expansion", 64.5], "(0, 64n]"),
    (["--archs", "nmf"], "unknown dictionary 'nmf'"),
    (["--shape", "20by5"], "shape must look like"),
    (["--sparsity", 0.9, 0.9], "sparsity repeat a value"),
    (["--expansion", 1, 2, 1], "--expansion: ratios repeat a value"),
])
def test_road2_cli_bad_input(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as e:
        main(["road2", "toy", "--out", str(tmp_path / "r"), *[str(a) for a in args]])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith("error:") and message in err[0]
    assert not (tmp_path / "r").exists()


def test_road2_cli_writes_a_run(tmp_path, capsys):
    out = tmp_path / "r"
    with pytest.raises(SystemExit) as e:
        main(["road2", "toy", "--out", str(out), "--shape", "20x5", "--sparsity", "0.97", "--expansion", "1", "--archs",
              "topk", "--steps", "200", "--samples", "3000", "--no-progress"])
    assert e.value.code == 0
    assert (out / "result.json").is_file() and (out / "models.safetensors").is_file()
    assert "recovered" in capsys.readouterr().err


SMALL = Road2ToyConfig(shapes=[(20, 5)], sparsity=[0.97], ratios=[0.5, 1.0, 2.0], archs=["topk"], steps=200,
                       samples=3000, device="cpu")


def mtimes(out):
    return {p.name: p.stat().st_mtime_ns for p in (out / "points").iterdir()}


def test_a_killed_run_resumes_without_redoing_points_and_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    ref = toy_recovery(SMALL, out=tmp_path / "ref")
    monkeypatch.setattr(road2, "_dictionary_job", interrupted_at_call(road2._dictionary_job, 2))
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        toy_recovery(SMALL, out=cut)
    assert sorted(mtimes(cut)) == ["dict-20x5-S0.97-topk-x0.5", "model-20x5"]
    assert not (cut / "result.json").exists()
    before = mtimes(cut)
    monkeypatch.undo()
    res = toy_recovery(SMALL, out=cut)
    assert res["computed"] == 2 and res["points"] == 4
    assert {k: v for k, v in mtimes(cut).items() if k in before} == before  # finished points kept, not redone
    assert without_timings(res) == without_timings(ref)
    assert without_timings(json.loads((cut / "result.json").read_text())) == without_timings(res)
    assert torch.equal(res["tensors"]["W_20_5"], ref["tensors"]["W_20_5"])
    again = toy_recovery(SMALL, out=cut)
    assert again["computed"] == 0 and without_timings(again) == without_timings(ref)


def test_a_corrupt_point_is_computed_again(tmp_path):
    ref = toy_recovery(SMALL, out=tmp_path / "r")
    (tmp_path / "r" / "points" / "dict-20x5-S0.97-topk-x1.0" / "result.json").write_text("{not json")
    with pytest.warns(SweepWarning, match="dict-20x5-S0.97-topk-x1.0"):
        res = toy_recovery(SMALL, out=tmp_path / "r")
    assert res["computed"] == 1 and without_timings(res) == without_timings(ref)


@pytest.mark.slow
def test_worker_processes_and_ray_give_the_same_results(tmp_path):
    one = toy_recovery(SMALL)
    assert without_timings(toy_recovery(SMALL, workers=2)) == without_timings(one)  # spawned worker processes
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'monosemantic[ray]')")
    assert without_timings(toy_recovery(SMALL, backend="ray", workers=2, out=tmp_path / "ray")) == without_timings(one)


def test_mbdl_in_the_dictionary_size_sweep():
    cfg = SMALL.model_copy(update={"ratios": [2.0], "archs": ["topk", "mbdl"]})
    (row,) = toy_recovery(cfg)["models"]
    assert [d["arch"] for d in row["dictionaries"]] == ["topk", "mbdl"]
    mbdl = row["dictionaries"][1]
    assert mbdl["latents"] == 40 and 0 <= mbdl["recovered"] <= row["represented"] and 0 < mbdl["mmcs"] <= 1


@pytest.mark.parametrize("args, message", [
    (["--backend", "slurm"], "unknown backend 'slurm'"),
    (["--workers", 0], "workers must be at least 1"),
    (["--ray-address", "127.0.0.1:1"], "--ray-address needs --backend ray"),
])
def test_road2_cli_bad_run_options(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as e:
        main(["road2", "toy", "--out", str(tmp_path / "r"), *[str(a) for a in args]])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith("error:") and message in err[0]
    assert not (tmp_path / "r").exists()


def test_road2_cli_resumes_and_refuses_other_options_in_the_same_out(tmp_path, capsys):
    out = tmp_path / "r"
    args = ["road2", "toy", "--out", str(out), "--shape", "20x5", "--sparsity", "0.97", "--expansion", "1", "--archs",
            "topk", "--steps", "200", "--samples", "3000", "--no-progress"]
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 0 and "2 points, 2 computed now" in capsys.readouterr().err
    before = {p: p.read_bytes() for p in out.rglob("*.json")}
    with pytest.raises(SystemExit) as e:
        main(args[:-1] + ["--seed", "1", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "holds another run" in err[0] and "--overwrite" in err[0]
    assert {p: p.read_bytes() for p in out.rglob("*.json")} == before  # nothing lost
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 0 and "2 points, 0 computed now" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(args[:-1] + ["--seed", "1", "--overwrite", "--no-progress"])
    assert e.value.code == 0 and json.loads((out / "config.json").read_text())["settings"]["seed"] == 1
