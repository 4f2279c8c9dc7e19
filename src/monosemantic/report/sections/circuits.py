"""The report's section on privileged bases, computation in superposition, adversarial vulnerability and circuits."""
from __future__ import annotations

from monosemantic.report.figures import circuits as figs
from monosemantic.report.html import Section, figure, table


def section(res: dict):
    """Summary keys privileged_basis, abs_computation, adversarial, circuits."""
    p, c, a, circ = res["privileged"], res["computation"], res["adversarial"], res["circuits"]
    sec = Section("Privileged bases, computation in superposition, adversarial vulnerability and circuits")
    sec.text(f"ReLU-hidden model, n={p['n']}, m={p['m']}, I_i = {p['importance_decay']}^i, best of {p['seeds']} "
             f"starts, {p['steps']} steps. Each bar is one live neuron's weights, stacked by feature; a neuron is "
             f"monosemantic when its top feature carries > 0.999 of its squared weight.")
    sec.add(figure(figs.neuron_bars(p)))
    sec.add(table([{"S": s, "live neurons": lv, "monosemantic": mo, "polysemantic": po,
                    "dedicated features": ", ".join(map(str, r["dedicated_features"])) or "-"}
                   for s, lv, mo, po, r in zip(p["sparsity"], p["live_neurons"], p["monosemantic"], p["polysemantic"],
                                               p["neurons"])]))
    sec.text(f"Absolute-value model, n={c['n']}, m={c['m']}, I_i = {c['importance_decay']}^i, {c['steps']} steps: a "
             f"feature is computed when its error is below half the best constant's; a neuron serves a feature when "
             f"its path weight is above a tenth of the feature's largest.")
    sec.add(table([{"S": s, "features computed": r["features_computed"], "neurons": c["m"],
                    "computing neurons (mono / poly)": f"{r['monosemantic_computing']} / {r['polysemantic_computing']}",
                    "neurons per computed feature": ", ".join(f"{i}:{k}" for i, k in r["neurons_per_feature"].items()),
                    "asymmetric superposition": "; ".join(f"neuron {mo['neuron']}: {mo['strong']} strong, "
                                                          f"{mo['weak']} weak" for mo in r["asymmetric_superposition"])
                    or "-"}
                   for s, r in zip(c["sparsity"], c["per_sparsity"])]))
    sec.text(f"Analytic attack on the ReLU-output model (n={a['n']}, m={a['m']}, uniform importance): each feature's "
             f"direction (W^T W)_i with norm {a['attack_norm']} x the mean input norm, the most harmful kept.")
    sec.add(figure(figs.vulnerability(a)))
    corr = a["correlation_with_features_per_dim"]
    sec.text(f"Measured: correlation of vulnerability with features per dimension {corr:.2f} "
             f"(Spearman {a['correlation_with_features_per_dim_spearman']:.2f})." if corr is not None else
             "Measured: too few distinct points for a correlation.", note=True)
    sec.text("Feature-to-feature maps through the hidden layer (W_out diag(neurons on) W_in, averaged over inputs "
             "where the source feature is on), with the true features and with features learned by dictionaries on "
             "the model's inputs and hidden activations (road 2), matched to the true ones.")
    sec.add(figure(figs.maps(circ)))
    sec.add(table([{"model": name, "S": r["sparsity"][-1], **r["learned"]} for name, r in circ.items()]))
    summary = {
        "privileged_basis": {"sparsity": p["sparsity"], "monosemantic": p["monosemantic"],
                             "polysemantic": p["polysemantic"], "live_neurons": p["live_neurons"],
                             "dedicated_until": p["dedicated_until"]},
        "abs_computation": {"n": c["n"], "m": c["m"], "sparsity": c["sparsity"],
                            "features_computed": c["features_computed"],
                            "neurons_per_feature": [r["neurons_per_feature"] for r in c["per_sparsity"]],
                            "asymmetric_motifs": c["asymmetric_motifs"]},
        "adversarial": {"sparsity": a["sparsity"], "vulnerability": a["vulnerability"],
                        "features_per_dim": a["features_per_dim"], "correlation_with_features_per_dim": corr},
        "circuits": {name: r["learned"] for name, r in circ.items()},
    }
    return sec, summary
