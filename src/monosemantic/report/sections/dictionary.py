"""The report's dictionary-learning section: known features recovered per method, and the amortization gap."""
from __future__ import annotations

from monosemantic.report.figures.dictionary import frontier, latent_density, plots, training_curves
from monosemantic.report.html import Section, figure, table


def section(result: dict):
    scores, trajs, best, gaps = result["scores"], result["trajectories"], result["best"], result["gaps"]
    n = best["ours TopK"].shape[0]
    sec = Section("Dictionary learning against known features (road 2)")
    sec.text(f"{n} random unit features in superposition (seed 1), each on with "
             f"p = k/{n}, magnitudes U(0,1); 10k samples held out. Our TopK and ReLU+L1 SAEs with their defaults "
             f"(shortened runs), scikit-learn's MiniBatchDictionaryLearning (alpha 0.1, float64), and PCA and FastICA "
             f"as floors (at most d atoms, scored up to sign). benchmarks/dictionary.py compares the SAEs with SAELens.")
    sec.add(figure(plots(trajs, best)))
    cols = ["method", "train_s", "mmcs", "recovered", "mcc_hungarian", "fvu", "l0", "dead", "support_f1",
            "code_rel_err"]
    sec.add(table([{"method": m, **{c: s[c] for c in cols[1:]}} for m, s in scores.items()], cols))
    sec.text("recovered = share of true features whose best atom has cosine > 0.9; support F1 and code error compare "
             "the codes with the true codes after a one-to-one (Hungarian) matching of atoms to features. Times are "
             "training compute on this machine and vary by up to 25% between runs.", note=True)
    if "history" in result:  # results from before the SAEs kept a training history have none
        sec.add("<h3>Training: the SAEs' objective, FVU, L0 and dead latents</h3>")
        sec.add(figure(training_curves(result["history"]), "SAE training curves"))
        sec.text("Each point is the mean over the training batches since the previous point (about 200 points per "
                 "run). FVU divides the batch MSE by the training data's variance. A latent counts as dead once it "
                 "has not fired for the estimator's dead_after samples (100k), so that curve is zero before; the "
                 "dashed lines count the latents restarted so far (resampling until 80% of the run, towards the "
                 "worst-reconstructed samples), which is where dying latents go while resampling is on.",
                 note=True)
        sec.add(figure(latent_density(result["latent_density"]), "latent densities"))
        sec.text("How often each latent fires on the held-out samples. A true feature fires on k/n of the samples "
                 f"({result['true_l0']}/{n} = {result['true_l0'] / n:.3g}); a latent far above that carries several "
                 "features or a direction shared by many.", note=True)
        sec.add("<h3>The L0-FVU frontier</h3>")
        pts = result["frontier"]
        sec.text(f"TopK over k and ReLU+L1 over its L1 coefficient, each trained on a quarter of the samples of "
                 f"the runs above and scored on the held-out samples: how much reconstruction each sparsity buys, and "
                 f"whether the best reconstruction is also the best recovery of the true features.")
        sec.add(figure(frontier(pts, result["true_l0"]), "L0-FVU frontier"))
        fcols = ["method", "k", "l1", "l0", "fvu", "recovered", "train_s"]
        sec.add(table([{c: p.get(c, "") for c in fcols} for p in pts], fcols))
    sec.add("<h3>Amortization gap: the SAE's encoder against unfolding</h3>")
    sec.text("The same held-out samples coded three ways: by the SAE's encoder; by the best codes for the SAE's own "
             "decoder under the SAE's own objective (ReLU+L1: the exact non-negative lasso at alpha = l1/2, which is "
             "that objective; TopK: OMP with k atoms); and by the same solver on the true features. The last row "
             "codes the true features to a relative residual of 1e-6, the codes that made the data.")
    gcols = ["SAE", "codes", "support_f1", "code_rel_err", "fvu", "l0", "objective", "unconverged"]
    sec.add(table([{"SAE": m, "codes": row, **v} for m, g in gaps.items() for row, v in g.items()], gcols))
    sec.text("encoder minus own decoder (objective, FVU, support F1) is the amortization gap: what better inference "
             "would buy with the dictionary already learned. own decoder minus true dictionary is what the dictionary "
             "itself still misses. objective: per-sample mean of 0.5 ||x - x_hat||^2, plus alpha times the L1 norm "
             "of the unit-atom codes for ReLU+L1.", note=True)
    summary = {"amortization_gap": {m: {row: {k: v[k] for k in ("support_f1", "fvu", "objective")}
                                        for row, v in g.items()} for m, g in gaps.items()},
               "dictionary_recovery": {m: {k: s[k] for k in ("mmcs", "recovered", "fvu", "l0")}
                                       for m, s in scores.items()}}
    if "frontier" in result:
        summary["sae_frontier"] = [{k: v for k, v in p.items() if k != "train_s"} for p in result["frontier"]]
    return sec, summary
