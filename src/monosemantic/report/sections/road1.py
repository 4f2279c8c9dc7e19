"""The report's road-1 section: models without superposition, and what monosemanticity costs."""
from __future__ import annotations

from monosemantic.measures import USED_ACTIVITY
from monosemantic.report.figures.road1 import effective_k, l1_front, loss_per_activation
from monosemantic.report.html import Section, figure, table


def section(result: dict):
    """The road-1 section and its summary entries (l1_threshold_monotone, moe_flop_matched, effective_k)."""
    steps, seeds, sw, drop, drop2 = (result["steps"], result["seeds"], result["l1"], result["dropped"],
                                     result["dropped_two_frequencies"])
    moe_s, mo, es = result["moe_sparsity"], result["moe"], result["effective_size"]

    sec = Section("Road 1: models without superposition, and what monosemanticity costs")
    sec.text(f"ReLU-hidden-layer model h = ReLU(Wx), x' = ReLU(W^T h + b), n=20, m=5, I_i = 0.7^i, S = 0.9, trained "
             f"with an L1 penalty lambda * mean ||h||_1 on its hidden activations: {len(sw['lambda'])} lambdas (0, then "
             f"log-spaced) as instances of one batched model, {steps} steps, best of {seeds} seeds (lowest penalised "
             f"loss). Loss is reconstruction only, on a held-out batch. Measures count used neurons only "
             f"(mean |h_j| > {USED_ACTIVITY}).")
    sec.add(figure(l1_front(sw)))
    sec.add(table([{"lambda": lam, "loss": ls, "represented": r, "threshold": "-" if t is None else t, "D*": d,
                    "used neurons": u, "monosemantic (>0.999)": mn, "fire for one feature": one, "mean top share": sh}
                   for lam, ls, r, t, d, u, mn, one, sh in zip(
                       sw["lambda"], sw["loss"], sw["represented_features"], sw["importance_threshold"],
                       ["-" if d is None else d for d in sw["dims_per_feature"]],
                       sw["used_neurons"], sw["monosemantic_neurons"], sw["fires_for_one_feature"],
                       sw["mean_top_share"])]))
    sec.text(f"Threshold non-decreasing over the whole sweep: {sw['threshold_monotone']}; loss non-decreasing: "
             f"{sw['loss_monotone']}. 'Monosemantic': the top feature carries > 0.999 of the squared "
             f"weights; 'fire for one feature' applies it to the positive weights only: with non-negative features "
             f"only a positive weight makes a ReLU neuron fire, while the penalty also grows small negative "
             f"(inhibitory) weights, which keep neurons below 0.999 by the strict definition.", note=True)
    sec.add("<h3>Which features the penalty gives up</h3>")
    sec.add(figure(loss_per_activation(drop, sw["importance"])))
    sec.text(f"Loss reduction per activation = loss increase when the feature's column of W is zeroed, divided by how "
             f"often the feature is on, in the smallest-lambda model that represents it. Pairs (given up, kept) at the "
             f"same lambda where the given-up feature has the larger value: {drop['order_violations']} of "
             f"{drop['pairs']}.", note=True)
    sec.text("The same with features of two frequencies (n=20, I_i = 0.85^i, even features on with probability 0.2, "
             "odd ones 0.04), where the loss reduction per activation, the total loss reduction (x frequency) and the "
             "importance order the features differently. Out-of-order (given up, kept) pairs under each order:")
    sec.add(table([{"order by": name, "pairs out of order": drop2[key], "pairs": drop2["pairs"]}
                   for name, key in (("loss reduction per activation", "order_violations"),
                                     ("total loss reduction", "order_violations_total"),
                                     ("importance", "order_violations_importance"))]))

    sec.add("<h3>Mixture-of-Experts: flop-matched and neuron-matched</h3>")
    names = [mo["dense_names"][0], mo["moe_name"], mo["dense_names"][1]]
    rows = []
    for name in names:
        rec = mo["models"][name]
        for c, s in enumerate(mo["sparsity"]):
            rows.append({"model": name, "S": s, "active neurons": rec["active_neurons"], "params": rec["params"],
                         "loss": rec["loss"][c], "represented": rec["represented_features"][c],
                         "D*": rec["dims_per_feature"][c],
                         "expert D*": ", ".join("-" if v is None else f"{v:.2f}" for v in rec["expert_dims_per_feature"][c])
                         if "expert_dims_per_feature" in rec else "-",
                         "features routed per expert": str(rec["features_routed_to_expert"][c])
                         if "features_routed_to_expert" in rec else "-",
                         "monosemantic": f"{rec['monosemantic_neurons'][c]}/{rec['used_neurons'][c]}",
                         "mean top share": rec["mean_top_share"][c]})
    sec.add(table(rows))
    dense, moe = mo["models"][names[0]], mo["models"][names[1]]
    sec.text("n=20, I_i = 0.9^i. The MoE routes each input to the top-1 of 4 experts of 5 ReLU neurons (the same "
             "active neurons as the dense m=5 model) with a Switch-style load-balancing term; 'features routed per "
             "expert' counts, per expert, the features a lone-feature input is sent to.", note=True)
    sec.text(result["moe_verdict"])
    sec.add("<h3>Effective size: how wide a model without superposition must be</h3>")
    sec.add(figure(effective_k(es)))
    sec.add(table([{"S": s, "loss (m=5, superposition)": ls, "best loss without superposition at m=5": ml,
                    "m'": w, "k = m'/m": k} for s, ls, ml, w, k in zip(
                        es["sparsity"], es["loss"], es["monosemantic_loss_at_m"], es["narrowest_width"], es["k"])]))
    sec.text("n=40 features of equal importance, superposition model: ReLU hidden layer of m=5. m' is the fewest "
             "neurons of a model without superposition (one feature per neuron: the m' features kept exactly, the "
             "rest left to the bias, loss (n - m') (p/3 - p^2/4)) whose loss is at most the trained model's. "
             "Fitted exponent a of k ~ (1/(p log 1/p))^a: "
             + ("-" if es["cs_exponent"] is None else f"{es['cs_exponent']:.2f}")
             + " (1 would be the compressed-sensing scaling; below 1, the trained superposition model gains width "
               "more slowly with sparsity than compressed sensing allows).", note=True)
    summary = {
        "l1_threshold_monotone": sw["threshold_monotone"],
        "l1_sweep": {"lambda": sw["lambda"], "loss": sw["loss"], "importance_threshold": sw["importance_threshold"],
                     "represented_features": sw["represented_features"],
                     "monosemantic_neurons": sw["monosemantic_neurons"], "used_neurons": sw["used_neurons"]},
        "moe_flop_matched": {"sparsity": moe_s, "dense_loss": dense["loss"], "moe_loss": moe["loss"],
                             "dense_dims_per_feature": dense["dims_per_feature"],
                             "moe_dims_per_feature": moe["dims_per_feature"],
                             "moe_expert_dims_per_feature": moe["expert_dims_per_feature"],
                             "dense_monosemantic_neurons": dense["monosemantic_neurons"],
                             "moe_monosemantic_neurons": moe["monosemantic_neurons"]},
        "effective_k": {str(s): k for s, k in zip(es["sparsity"], es["k"])},
        "effective_k_cs_exponent": es["cs_exponent"],
        "l1_drop_order_violations": {"loss_per_activation": drop2["order_violations"],
                                     "total_loss_reduction": drop2["order_violations_total"],
                                     "importance": drop2["order_violations_importance"], "pairs": drop2["pairs"]},
    }
    return sec, summary
