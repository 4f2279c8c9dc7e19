"""Measures of superposition on a batch of toy models, with the definitions of Elhage et al. 2022
(each function's docstring gives its formula).

All functions take `W: [instances, m, n]` (column i of W[k] is feature i's direction in instance
k's hidden space) and return per-instance tensors.
"""
from __future__ import annotations

import math

import torch

from monosemantic.errors import InputError

REPRESENTED = 0.5  # a feature is represented when its norm exceeds this
MONOSEMANTIC = 0.999  # a neuron is monosemantic when its top feature carries this share of its weight
ANTIPODAL_COS = -0.95
ORTHOGONAL_COS = 0.1
POLYGON_TOL_DEG = 10.0
FRACTIONS = (1, 3 / 4, 2 / 3, 1 / 2, 2 / 5, 3 / 8, 0)  # the paper's energy levels of D_i (tegum products of simplices and polygons)
_EPS = 1e-12
LEVEL_TOL = 0.01  # D_i within this of a level sits on it (2/5 and 3/8 are only 0.025 apart)
FACTOR_EPS = 0.1  # features i, j interfere (one tegum factor) when |W_hat_i . W_j| exceeds this
RANK_TOL = 0.1  # a factor's rank counts singular values above this fraction of its largest
# (features, rank) of a tegum factor -> its polytope; D_i = rank / features for each of its features
POLYTOPES = {(1, 1): "dedicated (1)", (2, 1): "digon", (3, 2): "triangle", (4, 3): "tetrahedron",
             (5, 2): "pentagon", (8, 3): "square antiprism"}
LEVEL_NAMES = {1: "1", 3 / 4: "3/4", 2 / 3: "2/3", 1 / 2: "1/2", 2 / 5: "2/5", 3 / 8: "3/8", 0: "0"}


def feature_norms(W: torch.Tensor) -> torch.Tensor:
    """||W_i||: [instances, n]."""
    return W.norm(dim=1)


def represented(W: torch.Tensor) -> torch.Tensor:
    """Bool [instances, n]: ||W_i|| > 0.5."""
    return feature_norms(W) > REPRESENTED


def _overlaps(W: torch.Tensor) -> torch.Tensor:
    """(W_hat_i . W_j)^2: [instances, n (i), n (j)]."""
    W_hat = W / feature_norms(W).clamp_min(_EPS)[:, None, :]
    return torch.bmm(W_hat.transpose(1, 2), W) ** 2


def superposition(W: torch.Tensor) -> torch.Tensor:
    """sum_{j != i} (W_hat_i . W_j)^2: [instances, n]. Meaningful for represented features only: the direction
    of a near-zero column is noise (`mean_superposition` and `summarize` drop the others)."""
    ov = _overlaps(W)
    return ov.sum(dim=2) - ov.diagonal(dim1=1, dim2=2)


def mean_superposition(W: torch.Tensor) -> torch.Tensor:
    """Superposition averaged over the represented features: [instances]; NaN where none is represented."""
    rep = represented(W)
    return torch.where(rep, superposition(W), torch.zeros(())).sum(1) / rep.sum(1)


def feature_dimensionality(W: torch.Tensor) -> torch.Tensor:
    """D_i = ||W_i||^2 / sum_j (W_hat_i . W_j)^2 (j = i included): [instances, n]; 0 for a zero feature."""
    norms2 = feature_norms(W) ** 2
    D = norms2 / _overlaps(W).sum(dim=2).clamp_min(_EPS)
    return torch.where(norms2 > _EPS, D, torch.zeros_like(D))


def live_neurons(W: torch.Tensor) -> torch.Tensor:
    """Bool [instances, m]: the neurons whose row of W is not all zero (`used_weights` zeroes the dead ones)."""
    return (W != 0).any(dim=2)


def dims_per_feature(W: torch.Tensor) -> torch.Tensor:
    """D* = m_live / ||W||_F^2: [instances], m_live counting the live neurons only (a dead neuron stores nothing;
    zero its row with `used_weights` first). Without dead neurons this is the paper's m / ||W||_F^2."""
    return live_neurons(W).sum(1) / (W**2).sum(dim=(1, 2)).clamp_min(_EPS)


def neuron_top_share(W: torch.Tensor) -> torch.Tensor:
    """max_i w_ji^2 / sum_i w_ji^2 for each neuron j (row j of W): [instances, m]; 1 means monosemantic.

    Meaningful only where the hidden basis is privileged (a ReLU hidden layer, an L1 penalty on h).
    """
    w2 = W**2
    return w2.max(dim=2).values / w2.sum(dim=2).clamp_min(_EPS)


def monosemantic_neurons(W: torch.Tensor) -> torch.Tensor:
    """Bool [instances, m]: the neuron's top feature carries > 0.999 of its squared weight."""
    return neuron_top_share(W) > MONOSEMANTIC


def cosines(W: torch.Tensor) -> torch.Tensor:
    """cos(W_i, W_j): [instances, n, n]."""
    W_hat = W / feature_norms(W).clamp_min(_EPS)[:, None, :]
    return torch.bmm(W_hat.transpose(1, 2), W_hat)


def geometry(W_k: torch.Tensor) -> dict:
    """Geometry labels of one instance W_k: [m, n], over its represented features.

    antipodal pairs: cosine < -0.95; orthogonal: every pair of represented features has |cos| < 0.1;
    polygon (2-D hidden space only): k >= 3 features whose neighbouring angles are all within 10
    degrees of 360/k.
    """
    W_k = W_k[None]
    rep = represented(W_k)[0].nonzero().flatten().tolist()
    cos = cosines(W_k)[0]
    pairs = [[i, j] for a, i in enumerate(rep) for j in rep[a + 1 :] if cos[i, j] < ANTIPODAL_COS]
    off = cos[rep][:, rep] - torch.eye(len(rep))
    orthogonal = bool(off.abs().max() < ORTHOGONAL_COS) if len(rep) > 1 else True
    polygon = None
    if W_k.shape[1] == 2 and len(rep) >= 3:
        angles = sorted(math.degrees(math.atan2(float(W_k[0, 1, i]), float(W_k[0, 0, i]))) % 360 for i in rep)
        gaps = [(angles[(a + 1) % len(angles)] - angles[a]) % 360 for a in range(len(angles))]
        if all(abs(g - 360 / len(rep)) <= POLYGON_TOL_DEG for g in gaps):
            polygon = len(rep)
    if pairs and 2 * len(pairs) == len(rep):  # two antipodal pairs at right angles are also a square
        label = f"{len(pairs)} antipodal pair" + ("s" if len(pairs) > 1 else "")
    elif polygon:
        label = {3: "triangle", 4: "square", 5: "pentagon", 6: "hexagon"}.get(polygon, f"{polygon}-gon")
    elif orthogonal:
        label = "orthogonal"
    else:
        label = "mixed"
    return {"represented": rep, "antipodal_pairs": pairs, "orthogonal": orthogonal, "polygon": polygon, "label": label}


def check_epsilon(eps: float) -> None:
    if not 0 < eps < 1:
        raise InputError(f"epsilon must lie in (0, 1), got {eps}")


def tegum_factors(W_k: torch.Tensor, eps: float = FACTOR_EPS) -> list[list[int]]:
    """Groups of represented features of one instance W_k: [m, n], each orthogonal to every other group: the
    connected components of the graph joining i and j when |W_hat_i . W_j| or |W_hat_j . W_i| exceeds eps."""
    check_epsilon(eps)
    rep = represented(W_k[None])[0].nonzero().flatten().tolist()
    proj = (W_k / feature_norms(W_k[None])[0].clamp_min(_EPS)).T @ W_k  # [n, n]: W_hat_i . W_j
    linked = (proj.abs() > eps) | (proj.abs().T > eps)
    factors, seen = [], set()
    for start in rep:
        if start in seen:
            continue
        comp, stack = [], [start]
        seen.add(start)
        while stack:
            i = stack.pop()
            comp.append(i)
            for j in rep:
                if j not in seen and linked[i, j]:
                    seen.add(j)
                    stack.append(j)
        factors.append(sorted(comp))
    return sorted(factors)


def polytope(W_k: torch.Tensor, factor: list[int]) -> tuple[int, str]:
    """(rank, name) of one tegum factor: the rank of its columns of W_k: [m, n] and the polytope its size and
    rank name (POLYTOPES), or "other"."""
    sv = torch.linalg.svdvals(W_k[:, factor].double())
    rank = int((sv > RANK_TOL * sv.max()).sum())
    return rank, POLYTOPES.get((len(factor), rank), "other")


def energy_level(d: float, tol: float = LEVEL_TOL) -> float | None:
    """The paper's level (FRACTIONS) nearest to D_i = d if it lies within tol, else None."""
    level = min(FRACTIONS, key=lambda f: abs(f - d))
    return level if abs(level - d) <= tol else None


def geometry_levels(W_k: torch.Tensor, eps: float = FACTOR_EPS) -> dict:
    """Geometry of one instance W_k: [m, n] in any dimension: its tegum factors with their polytopes, each
    represented feature's energy level (None off every level) and the fraction on a named level."""
    D = feature_dimensionality(W_k[None])[0].tolist()
    factors = []
    for f in tegum_factors(W_k, eps):
        rank, name = polytope(W_k, f)
        factors.append({"features": f, "rank": rank, "polytope": name})
    rep = [i for f in factors for i in f["features"]]
    levels = {i: energy_level(D[i]) for i in rep}
    counts: dict[str, int] = {}
    for f in factors:
        counts[f["polytope"]] = counts.get(f["polytope"], 0) + 1
    return {"factors": factors, "polytopes": counts,
            "levels": {str(i): (None if v is None else LEVEL_NAMES[v]) for i, v in sorted(levels.items())},
            "on_named_level": sum(v is not None for v in levels.values()) / len(rep) if rep else None}


def summarize(W: torch.Tensor, privileged: bool) -> list[dict]:
    """Every measure, per instance, as JSON-ready dicts (the content of `measures.json`)."""
    norms, sup, D = feature_norms(W), superposition(W), feature_dimensionality(W)
    rep, mean_sup = represented(W), mean_superposition(W)
    dstar, live = dims_per_feature(W), live_neurons(W).sum(1)
    out = []
    for k in range(W.shape[0]):
        rec = {
            "represented_features": int(rep[k].sum()),
            "dims_per_feature": float(dstar[k]),  # over live neurons
            "live_neurons": int(live[k]),
            "feature_norm": norms[k].tolist(),
            "superposition": [float(v) if r else None for v, r in zip(sup[k].tolist(), rep[k].tolist())],
            "mean_superposition": None if rep[k].sum() == 0 else float(mean_sup[k]),
            "feature_dimensionality": D[k].tolist(),
            "geometry": geometry(W[k]),
        }
        if privileged:
            share = neuron_top_share(W[k : k + 1])[0]
            rec["neuron_top_share"] = share.tolist()
            rec["monosemantic_neurons"] = int((share > MONOSEMANTIC).sum())
        out.append(rec)
    return out


# --- Measures of models trained without superposition (road 1: an L1 penalty, Mixture-of-Experts) ---

USED_ACTIVITY = 1e-4  # a neuron is used when its mean |h_j| on held-out data exceeds this (features are O(1))


def neuron_activity(h: torch.Tensor) -> torch.Tensor:
    """Mean |h_j| over the batch: [instances, m] for hidden activations h: [instances, batch, m]."""
    return h.abs().mean(dim=1)


def activation_frequency(a: torch.Tensor) -> torch.Tensor:
    """How often each unit is non-zero: [instances, k] for activations a: [instances, batch, k]."""
    return (a != 0).float().mean(dim=1)


def used_neurons(h: torch.Tensor) -> torch.Tensor:
    """Bool [instances, m]: the neurons whose mean |h_j| on h: [instances, batch, m] exceeds USED_ACTIVITY."""
    return neuron_activity(h) > USED_ACTIVITY


def used_weights(W: torch.Tensor, used: torch.Tensor) -> torch.Tensor:
    """W with the rows of unused neurons (`used_neurons`: [instances, m]) set to zero: [instances, m, n].

    A ReLU neuron that never fires computes nothing, but its weights keep whatever the start gave
    them (no gradient reaches them); measuring them would count features nothing reads.
    """
    return W * used[:, :, None]


def neuron_excitatory_share(W: torch.Tensor) -> torch.Tensor:
    """neuron_top_share over the positive weights only: [instances, m]; 0 for a neuron with none.

    With non-negative features, only a positive weight can make a ReLU neuron fire; negative weights
    only inhibit it. A share of 1 says the neuron fires for exactly one feature even when small
    inhibitory weights keep it below the 0.999 of `monosemantic_neurons` (an L1 penalty grows them).
    """
    return neuron_top_share(W.clamp_min(0))


def importance_threshold(W: torch.Tensor, importance: torch.Tensor) -> torch.Tensor:
    """Importance of the least important represented feature: [instances]; +inf when none is represented.

    importance: [n] or [instances, n].
    """
    imp = torch.as_tensor(importance, dtype=W.dtype).expand(W.shape[0], W.shape[2])
    return torch.where(represented(W), imp, torch.full_like(imp, math.inf)).min(dim=1).values


@torch.no_grad()
def ablation_loss(model, x: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss increase when one feature (column i of W) or one neuron (row j of W) is removed.

    A tied toy model (`theta: [instances, m + 1, n]`, rows :m are W); x: [instances, batch, n];
    weight: [instances, 1, n]. Returns (features [instances, n], neurons [instances, m]), float64.
    Divided by how often the feature or neuron is active, this is its loss reduction per activation.
    """
    from monosemantic.toy.models import loss_per_instance

    base = loss_per_instance(model, x, weight)
    saved = model.theta.clone()
    feats = torch.empty(model.instances, model.n, dtype=torch.float64)
    neurons = torch.empty(model.instances, model.m, dtype=torch.float64)
    try:
        for i in range(model.n):
            model.theta[:, : model.m, i] = 0
            feats[:, i] = loss_per_instance(model, x, weight) - base
            model.theta.copy_(saved)
        for j in range(model.m):
            model.theta[:, j] = 0
            neurons[:, j] = loss_per_instance(model, x, weight) - base
            model.theta.copy_(saved)
    finally:
        model.theta.copy_(saved)
    return feats, neurons
