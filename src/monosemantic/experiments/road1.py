"""Road 1: models without superposition, and what monosemanticity costs.

Three experiments, composed from the toy trainer (`toy.train.train_toy`), the models and `measures`:

- `l1_sweep`: an L1 penalty lambda * mean_b ||h||_1 on the hidden activations, every lambda (and every
  seed) an instance of one batched model. Per lambda: reconstruction loss (without the penalty),
  represented features, monosemantic neurons, D*, the importance threshold (the importance of the least
  important feature still represented) and each feature's and neuron's loss reduction per activation
  (ablation loss / activation frequency).
- `moe_compare`: dense m neurons against a Mixture-of-Experts with k=1 of E experts of m (the same
  active neurons per input, E times the parameters) and a dense model of E*m (the same neurons).
- `effective_size`: the narrowest model without superposition that matches a superposition model's
  loss, m', as k = m'/m against sparsity, beside the compressed-sensing scaling m ~ n p log(1/p).

Measures count only *used* neurons (mean |h_j| > measures.USED_ACTIVITY on held-out data): a dead ReLU
neuron keeps the weights it started with, and its weights would count features that nothing reads.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, field_validator

from monosemantic.errors import InputError
import monosemantic.measures as measures
from monosemantic.config import Strict, check_sparsities
from monosemantic.toy.sampler import FeatureSampler, importance, probabilities
from monosemantic.runs import check_new_dir, write_run
from monosemantic.toy.models import loss_per_instance, make_model
from monosemantic.toy.moe import MoEToyModel
from monosemantic.toy.train import init_seeds, kept_tensors, train_toy

EVAL_SEED = 424_242  # offset of the held-out batch used for the measures (not the one that picks seeds)


def default_lambdas(count: int = 12, lo: float = 10**-2.5, hi: float = 2.0) -> list[float]:
    """lambda = 0 (the model in superposition), then `count` log-spaced values from no effect to all dead."""
    return [0.0] + torch.logspace(math.log10(lo), math.log10(hi), count, dtype=torch.float64).tolist()


def _held_out(p: torch.Tensor, batch: int, seed: int) -> torch.Tensor:
    """x: [instances, batch, n] from its own seed."""
    return FeatureSampler(p, seed=seed + EVAL_SEED).sample_into(torch.empty(p.shape[0], batch, p.shape[1]))


def _train_kept(kind: str, n: int, m: int, p: torch.Tensor, imp: torch.Tensor, steps: int, batch: int, seeds: int,
                seed: int, eval_batch: int, progress: bool, l1: float | torch.Tensor = 0.0, make=None) -> dict:
    """train_toy, then the kept instances as a model of their own with a held-out batch and its loss.

    make(instances, seeds): the model to train and to hold the kept instances (default: make_model(kind, ...))."""
    C = p.shape[0]
    make = make or (lambda instances, init: make_model(kind, instances, n, m, init))
    run = train_toy(kind, n, m, p, imp, steps, batch, seeds, seed, eval_batch=eval_batch, progress=progress, l1=l1,
                    model=make(C * seeds, init_seeds(C * seeds, seed)))
    kept = kept_tensors(run)
    model = make(C, [0] * C)
    model.load(kept)
    x = _held_out(p, eval_batch, seed)
    weight = imp.expand(C, 1, n).contiguous()
    return {"run": run, "kept": kept, "model": model, "x": x, "weight": weight,
            "loss": loss_per_instance(model, x, weight).tolist()}  # reconstruction only, held-out batch


def _dims_per_feature(Wu: torch.Tensor) -> list:
    """D* per instance; None (JSON null) where no weight is left (every neuron dead: no feature to divide by)."""
    alive = (Wu != 0).flatten(1).any(dim=1)
    return [d if a else None for d, a in zip(measures.dims_per_feature(Wu).tolist(), alive.tolist())]


def _neuron_measures(Wu: torch.Tensor, used: torch.Tensor) -> dict:
    """Per instance, over used neurons: counts, monosemantic (README: top share > 0.999), mean top share,
    and the same share over positive (excitatory) weights only."""
    share, exc = measures.neuron_top_share(Wu), measures.neuron_excitatory_share(Wu)
    count = used.sum(dim=1)

    def mean(t: torch.Tensor) -> torch.Tensor:  # over used neurons; NaN (JSON null) when none is used
        return torch.where(count > 0, (t * used).sum(1) / count.clamp_min(1), torch.full_like(t[:, 0], math.nan))

    return {
        "used_neurons": count.tolist(),
        "monosemantic_neurons": ((share > measures.MONOSEMANTIC) & used).sum(1).tolist(),
        "monosemantic_share": mean((share > measures.MONOSEMANTIC).float()).tolist(),
        "mean_top_share": mean(share).tolist(),
        "fires_for_one_feature": ((exc > measures.MONOSEMANTIC) & used).sum(1).tolist(),
        "mean_excitatory_share": mean(exc).tolist(),
    }


def _per_activation(delta: torch.Tensor, freq: torch.Tensor) -> torch.Tensor:
    """Loss increase per activation; NaN (null in JSON) for a unit that is never active."""
    return torch.where(freq > 0, delta / freq.double().clamp_min(1e-12), torch.full_like(delta, math.nan))


# ---------------------------------------------------------------------------------------------------
# 1. The L1 penalty


def l1_sweep(
    lambdas: list[float],
    n: int = 20,
    m: int = 5,
    sparsity: float | list[float] = 0.9,
    importance_decay: float = 0.7,
    kind: str = "relu-hidden",
    steps: int = 10_000,
    batch: int = 1024,
    seeds: int = 3,
    seed: int = 0,
    eval_batch: int = 16384,
    progress: bool = False,
) -> dict:
    """Train one model per lambda (best of `seeds`, all as instances of one batched model) and measure it.

    sparsity: one S for every feature, or n values (features of different frequencies).
    Returns JSON-ready lists per lambda plus "W", "b": [lambdas, m, n], [lambdas, n] (kept instances).
    A lambda at which every neuron dies is a result: no represented feature, threshold None (JSON null).
    """
    C = len(lambdas)
    imp = importance(n, importance_decay)
    S = torch.as_tensor(sparsity, dtype=torch.float64)
    if S.ndim == 1 and len(S) != n:
        raise InputError(f"per-feature sparsity needs n={n} values, got {len(S)}")
    tr = _train_kept(kind, n, m, probabilities(S.expand(C, n), n), imp, steps, batch, seeds, seed, eval_batch,
                     progress, l1=torch.tensor(lambdas, dtype=torch.float32))
    run, kept, model, x, loss = tr["run"], tr["kept"], tr["model"], tr["x"], tr["loss"]
    h = model.hidden(x)
    Wu, rep, dense = _dense_measures(kept["W"], h)
    d_feat, d_neuron = measures.ablation_loss(model, x, tr["weight"])
    threshold = measures.importance_threshold(Wu, imp).tolist()
    feat_freq, neuron_freq = measures.activation_frequency(x), measures.activation_frequency(h)
    return {
        "lambda": list(lambdas),
        "importance": imp.tolist(),
        "loss": loss,
        "hidden_l1": run.hidden_l1,  # mean_b ||h||_1 on the batch that picked the seeds
        **dense,  # represented_features, dims_per_feature and the neuron measures
        "represented": rep.tolist(),
        "importance_threshold": [t if math.isfinite(t) else None for t in threshold],  # None: nothing left
        "threshold_monotone": monotone(threshold),
        "loss_monotone": monotone(loss),
        "feature_loss_per_activation": _per_activation(d_feat, feat_freq).tolist(),
        "neuron_loss_per_activation": _per_activation(d_neuron, neuron_freq).tolist(),
        "feature_frequency": feat_freq.tolist(),
        "neuron_frequency": neuron_freq.tolist(),
        "wall_s": run.log.wall_s,
        "model_steps_per_s": C * run.log.steps_done / run.log.wall_s if run.log.wall_s > 0 else None,
        "instances_trained": run.model.instances,
        "W": kept["W"],
        "b": kept["b"],
    }


def l1_lines(sweep: dict) -> list[str]:
    """One line per lambda for the terminal (CLI and benchmark)."""
    lines = []
    for c, lam in enumerate(sweep["lambda"]):
        thr = sweep["importance_threshold"][c]
        lines.append(f"lambda {lam:<8.4g} loss {sweep['loss'][c]:.5f}  represented {sweep['represented_features'][c]:>2}"
                     f"  threshold {'-' if thr is None else f'{thr:.3g}':>6}  used neurons {sweep['used_neurons'][c]}: "
                     f"{sweep['monosemantic_neurons'][c]} monosemantic, {sweep['fires_for_one_feature'][c]} fire for "
                     f"one feature")
    return lines + [f"threshold monotone in lambda: {sweep['threshold_monotone']}, loss: {sweep['loss_monotone']}"]


def monotone(values: list[float]) -> bool:
    """Non-decreasing (inf counts as the largest value: a threshold with no feature left)."""
    return all(a <= b for a, b in zip(values, values[1:]))


def dropped_by_loss_per_activation(sweep: dict) -> dict:
    """Which features the penalty gives up, against each feature's loss reduction per activation.

    A feature's value is its loss reduction per activation in the smallest-lambda model that represents
    it. The penalty gives features up in order of this value when, at every lambda, each feature given
    up (represented at a smaller lambda, not at this one) has a smaller value than each feature kept;
    `order_violations` counts the (given up, kept) pairs that break this, out of `pairs`. The same count
    for the total loss reduction (value x frequency) and for the importance says which order explains better.
    """
    lams, rep, per_act = sweep["lambda"], sweep["represented"], sweep["feature_loss_per_activation"]
    n = len(rep[0])
    first = [next((c for c in range(len(lams)) if rep[c][i]), None) for i in range(n)]
    value = [None if first[i] is None else per_act[first[i]][i] for i in range(n)]
    total = [None if v is None else v * sweep["feature_frequency"][first[i]][i] for i, v in enumerate(value)]
    dropped_at = [None if first[i] is None else next((lams[c] for c in range(first[i], len(lams)) if not rep[c][i]),
                                                     None) for i in range(n)]

    def violations(key: list) -> tuple[int, int]:
        bad = pairs = 0
        for c in range(len(lams)):
            kept = [key[i] for i in range(n) if rep[c][i] and value[i] is not None]
            gone = [key[i] for i in range(n) if not rep[c][i] and first[i] is not None and first[i] < c]
            pairs += len(kept) * len(gone)
            bad += sum(1 for g in gone for k in kept if g > k)
        return bad, pairs

    bad, pairs = violations(value)
    return {"loss_per_activation": value, "total_loss_reduction": total, "dropped_at_lambda": dropped_at,
            "order_violations": bad, "pairs": pairs, "order_violations_total": violations(total)[0],
            "order_violations_importance": violations(sweep["importance"])[0]}


# ---------------------------------------------------------------------------------------------------
# 2. Mixture-of-Experts


def _moe_measures(W: torch.Tensor, router: torch.Tensor, h: torch.Tensor, experts: int, m: int) -> dict:
    """Per instance: measures over all E*m neurons and per expert, and the router's split of features.

    W: [instances, E, m, n]; router: [instances, E, n]; h: [instances, batch, E*m] (zero off the chosen experts).
    """
    I, _, _, n = W.shape
    used = measures.used_neurons(h)  # [I, E*m]
    Wu = measures.used_weights(W.reshape(I, experts * m, n), used)
    We = Wu.reshape(I * experts, m, n)
    rep_e = measures.represented(We).reshape(I, experts, n)
    owner = router.argmax(dim=1)  # a lone feature's expert: [I, n]
    return {
        "represented_features": measures.represented(Wu).sum(1).tolist(),
        "dims_per_feature": _dims_per_feature(Wu),
        "expert_dims_per_feature": [_dims_per_feature(We[i * experts:(i + 1) * experts]) for i in range(I)],
        "expert_represented": rep_e.sum(2).tolist(),
        "features_routed_to_expert": [[int((owner[i] == e).sum()) for e in range(experts)] for i in range(I)],
        "router_owner": owner.tolist(),
        **_neuron_measures(Wu, used),
    }


def _dense_measures(W: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(Wu: W over used neurons, represented: bool [instances, n], the per-instance measures of Wu)."""
    used = measures.used_neurons(h)
    Wu = measures.used_weights(W, used)
    rep = measures.represented(Wu)
    return Wu, rep, {"represented_features": rep.sum(1).tolist(), "dims_per_feature": _dims_per_feature(Wu),
                     **_neuron_measures(Wu, used)}


def moe_compare(
    sparsities: list[float],
    n: int = 20,
    m: int = 5,
    experts: int = 4,
    k: int = 1,
    importance_decay: float = 0.9,
    balance: float = 0.01,
    steps: int = 10_000,
    batch: int = 1024,
    seeds: int = 2,
    seed: int = 0,
    eval_batch: int = 16384,
    progress: bool = False,
) -> dict:
    """Dense (m), MoE (top-k of E experts of m) and dense (E*m) relu-hidden models on the same features.

    Flop-matched: dense m against MoE k=1 (m active neurons per input). Neuron-matched: dense E*m.
    Returns {"sparsity", "models": {name: {...per sparsity lists..., "W": ...}}}.
    """
    def moe(instances: int, init: list[int]) -> MoEToyModel:
        return MoEToyModel(instances, n, m, experts, k, init, balance)

    moe(1, [0])  # checks experts, k and balance before any training
    p = probabilities(sparsities, n)
    imp = importance(n, importance_decay)
    out = {"sparsity": list(sparsities), "models": {}}
    dense = {f"dense m={m}": m, f"dense m={experts * m}": experts * m}
    for name, width in dense.items():
        t = _train_kept("relu-hidden", n, width, p, imp, steps, batch, seeds, seed, eval_batch, progress)
        out["models"][name] = {"active_neurons": width, "params": width * n + n, "wall_s": t["run"].log.wall_s,
                               "loss": t["loss"], **_dense_measures(t["kept"]["W"], t["model"].hidden(t["x"]))[2],
                               **t["kept"]}
    t = _train_kept("moe", n, m, p, imp, steps, batch, seeds, seed, eval_batch, progress, make=moe)
    tens = t["kept"]
    name = f"MoE k={k} of {experts}x{m}"
    out["models"][name] = {"active_neurons": k * m, "params": experts * m * n + experts * n + n,
                           "wall_s": t["run"].log.wall_s, "loss": t["loss"],
                           **_moe_measures(tens["W"], tens["router"], t["model"].hidden(t["x"]), experts, m), **tens}
    out["moe_name"] = name
    out["dense_names"] = list(dense)
    return out


def moe_verdict(mo: dict) -> str:
    """One sentence, computed from the comparison: loss and monosemanticity of MoE against dense m."""
    dense, moe = mo["models"][mo["dense_names"][0]], mo["models"][mo["moe_name"]]
    wide = mo["models"][mo["dense_names"][1]]
    ratio = ", ".join(f"{a / b:.2f} at S={s}" for a, b, s in zip(moe["loss"], dense["loss"], mo["sparsity"]))
    expert_d = [d for row in moe["expert_dims_per_feature"] for d in row if d is not None]
    more_mono = sum(a > b for a, b in zip(moe["monosemantic_share"], dense["monosemantic_share"]))
    return (f"Measured: MoE loss / flop-matched dense loss = {ratio}; neuron-matched dense loss / MoE loss = "
            + ", ".join(f"{a / b:.2f}" for a, b in zip(wide["loss"], moe["loss"]))
            + f". Monosemantic neurons (used): dense {dense['monosemantic_neurons']}, MoE {moe['monosemantic_neurons']}"
            f"; expert D* from {min(expert_d, default=math.nan):.2f} to {max(expert_d, default=math.nan):.2f} "
            f"(1 = no superposition). The MoE has a larger share of monosemantic neurons than the dense m model at "
            f"{more_mono} of {len(mo['sparsity'])} sparsities: "
            + ("its experts are themselves in superposition, so here the extra parameters buy a lower loss, not "
               "monosemanticity." if more_mono == 0 and max(expert_d, default=0) < 1 else
               "see the table for where it does."))


# ---------------------------------------------------------------------------------------------------
# 3. Effective size


def monosemantic_loss(imp: torch.Tensor, density: float, width: int) -> float:
    """Lowest loss of a model without superposition of `width` neurons (relu-hidden or relu-output).

    With one feature per neuron, the best such model gives the `width` most important features a
    neuron each (w = 1, b = 0: exact) and the rest only the bias, whose best value is E[x] = p/2 with
    loss Var(x) = p/3 - p^2/4 (x = 0 with probability 1 - p, else U[0, 1]).
    """
    rest = torch.sort(imp, descending=True).values[width:]
    return float(rest.double().sum()) * (density / 3 - density**2 / 4)


def narrowest_width(imp: torch.Tensor, density: float, loss: float) -> int:
    """m': the fewest neurons without superposition whose best loss is at most `loss` (at most n)."""
    n = len(imp)
    return next(w for w in range(n + 1) if monosemantic_loss(imp, density, w) <= loss * (1 + 1e-9) or w == n)


def effective_size(
    sparsities: list[float],
    n: int = 60,
    m: int = 5,
    importance_decay: float = 1.0,
    steps: int = 10_000,
    batch: int = 1024,
    seeds: int = 3,
    seed: int = 0,
    eval_batch: int = 16384,
    progress: bool = False,
) -> dict:
    """k = m'/m per sparsity: m' the narrowest model without superposition as good as the trained one.

    The compressed-sensing scaling m = C n p log(1/p) says m neurons hold n = m / (C p log(1/p))
    features at density p, so k should grow like 1/(p log(1/p)); C is fitted by least squares in log k
    over the points below the cap n/m (k cannot exceed it).
    """
    imp = importance(n, importance_decay)
    t = _train_kept("relu-hidden", n, m, probabilities(sparsities, n), imp, steps, batch, seeds, seed, eval_batch,
                    progress)
    tens, loss = t["kept"], t["loss"]
    density = [1 - s for s in sparsities]
    widths = [narrowest_width(imp, d, ls) for d, ls in zip(density, loss)]
    k = [w / m for w in widths]
    cs = [1 / (d * math.log(1 / d)) if 0 < d < 1 else math.inf for d in density]
    fit = [(math.log(kk), math.log(c)) for kk, c, w in zip(k, cs, widths) if 0 < w < n and math.isfinite(c)]
    scale = math.exp(sum(a - b for a, b in fit) / len(fit)) if fit else None
    # the exponent a of k ~ (1/(p log 1/p))^a, least squares in log-log (1 = the compressed-sensing scaling)
    exponent = None
    if len(fit) >= 2:
        ma, mb = sum(a for a, _ in fit) / len(fit), sum(b for _, b in fit) / len(fit)
        var = sum((b - mb) ** 2 for _, b in fit)
        exponent = sum((a - ma) * (b - mb) for a, b in fit) / var if var > 0 else None
    return {
        "sparsity": list(sparsities), "density": density, "loss": loss,
        "monosemantic_loss_at_m": [monosemantic_loss(imp, d, m) for d in density],
        "narrowest_width": widths, "k": k, "k_cap": n / m,
        "cs_scaling": [None if scale is None or not math.isfinite(c) else scale * c for c in cs],
        "cs_scale": scale,
        "cs_exponent": exponent,
        **_dense_measures(tens["W"], t["model"].hidden(t["x"]))[2],
        "wall_s": t["run"].log.wall_s, "W": tens["W"], "b": tens["b"],
    }


# ---------------------------------------------------------------------------------------------------
# Configs and run directories (the CLI's `monosemantic road1 ...`)



class _Train(Strict):
    n: PositiveInt
    m: PositiveInt = 5
    importance_decay: PositiveFloat
    steps: PositiveInt = 10_000
    batch: PositiveInt = 1024
    seeds: PositiveInt = 3
    seed: NonNegativeInt = 0
    eval_batch: PositiveInt = 16384


class L1SweepConfig(_Train):
    n: PositiveInt = 20
    importance_decay: PositiveFloat = 0.7
    model: str = "relu-hidden"
    sparsity: float = Field(default=0.9, ge=0, lt=1)
    lambdas: list[NonNegativeFloat] = Field(default_factory=default_lambdas, min_length=1)

    @field_validator("model")
    @classmethod
    def _penalised(cls, v: str) -> str:
        if v not in ("relu-output", "relu-hidden"):
            raise ValueError(f"the {v} model takes no L1 penalty on hidden activations; use relu-hidden or relu-output")
        return v


class MoEConfig(_Train):
    n: PositiveInt = 20
    importance_decay: PositiveFloat = 0.9
    experts: int = 4
    k: int = 1
    balance: NonNegativeFloat = 0.01
    seeds: PositiveInt = 2
    sparsity: list[float] = Field(default=[0.7, 0.9, 0.97, 0.99], min_length=1)
    _sparsity = field_validator("sparsity")(check_sparsities)


class EffectiveSizeConfig(_Train):
    n: PositiveInt = 60
    importance_decay: PositiveFloat = 1.0
    sparsity: list[float] = Field(default=[0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995], min_length=1)
    _sparsity = field_validator("sparsity")(check_sparsities)


def _split(res: dict, keys: tuple[str, ...]) -> tuple[dict, dict]:
    return {k: v for k, v in res.items() if k not in keys}, {k: res[k] for k in keys if k in res}


def l1_to_dir(cfg: L1SweepConfig, out: str | Path, overwrite: bool = False, progress: bool = False) -> Path:
    """model.safetensors: W [lambdas, m, n], b [lambdas, n]; result.json: the per-lambda measures."""
    check_new_dir(out, overwrite)
    res = l1_sweep(cfg.lambdas, cfg.n, cfg.m, cfg.sparsity, cfg.importance_decay, cfg.model, cfg.steps, cfg.batch,
                   cfg.seeds, cfg.seed, cfg.eval_batch, progress)
    result, tens = _split(res, ("W", "b"))
    result["dropped"] = dropped_by_loss_per_activation(res)
    return write_run(out, {"kind": "road1-l1", **cfg.model_dump()}, result, {"model": tens}, overwrite)


def moe_to_dir(cfg: MoEConfig, out: str | Path, overwrite: bool = False, progress: bool = False) -> Path:
    """One safetensors file per model (dense: W [sparsities, m, n], b; MoE: W [sparsities, E, m, n], router
    [sparsities, E, n], b); result.json: the per-model, per-sparsity measures."""
    check_new_dir(out, overwrite)
    res = moe_compare(cfg.sparsity, cfg.n, cfg.m, cfg.experts, cfg.k, cfg.importance_decay, cfg.balance, cfg.steps,
                      cfg.batch, cfg.seeds, cfg.seed, cfg.eval_batch, progress)
    tensors, result = {}, {**res, "models": {}}
    for name, rec in res["models"].items():
        result["models"][name], tensors[_stem(name)] = _split(rec, ("W", "b", "router"))
        result["models"][name]["file"] = f"{_stem(name)}.safetensors"
    return write_run(out, {"kind": "road1-moe", **cfg.model_dump()}, result, tensors, overwrite)


def _stem(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def effective_size_to_dir(cfg: EffectiveSizeConfig, out: str | Path, overwrite: bool = False,
                          progress: bool = False) -> Path:
    """model.safetensors: the superposition models, W [sparsities, m, n], b; result.json: k per sparsity."""
    check_new_dir(out, overwrite)
    res = effective_size(cfg.sparsity, cfg.n, cfg.m, cfg.importance_decay, cfg.steps, cfg.batch,
                         cfg.seeds, cfg.seed, cfg.eval_batch, progress)
    result, tens = _split(res, ("W", "b"))
    return write_run(out, {"kind": "road1-effective-size", **cfg.model_dump()}, result, {"model": tens}, overwrite)


# ---------------------------------------------------------------------------------------------------
# Report section


def road1_section(quick: bool, progress: bool):
    """The report's road-1 section and its summary entries (l1_threshold_monotone, moe_flop_matched, effective_k).

    Shorter training than the CLI defaults to stay within the demo's time (the benchmark runs the full sweep).
    """
    from monosemantic.report import Section, figure, table
    from monosemantic.report import road1_plots

    steps, seeds, ev = (300, 1, 4096) if quick else (4000, 2, 16384)
    sw = l1_sweep(default_lambdas(), steps=steps, seeds=seeds, eval_batch=ev, progress=progress)
    drop = dropped_by_loss_per_activation(sw)
    two_freq = [0.8 if i % 2 == 0 else 0.96 for i in range(20)]  # even features 5x as frequent as odd ones
    sw2 = l1_sweep(default_lambdas(8, 0.003, 1.0), sparsity=two_freq, importance_decay=0.85,
                   steps=min(steps, 3000), seeds=seeds, eval_batch=ev, progress=progress)
    drop2 = dropped_by_loss_per_activation(sw2)
    moe_s = [0.9, 0.99]
    mo = moe_compare(moe_s, steps=min(steps, 3000), seeds=seeds, eval_batch=ev, progress=progress)
    es = effective_size([0.7, 0.9, 0.95, 0.98, 0.99, 0.995], n=40, steps=min(steps, 3000), seeds=seeds,
                        eval_batch=ev, progress=progress)

    sec = Section("Road 1: models without superposition, and what monosemanticity costs")
    sec.text(f"ReLU-hidden-layer model h = ReLU(Wx), x' = ReLU(W^T h + b), n=20, m=5, I_i = 0.7^i, S = 0.9, trained "
             f"with an L1 penalty lambda * mean ||h||_1 on its hidden activations: {len(sw['lambda'])} lambdas (0, then "
             f"log-spaced) as instances of one batched model, {steps} steps, best of {seeds} seeds (lowest penalised "
             f"loss). Loss is reconstruction only, on a held-out batch. Measures count used neurons only "
             f"(mean |h_j| > {measures.USED_ACTIVITY}).")
    sec.add(figure(road1_plots.l1_front(sw)))
    sec.add(table([{"lambda": lam, "loss": ls, "represented": r, "threshold": "-" if t is None else t, "D*": d,
                    "used neurons": u, "monosemantic (>0.999)": mn, "fire for one feature": one, "mean top share": sh}
                   for lam, ls, r, t, d, u, mn, one, sh in zip(
                       sw["lambda"], sw["loss"], sw["represented_features"], sw["importance_threshold"],
                       ["-" if d is None else d for d in sw["dims_per_feature"]],
                       sw["used_neurons"], sw["monosemantic_neurons"], sw["fires_for_one_feature"],
                       sw["mean_top_share"])]))
    sec.text(f"Threshold non-decreasing over the whole sweep: {sw['threshold_monotone']}; loss non-decreasing: "
             f"{sw['loss_monotone']}. 'Monosemantic' is the README's definition (top feature > 0.999 of the squared "
             f"weight); 'fire for one feature' applies it to the positive weights only: with non-negative features "
             f"only a positive weight makes a ReLU neuron fire, while the penalty also grows small negative "
             f"(inhibitory) weights, which keep neurons below 0.999 by the strict definition.", note=True)
    sec.add("<h3>Which features the penalty gives up</h3>")
    sec.add(figure(road1_plots.loss_per_activation(drop, sw["importance"])))
    sec.text(f"Loss reduction per activation = loss increase when the feature's column of W is zeroed, divided by how "
             f"often the feature is on, in the smallest-lambda model that represents it. Pairs (given up, kept) at the "
             f"same lambda where the given-up feature has the larger value: {drop['order_violations']} of "
             f"{drop['pairs']}.", note=True)
    sec.text("The same with features of two frequencies (n=20, I_i = 0.85^i, even features on with probability 0.2, "
             "odd ones 0.04), where the loss reduction per activation, the total loss reduction (x frequency) and the "
             "importance order the features differently. Out-of-order (given up, kept) pairs under each order:")
    sec.add(table([{"order by": name, "pairs out of order": drop2[key], "pairs": drop2["pairs"]}
                   for name, key in (("loss reduction per activation", "order_violations"),
                                     ("total loss reduction", "order_violations_total"),
                                     ("importance", "order_violations_importance"))]))

    sec.add("<h3>Mixture-of-Experts: flop-matched and neuron-matched</h3>")
    names = [mo["dense_names"][0], mo["moe_name"], mo["dense_names"][1]]
    rows = []
    for name in names:
        rec = mo["models"][name]
        for c, s in enumerate(mo["sparsity"]):
            rows.append({"model": name, "S": s, "active neurons": rec["active_neurons"], "params": rec["params"],
                         "loss": rec["loss"][c], "represented": rec["represented_features"][c],
                         "D*": rec["dims_per_feature"][c],
                         "expert D*": ", ".join("-" if v is None else f"{v:.2f}" for v in rec["expert_dims_per_feature"][c])
                         if "expert_dims_per_feature" in rec else "-",
                         "features routed per expert": str(rec["features_routed_to_expert"][c])
                         if "features_routed_to_expert" in rec else "-",
                         "monosemantic": f"{rec['monosemantic_neurons'][c]}/{rec['used_neurons'][c]}",
                         "mean top share": rec["mean_top_share"][c]})
    sec.add(table(rows))
    dense, moe = mo["models"][names[0]], mo["models"][names[1]]
    sec.text("n=20, I_i = 0.9^i. The MoE routes each input to the top-1 of 4 experts of 5 ReLU neurons (the same "
             "active neurons as the dense m=5 model) with a Switch-style load-balancing term; 'features routed per "
             "expert' counts, per expert, the features a lone-feature input is sent to.", note=True)
    sec.text(moe_verdict(mo))
    sec.add("<h3>Effective size: how wide a model without superposition must be</h3>")
    sec.add(figure(road1_plots.effective_k(es)))
    sec.add(table([{"S": s, "loss (m=5, superposition)": ls, "best loss without superposition at m=5": ml,
                    "m'": w, "k = m'/m": k} for s, ls, ml, w, k in zip(
                        es["sparsity"], es["loss"], es["monosemantic_loss_at_m"], es["narrowest_width"], es["k"])]))
    sec.text("n=40 features of equal importance, superposition model: ReLU hidden layer of m=5. m' is the fewest "
             "neurons of a model without superposition (one feature per neuron: the m' features kept exactly, the "
             "rest left to the bias, loss (n - m') (p/3 - p^2/4)) whose loss is at most the trained model's. "
             "Fitted exponent a of k ~ (1/(p log 1/p))^a: "
             + ("-" if es["cs_exponent"] is None else f"{es['cs_exponent']:.2f}")
             + " (1 would be the compressed-sensing scaling; below 1, the trained superposition model gains width "
               "more slowly with sparsity than compressed sensing allows).", note=True)
    summary = {
        "l1_threshold_monotone": sw["threshold_monotone"],
        "l1_sweep": {"lambda": sw["lambda"], "loss": sw["loss"], "importance_threshold": sw["importance_threshold"],
                     "represented_features": sw["represented_features"],
                     "monosemantic_neurons": sw["monosemantic_neurons"], "used_neurons": sw["used_neurons"]},
        "moe_flop_matched": {"sparsity": moe_s, "dense_loss": dense["loss"], "moe_loss": moe["loss"],
                             "dense_dims_per_feature": dense["dims_per_feature"],
                             "moe_dims_per_feature": moe["dims_per_feature"],
                             "moe_expert_dims_per_feature": moe["expert_dims_per_feature"],
                             "dense_monosemantic_neurons": dense["monosemantic_neurons"],
                             "moe_monosemantic_neurons": moe["monosemantic_neurons"]},
        "effective_k": {str(s): k for s, k in zip(es["sparsity"], es["k"])},
        "effective_k_cs_exponent": es["cs_exponent"],
        "l1_drop_order_violations": {"loss_per_activation": drop2["order_violations"],
                                     "total_loss_reduction": drop2["order_violations_total"],
                                     "importance": drop2["order_violations_importance"], "pairs": drop2["pairs"]},
    }
    return sec, summary
