"""The report's learning-dynamics section."""
from __future__ import annotations

from monosemantic.report.figures.dynamics import dynamics
from monosemantic.report.html import Section, figure, table


def section(res: dict):
    """D_i over training, jumps and sudden loss drops; summary key learning_dynamics."""
    sec = Section("Learning dynamics: do features jump between energy levels?")
    sec.text(f"One ReLU-output model, n={res['n']}, m={res['m']}, uniform importance, 1-S = {res['density']}, "
             f"{res['steps'][-1]} steps, weights copied every {res['snapshot_every']} steps; at each snapshot every "
             f"feature's D_i and the loss on a fixed evaluation batch. The paper reports that features move between "
             f"energy levels in jumps and that the loss drops suddenly when they do.")
    sec.add(figure(dynamics(res)))
    n_j, n_c, chance = res["jumps_detected"], res["jumps_with_sudden_drop"], res["chance_of_coincidence"]
    sec.add(table([{"jumps detected": n_j, "with a sudden loss drop (within one snapshot)": n_c,
                    "sudden drops": len(res["sudden_drops"]),
                    "chance a random interval is within one snapshot of a drop": chance}]))
    if res["jumps"]:
        sec.add(table([{"feature": j["feature"], "steps": f"{j['steps'][0]}-{j['steps'][1]}",
                        "D_i before": j["D_before"], "D_i after": j["D_after"],
                        "levels": " -> ".join(str(v) for v in j["levels"]), "sudden drop": j["with_sudden_drop"]}
                       for j in res["jumps"][:20]]))
    sec.text("Measured answer at these settings: " + (
        "no feature's D_i moved by more than the jump threshold within the jump window; features drifted between "
        "levels gradually." if not n_j else
        f"{n_c} of {n_j} jumps coincide with a sudden loss drop, against {chance:.0%} expected by chance."), note=True)
    return sec, {"learning_dynamics": {"n": res["n"], "m": res["m"], "density": res["density"],
                                       "steps": res["steps"][-1], "snapshot_every": res["snapshot_every"],
                                       "jumps_detected": n_j, "jumps_with_sudden_drop": n_c,
                                       "sudden_drops": len(res["sudden_drops"]), "chance_of_coincidence": chance}}
