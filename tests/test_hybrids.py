"""Road 3: each hybrid change does what it claims on a small model, the front's ends agree with the roads run
alone, a killed front resumes to the same result, and bad input is one error line."""
import json

import pytest
import torch

from monosemantic.cli import main
from monosemantic.errors import InputError
from monosemantic.experiments import hybrids
from monosemantic.experiments.hybrids import Road3Config, front, train_change
from monosemantic.experiments.road1 import l1_sweep
from monosemantic.toy.hybrids import Hybrid, max_cosine
from monosemantic.toy.models import make_model
from test_reliability import interrupted_at_call, without_timings

N, M, S = 20, 5, 0.9


def small(**kw) -> Road3Config:
    base = dict(n=N, m=M, sparsity=S, steps=600, batch=256, samples=4000, device="cpu", strengths={})
    return Road3Config(**{**base, **kw})


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 128, N, generator=g) * (torch.rand(2, 128, N, generator=g) > S)


@pytest.mark.parametrize("change", ["l1", "coherence", "noise", "joint"])
def test_strength_zero_is_the_plain_gradient(change):
    """At strength 0 every change's autograd step is the hand-written gradient of the plain model."""
    model = make_model("relu-output", 2, N, M, [3, 4])
    x, w = _batch(), torch.rand(2, 1, N)
    model.loss_grad(x, w, None)
    plain = model.grad.clone()
    Hybrid(model, change, 0.0).loss_grad(x, w, None)
    torch.testing.assert_close(model.grad, plain, rtol=1e-4, atol=1e-6)


def test_l1_hybrid_matches_the_trainers_l1_gradient():
    model = make_model("relu-output", 2, N, M, [3, 4])
    x, w, lam = _batch(1), torch.ones(2, 1, N), torch.tensor([0.0, 0.05])
    model.loss_grad(x, w, lam)
    hand = model.grad.clone()
    Hybrid(model, "l1", 0.0).loss_grad(x, w, lam)
    torch.testing.assert_close(model.grad, hand, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_each_change_does_what_it_claims():
    cfg = small()
    W, b, _, _ = train_change(cfg, "coherence", [0.0, 10.0])
    before, after = max_cosine(W)
    assert after < before - 0.05, (before, after)  # 0.84 -> 0.69 at strength 10 in the quick demo

    _, _, _, hybrid = train_change(cfg, "joint", [1.0])
    terms = hybrid.term_log()[:, 0]
    assert terms[-20:].mean() < 0.5 * terms[:20].mean(), (terms[:20].mean(), terms[-20:].mean())

    res = front(small(strengths={"noise": [0.0, 0.3]}, road1=[0.3]))
    quiet, noisy = res["front"]["noise"]
    assert noisy["loss"] > quiet["loss"] * 1.1, (quiet["loss"], noisy["loss"])


@pytest.mark.slow
def test_front_ends_agree_with_the_roads_run_alone():
    cfg = small(strengths={"l1": [0.0]}, road1=[0.3])
    res = front(cfg)
    road2, zero, road1 = res["front"]["road2"][0], res["front"]["l1"][0], res["front"]["road1"][0]
    # road 2 alone (hand-written gradient) and the hybrid at strength 0 (autograd) train the same model
    assert zero["loss"] == pytest.approx(road2["loss"], rel=1e-3)
    assert zero["represented"] == road2["represented"]
    # road 1's end is the L1 sweep run by itself at that lambda
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the front's points run: reductions over other thread counts differ in the last bits
    try:
        alone = l1_sweep([0.3], N, M, S, 1.0, "relu-output", cfg.steps, cfg.batch, seeds=1, seed=cfg.seed,
                         eval_batch=2048)
    finally:
        torch.set_num_threads(threads)
    assert road1["represented"] == int((alone["W"][0].norm(dim=0) > 0.5).sum())
    assert road1["max_cos"] == pytest.approx(max_cosine(alone["W"][:1])[0], abs=1e-6)
    assert res["verdict"]["road2"]["recovered"] == road2["recovered"]


def test_bad_hybrid_input():
    model = make_model("relu-output", 2, N, M, [0, 1])
    with pytest.raises(InputError, match="unknown change"):
        Hybrid(model, "dropout", 0.1)
    with pytest.raises(InputError, match=">= 0"):
        Hybrid(model, "noise", [-0.1, 0.1])
    with pytest.raises(InputError, match="at least the model's width"):
        Hybrid(model, "joint", 1.0, latents=M - 1)


@pytest.mark.parametrize("args, message", [
    (["--strength", "l1=-0.1"], "greater than or equal to 0"),
    (["--strength", "dropout=0.1"], "unknown change 'dropout'"),
    (["--joint-latents", M - 1], "at least the model's width"),
])
def test_road3_cli_bad_input(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as e:
        main(["road3", "--out", str(tmp_path / "r"), *[str(a) for a in args]])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith("error:") and message in err[0]
    assert not (tmp_path / "r").exists()


TINY = dict(steps=150, samples=2000, strengths={"noise": [0.0, 0.3]}, road1=[0.3])


def test_a_killed_front_resumes_without_redoing_points_and_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    cfg = small(**TINY)
    ref = front(cfg, out=tmp_path / "ref")
    # the second job (noise at both strengths) never finishes
    monkeypatch.setattr(hybrids, "_front_job", interrupted_at_call(hybrids._front_job, 2))
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        front(cfg, out=cut)
    done = {p.name: p.stat().st_mtime_ns for p in (cut / "points").iterdir()}
    assert sorted(done) == ["road2-0.0-seed0"]
    monkeypatch.undo()
    res = front(cfg, out=cut)
    assert res["points"] == 4 and res["computed"] == 3
    assert (cut / "points" / "road2-0.0-seed0").stat().st_mtime_ns == done["road2-0.0-seed0"]
    assert without_timings(res) == without_timings(ref)
    assert without_timings(json.loads((cut / "result.json").read_text())) == without_timings(res)


def test_seeds_are_points_and_a_front_point_is_their_mean():
    res = front(small(**{**TINY, "strengths": {}}, seeds=2))
    (r2,) = res["front"]["road2"]
    assert res["points"] == 4 and [s["seed"] for s in r2["per_seed"]] == [0, 1]
    assert r2["loss"] == pytest.approx(sum(s["loss"] for s in r2["per_seed"]) / 2)
    assert r2["recovered"] == pytest.approx(sum(s["recovered"] for s in r2["per_seed"]) / 2)
    assert r2["per_seed"][0]["loss"] != r2["per_seed"][1]["loss"]  # another initial W and data stream


@pytest.mark.parametrize("args, message", [
    (["--strength", "noise=0.1,0.1"], "noise strengths repeat a value"),
    (["--road1-l1", 0.3, 0.3], "--road1-l1: road1 lambdas repeat a value"),
    (["--seeds", 0], "seeds"),
    (["--backend", "slurm"], "unknown backend 'slurm'"),
    (["--workers", -1], "workers must be at least 1"),
])
def test_road3_cli_bad_options(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as e:
        main(["road3", "--out", str(tmp_path / "r"), *[str(a) for a in args]])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith("error:") and message in err[0]
    assert not (tmp_path / "r").exists()
