"""Road 2 on toy activations: a model without superposition is recovered, the scores behave, bad input is refused."""
import numpy as np
import pytest
import torch

from monosemantic.cli import main
from monosemantic.experiments.road2 import Road2ToyConfig, recoverability, split_merge, toy_recovery
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
    (["--ratios", 0], "(0, 64n]"),
    (["--ratios", 64.5], "(0, 64n]"),
    (["--archs", "nmf"], "unknown dictionary 'nmf'"),
    (["--shape", "20by5"], "shape must look like"),
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
        main(["road2", "toy", "--out", str(out), "--shape", "20x5", "--sparsity", "0.97", "--ratios", "1", "--archs",
              "topk", "--steps", "200", "--samples", "3000", "--no-progress"])
    assert e.value.code == 0
    assert (out / "result.json").is_file() and (out / "models.safetensors").is_file()
    assert "recovered" in capsys.readouterr().err
