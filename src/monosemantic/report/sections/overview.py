"""The page's opening: the strategic picture, one row per road, read from the other sections' summary entries.

For each road: what it costs (in loss or reconstruction) and how many of the true features it recovers. A road
whose topic did not run is left out.
"""
from __future__ import annotations

import html

from monosemantic.report.html import table


def _l1_row(s: dict) -> dict | None:
    sw = s.get("l1_sweep")
    if not sw:
        return None
    mono, used, lam = sw["monosemantic_neurons"], sw["used_neurons"], sw["lambda"]
    i = max(range(len(lam)), key=lambda j: (mono[j] / max(used[j], 1), -j))  # most monosemantic, smallest lambda
    return {"road": "1. L1 penalty on hidden activations",
            "cost": f"loss {sw['loss'][i]:.3g} at lambda {lam[i]:.3g} against {sw['loss'][0]:.3g} without penalty",
            "true features recovered": f"{mono[i]} of {used[i]} used neurons monosemantic (without penalty "
                                        f"{mono[0]} of {used[0]}); {sw['represented_features'][i]} features "
                                        f"represented ({sw['represented_features'][0]})"}


def _moe_row(s: dict) -> dict | None:
    m = s.get("moe_flop_matched")
    if not m:
        return None
    j = len(m["sparsity"]) - 1  # the sparsest inputs: where experts pay
    return {"road": "1. Mixture of experts (same flops per input)",
            "cost": f"loss {m['moe_loss'][j]:.3g} against {m['dense_loss'][j]:.3g} dense, at S = {m['sparsity'][j]}",
            "true features recovered": f"dimensions per feature D* {m['moe_dims_per_feature'][j]:.2f} against "
                                        f"{m['dense_dims_per_feature'][j]:.2f} dense (1: a dimension each)"}


def _dictionary_rows(s: dict) -> list[dict]:
    rows = []
    for method, r in s.get("dictionary_recovery", {}).items():
        rows.append({"road": f"2. Dictionary learning: {method}",
                     "cost": f"FVU {r['fvu']:.3g} (variance the dictionary fails to reconstruct), L0 {r['l0']:.3g}",
                     "true features recovered": f"{r['recovered']:.1%} (best cosine > 0.9; MMCS {r['mmcs']:.3f})"})
    return rows


def _unfolding_rows(s: dict) -> list[dict]:
    return [{"road": f"Unfolding with the true dictionary: {method}",
             "cost": f"{r['samples_per_s']:.0f} samples/s on this machine",
             "true features recovered": f"support F1 {r['support_f1']:.4f} (the right features found active)"}
            for method, r in s.get("unfolding", {}).items()]


def picture(summary: dict) -> str:
    """An HTML fragment: the strategic picture as a short text and one table."""
    rows = [r for r in (_l1_row(summary), _moe_row(summary)) if r]
    rows += _dictionary_rows(summary) + _unfolding_rows(summary)
    if not rows:
        return ""
    intro = ("Superposition packs more features than dimensions into a model, so its neurons are polysemantic. "
             "Road 1 trains models without it; road 2 learns an overcomplete dictionary afterwards and unfolds "
             "activations into the features. Below, each road's price and how many of the known true features it "
             "gets back, measured on toy models and synthetic data by the sections that follow.")
    return (f'<div class="picture"><h2>The strategic picture</h2><p>{html.escape(intro)}</p>'
            f'{table(rows, ["road", "cost", "true features recovered"])}</div>')
