"""`monosemantic ...`: a thin command line over the library.

Bad input (a value out of range, a missing or corrupt file, an existing output directory) prints
one line, `error: ...`, and exits with code 2; nothing half-written is left behind.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from monosemantic import InputError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Solving superposition, measured: toy models, dictionaries and unfolding.")
toy_app = typer.Typer(no_args_is_help=True, help="Toy models of superposition (Elhage et al. 2022).")
app.add_typer(toy_app, name="toy")

# Options that take several values after one flag (`--sparsity 0 0.8 0.9`); Click wants the flag
# repeated, so `main` rewrites the first form into the second before parsing.
MULTI_VALUE = ("--sparsity", "--importance", "--lambdas")


def _say(msg: str) -> None:
    typer.echo(msg, err=True)


@toy_app.command("train")
def toy_train(
    out: Path = typer.Option(..., help="Run directory to write (must not exist, unless --overwrite)."),
    model: str = typer.Option("relu-output", help="linear | relu-output | relu-hidden | abs."),
    n: int = typer.Option(5, help="Number of features."),
    m: int = typer.Option(2, help="Number of hidden dimensions."),
    sparsity: list[float] = typer.Option([0.0], help="One or more sparsities S in [0, 1): one instance each."),
    importance_decay: float = typer.Option(1.0, help="Importance I_i = decay**i."),
    importance: Optional[list[float]] = typer.Option(None, help="Explicit importances, n values (overrides decay)."),
    steps: int = typer.Option(10_000, help="Training steps."),
    batch: int = typer.Option(1024, help="Samples per step."),
    seeds: int = typer.Option(1, help="Seeds per sparsity; the one with the lowest eval loss is kept."),
    seed: int = typer.Option(0, help="Base seed (data stream, initialisations, eval batch)."),
    lr: float = typer.Option(1e-3, help="AdamW learning rate."),
    weight_decay: float = typer.Option(0.01, help="AdamW weight decay."),
    schedule: str = typer.Option("constant", help="constant | cosine."),
    warmup: int = typer.Option(0, help="Linear warm-up steps."),
    eval_batch: int = typer.Option(16384, help="Samples in the fixed evaluation batch."),
    correlated_sets: int = typer.Option(0, help="Sets of features that are on together (first features)."),
    anticorrelated_sets: int = typer.Option(0, help="Sets of features never on together (after correlated)."),
    set_size: int = typer.Option(2, help="Features per (anti-)correlated set."),
    l1: float = typer.Option(0.0, help="L1 penalty on hidden activations (relu-output, relu-hidden)."),
    overwrite: bool = typer.Option(False, help="Replace an existing run directory."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Train one toy model per sparsity (best of --seeds) and write a run directory.

    Writes OUT/model.safetensors (W: [instances, m, n], b: [instances, n], float32, instance order =
    --sparsity order; the abs model adds W2: [instances, n, m]), OUT/result.json (loss per instance on
    the fixed eval batch, wall_s, model_steps_per_s) and OUT/config.json.
    """
    from monosemantic.config import ToyTrainConfig, validate
    from monosemantic.toy.experiment import train_to_dir

    cfg = validate(ToyTrainConfig, dict(
        model=model, n=n, m=m, sparsity=sparsity, importance_decay=importance_decay, importance=importance,
        steps=steps, batch=batch, seeds=seeds, seed=seed, lr=lr, weight_decay=weight_decay, schedule=schedule,
        warmup=warmup, eval_batch=eval_batch, correlated_sets=correlated_sets,
        anticorrelated_sets=anticorrelated_sets, set_size=set_size, l1=l1))
    path = train_to_dir(cfg, out, overwrite, progress and sys.stderr.isatty())
    from monosemantic.runs import read_json

    res = read_json(path / "result.json")
    _say(f"trained {len(res['loss'])} x {cfg.model} (n={cfg.n}, m={cfg.m}) in {res['wall_s']:.2f}s "
         f"({res['model_steps_per_s']:.0f} model-steps/s); loss {[round(v, 5) for v in res['loss']]}")
    typer.echo(str(path))


@toy_app.command("measure")
def toy_measure(run_dir: Path = typer.Argument(..., help="A toy run directory.")) -> None:
    """Print the superposition measures of a toy run and write RUN_DIR/measures.json."""
    from rich.console import Console
    from rich.table import Table

    from monosemantic.toy.experiment import measure_dir

    rows = measure_dir(run_dir)
    t = Table(title=f"measures of {run_dir}")
    for col in ("instance", "sparsity", "represented", "D*", "mean superposition", "geometry", "mono neurons"):
        t.add_column(col)
    for i, r in enumerate(rows):
        sup = sum(r["superposition"]) / len(r["superposition"])
        mono = f"{r['monosemantic_neurons']}/{len(r['neuron_top_share'])}" if "neuron_top_share" in r else "-"
        t.add_row(str(i), str(r["sparsity"]), str(r["represented_features"]), f"{r['dims_per_feature']:.3f}",
                  f"{sup:.3f}", r["geometry"]["label"], mono)
    Console().print(t)
    typer.echo(str(Path(run_dir) / "measures.json"))


# --- road 1: models without superposition (L1 penalty, Mixture-of-Experts, effective size) ---
road1_app = typer.Typer(no_args_is_help=True, help="Road 1: models without superposition, and their cost.")
app.add_typer(road1_app, name="road1")


def _road1_common(n, m, importance_decay, steps, batch, seeds, seed, eval_batch) -> dict:
    return dict(n=n, m=m, importance_decay=importance_decay, steps=steps, batch=batch, seeds=seeds, seed=seed,
                eval_batch=eval_batch)


@road1_app.command("l1")
def road1_l1(
    out: Path = typer.Option(..., help="Run directory to write."),
    lambdas: Optional[list[float]] = typer.Option(None, help="L1 coefficients (default: 0 and 12 log-spaced, 0.003 to 2)."),
    model: str = typer.Option("relu-hidden", help="relu-hidden | relu-output."),
    n: int = typer.Option(20, help="Number of features."),
    m: int = typer.Option(5, help="Hidden neurons."),
    sparsity: float = typer.Option(0.9, help="Sparsity S of every feature."),
    importance_decay: float = typer.Option(0.7, help="Importance I_i = decay**i."),
    steps: int = typer.Option(10_000, help="Training steps."),
    batch: int = typer.Option(1024, help="Samples per step."),
    seeds: int = typer.Option(3, help="Seeds per lambda (lowest penalised loss kept)."),
    seed: int = typer.Option(0, help="Base seed."),
    eval_batch: int = typer.Option(16384, help="Held-out samples for the measures."),
    overwrite: bool = typer.Option(False, help="Replace an existing run directory."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Sweep the L1 penalty on hidden activations: loss, represented features, monosemantic neurons, D*,
    importance threshold and loss per activation for each lambda (all lambdas train as one batched model)."""
    from monosemantic.roads.road1 import L1SweepConfig, l1_lines, l1_to_dir
    from monosemantic.config import validate
    from monosemantic.runs import read_json

    data = dict(model=model, sparsity=sparsity, **_road1_common(n, m, importance_decay, steps, batch, seeds,
                                                                 seed, eval_batch))
    if lambdas is not None:
        data["lambdas"] = lambdas
    cfg = validate(L1SweepConfig, data)
    path = l1_to_dir(cfg, out, overwrite, progress and sys.stderr.isatty())
    res = read_json(path / "result.json")
    for line in l1_lines(res):
        _say(line)
    _say(f"trained in {res['wall_s']:.1f}s")
    typer.echo(str(path))


@road1_app.command("moe")
def road1_moe(
    out: Path = typer.Option(..., help="Run directory to write."),
    experts: int = typer.Option(4, help="Experts E."),
    k: int = typer.Option(1, help="Experts chosen per input (top-k)."),
    n: int = typer.Option(20, help="Number of features."),
    m: int = typer.Option(5, help="Neurons per expert (and of the flop-matched dense model)."),
    sparsity: list[float] = typer.Option([0.7, 0.9, 0.97, 0.99], help="Sparsities S."),
    importance_decay: float = typer.Option(0.9, help="Importance I_i = decay**i."),
    balance: float = typer.Option(0.01, help="Weight of the load-balancing loss."),
    steps: int = typer.Option(10_000, help="Training steps."),
    batch: int = typer.Option(1024, help="Samples per step."),
    seeds: int = typer.Option(2, help="Seeds per sparsity (lowest loss kept)."),
    seed: int = typer.Option(0, help="Base seed."),
    eval_batch: int = typer.Option(16384, help="Held-out samples for the measures."),
    overwrite: bool = typer.Option(False, help="Replace an existing run directory."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Dense m against MoE (top-k of E experts of m; flop-matched at k=1) against dense E*m (neuron-matched)."""
    from monosemantic.roads.road1 import MoEConfig, moe_to_dir
    from monosemantic.config import validate
    from monosemantic.runs import read_json

    cfg = validate(MoEConfig, dict(experts=experts, k=k, sparsity=sparsity, balance=balance,
                                   **_road1_common(n, m, importance_decay, steps, batch, seeds, seed, eval_batch)))
    path = moe_to_dir(cfg, out, overwrite, progress and sys.stderr.isatty())
    res = read_json(path / "result.json")
    for name, rec in res["models"].items():
        _say(f"{name:<18} loss {[round(v, 5) for v in rec['loss']]}  D* {[v and round(v, 3) for v in rec['dims_per_feature']]}"
             f"  monosemantic {rec['monosemantic_neurons']}")
    typer.echo(str(path))


@road1_app.command("effective-size")
def road1_effective_size(
    out: Path = typer.Option(..., help="Run directory to write."),
    n: int = typer.Option(60, help="Number of features."),
    m: int = typer.Option(5, help="Neurons of the superposition model."),
    sparsity: list[float] = typer.Option([0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995], help="Sparsities S."),
    importance_decay: float = typer.Option(1.0, help="Importance I_i = decay**i (1: uniform)."),
    steps: int = typer.Option(10_000, help="Training steps."),
    batch: int = typer.Option(1024, help="Samples per step."),
    seeds: int = typer.Option(3, help="Seeds per sparsity (lowest loss kept)."),
    seed: int = typer.Option(0, help="Base seed."),
    eval_batch: int = typer.Option(16384, help="Held-out samples."),
    overwrite: bool = typer.Option(False, help="Replace an existing run directory."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """k = m'/m: the narrowest model without superposition as good as a superposition model of m neurons."""
    from monosemantic.roads.road1 import EffectiveSizeConfig, effective_size_to_dir
    from monosemantic.config import validate
    from monosemantic.runs import read_json

    cfg = validate(EffectiveSizeConfig, dict(sparsity=sparsity, **_road1_common(
        n, m, importance_decay, steps, batch, seeds, seed, eval_batch)))
    path = effective_size_to_dir(cfg, out, overwrite, progress and sys.stderr.isatty())
    res = read_json(path / "result.json")
    for s, w, kk in zip(res["sparsity"], res["narrowest_width"], res["k"]):
        _say(f"S {s:<6} m' {w:>3}  k {kk:.2f}")
    typer.echo(str(path))


@app.command("demo")
def demo(
    out: Path = typer.Option(Path("demo"), help="Directory for report.html and summary.json."),
    quick: bool = typer.Option(False, help="Fewer steps and seeds (a smoke test, not the paper's figures)."),
) -> None:
    """Train the paper's figures, then write OUT/report.html and OUT/summary.json."""
    from monosemantic.demo import run_demo

    report, summary = run_demo(out, quick=quick, progress=sys.stderr.isatty())
    typer.echo(f"report:  {report}\nsummary: {summary}")


def _expand_multi(argv: list[str]) -> list[str]:
    out: list[str] = []
    flag, taken = None, 0
    for tok in argv:
        if flag is not None and (_is_number(tok) or not tok.startswith("-")):
            out += [flag, tok]
            taken += 1
            continue
        if flag is not None and taken == 0:
            out.append(flag)  # let Click report the missing value
        flag = None
        if tok in MULTI_VALUE:
            flag, taken = tok, 0
            continue
        out.append(tok)
    if flag is not None and taken == 0:
        out.append(flag)
    return out


def _is_number(tok: str) -> bool:
    try:
        float(tok)
        return True
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> None:
    argv = _expand_multi(list(sys.argv[1:] if argv is None else argv))
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="monosemantic", standalone_mode=False)
    except InputError as e:
        _say(f"error: {e}")
        sys.exit(2)
    except typer.Abort:
        _say("aborted")
        sys.exit(130)
    except typer.TyperException as e:  # Click's usage errors (vendored by Typer): one line, exit 2
        _say(f"error: {e.format_message() if hasattr(e, 'format_message') else e}")
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
