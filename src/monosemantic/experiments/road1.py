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
from monosemantic.config import EffectiveSizeConfig, L1SweepConfig, MoEConfig, default_lambdas
from monosemantic.toy.sampler import FeatureSampler, importance, probabilities
from monosemantic.devices import resolve
from monosemantic.runs import check_new_dir, write_run
from monosemantic.toy.models import loss_per_instance, make_model
from monosemantic.toy.moe import MoEToyModel
from monosemantic.toy.train import init_seeds, kept_tensors, train_toy

EVAL_SEED = 424_242  # offset of the held-out batch used for the measures (not the one that picks seeds)


def _held_out(p: torch.Tensor, batch: int, seed: int) -> torch.Tensor:
    """x: [instances, batch, n] from its own seed."""
    return FeatureSampler(p, seed=seed + EVAL_SEED).sample_into(torch.empty(p.shape[0], batch, p.shape[1]))


def _train_kept(kind: str, n: int, m: int, p: torch.Tensor, imp: torch.Tensor, steps: int, batch: int, seeds: int,
                seed: int, eval_batch: int, progress: bool, l1: float | torch.Tensor = 0.0, make=None,
                device: str | torch.device = "cpu") -> dict:
    """train_toy on `device`, then the kept instances as a model of their own on the CPU (where the measures run)
    with a held-out batch and its loss.

    make(instances, seeds, device): the model to train and to hold the kept instances (default: make_model)."""
    C = p.shape[0]
    make = make or (lambda instances, init, dev: make_model(kind, instances, n, m, init, device=dev))
    run = train_toy(kind, n, m, p, imp, steps, batch, seeds, seed, eval_batch=eval_batch, progress=progress, l1=l1,
                    model=make(C * seeds, init_seeds(C * seeds, seed), resolve(device)))
    kept = kept_tensors(run)
    model = make(C, [0] * C, "cpu")
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
    device: str | torch.device = "cpu",
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
                     progress, l1=torch.tensor(lambdas, dtype=torch.float32), device=device)
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
    device: str | torch.device = "cpu",
) -> dict:
    """Dense (m), MoE (top-k of E experts of m) and dense (E*m) relu-hidden models on the same features.

    Flop-matched: dense m against MoE k=1 (m active neurons per input). Neuron-matched: dense E*m.
    Returns {"sparsity", "models": {name: {...per sparsity lists..., "W": ...}}}.
    """
    def moe(instances: int, init: list[int], dev: str | torch.device = "cpu") -> MoEToyModel:
        return MoEToyModel(instances, n, m, experts, k, init, balance, dev)

    moe(1, [0])  # checks experts, k and balance before any training
    p = probabilities(sparsities, n)
    imp = importance(n, importance_decay)
    out = {"sparsity": list(sparsities), "models": {}}
    dense = {f"dense m={m}": m, f"dense m={experts * m}": experts * m}
    for name, width in dense.items():
        t = _train_kept("relu-hidden", n, width, p, imp, steps, batch, seeds, seed, eval_batch, progress,
                        device=device)
        out["models"][name] = {"active_neurons": width, "params": width * n + n, "wall_s": t["run"].log.wall_s,
                               "loss": t["loss"], **_dense_measures(t["kept"]["W"], t["model"].hidden(t["x"]))[2],
                               **t["kept"]}
    t = _train_kept("moe", n, m, p, imp, steps, batch, seeds, seed, eval_batch, progress, make=moe, device=device)
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
    device: str | torch.device = "cpu",
) -> dict:
    """k = m'/m per sparsity: m' the narrowest model without superposition as good as the trained one.

    The compressed-sensing scaling m = C n p log(1/p) says m neurons hold n = m / (C p log(1/p))
    features at density p, so k should grow like 1/(p log(1/p)); C is fitted by least squares in log k
    over the points below the cap n/m (k cannot exceed it).
    """
    imp = importance(n, importance_decay)
    t = _train_kept("relu-hidden", n, m, probabilities(sparsities, n), imp, steps, batch, seeds, seed, eval_batch,
                    progress, device=device)
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



def _split(res: dict, keys: tuple[str, ...]) -> tuple[dict, dict]:
    return {k: v for k, v in res.items() if k not in keys}, {k: res[k] for k in keys if k in res}


def l1_run(cfg: L1SweepConfig, out: str | Path, overwrite: bool = False, progress: bool = False) -> dict:
    """model.safetensors: W [lambdas, m, n], b [lambdas, n]; result.json: the per-lambda measures."""
    check_new_dir(out, overwrite)
    device = resolve(cfg.device)
    res = l1_sweep(cfg.lambdas, cfg.n, cfg.m, cfg.sparsity, cfg.importance_decay, cfg.model, cfg.steps, cfg.batch,
                   cfg.seeds, cfg.seed, cfg.eval_batch, progress, device)
    result, tens = _split(res, ("W", "b"))
    result["dropped"] = dropped_by_loss_per_activation(res)
    write_run(out, {"kind": "road1-l1", **cfg.model_dump(), "device": str(device)}, result, {"model": tens},
              overwrite)
    return result


def moe_run(cfg: MoEConfig, out: str | Path, overwrite: bool = False, progress: bool = False) -> dict:
    """One safetensors file per model (dense: W [sparsities, m, n], b; MoE: W [sparsities, E, m, n], router
    [sparsities, E, n], b); result.json: the per-model, per-sparsity measures."""
    check_new_dir(out, overwrite)
    device = resolve(cfg.device)
    res = moe_compare(cfg.sparsity, cfg.n, cfg.m, cfg.experts, cfg.k, cfg.importance_decay, cfg.balance, cfg.steps,
                      cfg.batch, cfg.seeds, cfg.seed, cfg.eval_batch, progress, device)
    tensors, result = {}, {**res, "models": {}}
    for name, rec in res["models"].items():
        result["models"][name], tensors[_stem(name)] = _split(rec, ("W", "b", "router"))
        result["models"][name]["file"] = f"{_stem(name)}.safetensors"
    write_run(out, {"kind": "road1-moe", **cfg.model_dump(), "device": str(device)}, result, tensors, overwrite)
    return result


def _stem(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def effective_size_run(cfg: EffectiveSizeConfig, out: str | Path, overwrite: bool = False,
                       progress: bool = False) -> dict:
    """model.safetensors: the superposition models, W [sparsities, m, n], b; result.json: k per sparsity."""
    check_new_dir(out, overwrite)
    device = resolve(cfg.device)
    res = effective_size(cfg.sparsity, cfg.n, cfg.m, cfg.importance_decay, cfg.steps, cfg.batch,
                         cfg.seeds, cfg.seed, cfg.eval_batch, progress, device)
    result, tens = _split(res, ("W", "b"))
    write_run(out, {"kind": "road1-effective-size", **cfg.model_dump(), "device": str(device)}, result,
              {"model": tens}, overwrite)
    return result


# ---------------------------------------------------------------------------------------------------
# The report's section: shorter training than the CLI defaults to stay within the demo's time (the benchmark runs
# the full sweep).


def demo(quick: bool, progress: bool) -> dict:
    steps, seeds, ev = (300, 1, 4096) if quick else (4000, 2, 16384)
    sw = l1_sweep(default_lambdas(), steps=steps, seeds=seeds, eval_batch=ev, progress=progress)
    two_freq = [0.8 if i % 2 == 0 else 0.96 for i in range(20)]  # even features 5x as frequent as odd ones
    sw2 = l1_sweep(default_lambdas(8, 0.003, 1.0), sparsity=two_freq, importance_decay=0.85,
                   steps=min(steps, 3000), seeds=seeds, eval_batch=ev, progress=progress)
    moe_s = [0.9, 0.99]
    mo = moe_compare(moe_s, steps=min(steps, 3000), seeds=seeds, eval_batch=ev, progress=progress)
    es = effective_size([0.7, 0.9, 0.95, 0.98, 0.99, 0.995], n=40, steps=min(steps, 3000), seeds=seeds,
                        eval_batch=ev, progress=progress)
    return {"steps": steps, "seeds": seeds, "l1": sw, "dropped": dropped_by_loss_per_activation(sw),
            "dropped_two_frequencies": dropped_by_loss_per_activation(sw2), "moe_sparsity": moe_s, "moe": mo,
            "effective_size": es, "moe_verdict": moe_verdict(mo)}
