"""`make demo` end to end in quick mode: every section runs, and the report and summary are written."""
import json
import math

import pytest

from monosemantic.report.demo import TOPICS, run_demo


@pytest.mark.slow
def test_quick_demo_writes_every_section(tmp_path):
    lines = []
    report, summary = run_demo(tmp_path / "demo", quick=True, say=lines.append)
    html = report.read_text()
    assert html.count("<h2") >= len(TOPICS) and "<img" in html
    # one line per section as it finishes, then one for the page (what `demo` prints off a terminal)
    assert [line.split(":")[0] for line in lines] == [f"demo {i}/{len(TOPICS)}" for i in range(1, len(TOPICS) + 1)] \
        + ["demo"]
    figures = tmp_path / "demo" / "figures"
    pngs = sorted(p.stem for p in figures.glob("*.png"))
    assert pngs == sorted(p.stem for p in figures.glob("*.svg")) and len(pngs) == html.count("<img")
    for alt in ("SAE training curves", "latent densities", "L0-FVU frontier"):
        assert f'alt="{alt}"' in html, alt
    s = json.loads(summary.read_text())
    for key in ("toy_n5m2", "phase_n2m1_agreement", "l1_sweep", "dictionary_recovery", "amortization_gap",
                "cosine_vs_overlap", "unfolded_toy_model", "unfolding", "recovery_transition", "toy_coherence"):
        assert key in s, key
    for key in ("privileged_basis", "abs_computation", "adversarial", "circuits", "sae_frontier"):
        assert key in s, key
    assert {e["variant"] for e in s["lm_roads"]} == {"dense", "l1", "moe-flop", "moe-width", "hybrid-joint"}
    assert "correlation_with_features_per_dim" in s["adversarial"]
    assert {"neuron_monosemanticity", "feature_monosemanticity"} <= set(s["real_model"])
    assert 'href="features.html"' in html and (tmp_path / "demo" / "features.html").is_file()
    assert math.isfinite(s["demo_wall_s"]) and s["demo_wall_s"] > 0
    # the codes that made the data are found again by OMP on the true features, for every SAE of the table
    assert all(g["exact: true dictionary"]["support_f1"] > 0.99 for g in s["amortization_gap"].values())
