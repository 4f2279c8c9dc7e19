"""The report's section on the recovery phase transition, and toy models against the Welch bound."""
from __future__ import annotations

from monosemantic.report.figures.transition import plot
from monosemantic.report.html import Section, figure, table


def section(result: dict) -> tuple[Section, dict]:
    cfg, curves, toys = result["cfg"], result["curves"], result["toys"]
    t_rec, t_toy = result["curves_s"], result["toys_s"]
    sec = Section("The recovery phase transition, and toy models against the Welch bound")
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
