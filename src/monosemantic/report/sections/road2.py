"""The report's road-2-on-toys section (recovery against dictionary size) and road 3's front."""
from __future__ import annotations

from monosemantic.report.figures.road2 import front_plot, recovery_curves
from monosemantic.report.html import Section, figure, table


def section(result: dict):
    sec = Section("Road 2 on the toy models' own activations")
    sec.text("ReLU-output toy models in superposition (uniform importance, one per sparsity), then dictionaries learned "
             "from their hidden activations h = W x alone and scored against the model's own feature directions: the "
             "represented columns of W (norm > 0.5), normalised. Scores on 5000 held-out activations. TopK SAEs on "
             "every model; MiniBatchDictionaryLearning (mbdl: 4096 samples in batches of 256) on the n=20 model, "
             "since on the n=80 one each of its points takes 10 to 80 s (`road2 toy --archs topk mbdl`).")
    sec.add(figure(recovery_curves(result)))
    cols = ["n", "m", "sparsity", "represented", "arch", "latents", "recovered", "mmcs", "dead", "split",
            "off_feature", "unfold_f1", "true_W_f1"]
    rows = [{**{k: r[k] for k in ("n", "m", "sparsity", "represented")}, **d,
             "true_W_f1": r.get("true_W", {}).get("support_f1")} for r in result["models"] for d in r["dictionaries"]]
    sec.add(table(rows, cols))
    sec.text("recovered: features (out of n) both represented and matched by an atom at cosine > 0.9. split: features "
             "with two or more such atoms; off_feature: atoms on no feature. unfold_f1: support F1 of OMP codes on the "
             "learned atoms (tol 0.05, at most m atoms) after a one-to-one matching; true_W_f1: the same OMP on the "
             "true directions, the ceiling unfolding can reach.", note=True)
    bcols = ["n", "m", "sparsity", "represented", "expected_active", "coherence", "welch", "coherence_k", "dt_k",
             "dt_ok"]
    sec.add(table([{k: r[k] for k in bcols} for r in result["models"]], bcols))
    sec.text("The compressed-sensing bounds at each model: expected active features k = represented x p against the "
             "coherence guarantee (1 + 1/mu)/2 (mu: coherence without antipodal pairs) and the Donoho-Tanner k at "
             "delta = m / represented (dt_ok: k below it).", note=True)
    summary = {"toy_sae_recovery": {f"n{r['n']}_m{r['m']}_S{r['sparsity']}": {
        f"{d['arch']}_x{d['latents']}": {"mmcs": d["mmcs"], "recovered": d["recovered"]} for d in r["dictionaries"]}
        for r in result["models"]}}
    return sec, summary


def front_section(result: dict):
    sec = Section("Road 3: hybrids, model loss against recoverability")
    sec.text("A n=20, m=5 ReLU-output model at S=0.9 trained with one change at a time, each over its strength, every "
             "point from the same initial W, data stream and budget; then road 2 on its activations (a TopK SAE of 2n "
             "latents). Road 2 alone is plain training; road 1 is the L1 sweep at lambdas meant to remove superposition.")
    sec.add(figure(front_plot(result)))
    cols = ["method", "strength", "loss", "represented", "recovered", "mmcs", "unfold_f1", "max_cos"]
    sec.add(table([{"method": k, **p} for k, pts in result["front"].items() for p in pts], cols))
    v = result["verdict"]
    sec.add(table([{"method": k, **b} for k, b in v["best"].items()],
                  ["method", "strength", "loss", "recovered", "gain", "above_line", "loss_per_feature"]))
    sec.text(f"Ends: road 2 alone (loss {v['road2']['loss']:.4f}, recovered {v['road2']['recovered']}) and road 1 at "
             f"lambda {v['road1']['strength']} (loss {v['road1']['loss']:.4f}, recovered {v['road1']['recovered']}, "
             f"{v['road1']['represented']} represented; superposition removed: {v['road1']['superposition_free']}). "
             "gain: features recovered beyond road 2 alone. "
             "above_line: the hybrid's best point recovers more than the straight line between the ends at its loss. "
             "loss_per_feature: extra loss over road 2 per extra feature recovered. max_cos: the largest |cosine| "
             "between represented features.", note=True)
    front = {k: [{f: p[f] for f in ("strength", "loss", "recovered", "mmcs")} for p in pts]
             for k, pts in result["front"].items()}
    return sec, {"hybrid_front": front}
