"""The report's phase-change section."""
from __future__ import annotations

from monosemantic.report.figures.phase import geometry_levels, n2m1, uniform
from monosemantic.report.html import Section, figure, table


def section(result: dict):
    """The n=2, m=1 diagram against the analytic boundary, the uniform-importance D* curve with its 1/2 plateau,
    and the transitions; summary keys phase_n2m1_agreement, uniform_half_plateau."""
    a, u, grid, steps = result["n2m1"], result["uniform"], result["grid"], result["steps"]
    un, um, ulevels, usteps = result["un"], result["um"], result["ulevels"], result["usteps"]

    sec = Section("Superposition as a phase change")
    sec.text(f"n=2, m=1 ReLU-output model, feature 1 of importance 1 and feature 2 of importance r, both of density "
             f"1-S; {grid} x {grid} points, log-spaced, {steps} steps, each point started from the three ideal "
             f"layouts (feature 1 alone, feature 2 alone, the antipodal pair; plain random starts often stay in a "
             f"one-feature minimum inside the superposition phase), lowest loss kept. A point is labelled from its "
             f"trained W: a feature is kept when its norm exceeds 0.5.")
    sec.add(figure(n2m1(a)))
    far = a["agreement_far"]
    sec.add(table([{"points": grid * grid, "more than one grid step from the boundary": a["far_points"],
                    "agreement there": far, "agreement on all points": a["agreement_all"],
                    "transitions found along density": sum(t["feature"] is not None for t in a["transitions"])}]))
    near = a["near_r1"]
    sec.text(f"Where the trained diagram departs from the analytic one, and why: the boundary compares three ideal "
             f"layouts with unit norms, but near r = 1 the optimum is none of them. Along the row nearest r = 1 "
             f"(r = {near['r']:.2f}) the weaker feature's norm falls gradually as density rises instead of jumping "
             f"at the triple point 4/7: the antipodal pair shrinks before one feature wins. Departures are points "
             f"next to the boundary (marked x); {len(a['departures'])} of {grid * grid} here.")
    sec.add(table([{"density": s, "norm of feature 1": n[0], "norm of feature 2": n[1], "cos": c}
                   for s, n, c in zip(near["density"], near["norms"], near["cos"])]))
    sec.text(f"Uniform importance, n={un}, m={um}, feature probability 20^(-k/{ulevels - 1}) (the notebook's grid), "
             f"{usteps} steps: dimensions per feature D* = m / ||W||_F^2 against 1/(1-S), and every feature's "
             f"dimensionality D_i with the paper's fractions 1, 3/4, 2/3, 1/2, 2/5, 3/8.")
    sec.add(figure(uniform(u)))
    plateau = u["half_plateau"]
    sec.add(table([{"1/(1-S)": x, "D*": d, "sum of D_i": s} for x, d, s in zip(u["inv_density"], u["dstar"],
                                                                                 u["sum_D"])]))
    sec.text(f"The 1/2 plateau (a run of at least three levels whose D* slope against log 1/(1-S) is under a "
             f"quarter of the mean slope on either side, with mean D* within 0.03 of 1/2): "
             f"{'1/(1-S) from %.2f to %.2f' % tuple(plateau) if plateau else 'not found at these settings'}. "
             f"The notebook's saved run (10k steps) has it from 2.2 to 3.5.", note=True)
    sec.add("<h3>Geometry in any dimension: tegum factors and energy levels</h3>")
    sec.text(f"Represented features are grouped into tegum factors, the connected components of the graph joining "
             f"features with |W_hat_i . W_j| > {u['epsilon']}; each factor's polytope is named from its size and "
             f"rank (digon 2 in 1, triangle 3 in 2, tetrahedron 4 in 3, pentagon 5 in 2, square antiprism 8 in 3, "
             f"single features dedicated, anything else 'other'), and each feature sits on an energy level when "
             f"its D_i is within 0.01 of one. The D_i scatter above is coloured by the feature's factor.")
    sec.add(figure(geometry_levels(u)))
    geo_rows = [{"1/(1-S)": round(x, 2), "on a named level": g["on_named_level"],
                 "polytopes (factors)": ", ".join(f"{k} {v}" for k, v in sorted(g["polytopes"].items()))}
                for x, g in zip(u["inv_density"], u["geometry"])]
    sec.add(table(geo_rows))
    summary = {
        "geometry_levels": {"n": un, "m": um, "steps": usteps, "epsilon": u["epsilon"],
                            "levels": [{"inv_density": x, "sparsity": 1 - 1 / x, "on_named_level": g["on_named_level"],
                                        "polytopes": g["polytopes"]} for x, g in zip(u["inv_density"], u["geometry"])]},
        "phase_n2m1_agreement": far,
        "phase_n2m1_grid": grid, "phase_n2m1_steps": steps,
        "uniform_half_plateau": ({"inv_density": plateau, "sparsity": [1 - 1 / plateau[0], 1 - 1 / plateau[1]]}
                                 if plateau else None),
        "uniform_dstar": {"n": un, "m": um, "steps": usteps, "inv_density": u["inv_density"], "dstar": u["dstar"]},
    }
    return sec, summary
