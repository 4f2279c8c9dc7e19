"""Circuits in the feature basis: the map from input features to output features through the hidden ReLU layer of
the ReLU-hidden model (W_in = W, W_out = W^T) and the abs model (W_in = W1, W_out = W2), read with the true features
and with features learned by dictionaries (road 2).

True map, column i: M[:, i] = W_out (g_i * W_in[:, i]), g_i = E[1(h > 0) sign(x_i) | x_i != 0]: [m], the neurons
that are on when feature i is, averaged over held-out inputs (sign(x_i) turns the abs model's two half-maps into
the map from |x_i|). M[i, i] is feature i's intended term (1 for a feature computed perfectly), M[k, i] (k != i)
its interference on output k.

Learned map: the same with learned input features. A dictionary fitted on the model's inputs gives atoms u_a
(unit, non-negative codes c_a): column a = |U| W_out (g_a * W_in u_a), g_a = E[1(h > 0) | c_a > 0], its rows read
on the unit |u|. Matched to the true features (Hungarian on |cos|), it is scored against the true map: the
correlation of the matched entries, and the share of intended terms (true M[i, i] > INTENDED) recovered
(matched atom cos > 0.9 and learned intended term > INTENDED). A dictionary fitted on the hidden activations is
scored against the true hidden directions (ReLU(+-W_in[:, i]) of the active features) by MMCS.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import monosemantic.recovery as recovery
from monosemantic.dictionary.classical import MiniBatchDictionary
from monosemantic.errors import InputError
from monosemantic.experiments.adversarial import pearson
from monosemantic.experiments.unfolding import atoms_of, load_dictionary
from monosemantic.progress import Bar
from monosemantic.runs import read_run, write_run
from monosemantic.toy.models import make_model
from monosemantic.toy.sampler import FeatureSampler, probabilities

HIDDEN_MODELS = ("relu-hidden", "abs")
INTENDED = 0.5  # an intended term above this: the feature passes through the hidden layer
EVAL_BATCH = 8192
DICT_SAMPLES = 16 * 1024
DICT_ALPHA = 0.05


def hidden_layer(model) -> tuple[torch.Tensor, torch.Tensor]:
    """(W_in: [instances, m, n], W_out: [instances, n, m]) of a model with a hidden ReLU layer."""
    if model.kind not in HIDDEN_MODELS:
        raise InputError(f"the {model.kind} model has no hidden ReLU layer; circuits need {' or '.join(HIDDEN_MODELS)}")
    if model.kind == "abs":
        return model.W1.detach(), model.W2.detach()
    return model.W, model.W.transpose(1, 2)


def gates(h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """g: [m, k], column a = E[1(h > 0) sign(c_a) | c_a != 0] for h: [batch, m] and codes c: [batch, k]."""
    on = c != 0
    return ((h > 0).float().T @ torch.sign(c)) / on.sum(0).clamp_min(1)


def feature_map(W_in: torch.Tensor, W_out: torch.Tensor, g: torch.Tensor, U: torch.Tensor | None = None) -> torch.Tensor:
    """[k, k]: column a = R W_out (g_a * W_in u_a) for one instance (W_in: [m, n], W_out: [n, m], g: [m, k]),
    u_a the rows of U: [k, n] (unit; default the true features, U = I) and R = |U|."""
    if U is None:
        U = torch.eye(W_in.shape[1])
    cols = W_out @ (g * (W_in @ U.T))  # [n, k]
    return U.abs() @ cols


def split_terms(M: torch.Tensor) -> dict:
    """Intended (diagonal) and interference (off-diagonal, summed |.| per source feature) terms of a map [k, k]."""
    off = M - torch.diag(torch.diagonal(M))
    return {"intended": torch.diagonal(M).tolist(), "interference": off.abs().sum(0).tolist()}


def true_maps(model, x: torch.Tensor, bar: Bar | None = None) -> torch.Tensor:
    """M: [instances, n, n], the true-feature map of every instance on x: [instances, batch, n]; one step of
    `bar` per instance."""
    W_in, W_out = hidden_layer(model)
    with torch.no_grad():
        h = model.hidden(x)
    maps = []
    for k in range(x.shape[0]):
        maps.append(feature_map(W_in[k], W_out[k], gates(h[k], x[k])))
        if bar:
            bar.advance()
    return torch.stack(maps)


def fit_dictionary(X: torch.Tensor, latents: int, seed: int = 0) -> MiniBatchDictionary:
    return MiniBatchDictionary(n_latents=latents, alpha=DICT_ALPHA, samples=DICT_SAMPLES, seed=seed).fit(X)


def check_width(dictionary, n: int, m: int) -> str:
    """'input' or 'hidden': which activations a given dictionary reads, from its width (n or m)."""
    d = atoms_of(dictionary)[0].shape[1]
    if d not in (n, m):
        raise InputError(f"the dictionary's width is {d}, but the model's input has n={n} and hidden layer m={m} "
                         f"dimensions")
    return "input" if d == n else "hidden"


def learned_map(model, k: int, x: torch.Tensor, M_true: torch.Tensor, input_dict=None, hidden_dict=None,
                seed: int = 0, bar: Bar | None = None) -> tuple[dict, dict[str, torch.Tensor]]:
    """Instance k's map in the basis of a dictionary learned on its inputs x: [batch, n] (fitted when not given),
    its scores against the true map M_true: [n, n], and the hidden dictionary's recovery of the hidden directions.
    One step of `bar` per dictionary (given or fitted)."""
    W_in, W_out = (w[k] for w in hidden_layer(model))
    n = W_in.shape[1]
    signed = model.kind == "abs"
    with torch.no_grad():
        h = model.hidden(x[None].expand(model.instances, -1, -1))[k]  # [batch, m]
    if input_dict is None:
        input_dict = fit_dictionary(x, 2 * n if signed else n, seed)
    if bar:
        bar.advance()
    if hidden_dict is None:
        hidden_dict = fit_dictionary(h, 2 * n if signed else n, seed)
    if bar:
        bar.advance()
    U = torch.as_tensor(recovery.unit_rows(atoms_of(input_dict)[0]), dtype=torch.float32)  # [atoms, n]
    codes = torch.as_tensor(np.asarray(input_dict.transform(x.numpy()).todense()), dtype=torch.float32)
    L = feature_map(W_in, W_out, gates(h, codes), U)  # [atoms, atoms]
    feat, atom, cos = recovery.match(torch.eye(n), U, absolute=True)
    active = torch.diagonal(M_true) > INTENDED
    Lm = L[atom][:, atom]  # learned map reordered into true-feature order
    Mt = M_true[feat][:, feat]
    recovered_terms = [bool(active[i] and abs(c) > recovery.THRESHOLD and Lm[a, a] > INTENDED)
                       for a, (i, c) in enumerate(zip(feat, cos))]
    hidden_true = torch.cat([W_in.clamp_min(0).T, (-W_in).clamp_min(0).T])[torch.cat([active, active & signed])]
    scores = {"instance": k, "input_atoms": int(U.shape[0]),
              "input_mcc": float(np.abs(cos).mean()),
              "map_correlation": pearson(Lm.flatten().numpy(), Mt.flatten().numpy()),
              "intended_terms": int(active.sum()),
              "intended_recovered": sum(recovered_terms) / max(1, int(active.sum())),
              "hidden_mmcs": (recovery.dictionary_scores(hidden_true, atoms_of(hidden_dict)[0])["mmcs"]
                              if len(hidden_true) else None)}
    return scores, {"learned_map": L, "learned_map_matched": Lm, "input_atoms": U}


def load_model(run_dir: str | Path):
    """(config, model, held-out x: [instances, batch, n]) of a toy run directory whose model has a hidden layer."""
    config, _, tensors = read_run(run_dir)
    kind = config.get("model")
    if kind not in HIDDEN_MODELS:
        raise InputError(f"{run_dir}: the {kind} model has no hidden ReLU layer; circuits need "
                         f"{' or '.join(HIDDEN_MODELS)}")
    W = tensors.get("W")
    if W is None or W.ndim != 3 or (kind == "abs" and "W2" not in tensors) or "b" not in tensors:
        raise InputError(f"{run_dir}/model.safetensors lacks the {kind} model's weights")
    I, m, n = W.shape
    model = make_model(kind, I, n, m, [0] * I)
    try:
        model.load(tensors)
    except RuntimeError as e:
        raise InputError(f"{run_dir}/model.safetensors: weights of the wrong shape ({e})") from None
    sparsity = config.get("sparsity", [0.0] * I)
    if len(sparsity) != I:
        raise InputError(f"{run_dir}: {len(sparsity)} sparsities in config.json for {I} instances")
    x = FeatureSampler(probabilities(sparsity, n), seed=int(config.get("seed", 0)) + 30_000_001,
                       signed=kind == "abs").sample_into(torch.empty(I, EVAL_BATCH, n))
    return config, model, x


def circuits(model, x: torch.Tensor, instance: int = -1, dictionary=None, seed: int = 0,
             progress: bool = False) -> tuple[dict, dict]:
    """True maps of every instance and the learned map of one (`instance`), with a given dictionary (width n: the
    input basis; width m: the hidden one) or fitted ones. Returns (result, tensors). With `progress`, a bar over
    the instances' true maps and the two dictionaries."""
    I = x.shape[0]
    if not -I <= instance < I:
        raise InputError(f"instance must lie in [{-I}, {I}), got {instance}")
    instance %= I
    which = None if dictionary is None else check_width(dictionary, model.n, model.m)
    bar = Bar(I + 2, "circuits") if progress else None
    try:
        M = true_maps(model, x, bar)
        scores, learned = learned_map(model, instance, x[instance], M[instance],
                                      dictionary if which == "input" else None,
                                      dictionary if which == "hidden" else None, seed, bar)
    finally:
        if bar:
            bar.close()
    res = {"model": model.kind, "n": model.n, "m": model.m, "maps": [split_terms(Mk) for Mk in M],
           "given_dictionary": which, "learned": scores}
    return res, {"maps": {"M": M.contiguous(), **{k: v.contiguous() for k, v in learned.items()}}}


def circuits_run(run_dir: str | Path, out: str | Path, dictionary: str | Path | None = None, instance: int = -1,
                 overwrite: bool = False, progress: bool = False) -> dict:
    """`monosemantic circuits`: the maps of a toy run's models into OUT (maps.safetensors, result.json)."""
    config, model, x = load_model(run_dir)
    d = None if dictionary is None else load_dictionary(dictionary)
    res, tensors = circuits(model, x, instance, d, int(config.get("seed", 0)), progress)
    res.update({"run_dir": str(run_dir), "sparsity": config.get("sparsity")})
    write_run(out, {"kind": "circuits", "run_dir": str(run_dir), "dictionary": None if dictionary is None else
                    str(dictionary), "instance": instance}, res, tensors, overwrite)
    return res


def demo(quick: bool, progress: bool) -> dict:
    """The report's privileged-basis, computation, adversarial and circuits results, at sizes that fit the demo:
    the privileged basis in the paper's setting with 4 starts (not 20), the abs model (n=20, m=8) and the attack with
    one start and 3k steps (the paper-scale runs are documented commands)."""
    from monosemantic.experiments.adversarial import adversarial
    from monosemantic.experiments.computation import computation
    from monosemantic.experiments.privileged import privileged

    steps = 1500 if quick else 3000
    pt, ct = {}, {}
    priv = privileged(sparsity=[0.0, 0.5, 0.7, 0.9, 0.99], steps=steps if quick else 10_000, seeds=2 if quick else 4,
                      progress=progress, keep=pt)
    comp = computation(n=20, m=8, sparsity=[0.0, 0.9, 0.99], steps=steps, seeds=1, progress=progress, keep=ct)
    adv = adversarial(sparsity=[0.0, 0.5, 0.8, 0.9, 0.95, 0.99], steps=steps, seeds=1, progress=progress)
    maps = {}
    for name, t, res in (("relu-hidden", pt, priv), ("abs", ct, comp)):
        r, tensors = circuits(t["model"], t["x"], progress=progress)
        r["sparsity"] = res["sparsity"]
        r["M"] = tensors["maps"]["M"][-1].tolist()
        r["learned_map_matched"] = tensors["maps"]["learned_map_matched"].tolist()
        maps[name] = r
    return {"privileged": priv, "computation": comp, "adversarial": adv, "circuits": maps}
