"""The report's dictionary-learning section: known features recovered per method, and the amortization gap."""
from __future__ import annotations

from monosemantic.report.figures.dictionary import plots
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
    return sec, summary
