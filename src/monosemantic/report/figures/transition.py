"""Report section of issue 7, part 4: the recovery phase transition, and trained toy models against the Welch bound.

Random Gaussian dictionaries (n unit features in m dims), non-negative k-sparse codes, unfolded by OMP and by exact
L1 (the basis-pursuit limit of the positive lasso); the measured probability of exact support recovery against
rho = k/m beside the Donoho-Tanner simplex curve and the mutual-coherence guarantee. Then toy ReLU-output models'
represented columns against the Welch bound.
"""
from __future__ import annotations

import time

import matplotlib.pyplot as plt
import numpy as np
import torch

import monosemantic.experiments.transition as T
from monosemantic.report import Section, figure, table

# normal mode: OMP at the m = 256 (n = 512..4096); exact L1 costs ~0.1-1.7 s per sample at m = 256 (LARS
# homotopy and LP solvers alike), so its curves use m = 64 with the same deltas m/n
FULL = dict(omp_m=256, l1_m=64, ratios=(2, 4, 8, 16), omp_trials=100, l1_trials=50, toy_steps=3000)
QUICK = dict(omp_m=64, l1_m=32, ratios=(2, 8), omp_trials=20, l1_trials=12, toy_steps=300)
TOYS = ((20, 5), (40, 10), (80, 20))  # (n, m) toy ReLU-output models, uniform importance
TOY_SPARSITIES = (0.7, 0.9, 0.99)  # 0.7: antipodal pairs (D* = 1/2); sparser: more superposition


def toy_models(steps: int, progress: bool) -> list[dict]:
    from monosemantic.toy.sampler import probabilities
    from monosemantic.toy.train import train_toy

    out = []
    for n, m in TOYS:
        run = train_toy("relu-output", n, m, probabilities(list(TOY_SPARSITIES), n), torch.ones(n), steps=steps,
                        seeds=1, progress=progress, eval_batch=1024)
        W = run.model.W.detach()[run.kept]  # [configs, m, n]
        out += [{"n": n, "S": s, **T.toy_coherence(W[c])} for c, s in enumerate(TOY_SPARSITIES)]
    return out


def plot(curves: dict, toys: list[dict] | None = None):
    """Recovery against rho = k/m for each method in curves; with toys, a last panel of toy W's coherence."""
    methods = [m for m in ("l1", "omp") if curves.get(m)]
    fig, axes = plt.subplots(1, len(methods) + bool(toys), figsize=(5 * (len(methods) + bool(toys)), 4),
                             squeeze=False)
    axes = axes[0]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    titles = {"l1": "exact L1 (positive lasso, alpha -> 0)", "omp": "OMP"}
    for ax, method in zip(axes, methods):
        title = titles[method]
        for i, c in enumerate(curves[method]):
            m, n, col = c["m"], c["n"], colors[i % len(colors)]
            rho = np.array(c["ks"]) / m
            ax.plot(rho, c["success"], "o-", color=col, ms=3, label=f"n={n} (m/n={m / n:.3g})")
            ax.axvline(c["dt_k"] / m, color=col, ls="--", lw=1)
            # coherence guarantees: from the Welch bound (the best any F could give) and from this F's mu
            ax.plot(c["k_guaranteed_welch"] / m, 1.04, "^", color=col, ms=7)
            ax.plot(c["k_guaranteed_mu"] / m, 1.04, "v", color=col, ms=7, mfc="none")
        ax.set_xlabel("rho = k / m")
        ax.set_ylabel("P(exact support recovery)")
        ax.set_title(f"{title}, m={curves[method][0]['m']}")
        ax.set_ylim(-0.03, 1.09)
        ax.legend(fontsize=7, loc="center right")
    axes[0].text(0.01, 0.02, "dashed: Donoho-Tanner simplex rho(m/n)\n^ k < (1+1/Welch)/2   v k < (1+1/mu(F))/2",
                 transform=axes[0].transAxes, fontsize=7)
    if not toys:
        fig.tight_layout()
        return fig
    ax = axes[-1]
    for j, m in enumerate(sorted({t["m"] for t in toys})):
        ns = np.arange(m, 4 * m + 1)  # the bound exists for whole numbers of vectors
        ax.plot(ns / m, [T.welch_bound(int(v), m) for v in ns], color=colors[j], label=f"Welch bound, m={m}")
        pts = [t for t in toys if t["m"] == m]
        x = [t["represented"] / m for t in pts]
        ax.plot(x, [t["coherence"] for t in pts], "o", color=colors[j], mfc="none", label="toy W, all pairs")
        ax.plot(x, [t["coherence_no_antipodal"] for t in pts], "s", color=colors[j], label="toy W, no antipodal")
        ax.plot(x, [t["random"] for t in pts], "x", color=colors[j], label="random directions (median)")
    ax.set_xlabel("represented features / m")
    ax.set_ylabel("coherence max |cos|")
    ax.set_title("trained toy models (ReLU output)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))  # beside: the points fill the whole square
    fig.tight_layout()
    return fig


def transition_section(quick: bool, progress: bool) -> tuple[Section, dict]:
    cfg = QUICK if quick else FULL
    t = time.perf_counter()
    curves = T.curves(cfg["omp_m"], cfg["l1_m"], cfg["ratios"], cfg["omp_trials"], cfg["l1_trials"],
                      progress=progress)
    t_rec = time.perf_counter() - t
    t = time.perf_counter()
    toys = toy_models(cfg["toy_steps"], progress)
    t_toy = time.perf_counter() - t
    sec = Section("The recovery phase transition, and toy models against the Welch bound (issue 7)")
    sec.text(f"Random Gaussian dictionaries, n unit features in m dims; non-negative k-sparse codes (support uniform, "
             f"magnitudes U[1, 2]); success = the unfolded support (|c_i| > 1e-3 max|c|) equals the true one. "
             f"OMP: sensing.omp, tol 1e-6, at most k atoms, m={cfg['omp_m']}, {cfg['omp_trials']} trials per k. "
             f"Exact L1: the positive lasso at alpha = 1e-7 ||x|| (the basis-pursuit limit) by LARS homotopy, "
             f"m={cfg['l1_m']} (exact L1 at m = 256 costs ~0.1-1.7 s per sample: `monosemantic transition --m 256` "
             f"draws those curves, 252 s measured on one core), {cfg['l1_trials']} trials per k.")
    sec.add(figure(plot(curves, toys)))
    rows, summary_rec = [], {}
    for omp_c, l1_c in zip(curves["omp"], curves["l1"]):
        rho_dt = omp_c["dt_k"] / omp_c["m"]
        row = {"m/n": omp_c["m"] / omp_c["n"], "DT rho": rho_dt,
               "L1 rho50": None if l1_c["k50"] is None else l1_c["k50"] / l1_c["m"],
               "OMP rho50": None if omp_c["k50"] is None else omp_c["k50"] / omp_c["m"],
               "OMP m, n": f"{omp_c['m']}, {omp_c['n']}", "OMP DT k": omp_c["dt_k"], "OMP k50": omp_c["k50"],
               "L1 m, n": f"{l1_c['m']}, {l1_c['n']}", "L1 DT k": l1_c["dt_k"], "L1 k50": l1_c["k50"],
               "Welch mu": omp_c["welch"], "mu(F)": omp_c["mu"], "k guaranteed (Welch)": omp_c["k_guaranteed_welch"],
               "k guaranteed (mu(F))": omp_c["k_guaranteed_mu"], "L1 early stops": l1_c["early"]}
        # Welch mu, mu(F) and the guarantees are for the OMP dictionary (m, n)
        rows.append(row)
        summary_rec[str(omp_c["n"])] = {"m": omp_c["m"], "omp_k50": omp_c["k50"], "dt_k": omp_c["dt_k"],
                                        "l1_m": l1_c["m"], "l1_n": l1_c["n"], "l1_k50": l1_c["k50"],
                                        "l1_dt_k": l1_c["dt_k"]}
    sec.add(table([{k: ("-" if v is None else v) for k, v in r.items()} for r in rows]))
    sec.text("rho50: the interpolated k where recovery falls through 50%, over m. The coherence guarantee holds for "
             "every support; the Donoho-Tanner curve is for a random support and exact L1, asymptotically (at finite "
             "m the measured 50% point sits near it, a few k above at small m/n). OMP with k steps fails earlier.",
             note=True)
    sec.add(table(toys))
    sec.text(f"Toy ReLU-output models, uniform importance, {cfg['toy_steps']} steps, one seed: coherence of the "
             "represented columns (norm > 0.5) over all pairs and leaving out antipodal partners (cosine < -0.95), "
             "against the Welch bound for that many vectors in m dims and the median coherence of as many random "
             "directions (50 draws).", note=True)
    t_all = t_rec + t_toy
    sec.text(f"Timings (time.perf_counter, this machine): recovery curves {t_rec:.1f} s, toy models {t_toy:.1f} s.",
             note=True)
    summary = {"recovery_transition": summary_rec,
               "toy_coherence": [{k: t[k] for k in ("n", "m", "S", "represented", "coherence",
                                                    "coherence_no_antipodal", "welch", "random")} for t in toys],
               "transition_wall_s": t_all}
    return sec, summary
