"""The byte LM: causality, seeds, resuming, sites, the variants' mechanics, CE recovered, bad input, lm roads."""
import json
import math

import numpy as np
import pytest
import torch

from monosemantic.cli import main
from monosemantic.config import validate
from monosemantic.errors import InputError
from monosemantic.experiments.lm import (MeasureConfig, RoadsConfig, ce_recovered, lines, row_tokens, roads,
                                         site_rows, spliced_loss)
from monosemantic.lm.data import eval_windows, split_bytes
from monosemantic.lm.model import ByteLM, LMConfig
from monosemantic.lm.train import LMTrainConfig, evaluate, load, train
from monosemantic.real.model import capture, sites

TINY = dict(layers=1, d_model=16, heads=2, width=32, experts=4, top_k=2, positions=16, context=16, batch=8,
            tokens=8 * 16 * 20, eval_tokens=512, checkpoint_every=5, joint_latents=64, joint_k=4, joint_rows=32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A small text corpus: 400 documents separated by blank lines (about 10% land in the test split)."""
    words = "the quick brown fox jumps over a lazy dog while seven wizards quietly hum".split()
    rng = np.random.default_rng(0)
    docs = [" ".join(rng.choice(words, 12)) + f" ({i})." for i in range(400)]
    path = tmp_path_factory.mktemp("corpus") / "docs.txt"
    path.write_text("\n\n".join(docs))
    return str(path)


def cfg_of(corpus, **kw) -> LMTrainConfig:
    return LMTrainConfig(**{**TINY, "corpus": corpus, **kw})


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "dense"
    cfg = cfg_of(corpus, tokens=8 * 16 * 60, lr=1e-2)
    return out, cfg, train(cfg, out)


@pytest.mark.parametrize("variant", ["dense", "moe-flop", "moe-width", "hybrid-joint"])
def test_future_bytes_do_not_change_earlier_logits(variant):
    model = ByteLM(LMConfig(**{k: v for k, v in TINY.items() if k in LMConfig.model_fields}, variant=variant)).eval()
    idx = torch.randint(0, 256, (3, 16), generator=torch.Generator().manual_seed(1))
    changed = idx.clone()
    changed[:, 9:] = torch.randint(0, 256, (3, 7), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a, b = model(idx), model(changed)
    assert torch.allclose(a[:, :9], b[:, :9], atol=1e-6)
    assert not torch.allclose(a[:, 9:], b[:, 9:])


def test_same_seed_same_model_other_seed_another(corpus):
    a, b, c = (ByteLM(cfg_of(corpus).model, seed=s) for s in (0, 0, 1))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.tok.weight, c.tok.weight)
    r1, r2 = train(cfg_of(corpus, tokens=8 * 16 * 4)), train(cfg_of(corpus, tokens=8 * 16 * 4))
    assert r1["test_loss"] == r2["test_loss"] and r1["log"] == r2["log"]


def test_resume_after_a_kill_equals_an_uninterrupted_run(corpus, tmp_path):
    cfg = cfg_of(corpus, tokens=8 * 16 * 12, checkpoint_every=4)
    whole = train(cfg, tmp_path / "whole")
    part = train(cfg, tmp_path / "cut", stop_after=7)  # killed after step 7: the directory holds step 7's state
    assert not part["done"] and part["step"] == 7
    resumed = train(cfg, tmp_path / "cut")
    assert resumed["done"] and resumed["test_loss"] == whole["test_loss"] and resumed["log"] == whole["log"]
    wa, wb = load(tmp_path / "whole")[0].state_dict(), load(tmp_path / "cut")[0].state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert train(cfg, tmp_path / "cut") == resumed  # a finished run is returned as it is


def test_checkpoint_loads_and_real_capture_reads_its_sites(trained):
    out, cfg, res = trained
    assert res["done"] and math.isfinite(res["test_loss"]) and res["test_loss"] < math.log(256)
    model, loaded_cfg = load(out)
    assert loaded_cfg == cfg
    assert set(sites(model)) == {"resid.0", "mlp.0"}
    idx = torch.randint(0, 256, (2, 16))
    with torch.no_grad(), capture(model, "mlp.0") as got:
        model(idx)
    assert got["acts"].shape == (2, 16, 32) and (got["acts"] >= 0).all()
    windows = eval_windows(split_bytes(cfg.corpus, "test"), cfg.eval_tokens, cfg.context)
    assert evaluate(model, windows) == pytest.approx(res["test_loss"], abs=1e-6)


def test_l1_lowers_the_mlp_activations_l1(corpus, tmp_path):
    windows = eval_windows(split_bytes(corpus, "test"), 512, 16)

    def weighted_l1(name, **kw):  # what the penalty reads: sum_j h_j ||w_j||, mean over test rows
        train(cfg_of(corpus, tokens=8 * 16 * 40, lr=1e-2, **kw), tmp_path / name)
        model = load(tmp_path / name)[0]
        h = torch.from_numpy(site_rows(model, "mlp.0", windows))
        with torch.no_grad():
            return float((h @ model.blocks[0].mlp.proj.weight.norm(dim=0)).mean()), float(h.sum(1).mean())

    dense, l1 = weighted_l1("dense"), weighted_l1("l1", variant="l1", strength=0.1)
    assert l1[0] < 0.5 * dense[0] and l1[1] < dense[1]


@pytest.mark.parametrize("variant, active", [("moe-flop", 1), ("moe-width", 2)])
def test_moe_routes_each_token_to_top_k_experts(variant, active):
    cfg = LMConfig(**{k: v for k, v in TINY.items() if k in LMConfig.model_fields}, variant=variant)
    model = ByteLM(cfg).eval()
    mlp = model.blocks[0].mlp
    assert cfg.neurons == (4 * 32 if variant == "moe-flop" else 32)
    assert mlp.w_in.shape == (4, 16, cfg.expert_width)
    with torch.no_grad(), capture(model, "mlp.0") as got:
        model(torch.randint(0, 256, (3, 16)))
    h = got["acts"].reshape(-1, 4, cfg.expert_width)  # [tokens, experts, neurons per expert]
    assert got["acts"].shape == (3, 16, cfg.neurons)
    assert ((h != 0).any(-1).sum(-1) <= active).all()  # no token reaches more than its top-k experts
    probs = mlp.router(torch.randn(48, 16)).softmax(-1)
    assert probs.topk(active).indices.shape == (48, active)


def test_moe_width_has_the_dense_models_neurons():
    base = {k: v for k, v in TINY.items() if k in LMConfig.model_fields}
    dense, moe = ByteLM(LMConfig(**base)), ByteLM(LMConfig(**base, variant="moe-width"))
    assert moe.cfg.neurons == dense.cfg.neurons == 32
    assert moe.blocks[0].mlp.w_in.numel() == dense.blocks[0].mlp.fc.weight.numel()


def test_ce_recovered_is_one_for_a_perfect_splice_and_zero_for_zeros(trained):
    out, cfg, _ = trained
    model, _ = load(out)
    windows = eval_windows(split_bytes(cfg.corpus, "test"), 512, cfg.context)
    clean = evaluate(model, windows)
    ablate = spliced_loss(model, "mlp.0", windows, torch.zeros_like)
    assert ablate > clean + 1e-3
    assert ce_recovered(clean, ablate, spliced_loss(model, "mlp.0", windows, lambda a: a.clone())) == pytest.approx(1)
    assert ce_recovered(clean, ablate, spliced_loss(model, "mlp.0", windows, torch.zeros_like)) == 0
    assert math.isnan(ce_recovered(2.0, 2.0, 2.5))  # nothing to recover


def test_row_tokens_pair_each_byte_with_the_one_before():
    w = torch.tensor([[1, 2, 3, 4]])
    assert row_tokens(w, 1).tolist() == [1, 2, 3]
    assert row_tokens(w, 2).tolist() == [1 * 257 + 256, 2 * 257 + 1, 3 * 257 + 2]


def _cli(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    return e.value.code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("flags, says", [
    (["--variant", "sparse"], "variant"),
    (["--variant", "l1", "--strength", "-0.1"], "strength"),
    (["--variant", "moe-width", "--experts", "3"], "divide the width"),
    (["--context", "32"], "positional table"),
])
def test_bad_input_is_one_error_line_and_leaves_the_checkpoint(flags, says, trained, capsys):
    out, _, _ = trained
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, err = _cli(["lm", "train", "--out", str(out), "--layers", "1", "--d-model", "16", "--heads", "2",
                      "--width", "32", "--positions", "16", "--context", "16", *flags], capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("error:") and says in err[0]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_run_with_other_settings_is_refused(trained, capsys):
    out, cfg, _ = trained
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(InputError, match="other settings"):
        train(cfg.model_copy(update={"lr": 0.5}), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_corpus_too_small_for_one_batch(tmp_path, capsys):
    small = tmp_path / "small.txt"
    small.write_text("\n\n".join(f"a short document number {i}" for i in range(12)))
    code, err = _cli(["lm", "train", "--out", str(tmp_path / "run"), "--corpus", str(small)], capsys)
    assert code == 2 and len(err) == 1 and "too few" in err[0]
    assert not (tmp_path / "run").exists()


def roads_cfg(corpus, **kw) -> RoadsConfig:
    return RoadsConfig(**{"train": cfg_of(corpus, tokens=8 * 16 * 8), "seeds": 2, **kw},
                       measure=MeasureConfig(measure_tokens=256, sae_latents=48, sae_k=4, sae_tokens=512,
                                             sae_samples=512))


def without_timings(res: dict) -> dict:
    timings = {"wall_s", "elapsed_s", "train_wall_s", "measure_s", "tokens_per_s"}
    return {k: without_timings(v) if isinstance(v, dict) else
            [without_timings(x) if isinstance(x, dict) else x for x in v] if isinstance(v, list) else v
            for k, v in res.items() if k not in timings}


@pytest.mark.slow
def test_roads_resume_after_a_kill_and_fill_the_table(corpus, tmp_path):
    cfg = roads_cfg(corpus)

    class Killed(Exception):
        pass

    def kill(done, total):
        if done == 3:
            raise Killed

    with pytest.raises(Killed):
        roads(cfg, tmp_path / "r", on_point=kill)
    first = {p.name: json.loads((p / "result.json").read_text()) for p in (tmp_path / "r" / "points").iterdir()}
    assert len(first) == 3
    calls = []
    res = roads(cfg, tmp_path / "r", on_point=lambda done, total: calls.append(total))
    assert calls == [7] * 7  # the 3 measured points are read back, not computed again
    assert len(res["points"]) == 10  # 2 dense, 4 L1 (2 seeds for the strongest), moe-flop, moe-width, hybrid
    for pt in res["points"]:
        if pt["name"] in first:
            assert pt["lm_loss"] == first[pt["name"]]["lm_loss"]
    assert json.loads((tmp_path / "r" / "result.json").read_text()) == res
    rows = {(r["variant"], r["strength"]): r for r in res["table"]}
    assert set(v for v, _ in rows) == {"dense", "l1", "moe-flop", "moe-width", "hybrid-joint"}
    assert rows[("dense", 0.0)]["seeds"] == 2 and rows[("dense", 0.0)]["lm_loss_std"] is not None
    assert rows[("moe-flop", 0.0)]["lm_loss_std"] is None
    assert all(0 <= r["neuron_monosemanticity"] <= 1 for r in res["table"] if r["neuron_monosemanticity"] is not None)
    assert lines(res)[0].startswith("variant") and len(lines(res)) == 1 + len(res["table"])
    other = cfg.model_copy(update={"hybrid": 0.5})
    with pytest.raises(InputError, match="other settings"):
        roads(other, tmp_path / "r")
    assert roads(other, tmp_path / "r", overwrite=True)["config"]["hybrid"] == 0.5


@pytest.mark.slow
def test_roads_on_a_local_ray_equal_the_local_backend(corpus, tmp_path):
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'monosemantic[ray]')")
    cfg = roads_cfg(corpus, seeds=1)
    local = roads(cfg, tmp_path / "local")
    ray = roads(cfg.model_copy(update={"backend": "ray", "workers": 2}), tmp_path / "ray")
    assert len(ray["points"]) == 8 and without_timings(ray) == without_timings(local)
    assert {p.name for p in (tmp_path / "ray" / "train").iterdir()} == {p["name"] for p in ray["points"]}


@pytest.mark.parametrize("sizes", [{"d_model": 2**31, "heads": 1}, {"width": 10**9}, {"positions": 10**10},
                                   {"variant": "moe-flop", "experts": 2 * 10**8}])
def test_a_model_that_cannot_fit_is_refused_before_allocating(sizes):
    with pytest.raises(InputError, match="needs about"):
        validate(LMConfig, {"d_model": 16, "heads": 2, "width": 32, **sizes})
    # a config copied with new sizes skips its validator: the model refuses it too
    cfg = LMConfig(d_model=16, heads=2, width=32).model_copy(update=sizes)
    with pytest.raises(InputError, match="needs about"):
        ByteLM(cfg)


def test_a_batch_whose_activations_cannot_fit_is_refused():
    with pytest.raises(InputError, match="needs about"):
        validate(LMTrainConfig, {"d_model": 16, "heads": 2, "width": 32, "context": 64, "batch": 10**9,
                                 "tokens": 10**12})


@pytest.mark.parametrize("measure, message", [({"sae_latents": 2**31}, "needs about"),
                                              ({"sae_latents": 16, "sae_k": 40}, "must be below")])
def test_roads_refuse_a_measure_sae_that_cannot_train_before_any_model_trains(measure, message):
    with pytest.raises(InputError, match=message):
        validate(RoadsConfig, {"measure": measure})
