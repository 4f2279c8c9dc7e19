"""Road 1: the L1 sweep against the paper's expectations, loss per activation, MoE toy models, effective size."""
import math

import pytest
import torch

from monosemantic.errors import InputError
import monosemantic.measures as measures
from monosemantic.cli import main
from monosemantic.toy.sampler import FeatureSampler, importance, probabilities
import monosemantic.experiments.road1 as road1
from monosemantic.runs import read_json
from monosemantic.toy.models import TiedToyModel, loss_per_instance
from monosemantic.toy.moe import MoEToyModel
from monosemantic.toy.train import train_toy


def _monosemantic_model(n: int, m: int, density: float) -> TiedToyModel:
    """The best model without superposition by hand: neuron j reads and writes feature j, the rest get b = p/2."""
    model = TiedToyModel("relu-hidden", 1, n, m, [0])
    model.W.zero_()  # W and b: views of the parameter theta, outside autograd
    model.W[0, torch.arange(m), torch.arange(m)] = 1.0
    model.b[0] = 0.0
    model.b[0, m:] = density / 2
    return model


def test_ablation_and_monosemantic_loss_on_a_hand_built_model():
    n, m, density = 8, 3, 0.2
    imp = importance(n, 0.8)
    model = _monosemantic_model(n, m, density)
    x = FeatureSampler(probabilities([1 - density], n), seed=3).sample_into(torch.empty(1, 200_000, n))
    weight = imp.reshape(1, 1, n)
    # 200k samples: the sampled loss is within ~1% of its expectation (std of a mean of 200k draws)
    assert float(loss_per_instance(model, x, weight)) == pytest.approx(road1.monosemantic_loss(imp, density, m), rel=0.02)
    feats, neurons = measures.ablation_loss(model, x, weight)
    # removing feature j < m (column and, with it, its neuron) loses I_j E[x_j^2] = I_j p/3; the rest lose nothing
    expect = (imp[:m] * density / 3).double()
    torch.testing.assert_close(feats[0, :m], expect, rtol=0.02, atol=0)
    torch.testing.assert_close(neurons[0], expect, rtol=0.02, atol=0)
    assert feats[0, m:].abs().max() < 1e-9
    torch.testing.assert_close(model.theta[0, torch.arange(m), torch.arange(m)], torch.ones(m))  # restored


def test_new_measures_on_hand_made_weights():
    W = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.9, -0.2], [0.3, 0.3, 0.0]]])  # [1, m=3, n=3]
    h = torch.tensor([[[1.0, 0.5, 0.0], [0.0, 0.2, 0.0]]])  # neuron 2 never fires
    Wu = measures.used_weights(W, measures.used_neurons(h))
    assert Wu[0, 2].abs().sum() == 0 and torch.equal(Wu[0, :2], W[0, :2])
    exc = measures.neuron_excitatory_share(W)[0]
    assert exc[1] == 1.0 and measures.neuron_top_share(W)[0, 1] < 0.999  # inhibitory weight: strict test fails
    imp = torch.tensor([1.0, 0.5, 0.25])
    assert measures.importance_threshold(Wu, imp).item() == 0.5  # features 0, 1 represented (norm > 0.5)
    assert measures.importance_threshold(torch.zeros(1, 3, 3), imp).item() == math.inf
    assert measures.activation_frequency(h).tolist() == [[0.5, 1.0, 0.0]]


def test_per_feature_sparsity_needs_n_values():
    with pytest.raises(InputError, match="n=20 values"):
        road1.l1_sweep([0.0], sparsity=[0.9, 0.8], steps=1)


def test_narrowest_width():
    imp = torch.ones(10)
    d = 0.1
    for w in (0, 3, 10):
        assert road1.narrowest_width(imp, d, road1.monosemantic_loss(imp, d, w)) == w
    assert road1.narrowest_width(imp, d, 1e9) == 0
    assert road1.narrowest_width(imp, d, 1e-12) == 10  # better than any model without superposition: capped at n


@pytest.fixture(scope="module")
def sweep():
    # n=20, m=5, I_i = 0.7^i, S = 0.9, ReLU hidden layer (the benchmark's setting), shorter training
    lambdas = [0.0, 0.01, 0.05, 0.1, 0.25, 2.0]
    return road1.l1_sweep(lambdas, steps=3000, seeds=2, eval_batch=8192)


@pytest.mark.slow
def test_l1_sweep_meets_the_papers_expectations(sweep):
    rep, used = sweep["represented_features"], sweep["used_neurons"]
    # lambda = 0: superposition. More features than neurons (7-8 in 5 over seeds 0-2), D* well below the 1 of
    # a model without superposition (0.26-0.45 measured), no monosemantic neuron
    assert rep[0] > 5 and sweep["dims_per_feature"][0] < 0.6 and sweep["monosemantic_neurons"][0] == 0
    # lambda = 0.25 (large enough: at 0.1 one neuron of seed 0 still mixes two features after 3000 steps): every
    # used neuron fires for exactly one feature. By the README's strict measure over all weights they do not
    # reach 0.999: the penalty also grows small inhibitory weights (see the report), so that is not asserted.
    assert used[4] > 0 and sweep["fires_for_one_feature"][4] == used[4]
    # the threshold and the loss rise with lambda. Between lambda = 0 and 0.01 the penalty moves the loss by
    # less than the spread between seeds (about 5%), so order is asserted from 0.01 up, and the loss to within 2%.
    thr = [math.inf if t is None else t for t in sweep["importance_threshold"]]
    assert road1.monotone(thr[1:]) and thr[-2] > 2 * thr[1]
    assert all(b >= 0.98 * a for a, b in zip(sweep["loss"][1:], sweep["loss"][2:]))
    assert sweep["loss"][-2] > 2 * sweep["loss"][0]
    # lambda = 2: every feature dropped is a result, not a NaN: nothing represented, threshold null, and the
    # loss of the bias-only model, sum_i I_i (p/3 - p^2/4), to within 3% (held-out sampling noise at 8k samples)
    assert rep[-1] == 0 and used[-1] == 0 and sweep["importance_threshold"][-1] is None
    assert sweep["dims_per_feature"][-1] is None and not math.isnan(sweep["loss"][-1])
    assert sweep["loss"][-1] == pytest.approx(road1.monosemantic_loss(importance(20, 0.7), 0.1, 0), rel=0.03)


@pytest.mark.slow
def test_the_penalty_gives_up_the_features_with_least_loss_per_activation(sweep):
    d = road1.dropped_by_loss_per_activation(sweep)
    assert d["pairs"] > 10
    # allow one (given up, kept) pair out of order: two features of nearly equal value can swap between seeds
    assert d["order_violations"] <= 1
    given_up = [v for v, at in zip(d["loss_per_activation"], d["dropped_at_lambda"]) if at is not None]
    assert len(given_up) >= 5


def test_moe_with_every_expert_chosen_is_the_dense_model():
    I, n, m, E = 2, 6, 2, 3
    moe = MoEToyModel(I, n, m, E, k=E, seeds=[0, 1])
    dense = TiedToyModel("relu-hidden", I, n, E * m, [0, 1])
    dense.load({"W": moe.W, "b": torch.randn(I, n) * 0.1})
    moe.load({"W": moe.W_experts.detach(), "router": moe.router.detach(), "b": dense.b.clone()})
    x = FeatureSampler(probabilities([0.5, 0.5], n), seed=0).sample_into(torch.empty(I, 64, n))
    torch.testing.assert_close(moe.forward(x), dense.forward(x))
    torch.testing.assert_close(moe.hidden(x), dense.hidden(x))


def test_moe_top1_routes_and_learns():
    I, n, m, E = 2, 8, 2, 4
    moe = MoEToyModel(I, n, m, E, k=1, seeds=[0, 1])
    x = FeatureSampler(probabilities([0.8, 0.8], n), seed=0).sample_into(torch.empty(I, 256, n))
    h = moe.hidden(x).reshape(I, 256, E, m)
    assert ((h.abs().sum(3) > 0).sum(2) <= 1).all()  # at most one expert active per input
    moe.loss_grad(x, torch.ones(I, 1, n))
    assert moe.router.grad.abs().sum() > 0  # the gate passes a gradient to the router even at top-1
    before = loss_per_instance(moe, x, torch.ones(I, 1, n))
    run = train_toy("moe", n, m, probabilities([0.8], n), torch.ones(n), steps=300, batch=256, seeds=2, eval_batch=2048,
                    model=moe)
    assert (loss_per_instance(moe, x, torch.ones(I, 1, n)) < 0.8 * before).all() and math.isfinite(run.loss[0])


def test_moe_router_learns_which_expert_helps():
    # expert 1 reconstructs feature 0 exactly, expert 0 is silent, and the router sends feature 0 to
    # expert 0: the straight-through gradient raises expert 1's logit for feature 0 (descent direction)
    n, m, E = 3, 1, 2
    moe = MoEToyModel(1, n, m, E, k=1, seeds=[0], balance=0.0)
    W = torch.zeros(1, E, m, n)
    W[0, 1, 0, 0] = 1.0
    router = torch.zeros(1, E, n)
    router[0, 0, 0] = 1.0
    moe.load({"W": W, "router": router, "b": torch.full((1, n), 0.01)})  # b > 0: the output ReLU is live
    x = torch.zeros(1, 4, n)
    x[0, :, 0] = 0.5
    moe.loss_grad(x, torch.ones(1, 1, n))
    assert moe.router.grad[0, 1, 0] < 0 < moe.router.grad[0, 0, 0]


def test_moe_bad_input():
    with pytest.raises(InputError, match="top-k"):
        MoEToyModel(1, 4, 2, 3, k=4, seeds=[0])
    with pytest.raises(InputError, match="experts"):
        MoEToyModel(1, 4, 2, 0, k=1, seeds=[0])
    with pytest.raises(InputError, match="L1"):
        MoEToyModel(1, 4, 2, 2, k=1, seeds=[0]).loss_grad(torch.zeros(1, 4, 4), torch.ones(1, 1, 4), torch.ones(1))
    with pytest.raises(InputError, match="must be 2 instances of moe"):
        train_toy("moe", 4, 2, probabilities([0.5, 0.5], 4), torch.ones(4), steps=1, model=MoEToyModel(1, 4, 2, 2, 1, [0]))


def test_moe_compare_and_effective_size_run_small():
    mo = road1.moe_compare([0.9], n=8, m=2, experts=2, steps=100, seeds=1, eval_batch=1024)
    names = mo["dense_names"] + [mo["moe_name"]]
    assert [mo["models"][k]["active_neurons"] for k in names] == [2, 4, 2]
    rec = mo["models"][mo["moe_name"]]
    assert rec["W"].shape == (1, 2, 2, 8) and sum(rec["features_routed_to_expert"][0]) == 8
    es = road1.effective_size([0.9, 0.99], n=12, m=3, steps=100, seeds=1, eval_batch=1024)
    assert all(0 <= k <= es["k_cap"] for k in es["k"]) and len(es["cs_scaling"]) == 2
    assert es["k"] == pytest.approx([w / 3 for w in es["narrowest_width"]])
    _assert_narrowest(es, n=12)


def _assert_narrowest(es, n):
    """Each width is the fewest monosemantic neurons as good as the trained model: one fewer would do worse."""
    imp = importance(n, 1.0)
    for w, d, loss in zip(es["narrowest_width"], es["density"], es["loss"]):
        assert w == n or road1.monosemantic_loss(imp, d, w) <= loss * (1 + 1e-9)
        assert w == 0 or road1.monosemantic_loss(imp, d, w - 1) > loss * (1 + 1e-9)


def _cli(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    return e.value.code, capsys.readouterr()


def test_cli_road1(tmp_path, capsys):
    code, out = _cli(["road1", "l1", "--out", str(tmp_path / "l1"), "--steps", "50", "--seeds", "1",
                      "--eval-batch", "512", "--l1", "0", "0.5", "--no-progress"], capsys)
    assert code == 0, out.err
    res = read_json(tmp_path / "l1" / "result.json")
    assert res["lambda"] == [0.0, 0.5] and len(res["loss"]) == 2 and "dropped" in res
    assert read_json(tmp_path / "l1" / "config.json")["kind"] == "road1-l1"
    code, out = _cli(["road1", "moe", "--out", str(tmp_path / "moe"), "--steps", "20", "--n", "6", "--m", "2",
                      "--experts", "2", "--sparsity", "0.9", "--seeds", "1", "--eval-batch", "256", "--no-progress"],
                     capsys)
    assert code == 0, out.err
    assert (tmp_path / "moe" / "MoE_k_1_of_2x2.safetensors").is_file()
    code, out = _cli(["road1", "effective-size", "--out", str(tmp_path / "es"), "--steps", "20", "--n", "8",
                      "--sparsity", "0.9", "--seeds", "1", "--eval-batch", "256", "--no-progress"], capsys)
    assert code == 0, out.err
    assert read_json(tmp_path / "es" / "result.json")["narrowest_width"][0] >= 0
    _assert_narrowest(read_json(tmp_path / "es" / "result.json"), n=8)


@pytest.mark.parametrize("args, message", [
    (["road1", "l1", "--l1", "-0.1"], "--l1"),
    (["road1", "l1", "--model", "linear"], "takes no L1"),
    (["road1", "l1", "--model", "abs"], "takes no L1"),
    (["road1", "moe", "--k", "5"], "k must lie in"),
    (["road1", "moe", "--experts", "0"], "experts must be positive"),
    (["road1", "effective-size", "--sparsity", "1.0"], "sparsity"),
    (["toy", "train", "--model", "linear", "--l1", "0.1"], "takes no L1"),
])
def test_cli_road1_bad_input(tmp_path, capsys, args, message):
    code, out = _cli(args + ["--out", str(tmp_path / "x")], capsys)
    assert code == 2 and message in out.err and out.err.count("\n") == 1
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_drop_order_follows_loss_per_activation_not_total_loss():
    # Even features on 5x as often as odd ones, so the total loss reduction (x frequency) orders features
    # differently from the loss reduction per activation. The L1 penalty's cost and a feature's benefit are
    # both proportional to its frequency, so the penalty should give features up by the per-activation
    # value. Measured (seed 0): 5 and 11 of 139 pairs out of order (3000 and 4000 steps) against 21 for the
    # total; asserted: strictly fewer, with at least 50 pairs compared.
    two_freq = [0.8 if i % 2 == 0 else 0.96 for i in range(20)]
    sw = road1.l1_sweep(road1.default_lambdas(8, 0.003, 1.0), sparsity=two_freq, importance_decay=0.85,
                        steps=3000, seeds=2, eval_batch=8192)
    d = road1.dropped_by_loss_per_activation(sw)
    assert d["pairs"] >= 50 and d["order_violations"] < d["order_violations_total"]
