"""The L1 penalty on hidden activations: hand-written gradients against autograd, bad input, the trainer path."""
import pytest
import torch

from monosemantic.errors import InputError
from monosemantic.config import ToyTrainConfig, validate
from monosemantic.toy.sampler import FeatureSampler, importance, probabilities
from monosemantic.toy.models import TiedToyModel, check_l1, hidden_l1_per_instance, loss_per_instance
from monosemantic.toy.train import train, train_toy


def test_bad_l1_is_refused():
    for kind in ("linear", "abs"):
        with pytest.raises(InputError, match="takes no L1"):
            check_l1(kind, 0.1, 3)
    assert check_l1("linear", 0.0, 3) is None  # no penalty: every model is fine
    with pytest.raises(InputError, match=">= 0"):
        check_l1("relu-hidden", -0.1, 3)
    with pytest.raises(InputError, match=">= 0"):
        check_l1("relu-hidden", float("nan"), 3)
    with pytest.raises(InputError, match="one value per instance"):
        check_l1("relu-hidden", torch.ones(2), 3)
    with pytest.raises(InputError, match="l1"):
        validate(ToyTrainConfig, {"model": "linear", "l1": 0.1})
    with pytest.raises(InputError, match="l1"):
        validate(ToyTrainConfig, {"model": "relu-hidden", "l1": -1.0})
    with pytest.raises(InputError, match="takes no L1"):
        train_toy("abs", 4, 2, probabilities([0.5], 4), torch.ones(4), steps=1, l1=0.1)


def test_penalty_shrinks_activity_and_reports_reconstruction_loss():
    # Two configurations of one batched model differing only in lambda: the penalised one has a
    # smaller ||h||_1 and a larger reconstruction loss (what the penalty trades), and the reported
    # loss is the reconstruction alone (equal to loss_per_instance on the eval batch).
    n, m = 6, 3
    p = probabilities([0.7, 0.7], n)
    run = train_toy("relu-hidden", n, m, p, importance(n, 0.8), steps=600, batch=256, seeds=2,
                    l1=torch.tensor([0.0, 0.2]), eval_batch=4096)
    assert run.hidden_l1 is not None and len(run.hidden_l1) == 2
    assert run.hidden_l1[1] < 0.8 * run.hidden_l1[0]
    assert run.loss[1] > run.loss[0]
    assert run.loss[1] in run.all_loss[1] and run.loss[0] in run.all_loss[0]  # the raw eval losses, no penalty


def test_all_features_dead_is_a_result_not_nan():
    n, m = 5, 2
    model = TiedToyModel("relu-hidden", 1, n, m, [0])
    sampler = FeatureSampler(probabilities([0.5], n), seed=0)
    log = train(model, sampler, torch.ones(1, n), steps=400, batch=128, lr=1e-2, l1=100.0)
    assert log.diverged_at is None
    x = sampler.sample_into(torch.empty(1, 2048, n))
    loss = loss_per_instance(model, x, torch.ones(1, 1, n))
    assert torch.isfinite(loss).all()
    assert float(hidden_l1_per_instance(model, x)) < 1e-3  # every neuron silent


def test_toy_train_cli_takes_l1(tmp_path):
    from monosemantic.cli import main
    from monosemantic.runs import read_json
    from monosemantic.experiments.toy import measure_toy_run

    with pytest.raises(SystemExit) as e:
        main(["toy", "train", "--model", "relu-output", "--n", "5", "--m", "2", "--steps", "20", "--l1", "0.1",
              "--eval-batch", "256", "--out", str(tmp_path / "run"), "--no-progress"])
    assert e.value.code == 0
    assert read_json(tmp_path / "run" / "config.json")["l1"] == 0.1
    assert read_json(tmp_path / "run" / "result.json")["hidden_l1"][0] > 0
    assert "neuron_top_share" in measure_toy_run(tmp_path / "run")[0]  # the penalty privileges relu-output's basis
