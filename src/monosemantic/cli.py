"""`monosemantic ...`: a thin command line over the library.

Bad input (a value out of range, a missing or corrupt file, an existing output directory) prints
one line, `error: ...`, and exits with code 2; nothing half-written is left behind.
"""
from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from monosemantic.config import (EffectiveSizeConfig, FeaturesConfig, L1SweepConfig, MoEConfig, SaeTrainConfig,
                                 ToyTrainConfig, UnfoldConfig, default, validate)
from monosemantic.data import synth
from monosemantic.devices import DEFAULT as DEFAULT_DEVICE
from monosemantic.errors import InputError
from monosemantic.experiments.adversarial import adversarial as adversarial_run, check_norm
from monosemantic.experiments.circuits import circuits_run
from monosemantic.experiments.computation import computation as computation_run
from monosemantic.experiments.diagrams import protocols_run
from monosemantic.experiments.dynamics import dynamics as dynamics_run
from monosemantic.experiments.hybrids import Road3Config
from monosemantic.experiments.phase import MIN_PLATEAU_LEVELS, n2m1_spec, phase_run, uniform_spec
from monosemantic.experiments.privileged import privileged as privileged_run
from monosemantic.experiments.road2 import Road2ToyConfig
from monosemantic.experiments.transition import transition_run
from monosemantic.runs import check_new_dir


def styled(draw):
    """`draw` with the report's look (fonts, legends beside the axes), for the figures commands write."""
    from monosemantic.report.html import styled as with_style

    return with_style(draw)


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


PROGRESS = typer.Option(True, help="Show a progress bar.")

OVERWRITE = typer.Option(False, help="Replace an existing run directory.")
DEVICE_HELP = "cpu | cuda | cuda:N | auto (CUDA when available)."
DEVICE = typer.Option(DEFAULT_DEVICE, help=DEVICE_HELP)  # every config's device defaults to devices.DEFAULT too
# the sweeps' and roads' points, on worker processes or Ray
BACKEND = typer.Option("local", help="local (worker processes, one per core) | ray (--ray-address to join a "
                                      "cluster, else a local Ray).")
RAY_ADDRESS = typer.Option(None, help="HOST:PORT (or auto) of a Ray cluster this machine is a node of.")
WORKERS = typer.Option(None, help="Worker processes (default: one per core).")


def _shown(progress: bool) -> bool:
    """A progress bar is drawn only on a terminal (a log file gets the commands' own lines)."""
    return progress and sys.stderr.isatty()


def _default(source, name: str):
    """The default of a config class's field, or of a function's parameter."""
    return default(source, name) if isinstance(source, type) else inspect.signature(source).parameters[name].default


def opt(source, name: str, help: str, **kw):
    """A Typer option whose default is read from a config class (or a function's signature): written once."""
    return typer.Option(_default(source, name), help=help, **kw)


def _say(msg: str) -> None:
    typer.echo(msg, err=True)


def renamed(old: str, help: str = "") -> typer.models.OptionInfo:
    """An option's old spelling, kept working but hidden from --help (docs/cli.md lists every rename)."""
    return typer.Option(None, old, hidden=True, help=help)


def _either(new, old, new_name: str, old_name: str, default=None):
    """The value of an option given by its name or its old spelling (not both, with different values)."""
    if old is None:
        return new
    if new is not None and new != default and new != old:
        raise InputError(f"{old_name} is the old spelling of {new_name}; give one of them")
    return old


def validate_as(cls, data: dict, options: dict[str, str]):
    """`validate`, its error naming the command's option (`--expansion`) where the config's field is named
    otherwise (`ratios`)."""
    try:
        return validate(cls, data)
    except InputError as e:
        field, _, msg = str(e).partition(": ")
        option = options.get(field.split(".")[0])
        if option is None:
            raise
        raise InputError(f"{option}: {msg}") from None


def _values(v: Optional[list]) -> Optional[list]:
    return v or None  # a list option left out: None, whatever the Typer version gives


@toy_app.command("train")
def toy_train(
    out: Path = typer.Option(..., help="Run directory to write (must not exist, unless --overwrite)."),
    model: str = opt(ToyTrainConfig, "model", help="linear | relu-output | relu-hidden | abs."),
    n: int = opt(ToyTrainConfig, "n", help="Number of features."),
    m: int = opt(ToyTrainConfig, "m", help="Number of hidden dimensions."),
    sparsity: list[float] = opt(ToyTrainConfig, "sparsity", help="One or more sparsities S in [0, 1): one instance each."),
    importance_decay: float = opt(ToyTrainConfig, "importance_decay", help="Importance I_i = decay**i."),
    importance: Optional[list[float]] = typer.Option(None, help="Explicit importances, n values (overrides decay)."),
    steps: int = opt(ToyTrainConfig, "steps", help="Training steps."),
    batch: int = opt(ToyTrainConfig, "batch", help="Samples per step."),
    seeds: int = opt(ToyTrainConfig, "seeds", help="Seeds per sparsity; the one with the lowest eval loss is kept."),
    seed: int = opt(ToyTrainConfig, "seed", help="Base seed (data stream, initialisations, eval batch)."),
    lr: float = opt(ToyTrainConfig, "lr", help="AdamW learning rate."),
    weight_decay: float = opt(ToyTrainConfig, "weight_decay", help="AdamW weight decay."),
    schedule: str = opt(ToyTrainConfig, "schedule", help="constant | cosine."),
    warmup: int = opt(ToyTrainConfig, "warmup", help="Linear warm-up steps."),
    eval_batch: int = opt(ToyTrainConfig, "eval_batch", help="Samples in the fixed evaluation batch."),
    correlated_sets: int = opt(ToyTrainConfig, "correlated_sets", help="Sets of features that are on together (first features)."),
    anticorrelated_sets: int = opt(ToyTrainConfig, "anticorrelated_sets", help="Sets of features never on together (after correlated)."),
    set_size: int = opt(ToyTrainConfig, "set_size", help="Features per (anti-)correlated set."),
    l1: float = opt(ToyTrainConfig, "l1", help="L1 penalty on hidden activations (relu-output, relu-hidden)."),
    device: str = DEVICE,
    snapshot_every: Optional[int] = opt(ToyTrainConfig, "snapshot_every",
                                        help="Copy the weights every N steps (and at step 0) into snapshots.safetensors."),
    overwrite: bool = OVERWRITE,
    progress: bool = PROGRESS,
) -> None:
    """Train one toy model per sparsity (best of --seeds) and write a run directory.

    Writes OUT/model.safetensors (W: [instances, m, n], b: [instances, n], float32, instance order =
    --sparsity order; the abs model adds W2: [instances, n, m]), OUT/result.json (loss per instance on
    the fixed eval batch, wall_s, model_steps_per_s) and OUT/config.json. With --snapshot-every N,
    OUT/snapshots.safetensors holds the same tensors with a step axis first (W: [snapshots, instances, m, n])
    and step: [snapshots].
    """
    from monosemantic.experiments.toy import train_toy_run

    cfg = validate(ToyTrainConfig, dict(
        model=model, n=n, m=m, sparsity=sparsity, importance_decay=importance_decay, importance=importance,
        steps=steps, batch=batch, seeds=seeds, seed=seed, lr=lr, weight_decay=weight_decay, schedule=schedule,
        warmup=warmup, eval_batch=eval_batch, correlated_sets=correlated_sets,
        anticorrelated_sets=anticorrelated_sets, set_size=set_size, l1=l1, device=device,
        snapshot_every=snapshot_every))
    res = train_toy_run(cfg, out, overwrite, _shown(progress))
    _say(f"trained {len(res['loss'])} x {cfg.model} (n={cfg.n}, m={cfg.m}) in {res['wall_s']:.2f}s "
         f"({res['model_steps_per_s']:.0f} model-steps/s); loss {[round(v, 5) for v in res['loss']]}")
    typer.echo(str(out))


@toy_app.command("measure")
def toy_measure(run_dir: Path = typer.Argument(..., help="A toy run directory.")) -> None:
    """Print the superposition measures of a toy run and write RUN_DIR/measures.json."""
    from rich.console import Console
    from rich.table import Table

    from monosemantic.experiments.toy import measure_toy_run

    rows = measure_toy_run(run_dir)
    t = Table(title=f"measures of {run_dir}")
    for col in ("instance", "sparsity", "represented", "D*", "mean superposition", "geometry", "mono neurons"):
        t.add_column(col)
    for i, r in enumerate(rows):
        sup = r["mean_superposition"]
        mono = f"{r['monosemantic_neurons']}/{len(r['neuron_top_share'])}" if "neuron_top_share" in r else "-"
        t.add_row(str(i), str(r["sparsity"]), str(r["represented_features"]), f"{r['dims_per_feature']:.3f}",
                  "-" if sup is None else f"{sup:.3f}", r["geometry"]["label"], mono)
    Console().print(t)
    typer.echo(str(Path(run_dir) / "measures.json"))


@toy_app.command("dynamics")
def toy_dynamics(
    out: Path = typer.Option(..., help="Run directory to write (must not exist)."),
    n: int = opt(dynamics_run, "n", help="Features (uniform importance)."),
    m: int = opt(dynamics_run, "m", help="Hidden dimensions."),
    sparsity: Optional[float] = typer.Option(None, help=f"Sparsity S of every feature, in [0, 1) (default "
                                                         f"{1 - _default(dynamics_run, 'density'):g})."),
    steps: int = opt(dynamics_run, "steps", help="Training steps."),
    snapshot_every: int = opt(dynamics_run, "snapshot_every", help="Copy the weights every N steps."),
    seeds: int = opt(dynamics_run, "seeds", help="Random starts (lowest eval loss kept)."),
    seed: int = opt(dynamics_run, "seed", help="Base seed."),
    progress: bool = PROGRESS,
    density: Optional[float] = renamed("--density", "Feature probability 1-S."),
) -> None:
    """Learning dynamics: D_i at every snapshot, jumps between energy levels, and whether the loss drops suddenly
    when a feature jumps. Writes OUT (snapshots.safetensors: W: [snapshots, 1, m, n], step: [snapshots])."""
    if sparsity is not None and density is not None:
        raise InputError("--density is 1 - --sparsity; give one of them")
    if sparsity is not None:
        if not 0 <= sparsity < 1:
            raise InputError(f"--sparsity must lie in [0, 1), got {sparsity}")
        density = 1 - sparsity
    density = _default(dynamics_run, "density") if density is None else density
    if not 0 < density <= 1:
        raise InputError(f"--density must lie in (0, 1], got {density}")
    check_new_dir(out, False)
    res = dynamics_run(n, m, density, steps, snapshot_every, seeds, seed, out=out,
                       progress=_shown(progress))
    _say(f"{res['jumps_detected']} jumps detected, {res['jumps_with_sudden_drop']} with a sudden loss drop "
         f"({len(res['sudden_drops'])} sudden drops; chance of a coincidence {res['chance_of_coincidence']:.0%})")
    typer.echo(str(out))


# ---------------------------------------------------------------- data


@data_app.command("synth")
def data_synth(
    out: Path = typer.Option(..., help="File to write: .npz, .safetensors (X, F, codes) or .npy (X alone)."),
    kind: str = opt(synth, "kind", help="uniform (random unit features, each on with p = k/n) | sharkey | toy."),
    n: Optional[int] = typer.Option(None, help="Number of true features (default 512)."),
    m: Optional[int] = typer.Option(None, help="Dimensions m of the data, the d of X: [samples, d] (default 128 "
                                               "uniform, 256 sharkey)."),
    k: float = opt(synth, "k", help="Expected active features per sample."),
    samples: int = opt(synth, "samples", help="Samples."),
    seed: int = opt(synth, "seed", help="Seed (dictionary and samples)."),
    frequency_decay: float = opt(synth, "decay", help="sharkey: feature i's frequency falls as (this)**i."),
    correlation: float = opt(synth, "correlation", help="sharkey: Gaussian-copula correlation of on/off events, [0, 1)."),
    run: Optional[Path] = typer.Option(None, help="toy: a `toy train` run directory; X = W x of its model."),
    instance: int = opt(synth, "instance", help="toy: which instance of the run."),
    overwrite: bool = typer.Option(False, help="Replace an existing file."),
    n_features: Optional[int] = renamed("--n-features"),
    d: Optional[int] = renamed("--d"),
    decay: Optional[float] = renamed("--decay"),
) -> None:
    """Draw a ground-truth data set: X: [samples, m], true dictionary F: [n, m], true codes (CSR)."""
    from monosemantic.data import save_data

    n, m = _either(n, n_features, "--n", "--n-features"), _either(m, d, "--m", "--d")
    frequency_decay = _either(frequency_decay, decay, "--frequency-decay", "--decay", _default(synth, "decay"))
    if out.exists() and not overwrite:
        raise InputError(f"output file exists: {out} (pass --overwrite to replace it)")
    data = synth(kind, n, m, k, samples, seed, frequency_decay, correlation, run, instance)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_data(out, data)
    meta = data.meta
    _say(f"{kind}: {meta['samples']} samples, m={meta['d']}, {meta['n_features']} true features, "
         f"L0 {meta['l0_mean']:.2f} +- {meta['l0_std']:.2f}")
    typer.echo(str(out))


@sae_app.command("train")
def sae_train(
    data: Path = typer.Option(..., help="Training data: .npy, .npz or .safetensors holding X: [samples, d], or an "
                                        "activation store directory (real capture)."),
    out: Path = typer.Option(..., help="Directory to write (SAELens layout: cfg.json, sae_weights.safetensors)."),
    arch: str = opt(SaeTrainConfig, "arch", help="relu | topk | batchtopk | jumprelu | mbdl | pca | ica."),
    latents: int = opt(SaeTrainConfig, "latents", help="Dictionary size (d_sae)."),
    k: int = opt(SaeTrainConfig, "k", help="Active latents per sample (topk; batchtopk on average; jumprelu's start)."),
    l1: Optional[float] = typer.Option(None, help="relu: L1 coefficient, weighted by decoder norms (default 0.1)."),
    l0: float = opt(SaeTrainConfig, "l0", help="jumprelu: L0 coefficient."),
    alpha: float = opt(SaeTrainConfig, "alpha", help="mbdl: lasso penalty."),
    samples: Optional[int] = typer.Option(None, help="Training samples (default 3,000,000 for SAEs)."),
    batch: Optional[int] = typer.Option(None, help="Samples per step (default 256; mbdl 1024)."),
    lr: Optional[float] = typer.Option(None, help="Peak Adam learning rate (default 4e-3 * sqrt(128 / d))."),
    seed: int = opt(SaeTrainConfig, "seed", help="Seed (initialisation and batch order)."),
    checkpoint: Optional[Path] = typer.Option(None, help="Checkpoint directory: saved every --checkpoint-every steps; "
                                                         "a rerun with the same flags resumes from it."),
    checkpoint_every: int = opt(SaeTrainConfig, "checkpoint_every", help="Steps between checkpoints."),
    device: str = opt(SaeTrainConfig, "device", help="SAEs: " + DEVICE_HELP + " mbdl, pca, ica: the CPU."),
    dtype: str = opt(SaeTrainConfig, "dtype", help="SAEs: float32 | bfloat16 (the training step's matmuls; a GPU)."),
    holdout: float = opt(SaeTrainConfig, "holdout", help="Share of the rows, the last ones, kept out of training "
                                                         "(`sae score` on the same file scores them)."),
    overwrite: bool = OVERWRITE,
    progress: bool = PROGRESS,
) -> None:
    """Fit a dictionary on a data file and save it (for SAEs in SAELens's layout, loadable by SAELens)."""
    from monosemantic.experiments.dictionaries import train_dictionary_run

    cfg = validate(SaeTrainConfig, dict(data=str(data), arch=arch, latents=latents, k=k, l1=l1, l0=l0, alpha=alpha,
                                        samples=samples, batch=batch, lr=lr, seed=seed, checkpoint_every=checkpoint_every,
                                        checkpoint=str(checkpoint) if checkpoint else None, device=device,
                                        dtype=dtype, holdout=holdout))
    res = train_dictionary_run(cfg, out, overwrite, _shown(progress))
    _say(f"trained {arch} with {latents} latents on {res['samples']} samples in {res['wall_s']:.1f}s "
         f"({res['samples_per_s']:.0f} samples/s); FVU on the first 10k training samples {res['fvu_train_sample']:.4f}"
         + (f"; {res['holdout_rows']} rows held out" if res.get("holdout_rows") else ""))
    typer.echo(str(out))


@sae_app.command("score")
def sae_score(
    run_dir: Path = typer.Argument(..., help="A saved dictionary directory (from `sae train`, or SAELens)."),
    data: Optional[Path] = typer.Option(None, help="Data file with X (and the true F and codes, for recovery "
                                                   "scores). Required."),
    n_eval: Optional[int] = typer.Option(None, help="Score the last N rows of --data. Default: the rows `sae train "
                                                 "--holdout` kept out when --data is its training file, else all; "
                                                 "the printed `rows` says which rows were scored."),
    progress: bool = PROGRESS,
    truth: Optional[Path] = renamed("--truth"),
) -> None:
    """Score a dictionary against ground truth (MMCS, recovered@0.9, Hungarian MCC, FVU, L0, dead, codes)."""
    from monosemantic.experiments.dictionaries import score_dictionary_run

    data = _either(data, truth, "--data", "--truth")
    if data is None:
        raise InputError("give --data: the data file to score on")
    scores = score_dictionary_run(run_dir, data, n_eval, _shown(progress))
    for key, v in scores.items():
        typer.echo(f"{key:>18}  {v:.4f}" if isinstance(v, float) else f"{key:>18}  {v}")
    typer.echo(str(run_dir / "scores.json"))


# ---- sweeps and phase diagrams ----
sweep_app = _app("Grids of toy models: resumable, on local processes or Ray.")
phase_app = _app("Superposition as a phase change: diagrams and transitions.")
app.add_typer(sweep_app, name="sweep")
app.add_typer(phase_app, name="phase")
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
    device: str = DEVICE,
) -> None:
    """Train every point of SPEC; write OUT/sweep.json, OUT/points/pNNNNN/ run directories, OUT/results.csv."""
    from monosemantic.experiments.sweeps import load_spec, run_sweep

    _sweep_warnings()
    cfg = load_spec(spec)
    meta = run_sweep(cfg, out, backend, workers, ray_address, _shown(progress), device=device)
    _say(f"sweep {cfg.name}: {meta['points']} points, {meta['trained_points']} trained now in "
         f"{meta['trained_groups']} groups ({meta['elapsed_s']:.1f}s), {len(meta['transitions'])} transitions")
    typer.echo(str(out / "results.csv"))


def _phase_run(kind: str, spec, out: Path, backend: str, workers, ray_address, progress: bool, device: str,
               **kw) -> dict:
    from monosemantic.experiments.phase import phase_run
    from monosemantic.report.figures import phase

    _sweep_warnings()
    return phase_run(kind, spec, out, backend, workers, ray_address, _shown(progress),
                     draw=styled(getattr(phase, kind)), device=device, **kw)


@phase_app.command("n2m1")
def phase_n2m1(
    out: Path = PHASE_OUT,
    grid: int = opt(n2m1_spec, "grid", help="Points per axis (r in [0.1, 10] and density in [0.01, 1], both log)."),
    steps: int = opt(n2m1_spec, "steps", help="Training steps."),
    seeds: int = opt(n2m1_spec, "seeds", help="Random starts per point (besides the candidate layouts)."),
    candidates: bool = opt(n2m1_spec, "candidates", help="Start from each ideal layout too: [1,0], [0,1], [1,-1]."),
    seed: int = opt(n2m1_spec, "seed", help="Sweep seed (data stream and starts)."),
    backend: str = BACKEND,
    ray_address: Optional[str] = RAY_ADDRESS,
    workers: Optional[int] = WORKERS,
    progress: bool = PROGRESS,
    device: str = DEVICE,
) -> None:
    """The n=2, m=1 phase diagram against the analytic boundary; writes OUT/diagram/n2m1.png and result.json."""
    if grid < 2:
        raise InputError(f"--grid must be at least 2, got {grid}")
    res = _phase_run("n2m1", n2m1_spec(grid, steps, seeds, candidates, seed), out, backend, workers,
                         ray_address, progress, device)
    far, every = (f"{v:.1%}" if v is not None else "n/a" for v in (res["agreement_far"], res["agreement_all"]))
    _say(f"agreement with the analytic diagram: {far} of {res['far_points']} points away "
         f"from the boundary, {every} of all; {len(res['transitions'])} transitions")
    typer.echo(str(out / "diagram"))


@phase_app.command("uniform")
def phase_uniform(
    out: Path = PHASE_OUT,
    n: int = opt(uniform_spec, "n", help="Features (the paper also shows n=400, m=30)."),
    m: int = opt(uniform_spec, "m", help="Hidden dimensions."),
    levels: int = opt(uniform_spec, "levels", help="Densities 20^(-k/(levels-1)), k = 0..levels-1 (the notebook's grid)."),
    steps: int = opt(uniform_spec, "steps", help="Training steps."),
    seeds: int = opt(uniform_spec, "seeds", help="Random starts per level (lowest loss kept)."),
    seed: int = opt(uniform_spec, "seed", help="Sweep seed."),
    backend: str = BACKEND,
    ray_address: Optional[str] = RAY_ADDRESS,
    workers: Optional[int] = WORKERS,
    progress: bool = PROGRESS,
    device: str = DEVICE,
    epsilon: float = opt(phase_run, "eps", help="Features i, j share a tegum factor when |W_hat_i . W_j| > this."),
) -> None:
    """Uniform importance: D* against 1/(1-S) with its 1/2 plateau, D_i, and the polytopes (tegum factors) at each
    level; writes OUT/diagram/uniform.png."""
    if levels < MIN_PLATEAU_LEVELS:  # before training: a shorter grid cannot show a plateau
        raise InputError(f"--levels must be at least {MIN_PLATEAU_LEVELS} to show a plateau, got {levels}")
    spec = uniform_spec(n, m, levels, steps, seeds, seed, max_group_points=max(1, -(-levels // 2)))
    res = _phase_run("uniform", spec, out, backend, workers, ray_address, progress, device, eps=epsilon)
    _say(f"D* within 0.03 of 1/2 at 1/(1-S) = {[round(x, 2) for x in res['half_levels']]}; 1/2 "
         f"plateau {res['half_plateau']}")
    for x, g in zip(res["inv_density"], res["geometry"]):
        named = "-" if g["on_named_level"] is None else f"{g['on_named_level']:.0%}"
        _say(f"1/(1-S) = {x:6.2f}: {named} of represented features on a named level; polytopes {g['polytopes']}")
    typer.echo(str(out / "diagram"))

@phase_app.command("protocols")
def phase_protocols(
    out: Path = typer.Option(..., help="Run directory to write (must not exist)."),
    grid2: int = opt(protocols_run, "grid2", help="Points per axis of the n=2, m=1 diagram."),
    grid3: int = opt(protocols_run, "grid3", help="Points per axis of the n=3, m=2 diagram."),
    steps: int = opt(protocols_run, "steps", help="Training steps."),
    seeds: int = opt(protocols_run, "starts", help="Random starts per point (the paper: 10, the worst dropped)."),
    seed: int = opt(protocols_run, "seed", help="Seed."),
    progress: bool = PROGRESS,
    starts: Optional[int] = renamed("--starts"),
) -> None:
    """Both phase diagrams (n=2, m=1 and n=3, m=2) under the paper's protocol, best of N and candidate starts,
    with their agreement; writes OUT/result.json, n2m1.png and n3m2.png."""
    from monosemantic.report.figures.diagrams import label_maps

    starts = _either(seeds, starts, "--seeds", "--starts", _default(protocols_run, "starts"))
    res = protocols_run(out, grid2, grid3, steps, starts, seed, _shown(progress),
                        draw=styled(label_maps))
    _say(f"n=2, m=1 agreement with the analytic diagram away from the boundary: "
         f"{res['n2m1']['agreement_with_analytic_far']}; n=3, m=2 paper protocol = candidate starts at "
         f"{res['n3m2']['protocol_agreement_far']} of {res['n3m2']['far_points']} points away from a boundary")
    typer.echo(str(out))


# --- road 1: models without superposition (L1 penalty, Mixture-of-Experts, effective size) ---
road1_app = _app("Road 1: models without superposition, and their cost.")
app.add_typer(road1_app, name="road1")


def _road1_common(n, m, importance_decay, steps, batch, seeds, seed, eval_batch, device) -> dict:
    return dict(n=n, m=m, importance_decay=importance_decay, steps=steps, batch=batch, seeds=seeds, seed=seed,
                eval_batch=eval_batch, device=device)


@road1_app.command("l1")
def road1_l1(
    out: Path = typer.Option(..., help="Run directory to write."),
    l1: Optional[list[float]] = typer.Option(None, help="L1 coefficients, several values (default: 0 and 12 "
                                                        "log-spaced, 0.003 to 2)."),
    model: str = opt(L1SweepConfig, "model", help="relu-hidden | relu-output."),
    n: int = opt(L1SweepConfig, "n", help="Number of features."),
    m: int = opt(L1SweepConfig, "m", help="Hidden neurons."),
    sparsity: float = opt(L1SweepConfig, "sparsity", help="Sparsity S of every feature."),
    importance_decay: float = opt(L1SweepConfig, "importance_decay", help="Importance I_i = decay**i."),
    steps: int = opt(L1SweepConfig, "steps", help="Training steps."),
    batch: int = opt(L1SweepConfig, "batch", help="Samples per step."),
    seeds: int = opt(L1SweepConfig, "seeds", help="Seeds per lambda (lowest penalised loss kept)."),
    seed: int = opt(L1SweepConfig, "seed", help="Base seed."),
    device: str = DEVICE,
    eval_batch: int = opt(L1SweepConfig, "eval_batch", help="Held-out samples for the measures."),
    overwrite: bool = OVERWRITE,
    progress: bool = PROGRESS,
    lambdas: Optional[list[float]] = renamed("--lambdas"),
) -> None:
    """Sweep the L1 penalty on hidden activations: loss, represented features, monosemantic neurons, D*,
    importance threshold and loss per activation for each lambda (all lambdas train as one batched model)."""
    from monosemantic.experiments.road1 import l1_lines, l1_run

    data = dict(model=model, sparsity=sparsity, **_road1_common(n, m, importance_decay, steps, batch, seeds,
                                                                 seed, eval_batch, device))
    l1 = _either(_values(l1), _values(lambdas), "--l1", "--lambdas")
    if l1 is not None:
        data["lambdas"] = l1
    cfg = validate_as(L1SweepConfig, data, {"lambdas": "--l1"})
    res = l1_run(cfg, out, overwrite, _shown(progress))
    for line in l1_lines(res):
        _say(line)
    _say(f"trained in {res['wall_s']:.1f}s")
    typer.echo(str(out))


@road1_app.command("moe")
def road1_moe(
    out: Path = typer.Option(..., help="Run directory to write."),
    experts: int = opt(MoEConfig, "experts", help="Experts E."),
    active_experts: int = opt(MoEConfig, "k", help="Experts chosen per input (top-k routing)."),
    n: int = opt(MoEConfig, "n", help="Number of features."),
    m: int = opt(MoEConfig, "m", help="Neurons per expert (and of the flop-matched dense model)."),
    sparsity: list[float] = typer.Option([0.7, 0.9, 0.97, 0.99], help="Sparsities S."),
    importance_decay: float = opt(MoEConfig, "importance_decay", help="Importance I_i = decay**i."),
    balance: float = opt(MoEConfig, "balance", help="Weight of the load-balancing loss."),
    steps: int = opt(MoEConfig, "steps", help="Training steps."),
    batch: int = opt(MoEConfig, "batch", help="Samples per step."),
    seeds: int = opt(MoEConfig, "seeds", help="Seeds per sparsity (lowest loss kept)."),
    seed: int = opt(MoEConfig, "seed", help="Base seed."),
    device: str = DEVICE,
    eval_batch: int = opt(MoEConfig, "eval_batch", help="Held-out samples for the measures."),
    overwrite: bool = OVERWRITE,
    progress: bool = PROGRESS,
    k: Optional[int] = renamed("--k"),
) -> None:
    """Dense m against MoE (top-k of E experts of m; flop-matched at k=1) against dense E*m (neuron-matched)."""
    from monosemantic.experiments.road1 import moe_run

    common = _road1_common(n, m, importance_decay, steps, batch, seeds, seed, eval_batch, device)
    k = _either(active_experts, k, "--active-experts", "--k", _default(MoEConfig, "k"))
    cfg = validate(MoEConfig, dict(experts=experts, k=k, sparsity=sparsity, balance=balance, **common))
    res = moe_run(cfg, out, overwrite, _shown(progress))
    for name, rec in res["models"].items():
        _say(f"{name:<18} loss {[round(v, 5) for v in rec['loss']]}  D* {[v and round(v, 3) for v in rec['dims_per_feature']]}"
             f"  monosemantic {rec['monosemantic_neurons']}")
    typer.echo(str(out))


@road1_app.command("effective-size")
def road1_effective_size(
    out: Path = typer.Option(..., help="Run directory to write."),
    n: int = opt(EffectiveSizeConfig, "n", help="Number of features."),
    m: int = opt(EffectiveSizeConfig, "m", help="Neurons of the superposition model."),
    sparsity: Optional[list[float]] = typer.Option(None, help="Sparsities S (default: nine from 0.5 to 0.995)."),
    importance_decay: float = opt(EffectiveSizeConfig, "importance_decay", help="Importance I_i = decay**i (1: uniform)."),
    steps: int = opt(EffectiveSizeConfig, "steps", help="Training steps."),
    batch: int = opt(EffectiveSizeConfig, "batch", help="Samples per step."),
    seeds: int = opt(EffectiveSizeConfig, "seeds", help="Seeds per sparsity (lowest loss kept)."),
    seed: int = opt(EffectiveSizeConfig, "seed", help="Base seed."),
    device: str = DEVICE,
    eval_batch: int = opt(EffectiveSizeConfig, "eval_batch", help="Held-out samples."),
    overwrite: bool = OVERWRITE,
    progress: bool = PROGRESS,
) -> None:
    """k = m'/m: the narrowest model without superposition as good as a superposition model of m neurons."""
    from monosemantic.experiments.road1 import effective_size_run

    data = _road1_common(n, m, importance_decay, steps, batch, seeds, seed, eval_batch, device)
    if sparsity is not None:  # else EffectiveSizeConfig's default
        data["sparsity"] = sparsity
    cfg = validate(EffectiveSizeConfig, data)
    res = effective_size_run(cfg, out, overwrite, _shown(progress))
    for s, w, kk in zip(res["sparsity"], res["narrowest_width"], res["k"]):
        _say(f"S {s:<6} m' {w:>3}  k {kk:.2f}")
    typer.echo(str(out))


# ---------------------------------------------------------------- unfolding


@app.command("unfold")
def unfold_cmd(
    data: Path = typer.Option(..., help="Activations: .npy, .npz or .safetensors holding X: [samples, d]."),
    dictionary: Path = typer.Option(..., help="A file holding F: [atoms, d] (as --data), or a saved dictionary dir."),
    out: Path = typer.Option(..., help="Run directory to write (must not exist, unless --overwrite)."),
    method: str = opt(UnfoldConfig, "method", help="omp | l1 (exact lasso, active set) | fista (the same lasso by FISTA) | "
                                           "sae (the SAE's own encoder)."),
    tol: float = opt(UnfoldConfig, "tol", help="omp: stop when ||x - D c|| <= tol ||x|| (relative)."),
    k: Optional[int] = typer.Option(None, help="omp: at most k atoms per sample (default min(atoms, d))."),
    alpha: float = opt(UnfoldConfig, "alpha", help="l1, fista: penalty in 0.5 ||x - D c||^2 + alpha ||c||_1 (unit atoms)."),
    positive: bool = opt(UnfoldConfig, "positive", help="l1, fista: non-negative codes."),
    device: str = DEVICE,
    overwrite: bool = OVERWRITE,
    progress: bool = PROGRESS,
) -> None:
    """Sparse-code every sample against a dictionary: OUT/codes.safetensors (CSR indptr, indices, values),
    OUT/result.json (shape, wall_s, samples_per_s, unconverged samples), OUT/config.json."""
    from monosemantic.experiments.unfolding import unfold_run

    cfg = validate(UnfoldConfig, dict(data=str(data), dictionary=str(dictionary), method=method, tol=tol, k=k,
                                      alpha=alpha, positive=positive, device=device))
    res = unfold_run(cfg, out, overwrite, _shown(progress))
    _say(f"unfolded {res['shape'][0]} samples onto {res['shape'][1]} atoms ({method}) in {res['wall_s']:.3f}s "
         f"({res['samples_per_s']:.0f} samples/s); L0 {res['l0']:.2f}; unconverged {res['unconverged']}")
    typer.echo(str(out))


# ---------------------------------------------------------------- feature enumeration
features_app = _app("Enumerate a dictionary's features; write one activation as a weighted list of features.")
app.add_typer(features_app, name="features")
FEATURES_DIR = typer.Argument(..., help="A saved dictionary directory (`sae train`), or a file holding F: [atoms, d].")
FEATURES_DATA = typer.Option(None, help="Data file (X; the true F and codes when it holds them). Default: the data "
                                        "file recorded in DIR/config.json.")


@features_app.command("list")
def features_list(
    dictionary: Path = FEATURES_DIR,
    data: Optional[Path] = FEATURES_DATA,
    top: int = opt(FeaturesConfig, "top", help="Top activating samples kept per atom."),
    limit: int = opt(FeaturesConfig, "limit", help="Rows printed (0: all); OUT/features.json holds every atom."),
    sort: str = opt(FeaturesConfig, "sort", help="frequency | atom | max | cosine (largest first; atom ascending)."),
    out: Optional[Path] = typer.Option(None, help="Run directory to write: config.json, result.json, features.json."),
    overwrite: bool = OVERWRITE,
    progress: bool = PROGRESS,
    as_json: bool = typer.Option(False, "--json", help="Print every atom as JSON instead of the table."),
) -> None:
    """Every atom: frequency, mean (over the samples where it fires) and max activation, decoder norm, nearest
    true feature and cosine (when the data hold the truth), top activating samples. Prints a table (or JSON)."""
    from monosemantic.experiments.catalog import features_list_run, format_features

    cfg = validate(FeaturesConfig, dict(dictionary=str(dictionary), data=str(data) if data else None, top=top,
                                        limit=limit, sort=sort))
    rows, res = features_list_run(cfg, out, overwrite, _shown(progress))
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
    from monosemantic.experiments.catalog import features_describe_run, format_description

    cfg = validate(FeaturesConfig, dict(dictionary=str(dictionary), data=str(data) if data else None, sample=sample))
    desc = features_describe_run(cfg, out, overwrite)
    for line in [json.dumps(desc)] if as_json else format_description(desc):
        typer.echo(line)
    if out is not None:
        typer.echo(str(out))


@app.command("transition")
def transition_cmd(
    out: Path = typer.Option(..., help="Run directory to write (must not exist, unless --overwrite)."),
    m: int = opt(transition_run, "m", help="Dimensions."),
    n_over_m: Optional[List[int]] = typer.Option(None, help="n/m: one curve per n = (n/m) x m (several values; default "
                                                           f"{' '.join(map(str, _default(transition_run, 'ratios')))})."),
    trials: int = opt(transition_run, "trials", help="Codes per k (k on a grid around the Donoho-Tanner k)."),
    methods: List[str] = typer.Option(["omp", "l1"], help="omp and/or l1 (exact L1 by LARS: ~0.1-1 s a sample "
                                                          "at m = 256)."),
    seed: int = opt(transition_run, "seed", help="Seed of the dictionaries and codes."),
    device: str = typer.Option(DEFAULT_DEVICE, help="OMP's device: " + DEVICE_HELP + " (L1 runs on the CPU)."),
    overwrite: bool = OVERWRITE,
    progress: bool = PROGRESS,
    ratios: Optional[List[int]] = renamed("--ratios"),
) -> None:
    """The recovery phase transition: P(exact support recovery) against k for random Gaussian dictionaries, beside
    the Donoho-Tanner curve and the coherence guarantees; writes OUT/result.json and OUT/transition.png."""
    from monosemantic.report.figures.transition import plot

    n_over_m = _either(_values(n_over_m), _values(ratios), "--n-over-m", "--ratios")
    n_over_m = list(n_over_m or _default(transition_run, "ratios"))
    res = transition_run(out, m, n_over_m, trials, methods, seed, overwrite, _shown(progress),
                         draw=styled(plot), device=device)
    for method in ("omp", "l1"):
        for c in res[method]:
            k50 = "not crossed" if c["k50"] is None else f"{c['k50']:.1f}"
            _say(f"{method} m={c['m']} n={c['n']}: 50% at k = {k50} (Donoho-Tanner k = {c['dt_k']:.1f}, "
                 f"guaranteed k < {c['k_guaranteed_mu']:.2f} by mu(F) = {c['mu']:.3f})")
    typer.echo(str(out))


@app.command("demo")
def demo(
    out: Path = typer.Option(Path("demo"), help="Directory for report.html and summary.json."),
    quick: bool = typer.Option(False, help="Fewer steps and seeds (a smoke test, not the paper's figures)."),
    progress: bool = PROGRESS,
) -> None:
    """Train the paper's figures, then write OUT/report.html, OUT/figures/*.png and *.svg and OUT/summary.json.
    Off a terminal it prints one line per finished section on stderr."""
    from monosemantic.report.demo import run_demo

    report, summary = run_demo(out, quick=quick, progress=_shown(progress),
                               say=None if sys.stderr.isatty() else _say)
    typer.echo(f"report:  {report}\nsummary: {summary}")


@app.command("report")
def report(
    run_dirs: List[Path] = typer.Argument(..., help="Toy runs (toy train --out) and dictionary runs (sae train --out)."),
    out: Path = typer.Option(Path("report"), help="Directory for report.html and figures/*.png and *.svg."),
) -> None:
    """Build a report page from run directories: one section per run, figures also as PNG and SVG files."""
    from monosemantic.report.pages import build

    typer.echo(f"report: {build(run_dirs, out)}")


# ---- privileged bases, computation in superposition, adversarial vulnerability, circuits ----


@toy_app.command("privileged")
def toy_privileged(
    out: Path = typer.Option(..., help="Run directory to write (must not exist)."),
    sparsity: Optional[list[float]] = typer.Option(None, help="Sparsities S (default: 0 ... 0.99)."),
    steps: int = opt(privileged_run, "steps", help="Training steps."),
    seeds: int = opt(privileged_run, "seeds", help="Random starts per sparsity (lowest eval loss kept)."),
    seed: int = opt(privileged_run, "seed", help="Base seed."),
    progress: bool = PROGRESS,
) -> None:
    """Superposition in a privileged basis: the ReLU-hidden model (n=10, m=5, I_i = 0.75^i) per sparsity,
    monosemantic and polysemantic neurons, and when each feature loses its dedicated neuron."""
    check_new_dir(out, False)
    res = privileged_run(sparsity=sparsity, steps=steps, seeds=seeds, seed=seed, out=out,
                         progress=_shown(progress))
    for s, mo, po in zip(res["sparsity"], res["monosemantic"], res["polysemantic"]):
        _say(f"S = {s:g}: {mo} monosemantic, {po} polysemantic live neurons")
    typer.echo(str(out))


@toy_app.command("computation")
def toy_computation(
    out: Path = typer.Option(..., help="Run directory to write (must not exist)."),
    n: int = opt(computation_run, "n", help="Features."),
    m: int = opt(computation_run, "m", help="Hidden neurons."),
    sparsity: Optional[list[float]] = typer.Option(None, help="Sparsities S (default: 0 ... 0.995)."),
    steps: int = opt(computation_run, "steps", help="Training steps."),
    seeds: int = opt(computation_run, "seeds", help="Random starts per sparsity."),
    seed: int = opt(computation_run, "seed", help="Base seed."),
    progress: bool = PROGRESS,
) -> None:
    """Computation in superposition: the abs model (I_i = 0.8^i) per sparsity, which features' |x| it computes,
    by how many neurons, and the asymmetric-superposition motifs."""
    check_new_dir(out, False)
    res = computation_run(n=n, m=m, sparsity=sparsity, steps=steps, seeds=seeds, seed=seed, out=out,
                          progress=_shown(progress))
    for s, r in zip(res["sparsity"], res["per_sparsity"]):
        _say(f"S = {s:g}: {r['features_computed']} features computed by {r['computing_neurons']} of {m} neurons, "
             f"{len(r['asymmetric_superposition'])} asymmetric motifs")
    typer.echo(str(out))


@toy_app.command("adversarial")
def toy_adversarial(
    out: Path = typer.Option(..., help="Run directory to write (must not exist)."),
    sparsity: Optional[list[float]] = typer.Option(None, help="Sparsities S (default: 0 ... 0.995)."),
    steps: int = opt(adversarial_run, "steps", help="Training steps."),
    seeds: int = opt(adversarial_run, "seeds", help="Random starts per sparsity."),
    norm: float = opt(adversarial_run, "norm", help="Attack norm as a fraction of the mean input norm."),
    seed: int = opt(adversarial_run, "seed", help="Base seed."),
    progress: bool = PROGRESS,
) -> None:
    """The analytic attack on the ReLU-output model (n=20, m=5) per sparsity: vulnerability against features per
    dimension and their correlation."""
    check_norm(norm)
    check_new_dir(out, False)
    res = adversarial_run(sparsity=sparsity, steps=steps, seeds=seeds, seed=seed, norm=norm, out=out,
                          progress=_shown(progress))
    for s, v, f in zip(res["sparsity"], res["vulnerability"], res["features_per_dim"]):
        _say(f"S = {s:g}: vulnerability {v:.4f}, features per dimension {f:.2f}")
    c = res["correlation_with_features_per_dim"]
    _say(f"correlation with features per dimension: {'n/a' if c is None else f'{c:.3f}'}")
    typer.echo(str(out))


@app.command("circuits")
def circuits_cmd(
    run_dir: Path = typer.Argument(..., help="A toy run directory of a relu-hidden or abs model."),
    out: Path = typer.Option(..., help="Directory to write (maps.safetensors, result.json)."),
    dictionary: Optional[Path] = typer.Option(None, help="A saved dictionary on the model's inputs (width n) or "
                                                         "hidden activations (width m); default: fitted here."),
    instance: int = typer.Option(-1, help="The instance (sparsity) whose learned map is built (default: the last)."),
    overwrite: bool = OVERWRITE,
    progress: bool = PROGRESS,
) -> None:
    """Feature-to-feature maps through the hidden layer, with the true features and with learned ones (road 2);
    prints the learned map's agreement with the true map."""
    check_new_dir(out, overwrite)
    res = circuits_run(run_dir, out, dictionary, instance, overwrite, _shown(progress))
    for k, v in res["learned"].items():
        typer.echo(f"{k:>20}  {v:.4f}" if isinstance(v, float) else f"{k:>20}  {v}")
    typer.echo(str(out))


# ---- a real transformer ----
real_app = _app("A real transformer (all-MiniLM-L6-v2 by default): activation sites and the sharded store.")
app.add_typer(real_app, name="real")


def _capture_config():
    from monosemantic.experiments.real import CaptureConfig

    return CaptureConfig


from monosemantic.real.model import SITE_HELP  # noqa: E402  (light: transformers is imported on first load)


@real_app.command("capture")
def real_capture(
    out: Path = typer.Option(..., help="Store directory; running again with the same flags finishes missing shards."),
    model: str = opt(_capture_config(), "model", help="minilm (the packaged all-MiniLM-L6-v2) or a local Hugging "
                                                       "Face model directory."),
    corpus: str = opt(_capture_config(), "corpus", help="fortunes | docstrings | all, or a text file or a directory "
                                                         "of .txt files."),
    site: str = opt(_capture_config(), "site", help=f"Where to read: {SITE_HELP}."),
    tokens: int = opt(_capture_config(), "tokens", help="Tokens (rows) to capture."),
    split: str = opt(_capture_config(), "split", help="Documents of the train | test | all split."),
    shard_tokens: int = opt(_capture_config(), "shard_tokens", help="Rows per shard (one task each)."),
    context: int = opt(_capture_config(), "context", help="Longest window fed to the model, in tokens."),
    backend: str = opt(_capture_config(), "backend", help="local | ray (one task per shard)."),
    ray_address: Optional[str] = RAY_ADDRESS,
    workers: Optional[int] = typer.Option(None, help="ray: CPUs of a new local Ray (default: all)."),
    progress: bool = PROGRESS,
) -> None:
    """Capture a model's activations at SITE over a corpus into a sharded store (`sae train --data STORE` reads it)."""
    from monosemantic.experiments.real import capture_run

    cfg = validate(_capture_config(), dict(model=model, corpus=corpus, site=site, tokens=tokens, split=split,
                                           shard_tokens=shard_tokens, context=context, backend=backend,
                                           ray_address=ray_address, workers=workers))
    res = capture_run(cfg, out, _shown(progress))
    rate = f" ({res['tokens_per_s']:.0f} tokens/s)" if res["tokens_per_s"] else ""
    _say(f"captured {res['captured_now']} of {res['shards']} shards in {res['wall_s']:.1f}s{rate}; the store holds "
         f"{res['rows']} rows of d={res['d']} at {res['site']}")
    typer.echo(str(out))


@real_app.command("sites")
def real_sites(model: str = opt(_capture_config(), "model", help="minilm or a local Hugging Face model directory.")
               ) -> None:
    """List the model's sites (what --site accepts)."""
    from monosemantic.real.model import load, sites

    for name in sites(load(model).model):
        typer.echo(name)
def _real_sae_config():
    from monosemantic.experiments.real import RealSaeConfig

    return RealSaeConfig


@real_app.command("sae")
def real_sae(
    out: Path = typer.Option(..., help="Run directory to write (must not exist, unless --overwrite); it holds the "
                                       "feature browser, features.html."),
    stores: Path = typer.Option(..., help="Directory for the train and test stores: captured there, or reused and "
                                          "finished when a run with the same settings left them."),
    site: str = opt(_real_sae_config(), "site", help=f"Where the dictionary reads: {SITE_HELP}."),
    neuron_site: str = opt(_real_sae_config(), "neuron_site", help="The MLP neurons scored against the latents."),
    corpus: str = opt(_real_sae_config(), "corpus", help="fortunes | docstrings | all, or a text file or directory."),
    train_tokens: int = opt(_real_sae_config(), "train_tokens", help="Train-split tokens the SAE learns from."),
    test_tokens: int = opt(_real_sae_config(), "test_tokens", help="Test-split tokens it is scored and read on."),
    expansion: int = opt(_real_sae_config(), "expansion", help="Latents = expansion x d."),
    k: int = opt(_real_sae_config(), "k", help="Active latents per token (TopK)."),
    epochs: int = opt(_real_sae_config(), "epochs", help="Passes over the train store."),
    splice_texts: int = opt(_real_sae_config(), "splice_texts", help="Test documents for embedding recovered."),
    seed: int = opt(_real_sae_config(), "seed", help="Seed."),
    saelens: str = opt(_real_sae_config(), "saelens", help="auto | on | off: train SAELens's TopK SAE on the same "
                                                           "store at equal L0 and print both (auto: when installed)."),
    overwrite: bool = OVERWRITE,
    progress: bool = PROGRESS,
) -> None:
    """A TopK SAE on MiniLM's activations: FVU, L0, dead latents, embedding recovered; every latent's density,
    activation histogram and top contexts; neurons against latents in monosemanticity; the cosine pitfall.

    Writes OUT/result.json (the figures), OUT/features.safetensors (per latent: fired, density, max, hist:
    [latents, 20], top_rows and top_values: [latents, 32], monosemanticity), neurons.safetensors, pairs.safetensors,
    rows.safetensors and row_text.json (the test rows), and OUT/features.html (the feature browser)."""
    from monosemantic.experiments.real import sae_lines, sae_run, small
    from monosemantic.report.browser import page

    cfg = validate(_real_sae_config(), dict(site=site, neuron_site=neuron_site, corpus=corpus,
                                            train_tokens=train_tokens, test_tokens=test_tokens, expansion=expansion,
                                            k=k, epochs=epochs, splice_texts=splice_texts, seed=seed,
                                            saelens=saelens))
    res = small(sae_run(cfg, stores, _shown(progress), out=out, overwrite=overwrite,
                        pages={"features.html": page}))
    for line in sae_lines(res):
        _say(line)
    typer.echo(str(out))


@real_app.command("browse")
def real_browse(
    run_dir: Path = typer.Argument(..., help="A run directory of `real sae`."),
    out: Optional[Path] = typer.Option(None, help="HTML file to write (default RUN_DIR/features.html)."),
) -> None:
    """Write the feature browser of a `real sae` run: one static HTML page, no server, works offline."""
    from monosemantic.experiments.real import read_real_run
    from monosemantic.report.browser import page
    from monosemantic.runs import check_output_path, disk_errors, write_text

    target = check_output_path(out or run_dir / "features.html")
    text = page(read_real_run(run_dir))
    with disk_errors(target):
        target.absolute().parent.mkdir(parents=True, exist_ok=True)
        write_text(target, text)
    typer.echo(str(target))


# --- road 2 on toy activations, and road 3: hybrids ---
road2_app = _app("Road 2: dictionaries learned from a model's activations, scored against its own features.")
app.add_typer(road2_app, name="road2")


POINTS_OUT = typer.Option(..., help="Directory: OUT/points (resumable points), OUT/result.json; running again with "
                                   "the same options finishes the missing points.")
RESUMABLE_OVERWRITE = typer.Option(False, help="Replace a run of other options in OUT (the same options resume).")


def _points_line(res: dict) -> str:
    return (f"{res['points']} points, {res['computed']} computed now in {res['elapsed_s']:.1f}s "
            f"({res['wall_s']:.1f}s of compute in all)")


def _pairs_of(values: list[str], what: str, sep: str) -> list[tuple[str, str]]:
    out = []
    for v in values:
        a, found, b = v.partition(sep)
        if not found or not a or not b:
            raise InputError(f"{what} must look like A{sep}B, got {v!r}")
        out.append((a.strip(), b.strip()))
    return out


def _numbers(text: str, what: str, cast=float) -> list:
    try:
        return [cast(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise InputError(f"{what}: not a list of numbers: {text!r}") from None


@road2_app.command("toy")
def road2_toy(
    out: Path = POINTS_OUT,
    shape: Optional[list[str]] = typer.Option(None, help="Toy model n x m, e.g. 80x20 (repeat; default 20x5 and 80x20)."),
    sparsity: Optional[list[float]] = typer.Option(None, help="Sparsities S (default 0.8 0.9 0.97)."),
    expansion: Optional[list[float]] = typer.Option(None, help="Dictionary latents as multiples of n (expansion factors), "
                                                                "in (0, 64] (default "
                                                                f"{' '.join(f'{x:g}' for x in default(Road2ToyConfig, 'ratios'))})."),
    archs: Optional[list[str]] = typer.Option(None, help="Dictionaries: topk relu mbdl (default all; mbdl trains on 4096 of the "
                                                                  "samples, in batches of 256)."),
    steps: int = opt(Road2ToyConfig, "steps", help="Toy model training steps."),
    samples: int = opt(Road2ToyConfig, "samples", help="Activations each dictionary trains on."),
    seed: int = opt(Road2ToyConfig, "seed", help="Seed."),
    device: str = DEVICE,
    backend: str = BACKEND,
    ray_address: Optional[str] = RAY_ADDRESS,
    workers: Optional[int] = WORKERS,
    overwrite: bool = RESUMABLE_OVERWRITE,
    progress: bool = PROGRESS,
    ratios: Optional[list[float]] = renamed("--ratios"),
) -> None:
    """Train toy models in superposition, learn dictionaries from h = W x, and score them against W's represented
    columns: MMCS, recovered@0.9, dead latents, splits, unfolding with the learned dictionary against the true W.
    Every model and every dictionary is a point in OUT/points: running again with the same options finishes the
    missing ones."""
    from monosemantic.experiments.road2 import toy_recovery_run

    data = dict(steps=steps, samples=samples, seed=seed, device=device)
    if shape:
        data["shapes"] = [(_numbers(a, "n", int)[0], _numbers(b, "m", int)[0]) for a, b in _pairs_of(shape, "shape", "x")]
    expansion = _either(_values(expansion), _values(ratios), "--expansion", "--ratios")
    for key, v in (("sparsity", sparsity), ("ratios", expansion), ("archs", archs)):
        if v:
            data[key] = v
    _sweep_warnings()
    cfg = validate_as(Road2ToyConfig, data, {"ratios": "--expansion"})
    res = toy_recovery_run(cfg, out, overwrite, _shown(progress), backend, workers, ray_address)
    for b in res["best"]:
        _say(f"n={b['n']} m={b['m']} S={b['sparsity']}: best {b['arch']} x{b['latents']} recovered "
             f"{b['recovered']}/{b['represented']} represented (of {b['n']}), MMCS {b['mmcs']:.3f}")
    _say(_points_line(res))
    typer.echo(str(out))


@app.command("road3")
def road3_cmd(
    out: Path = POINTS_OUT,
    strength: Optional[list[str]] = typer.Option(None, help="CHANGE=s1,s2,... (repeat); changes: l1 coherence "
                                                             "noise joint. Default: all four, three strengths each."),
    road1_l1: Optional[list[float]] = typer.Option(None, help="L1 coefficients of the road-1 end (default 0.1 to 1)."),
    n: int = opt(Road3Config, "n", help="Number of features."),
    m: int = opt(Road3Config, "m", help="Hidden neurons."),
    sparsity: float = opt(Road3Config, "sparsity", help="Sparsity S of every feature."),
    joint_latents: Optional[int] = opt(Road3Config, "joint_latents", help="Joint dictionary's latents (default n; >= m)."),
    joint_k: int = opt(Road3Config, "joint_k", help="Joint dictionary's active latents."),
    steps: int = opt(Road3Config, "steps", help="Training steps of every point."),
    batch: int = opt(Road3Config, "batch", help="Samples per step."),
    samples: int = opt(Road3Config, "samples", help="Activations road 2's dictionary trains on, per point."),
    seed: int = opt(Road3Config, "seed", help="Seed (the same initial W for every point)."),
    seeds: int = opt(Road3Config, "seeds", help="Seeds per point (seed, seed + 1, ...); a front point is their mean."),
    device: str = DEVICE,
    backend: str = BACKEND,
    ray_address: Optional[str] = RAY_ADDRESS,
    workers: Optional[int] = WORKERS,
    overwrite: bool = RESUMABLE_OVERWRITE,
    progress: bool = PROGRESS,
    road1: Optional[list[float]] = renamed("--road1"),
) -> None:
    """Hybrids: train with each change over its strength, then score loss against road 2's recovery (the number
    of the n features represented and matched by an atom at cosine > 0.9), beside road 1 and road 2 alone.
    Every (method, strength, seed) is a point in OUT/points: running again with the same options finishes the
    missing ones."""
    from monosemantic.experiments.hybrids import front_run

    data = dict(n=n, m=m, sparsity=sparsity, joint_latents=joint_latents, joint_k=joint_k, steps=steps,
                batch=batch, samples=samples, seed=seed, seeds=seeds, device=device)
    if strength:
        data["strengths"] = {k: _numbers(v, k) for k, v in _pairs_of(strength, "strength", "=")}
    road1_l1 = _either(_values(road1_l1), _values(road1), "--road1-l1", "--road1")
    if road1_l1:
        data["road1"] = road1_l1
    _sweep_warnings()
    cfg = validate_as(Road3Config, data, {"road1": "--road1-l1"})
    res = front_run(cfg, out, overwrite, _shown(progress), backend, workers, ray_address)
    v = res["verdict"]
    _say(f"road2 alone: loss {v['road2']['loss']:.4f}, recovered {v['road2']['recovered']:.3g}/{n}")
    _say(f"road1 (l1 {v['road1']['strength']}): loss {v['road1']['loss']:.4f}, recovered "
         f"{v['road1']['recovered']:.3g}/{n}"
         f"{'' if v['road1']['superposition_free'] else ' (no lambda removed superposition and kept a feature)'}")
    for k, b in v["best"].items():
        _say(f"{k} {b['strength']}: loss {b['loss']:.4f}, recovered {b['recovered']:.3g}/{n} ({b['gain']:+.3g} on road "
             f"2), {'above' if b['above_line'] else 'not above'} the line between the ends")
    _say(_points_line(res))
    typer.echo(str(out))



# ---- a language model trained here: roads 1 and 3 on a real network ----
lm_app = _app("Small byte-level language models trained here: dense, L1, MoE and hybrid MLPs, measured.")
app.add_typer(lm_app, name="lm")

from monosemantic.experiments.lm import MeasureConfig, RoadsConfig  # noqa: E402
from monosemantic.lm.train import LMTrainConfig  # noqa: E402

LM_OUT = typer.Option(..., help="Run directory; running again with the same settings resumes it.")


@lm_app.command("train")
def lm_train(
    out: Path = LM_OUT,
    variant: str = opt(LMTrainConfig, "variant", help="dense | l1 | moe-flop | moe-width | hybrid-joint."),
    strength: float = opt(LMTrainConfig, "strength", help="l1: penalty coefficient; hybrid-joint: dictionary term "
                                                          "weight (0 for the others)."),
    layers: int = opt(LMTrainConfig, "layers", help="Transformer blocks."),
    d_model: int = opt(LMTrainConfig, "d_model", help="Residual stream width."),
    heads: int = opt(LMTrainConfig, "heads", help="Attention heads."),
    width: int = opt(LMTrainConfig, "width", help="MLP neurons (moe-flop: per expert; moe-width: in all)."),
    experts: int = opt(LMTrainConfig, "experts", help="MoE experts."),
    top_k: int = opt(LMTrainConfig, "top_k", help="moe-width: experts per token (moe-flop routes top-1)."),
    positions: int = opt(LMTrainConfig, "positions", help="Positional table: the longest context."),
    corpus: str = opt(LMTrainConfig, "corpus", help="fortunes | docstrings | all, or a text file or directory."),
    context: int = opt(LMTrainConfig, "context", help="Bytes per training window (at most --positions)."),
    batch: int = opt(LMTrainConfig, "batch", help="Windows per step."),
    tokens: int = opt(LMTrainConfig, "tokens", help="Training budget in predicted bytes."),
    lr: float = opt(LMTrainConfig, "lr", help="Peak AdamW learning rate (warm-up, then cosine decay)."),
    weight_decay: float = opt(LMTrainConfig, "weight_decay", help="AdamW weight decay on the matrices."),
    warmup: float = opt(LMTrainConfig, "warmup", help="Share of the steps spent warming up."),
    eval_tokens: int = opt(LMTrainConfig, "eval_tokens", help="Test-split bytes of the held-out loss."),
    checkpoint_every: int = opt(LMTrainConfig, "checkpoint_every", help="Steps between checkpoints."),
    seed: int = opt(LMTrainConfig, "seed", help="Seed (initialisation and batches)."),
    device: str = DEVICE,
    progress: bool = PROGRESS,
) -> None:
    """Train one byte-level LM into OUT (config.json, model.safetensors, trainer.safetensors, result.json);
    checkpointed every --checkpoint-every steps, resumed when run again with the same settings."""
    from monosemantic.experiments.lm import train_run

    cfg = validate(LMTrainConfig, dict(
        variant=variant, strength=strength, layers=layers, d_model=d_model, heads=heads, width=width,
        experts=experts, top_k=top_k, positions=positions, corpus=corpus, context=context, batch=batch,
        tokens=tokens, lr=lr, weight_decay=weight_decay, warmup=warmup, eval_tokens=eval_tokens,
        checkpoint_every=checkpoint_every, seed=seed, device=device))
    res = train_run(cfg, out, _shown(progress))
    _say(f"{cfg.variant}: test loss {res['test_loss']:.4f} nats/byte after {res['tokens']} tokens "
         f"({res['tokens_per_s']:.0f} tokens/s, {res['wall_s']:.1f}s)")
    typer.echo(str(out))


@lm_app.command("roads")
def lm_roads(
    out: Path = typer.Option(..., help="Directory: OUT/points/NAME per run (resumable), OUT/result.json."),
    l1: Optional[list[str]] = typer.Option(None, help="L1 strengths, several values (at least 4; default "
                                                       f"{' '.join(f'{x:g}' for x in default(RoadsConfig, 'l1'))}; "
                                                       "a comma-separated list works too).",
                                       metavar="<list[float]>"),
    hybrid: float = opt(RoadsConfig, "hybrid", help="hybrid-joint's strength."),
    seeds: int = opt(RoadsConfig, "seeds", help="Seeds of dense and the strongest L1 (others: 1)."),
    layers: int = opt(LMTrainConfig, "layers", help="Transformer blocks."),
    d_model: int = opt(LMTrainConfig, "d_model", help="Residual stream width."),
    width: int = opt(LMTrainConfig, "width", help="MLP neurons of the dense model."),
    experts: int = opt(LMTrainConfig, "experts", help="MoE experts."),
    corpus: str = opt(LMTrainConfig, "corpus", help="fortunes | docstrings | all, or a text file or directory."),
    context: int = opt(LMTrainConfig, "context", help="Bytes per training window."),
    tokens: int = opt(LMTrainConfig, "tokens", help="Training budget of every run, in predicted bytes."),
    measure_tokens: int = opt(MeasureConfig, "measure_tokens", help="Test-split rows of the measures."),
    mono_bytes: int = opt(MeasureConfig, "mono_bytes", help="Bytes in a row's token for monosemanticity."),
    sae_latents: int = opt(MeasureConfig, "sae_latents", help="The SAE's latents."),
    sae_k: int = opt(MeasureConfig, "sae_k", help="The SAE's fixed L0 (TopK k)."),
    sae_samples: int = opt(MeasureConfig, "sae_samples", help="The SAE's training samples."),
    backend: str = opt(RoadsConfig, "backend", help="local | ray (one task per run)."),
    workers: int = opt(RoadsConfig, "workers", help="Runs at once (local processes, or CPUs of a new local Ray)."),
    ray_address: Optional[str] = RAY_ADDRESS,
    overwrite: bool = OVERWRITE,
    progress: bool = PROGRESS,
) -> None:
    """Every variant (dense, L1 at 4+ strengths, moe-flop, moe-width, hybrid-joint) at the same data and token
    budget, each measured: held-out loss, neuron monosemanticity, dead neurons, loss per activation, and a TopK SAE
    at fixed L0 on the last MLP (FVU, CE loss recovered). Prints the table."""
    from monosemantic.experiments.lm import lines, roads

    data = dict(hybrid=hybrid, seeds=seeds, backend=backend, workers=workers, ray_address=ray_address,
                train=dict(layers=layers, d_model=d_model, width=width, experts=experts, corpus=corpus,
                           context=context, positions=context,
                           tokens=tokens),
                measure=dict(measure_tokens=measure_tokens, mono_bytes=mono_bytes, sae_latents=sae_latents,
                             sae_k=sae_k, sae_samples=sae_samples))
    if l1:
        data["l1"] = [x for text in l1 for x in _numbers(text, "--l1")]
    res = roads(validate_as(RoadsConfig, data, {"l1": "--l1"}), out, _shown(progress),
                overwrite=overwrite)
    for line in lines(res):
        typer.echo(line)
    _say(f"done: {len(res['points'])} runs, {res['wall_s']:.0f}s of compute")

def _multi_value(command, argv: list[str]) -> set[str]:
    """The options of the command argv names that take several values (declared as lists): `--sparsity 0 0.8 0.9`
    there. Click wants the flag repeated, so `_expand_multi` rewrites the first form into the second; an option
    that takes one value (`toy train --l1`) is left alone, so a second value stays an error."""
    for tok in argv:
        sub = getattr(command, "commands", {}).get(tok)
        if sub is None:
            break
        command = sub
    return {name for p in command.params if getattr(p, "multiple", False) for name in p.opts if name.startswith("-")}


def _expand_multi(argv: list[str], multi: set[str]) -> list[str]:
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
        if tok in multi:
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
    argv = list(sys.argv[1:] if argv is None else argv)
    command = typer.main.get_command(app)
    argv = _expand_multi(argv, _multi_value(command, argv))
    try:
        code = command.main(args=argv, prog_name="monosemantic", standalone_mode=False)
    except InputError as e:
        _say(f"error: {e}")
        sys.exit(2)
    except MemoryError:  # an estimate that fell short: still one line, and every earlier file is whole
        _say("error: out of memory; lower the sizes (samples, batch, latents, n)")
        sys.exit(2)
    except OSError as e:  # a file that cannot be read or written, outside the paths checked up front
        _say(f"error: {e.strerror or e}: {e.filename}" if e.filename else f"error: {e.strerror or e}")
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
