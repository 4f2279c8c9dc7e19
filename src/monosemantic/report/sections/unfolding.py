"""The report's unfolding section: speed and accuracy, the unfolded toy model, and where cosine similarity misleads."""
from __future__ import annotations

from monosemantic.experiments.unfolding import M, N
from monosemantic.report.figures.unfolding import plot
from monosemantic.report.html import Section, figure, table


def section(result: dict) -> tuple[Section, dict]:
    res, speed = result["toy"], result["speed"]
    sec = Section("Unfolding activations, and where cosine similarity misleads")
    sec.text("Unfolding with the true dictionary of the section-5 data (512 features in d = 128), this machine, "
             "one process: batched OMP (relative tol 1e-6) and exact non-negative lasso (alpha 0.01, active set). "
             "benchmarks/unfolding.py compares both with scikit-learn in one run.")
    sec.add(table([{"method": k, **{kk: vv for kk, vv in v.items()}} for k, v in speed.items()]))
    sec.text(f"Toy ReLU-output models, n={N}, m={M}, uniform importance, one per sparsity. Their activations h = W x "
             "are unfolded onto W's represented columns: OMP (relative tol 0.05, as the unrepresented features leave "
             "a residual) and the non-negative lasso (alpha 1e-3). Left and middle: for pairs of samples (all pairs "
             "among 1500; 3000 of them drawn), the cosine of h against the Jaccard overlap of the supports. "
             "Right: the unfolded model x_hat (code / "
             "column norm for represented features, 0 for the rest) against the true x, next to the toy model's "
             "own output.")
    sec.add(figure(plot(res)))
    sec.add("<h3>The larger model without superposition</h3>")
    cols = ["S", "represented", "mean_active", "toy_err", "omp_err", "l1_err", "omp_vs_toy", "l1_vs_toy",
            "omp_exact_support", "l1_exact_support", "omp_unconverged", "l1_unconverged"]
    sec.add(table([{"S": s, **{k: r[k] for k in cols[1:]}} for s, r in res.items()], cols))
    sec.text("mean_active: represented features on per sample (samples with none are left out). *_err: sum ||x_hat "
             "- x||^2 / sum ||x||^2, over all n features, so a feature the model does not represent counts as an "
             "error for both it and its unfolding; *_vs_toy: the same distance to the toy model's output, over sum "
             "||x||^2. *_exact_support: share of samples whose unfolded support on the represented features is "
             "exactly the true one. OMP's unconverged samples are those left above tol 0.05 after m atoms.", note=True)
    sec.add("<h3>Where cosine similarity misleads</h3>")
    cols = ["S", "represented", "pairs", "correlation", "correlation_true_supports", "high_cos_no_shared",
            "low_cos_mostly_shared", "unfold_support_f1"]
    sec.add(table([{"S": s, **{k: r[k] for k in cols[1:]}} for s, r in res.items()], cols))
    sec.text("correlation: Pearson r between cosine and the overlap of the unfolded (OMP) supports; "
             "correlation_true_supports: the same against the true supports. high_cos_no_shared: pairs with "
             "cosine > 0.8 that share no true active feature; low_cos_mostly_shared: cosine < 0.3 with a true "
             "Jaccard >= 0.5.", note=True)
    sec.add(table([{"S": s, **e} for s, r in res.items() for e in r["examples"]],
                  ["S", "kind", "cosine", "jaccard", "features of a", "features of b"]))
    sec.text("For each sparsity, the pair of sampled activations with the highest cosine among those that share no "
             "true active feature, and the one with the lowest cosine among those whose true supports overlap by "
             "Jaccard >= 0.5 (features by index; all are represented).", note=True)
    summary = {"cosine_vs_overlap": {s: r["correlation"] for s, r in res.items()},
               "unfolded_toy_model": {s: {k: r[k] for k in ("toy_err", "omp_err", "l1_err", "omp_vs_toy",
                                                            "l1_vs_toy")} for s, r in res.items()},
               "unfolding": {k: {"support_f1": v["support_f1"], "samples_per_s": v["samples_per_s"]}
                             for k, v in speed.items()}}
    return sec, summary
