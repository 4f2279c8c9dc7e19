"""The report's language-model section: roads 1 and 3 on a byte-level transformer trained here."""
from __future__ import annotations

from monosemantic.report.figures.lm import trade
from monosemantic.report.html import Section, figure, table

SUMMARY_KEYS = ("variant", "strength", "lm_loss", "lm_loss_std", "neuron_monosemanticity", "sae_fvu", "ce_recovered")


def section(result: dict):
    c, f = result["config"], result["findings"]
    t, m = c["train"], c["measure"]
    sec = Section("Roads 1 and 3 on a language model trained here")
    sec.text(f"A byte-level causal transformer ({t['layers']} block(s), d_model {t['d_model']}, MLP width "
             f"{t['width']}, context {t['context']}) trained on the {t['corpus']} corpus's train split, every variant "
             f"on the same {t['tokens']} bytes: dense; an L1 penalty on the MLP activations (weighted by each neuron's "
             f"output norm) at {len(c['l1'])} strengths; moe-flop ({t['experts']} experts as wide as the dense MLP, "
             f"top-1); moe-width ({t['experts']} experts of width/{t['experts']}, top-{t['top_k']}); and road 3's "
             f"joint dictionary (hybrid-joint, strength {c['hybrid']}: on the toys no hybrid beat plain training; a "
             f"small L1 is the weakest point of the L1 sweep, so the joint dictionary is the hybrid that adds a "
             f"point). Dense and the strongest L1 train {c['seeds']} seeds. Measured on "
             f"{m['measure_tokens']} test-split bytes.")
    sec.add(figure(trade(result), alt="LM loss against neuron monosemanticity and against SAE CE recovered"))
    cols = ["variant", "strength", "seeds", "lm_loss", "lm_loss_std", "neuron_monosemanticity", "sae_fvu",
            "ce_recovered", "sae_monosemanticity", "dead_fraction", "loss_per_activation_median"]
    sec.add(table(result["table"], cols))
    raised = "raises" if f["l1_raises_monosemanticity"] else "does not raise"
    sec.text(f"Neuron monosemanticity: 1 - normalised entropy of the tokens of each MLP neuron's {m['top_k']} "
             f"top-activating test rows (a row's token: its byte and the {m['mono_bytes'] - 1} before it), averaged "
             f"over the neurons that fire. The strongest L1 ({f['strongest_l1']:g}) {raised} it above dense beyond twice "
             f"the seed spread: {f['l1_monosemanticity_gain']:+.3f} (spread {f['seed_spread']:.3f}), at "
             f"{f['l1_cost_nats']:+.4f} nats per byte; the most monosemantic L1 ({f['most_monosemantic_l1']:g}, one "
             f"seed unless it is the strongest) is {f['most_monosemantic_l1_gain']:+.3f} from dense at "
             f"{f['most_monosemantic_l1_cost_nats']:+.4f} nats per byte. SAE: TopK, {m['sae_latents']} latents, L0 = {m['sae_k']}, on the "
             f"last block's MLP; CE recovered = (CE_ablate - CE_splice) / (CE_ablate - CE_clean) with the site zeroed. "
             f"dead_fraction: neurons that never fire on the test rows; loss_per_activation: a neuron's first-order "
             f"ablation loss divided by its firing rate (median over live neurons).", note=True)
    return sec, {"lm_roads": [{k: r[k] for k in SUMMARY_KEYS} for r in result["table"]]}
