"""`monosemantic ...`: a thin command line over the library.

Bad input (a value out of range, a missing or corrupt file, an existing output directory) prints
one line, `error: ...`, and exits with code 2; nothing half-written is left behind.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from monosemantic.errors import InputError



def _app(help: str, **kw) -> typer.Typer:
    # plain-text help: rich markup would swallow every "[samples, d]" as a style tag
    return typer.Typer(no_args_is_help=True, rich_markup_mode=None, help=help, **kw)


app = _app("Solving superposition, measured: toy models, dictionaries and unfolding.", add_completion=False,
           pretty_exceptions_enable=False)
toy_app = _app("Toy models of superposition (Elhage et al. 2022).")
app.add_typer(toy_app, name="toy")
data_app = _app("Ground-truth data sets (known features and codes).")
app.add_typer(data_app, name="data")
sae_app = _app("Dictionary learning: sparse autoencoders and classical baselines.")
app.add_typer(sae_app, name="sae")

# Options that take several values after one flag (`--sparsity 0 0.8 0.9`); Click wants the flag
# repeated, so `main` rewrites the first form into the second before parsing.
MULTI_VALUE = ("--sparsity", "--importance", "--lambdas", "--ratios", "--methods")


PROGRESS = typer.Option(True, help="Show a progress bar.")
OVERWRITE = typer.Option(False, help="Replace an existing run directory.")


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
    overwrite: bool = OVERWRITE,
    progress: bool = PROGRESS,
) -> None:
    """Train one toy model per sparsity (best of --seeds) and write a run directory.

    Writes OUT/model.safetensors (W: [instances, m, n], b: [instances, n], float32, instance order =
    --sparsity order; the abs model adds W2: [instances, n, m]), OUT/result.json (loss per instance on
    the fixed eval batch, wall_s, model_steps_per_s) and OUT/config.json.
    """
    from monosemantic.config import ToyTrainConfig, validate
    from monosemantic.experiments.toy import train_to_dir

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

    from monosemantic.experiments.toy import measure_dir

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


# ---------------------------------------------------------------- data (issue 6)


@data_app.command("synth")
def data_synth(
    out: Path = typer.Option(..., help="File to write: .npz, .safetensors (X, F, codes) or .npy (X alone)."),
    kind: str = typer.Option("uniform", help="uniform (shared README section 5) | sharkey | toy."),
    n_features: Optional[int] = typer.Option(None, help="True features (default 512)."),
    d: Optional[int] = typer.Option(None, help="Dimensions (default 128 uniform, 256 sharkey)."),
    k: float = typer.Option(5.0, help="Expected active features per sample."),
    samples: int = typer.Option(200_000, help="Samples."),
    seed: int = typer.Option(0, help="Seed (dictionary and samples)."),
    decay: float = typer.Option(0.99, help="sharkey: feature i's frequency falls as decay**i."),
    correlation: float = typer.Option(0.0, help="sharkey: Gaussian-copula correlation of on/off events, [0, 1)."),
    run: Optional[Path] = typer.Option(None, help="toy: a `toy train` run directory; X = W x of its model."),
    instance: int = typer.Option(0, help="toy: which instance of the run."),
    overwrite: bool = typer.Option(False, help="Replace an existing file."),
) -> None:
    """Draw a ground-truth data set: X: [samples, d], true dictionary F: [n_features, d], true codes (CSR)."""
    from monosemantic.data import save_data, synth

    if out.exists() and not overwrite:
        raise InputError(f"output file exists: {out} (pass --overwrite to replace it)")
    data = synth(kind, n_features, d, k, samples, seed, decay, correlation, run, instance)
    save_data(out, data)
    m = data.meta
    _say(f"{kind}: {m['samples']} samples, d={m['d']}, {m['n_features']} true features, "
         f"L0 {m['l0_mean']:.2f} +- {m['l0_std']:.2f}")
    typer.echo(str(out))


@sae_app.command("train")
def sae_train(
    data: Path = typer.Option(..., help="Training data: .npy, .npz or .safetensors holding X: [samples, d]."),
    out: Path = typer.Option(..., help="Directory to write (SAELens layout: cfg.json, sae_weights.safetensors)."),
    arch: str = typer.Option("topk", help="relu | topk | batchtopk | jumprelu | mbdl | pca | ica."),
    latents: int = typer.Option(512, help="Dictionary size (d_sae)."),
    k: int = typer.Option(5, help="Active latents per sample (topk; batchtopk on average; jumprelu's start)."),
    l1: Optional[float] = typer.Option(None, help="relu: L1 coefficient, weighted by decoder norms (default 0.1)."),
    l0: float = typer.Option(0.01, help="jumprelu: L0 coefficient."),
    alpha: float = typer.Option(0.1, help="mbdl: lasso penalty."),
    samples: Optional[int] = typer.Option(None, help="Training samples (default 3,000,000 for SAEs)."),
    batch: Optional[int] = typer.Option(None, help="Samples per step (default 256; mbdl 1024)."),
    lr: Optional[float] = typer.Option(None, help="Peak Adam learning rate (default 4e-3 * sqrt(128 / d))."),
    seed: int = typer.Option(0, help="Seed (initialisation and batch order)."),
    checkpoint: Optional[Path] = typer.Option(None, help="Checkpoint directory: saved every --checkpoint-every steps; "
                                                         "a rerun with the same flags resumes from it."),
    checkpoint_every: int = typer.Option(1000, help="Steps between checkpoints."),
    overwrite: bool = typer.Option(False, help="Replace an existing output directory."),
    progress: bool = PROGRESS,
) -> None:
    """Fit a dictionary on a data file and save it (for SAEs in SAELens's layout, loadable by SAELens)."""
    from monosemantic.config import validate
    from monosemantic.experiments.dictionaries import SaeTrainConfig, train_to_dir
    from monosemantic.runs import read_json

    cfg = validate(SaeTrainConfig, dict(data=str(data), arch=arch, latents=latents, k=k, l1=l1, l0=l0, alpha=alpha,
                                        samples=samples, batch=batch, lr=lr, seed=seed, checkpoint_every=checkpoint_every,
                                        checkpoint=str(checkpoint) if checkpoint else None))
    path = train_to_dir(cfg, out, overwrite, progress and sys.stderr.isatty())
    res = read_json(path / "result.json")
    _say(f"trained {arch} with {latents} latents on {res['samples']} samples in {res['wall_s']:.1f}s "
         f"({res['samples_per_s']:.0f} samples/s); FVU on the first 10k training samples {res['fvu_train_sample']:.4f}")
    typer.echo(str(path))


@sae_app.command("score")
def sae_score(
    run_dir: Path = typer.Argument(..., help="A saved dictionary directory (from `sae train`, or SAELens)."),
    truth: Path = typer.Option(..., help="Data file with X (and the true F and codes, for recovery scores)."),
    n_eval: Optional[int] = typer.Option(None, help="Score only the last N samples (the held-out split)."),
) -> None:
    """Score a dictionary against ground truth (MMCS, recovered@0.9, Hungarian MCC, FVU, L0, dead, codes)."""
    from monosemantic.experiments.dictionaries import score_dir

    scores = score_dir(run_dir, truth, n_eval)
    for key, v in scores.items():
        typer.echo(f"{key:>18}  {v:.4f}" if isinstance(v, float) else f"{key:>18}  {v}")
    typer.echo(str(run_dir / "scores.json"))


# ---- sweeps and phase diagrams (issue 4) ----
sweep_app = _app("Grids of toy models: resumable, on local processes or Ray.")
phase_app = _app("Superposition as a phase change: diagrams and transitions.")
app.add_typer(sweep_app, name="sweep")
app.add_typer(phase_app, name="phase")
BACKEND = typer.Option("local", help="local (worker processes, one per core) | ray (--ray-address to join a "
                                      "cluster, else a local Ray).")
RAY_ADDRESS = typer.Option(None, help="HOST:PORT (or ray://HOST:PORT, auto) of a Ray cluster.")
WORKERS = typer.Option(None, help="Worker processes (default: one per core).")
PHASE_OUT = typer.Option(..., help="Directory: OUT/sweep (resumable points) and OUT/diagram (the analysis).")


def _sweep_warnings() -> None:
    import warnings

    from monosemantic.experiments.sweeps import format_warning

    warnings.formatwarning = format_warning  # one plain `warning: ...` line on stderr


@sweep_app.command("run")
def sweep_run(
    spec: Path = typer.Argument(..., help="Sweep spec, TOML or JSON (see specs/)."),
    out: Path = typer.Option(..., help="Sweep directory; running again with the same spec finishes missing points."),
    backend: str = BACKEND,
    ray_address: Optional[str] = RAY_ADDRESS,
    workers: Optional[int] = WORKERS,
    progress: bool = PROGRESS,
) -> None:
    """Train every point of SPEC; write OUT/sweep.json, OUT/points/pNNNNN/ run directories, OUT/results.csv."""
    from monosemantic.experiments.sweeps import load_spec, run_sweep

    _sweep_warnings()
    cfg = load_spec(spec)
    meta = run_sweep(cfg, out, backend, workers, ray_address, progress and sys.stderr.isatty())
    _say(f"sweep {cfg.name}: {meta['points']} points, {meta['trained_points']} trained now in "
         f"{meta['trained_groups']} groups ({meta['elapsed_s']:.1f}s), {len(meta['transitions'])} transitions")
    typer.echo(str(out / "results.csv"))


def _phase_run(kind: str, spec, out: Path, backend: str, workers, ray_address, progress: bool) -> Path:
    from monosemantic.experiments.phase import run_to_dir

    _sweep_warnings()
    return run_to_dir(kind, spec, out, backend, workers, ray_address, progress and sys.stderr.isatty())


@phase_app.command("n2m1")
def phase_n2m1(
    out: Path = PHASE_OUT,
    grid: int = typer.Option(20, help="Points per axis (r in [0.1, 10] and density in [0.01, 1], both log)."),
    steps: int = typer.Option(10_000, help="Training steps."),
    seeds: int = typer.Option(0, help="Random starts per point (besides the candidate layouts)."),
    candidates: bool = typer.Option(True, help="Start from each ideal layout too: [1,0], [0,1], [1,-1]."),
    seed: int = typer.Option(0, help="Sweep seed (data stream and starts)."),
    backend: str = BACKEND,
    ray_address: Optional[str] = RAY_ADDRESS,
    workers: Optional[int] = WORKERS,
    progress: bool = PROGRESS,
) -> None:
    """The n=2, m=1 phase diagram against the analytic boundary; writes OUT/diagram/n2m1.png and result.json."""
    from monosemantic.experiments.phase import n2m1_spec
    from monosemantic.runs import read_json

    if grid < 2:
        raise InputError(f"--grid must be at least 2, got {grid}")
    diagram = _phase_run("n2m1", n2m1_spec(grid, steps, seeds, candidates, seed), out, backend, workers,
                         ray_address, progress)
    res = read_json(diagram / "result.json")
    _say(f"agreement with the analytic diagram: {res['agreement_far']:.1%} of {res['far_points']} points away "
         f"from the boundary, {res['agreement_all']:.1%} of all; {len(res['transitions'])} transitions")
    typer.echo(str(diagram))


@phase_app.command("uniform")
def phase_uniform(
    out: Path = PHASE_OUT,
    n: int = typer.Option(200, help="Features (the paper also shows n=400, m=30)."),
    m: int = typer.Option(20, help="Hidden dimensions."),
    levels: int = typer.Option(20, help="Densities 20^(-k/(levels-1)), k = 0..levels-1 (the notebook's grid)."),
    steps: int = typer.Option(10_000, help="Training steps."),
    seeds: int = typer.Option(1, help="Random starts per level (lowest loss kept)."),
    seed: int = typer.Option(0, help="Sweep seed."),
    backend: str = BACKEND,
    ray_address: Optional[str] = RAY_ADDRESS,
    workers: Optional[int] = WORKERS,
    progress: bool = PROGRESS,
) -> None:
    """Uniform importance: D* against 1/(1-S) with its 1/2 plateau, and D_i; writes OUT/diagram/uniform.png."""
    from monosemantic.experiments.phase import uniform_spec
    from monosemantic.runs import read_json

    if levels < 2:
        raise InputError(f"--levels must be at least 2, got {levels}")
    spec = uniform_spec(n, m, levels, steps, seeds, seed, max_group_points=max(1, -(-levels // 2)))
    diagram = _phase_run("uniform", spec, out, backend, workers, ray_address, progress)
    res = read_json(diagram / "result.json")
    _say(f"D* within 0.03 of 1/2 at 1/(1-S) = {[round(x, 2) for x in res['half_levels']]}; "
         f"plateau {res['half_plateau']}")
    typer.echo(str(diagram))

# --- road 1: models without superposition (L1 penalty, Mixture-of-Experts, effective size) ---
road1_app = _app("Road 1: models without superposition, and their cost.")
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
    overwrite: bool = OVERWRITE,
    progress: bool = PROGRESS,
) -> None:
    """Sweep the L1 penalty on hidden activations: loss, represented features, monosemantic neurons, D*,
    importance threshold and loss per activation for each lambda (all lambdas train as one batched model)."""
    from monosemantic.experiments.road1 import L1SweepConfig, l1_lines, l1_to_dir
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
    overwrite: bool = OVERWRITE,
    progress: bool = PROGRESS,
) -> None:
    """Dense m against MoE (top-k of E experts of m; flop-matched at k=1) against dense E*m (neuron-matched)."""
    from monosemantic.experiments.road1 import MoEConfig, moe_to_dir
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
    sparsity: Optional[list[float]] = typer.Option(None, help="Sparsities S (default: nine from 0.5 to 0.995)."),
    importance_decay: float = typer.Option(1.0, help="Importance I_i = decay**i (1: uniform)."),
    steps: int = typer.Option(10_000, help="Training steps."),
    batch: int = typer.Option(1024, help="Samples per step."),
    seeds: int = typer.Option(3, help="Seeds per sparsity (lowest loss kept)."),
    seed: int = typer.Option(0, help="Base seed."),
    eval_batch: int = typer.Option(16384, help="Held-out samples."),
    overwrite: bool = OVERWRITE,
    progress: bool = PROGRESS,
) -> None:
    """k = m'/m: the narrowest model without superposition as good as a superposition model of m neurons."""
    from monosemantic.experiments.road1 import EffectiveSizeConfig, effective_size_to_dir
    from monosemantic.config import validate
    from monosemantic.runs import read_json

    data = _road1_common(n, m, importance_decay, steps, batch, seeds, seed, eval_batch)
    if sparsity is not None:  # else EffectiveSizeConfig's default
        data["sparsity"] = sparsity
    cfg = validate(EffectiveSizeConfig, data)
    path = effective_size_to_dir(cfg, out, overwrite, progress and sys.stderr.isatty())
    res = read_json(path / "result.json")
    for s, w, kk in zip(res["sparsity"], res["narrowest_width"], res["k"]):
        _say(f"S {s:<6} m' {w:>3}  k {kk:.2f}")
    typer.echo(str(path))


# ---------------------------------------------------------------- unfolding (issue 7)


@app.command("unfold")
def unfold_cmd(
    data: Path = typer.Option(..., help="Activations: .npy, .npz or .safetensors holding X: [samples, d]."),
    dictionary: Path = typer.Option(..., help="A file holding F: [atoms, d] (as --data), or a saved dictionary dir."),
    out: Path = typer.Option(..., help="Run directory to write (must not exist, unless --overwrite)."),
    method: str = typer.Option("omp", help="omp | l1 (exact lasso, active set) | fista (the same lasso by FISTA) | "
                                           "sae (the SAE's own encoder)."),
    tol: float = typer.Option(1e-6, help="omp: stop when ||x - D c|| <= tol ||x|| (relative)."),
    k: Optional[int] = typer.Option(None, help="omp: at most k atoms per sample (default min(atoms, d))."),
    alpha: float = typer.Option(0.01, help="l1, fista: penalty in 0.5 ||x - D c||^2 + alpha ||c||_1 (unit atoms)."),
    positive: bool = typer.Option(False, help="l1, fista: non-negative codes."),
    overwrite: bool = OVERWRITE,
) -> None:
    """Sparse-code every sample against a dictionary: OUT/codes.safetensors (CSR indptr, indices, values),
    OUT/result.json (shape, wall_s, samples_per_s, unconverged samples), OUT/config.json."""
    from monosemantic.runs import read_json
    from monosemantic.sensing import unfold_to_dir

    path = unfold_to_dir(data, dictionary, out, method, tol, k, alpha, positive, overwrite, sys.stderr.isatty())
    res = read_json(path / "result.json")
    _say(f"unfolded {res['shape'][0]} samples onto {res['shape'][1]} atoms ({method}) in {res['wall_s']:.3f}s "
         f"({res['samples_per_s']:.0f} samples/s); L0 {res['l0']:.2f}; unconverged {res['unconverged']}")
    typer.echo(str(path))


# ---------------------------------------------------------------- feature enumeration (issue 7 part 6)
features_app = _app("Enumerate a dictionary's features; write one activation as a weighted list of features.")
app.add_typer(features_app, name="features")
FEATURES_DIR = typer.Argument(..., help="A saved dictionary directory (`sae train`), or a file holding F: [atoms, d].")
FEATURES_DATA = typer.Option(None, help="Data file (X; the true F and codes when it holds them). Default: the data "
                                        "file recorded in DIR/config.json.")


@features_app.command("list")
def features_list(
    dictionary: Path = FEATURES_DIR,
    data: Optional[Path] = FEATURES_DATA,
    top: int = typer.Option(5, help="Top activating samples kept per atom."),
    limit: int = typer.Option(20, help="Rows printed (0: all); OUT/features.json holds every atom."),
    sort: str = typer.Option("frequency", help="frequency | atom | max | cosine (largest first; atom ascending)."),
    out: Optional[Path] = typer.Option(None, help="Run directory to write: config.json, result.json, features.json."),
    overwrite: bool = OVERWRITE,
    progress: bool = PROGRESS,
    as_json: bool = typer.Option(False, "--json", help="Print every atom as JSON instead of the table."),
) -> None:
    """Every atom: frequency, mean (over the samples where it fires) and max activation, decoder norm, nearest
    true feature and cosine (when the data hold the truth), top activating samples. Prints a table (or JSON)."""
    from monosemantic.experiments.catalog import FeaturesConfig, format_features, list_to_dir
    from monosemantic.config import validate

    cfg = validate(FeaturesConfig, dict(dictionary=str(dictionary), data=str(data) if data else None, top=top,
                                        limit=limit, sort=sort))
    rows, res = list_to_dir(cfg, out, overwrite, progress and sys.stderr.isatty())
    for line in [json.dumps(rows)] if as_json else format_features(rows, cfg.sort, cfg.limit):
        typer.echo(line)
    _say(f"{res['atoms']} atoms over {res['samples']} samples in {res['wall_s']:.2f}s: {res['dead']} dead, "
         f"L0 {res['l0']:.2f}")
    if out is not None:
        typer.echo(str(out))


@features_app.command("describe")
def features_describe(
    dictionary: Path = FEATURES_DIR,
    sample: int = typer.Option(..., help="Index of the sample (row of X) to describe."),
    data: Optional[Path] = FEATURES_DATA,
    out: Optional[Path] = typer.Option(None, help="Run directory to write: config.json, result.json (the description)."),
    overwrite: bool = OVERWRITE,
    as_json: bool = typer.Option(False, "--json", help="Print the description as JSON instead of the table."),
) -> None:
    """One activation as a weighted list of atoms (code, weight |c| ||F_j||, share of the reconstruction),
    its relative reconstruction error, and its true active features when the data hold them."""
    from monosemantic.experiments.catalog import FeaturesConfig, describe_to_dir, format_description
    from monosemantic.config import validate

    cfg = validate(FeaturesConfig, dict(dictionary=str(dictionary), data=str(data) if data else None, sample=sample))
    desc = describe_to_dir(cfg, out, overwrite)
    for line in [json.dumps(desc)] if as_json else format_description(desc):
        typer.echo(line)
    if out is not None:
        typer.echo(str(out))


@app.command("transition")
def transition_cmd(
    out: Path = typer.Option(..., help="Run directory to write (must not exist, unless --overwrite)."),
    m: int = typer.Option(256, help="Dimensions."),
    ratios: List[int] = typer.Option([2, 4, 8, 16], help="n/m: one curve per n = ratio x m (several values)."),
    trials: int = typer.Option(20, help="Codes per k (k on a grid around the Donoho-Tanner k)."),
    methods: List[str] = typer.Option(["omp", "l1"], help="omp and/or l1 (exact L1 by LARS: ~0.1-1 s a sample "
                                                          "at m = 256)."),
    seed: int = typer.Option(0, help="Seed of the dictionaries and codes."),
    overwrite: bool = OVERWRITE,
) -> None:
    """The recovery phase transition: P(exact support recovery) against k for random Gaussian dictionaries, beside
    the Donoho-Tanner curve and the coherence guarantees; writes OUT/result.json and OUT/transition.png."""
    from monosemantic.runs import read_json
    from monosemantic.experiments.transition import run_to_dir

    path = run_to_dir(out, m, ratios, trials, methods, seed, overwrite, sys.stderr.isatty())
    res = read_json(path / "result.json")
    for method in ("omp", "l1"):
        for c in res[method]:
            k50 = "not crossed" if c["k50"] is None else f"{c['k50']:.1f}"
            _say(f"{method} m={c['m']} n={c['n']}: 50% at k = {k50} (Donoho-Tanner k = {c['dt_k']:.1f}, "
                 f"guaranteed k < {c['k_guaranteed_mu']:.2f} by mu(F) = {c['mu']:.3f})")
    typer.echo(str(path))


@app.command("demo")
def demo(
    out: Path = typer.Option(Path("demo"), help="Directory for report.html and summary.json."),
    quick: bool = typer.Option(False, help="Fewer steps and seeds (a smoke test, not the paper's figures)."),
) -> None:
    """Train the paper's figures, then write OUT/report.html and OUT/summary.json."""
    from monosemantic.report.demo import run_demo

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


def _keep_freed_memory() -> None:
    """glibc hands every allocation above 128 KiB back to the kernel when it is freed, so each chunk's fresh
    [chunk, atoms] tensors are page-faulted in again (a fifth of a cold `unfold`). A CLI process keeps up to
    512 MiB of freed memory for reuse instead; elsewhere (other C libraries) this is a no-op."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 256 << 20)  # M_MMAP_THRESHOLD: serve allocations up to 256 MiB from the heap
        libc.mallopt(-1, 512 << 20)  # M_TRIM_THRESHOLD: return freed heap to the kernel above 512 MiB
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> None:
    if argv is None:  # a process of its own, not a call from Python
        _keep_freed_memory()
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
