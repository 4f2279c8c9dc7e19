"""Sweeps: a grid of toy-model configurations -> one run directory per point, resumable, local or on Ray.

A spec (TOML or JSON) names a base point config and a grid over any of its fields:

    name = "phase-n2m1"
    seed = 0
    [base]
    n = 2
    m = 1
    steps = 10000
    candidates = true
    [grid]
    importance_ratio = { logspace = [0.1, 10, 20] }
    density = { logspace = [1, 0.01, 20] }

Points are the product of the axes (last axis fastest). Points that differ only in per-instance
fields (density, importance) train together as instances of one batched model ("a group"; at most
`max_group_points` points each, split in grid order), so grouping is a function of the spec alone.

A point's numbers do not depend on its group either: every group of a spec shares one data stream
(FeatureSampler draws one uniform per (sample, feature) for all instances, seeded by the spec's seed),
each start's initial W is drawn from a seed derived from the point's own parameters, and the
gradient step treats instances independently. So a resumed sweep, which retrains whole groups that
miss any point, and a sweep on another backend reproduce an uninterrupted run's numbers.

Layout of OUT: `sweep.json` (the spec, the plan, the status), `points/p00000/...` (run directories:
config.json, result.json, model.safetensors with W: [1, m, n] and b: [1, n] of the best start),
`results.csv` (one row per point: its grid parameters, then loss and measures).
"""
from __future__ import annotations

import csv
import fcntl
import hashlib
import io
import itertools
import json
import math
import os
import shutil
import functools
import socket
import time
import tomllib
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, model_validator

from monosemantic.errors import InputError
import monosemantic.measures as measures
from monosemantic.config import AdamWConfig, Seed, Strict, toy_bytes, validate
from monosemantic.devices import resolve
from monosemantic.progress import Bar
from monosemantic.runs import (check_memory, check_output_path, check_replaceable, disk_errors, dumps, environment,
                              memory_limit, read_json, read_run, save_tensors, tidy_leftovers, write_json, write_run,
                              write_text)

D_JUMP = 0.15  # a D_i step larger than this between neighbours is a transition (1/2 -> 1/3 is 0.17)
PER_INSTANCE = ("density", "sparsity", "importance_decay", "importance_ratio")  # may differ within a group
MAX_POINTS = 100_000
CANDIDATE_NOISE = 0.01  # breaks the exact symmetry of a candidate start (a zero column has no ReLU gradient)


class SweepWarning(UserWarning):
    """A point directory that was not trusted (half-written or corrupt) and is trained again."""


class PointConfig(AdamWConfig):
    """One point of a sweep: a toy model, its feature distribution and how to train it."""

    n: PositiveInt = 2
    m: PositiveInt = 1
    density: float | None = Field(default=None, gt=0, le=1)  # feature probability 1 - S
    sparsity: float | None = Field(default=None, ge=0, lt=1)  # S; give density or sparsity (default S = 0)
    importance_ratio: PositiveFloat | None = None  # I_i = ratio**(i/(n-1)): the last feature's relative to the first
    seeds: NonNegativeInt = 3  # random (Xavier) starts per point
    candidates: bool = False  # also start from each candidate layout (m = 1: one feature alone, or an antipodal pair)

    @model_validator(mode="after")
    def _check(self) -> PointConfig:
        if self.density is not None and self.sparsity is not None:
            raise ValueError("give density or sparsity, not both")
        if self.importance_ratio is not None and self.importance_decay != 1.0:
            raise ValueError("give importance_ratio or importance_decay, not both")
        if self.candidates and self.m != 1:
            raise ValueError("candidate layouts exist for m = 1 only")
        if self.candidates and self.n > 8:
            raise ValueError("candidate layouts are for n <= 8 (there are n(n+1)/2 of them)")
        if self.starts < 1:
            raise ValueError("no starts: set seeds >= 1 or candidates = true")
        if self.model == "abs" and self.candidates:
            raise ValueError("candidate layouts are for the tied models")
        return self

    @property
    def p(self) -> float:
        return self.density if self.density is not None else 1.0 - (self.sparsity or 0.0)

    @property
    def importance(self) -> list[float]:
        if self.importance_ratio is not None:
            return [self.importance_ratio ** (i / max(1, self.n - 1)) for i in range(self.n)]
        return [self.importance_decay**i for i in range(self.n)]

    @property
    def instances(self) -> int:
        return self.starts

    @property
    def starts(self) -> int:
        return self.seeds + (self.n * (self.n + 1) // 2 if self.candidates else 0)


class Axis(Strict):
    logspace: tuple[float, float, PositiveInt] | None = None  # [first, last, num], log-spaced (first, last > 0)
    linspace: tuple[float, float, PositiveInt] | None = None

    def values(self) -> list[float]:
        if (self.logspace is None) == (self.linspace is None):
            raise ValueError("an axis is a list of values, {logspace = [a, b, num]} or {linspace = [a, b, num]}")
        if self.logspace is not None:
            a, b, num = self.logspace
            if not (a > 0 and b > 0):
                raise ValueError("logspace ends must be positive")
            return np.geomspace(a, b, num).tolist()
        a, b, num = self.linspace
        return np.linspace(a, b, num).tolist()


class SweepSpec(Strict):
    name: str = "sweep"
    seed: Seed = 0
    max_group_points: PositiveInt = 256  # points trained as one batched model at most
    base: dict[str, Any] = {}
    grid: dict[str, Any] = Field(min_length=1)  # field -> list of values, or {logspace|linspace = [a, b, num]}


def load_spec(path: str | Path) -> SweepSpec:
    """Read a TOML or JSON sweep spec and validate it (every point included) before any work."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"missing sweep spec: {path}")
    try:
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"cannot parse sweep spec {path}: {e}") from None
    if not isinstance(data, dict):
        raise InputError(f"sweep spec {path} must be a table/object")
    return parse_spec(data)


def parse_spec(data: dict) -> SweepSpec:
    spec = validate(SweepSpec, data)
    plan(spec)  # every point validated, memory estimated
    return spec


def axes(spec: SweepSpec) -> dict[str, list]:
    out = {}
    for name, axis in spec.grid.items():
        if name not in PointConfig.model_fields:
            raise InputError(f"grid.{name}: unknown field (choose from {', '.join(PointConfig.model_fields)})")
        if name in spec.base:
            raise InputError(f"grid.{name}: also set in base; set it in one place")
        if isinstance(axis, dict):
            try:
                values = validate(Axis, axis).values()
            except (InputError, ValueError) as e:
                raise InputError(f"grid.{name}: {e}") from None
        elif isinstance(axis, list):
            values = axis
        else:
            raise InputError(f"grid.{name}: expected a list of values or {{logspace|linspace = [a, b, num]}}, "
                             f"got {axis!r}")
        if not values:
            raise InputError(f"grid.{name}: empty axis")
        out[name] = values
    return out


def point_key(cfg: PointConfig) -> str:
    """A stable hash of a point's parameters: names its seeds, and checks a point directory is this point's."""
    return hashlib.sha256(json.dumps(cfg.model_dump(), sort_keys=True).encode()).hexdigest()[:16]


def plan(spec: SweepSpec) -> tuple[list[dict], list[list[int]]]:
    """(points, groups): points = [{"index", "params" (grid values), "config", "key"}], groups = lists of indices."""
    ax = axes(spec)
    total = math.prod(len(v) for v in ax.values())
    if total > MAX_POINTS:
        raise InputError(f"grid: {total} points is too many (at most {MAX_POINTS})")
    points = []
    for i, combo in enumerate(itertools.product(*ax.values())):
        params = dict(zip(ax, combo))
        try:
            cfg = validate(PointConfig, {**spec.base, **params})
        except InputError as e:
            try:
                validate(PointConfig, spec.base)
            except InputError as base_error:  # the base alone is wrong: name its field
                raise InputError(f"base.{base_error}") from None
            where = ", ".join(f"{k}={v}" for k, v in params.items())
            raise InputError(f"grid point {i} ({where}): {e}") from None
        points.append({"index": i, "params": params, "config": cfg, "key": point_key(cfg)})
    groups: dict[str, list[int]] = {}
    for pt in points:
        shape_key = json.dumps({k: v for k, v in pt["config"].model_dump().items() if k not in PER_INSTANCE},
                               sort_keys=True)
        groups.setdefault(shape_key, []).append(pt["index"])
    chunked = []
    for idx in groups.values():  # split evenly in grid order: 400 points at most 256 -> 200 + 200
        k = -(-len(idx) // spec.max_group_points)
        bounds = [round(j * len(idx) / k) for j in range(k + 1)]
        chunked += [idx[a:b] for a, b in zip(bounds, bounds[1:])]
    for g in chunked:
        _check_memory(points[g[0]]["config"], len(g))
    return points, chunked


def group_bytes(cfg: PointConfig, points: int) -> int:
    """Peak memory of training one group (`config.toy_bytes`)."""
    return toy_bytes(cfg.n, cfg.m, points * cfg.starts, cfg.batch, cfg.eval_batch, cfg.model == "abs")


def _check_memory(cfg: PointConfig, points: int) -> None:
    # half the machine's memory: room for two workers and everything else
    check_memory(group_bytes(cfg, points), f"grid: a group of {points} points x {cfg.starts} starts (n={cfg.n}, "
                 f"m={cfg.m}, batch={cfg.batch}, eval_batch={cfg.eval_batch})",
                 "lower max_group_points, batch or eval_batch", limit=memory_limit() // 2)


# ---- training one group (runs in a worker process or a Ray task: plain data in, plain data out) ----

def candidate_layouts(n: int) -> torch.Tensor:
    """The ideal m = 1 layouts: each feature alone (W = e_i), then each antipodal pair (W = e_i - e_j): [k, 1, n]."""
    eye = torch.eye(n)
    pairs = [eye[i] - eye[j] for i in range(n) for j in range(i + 1, n)]
    return torch.stack(list(eye) + pairs)[:, None, :]


def initial_weights(cfg: PointConfig, seed: int) -> torch.Tensor:
    """Every start of one point: [starts, m, n]; candidates first, then Xavier-normal starts.
    Seeded by the spec seed and the point's own parameters only (never by its place in a group)."""
    g = torch.Generator().manual_seed(int(point_key(cfg), 16) % (2**62) + seed)
    parts = []
    if cfg.candidates:
        cand = candidate_layouts(cfg.n)
        parts.append(cand + CANDIDATE_NOISE * torch.randn(cand.shape, generator=g))
    if cfg.seeds:
        std = math.sqrt(2.0 / (cfg.m + cfg.n))
        parts.append(std * torch.randn(cfg.seeds, cfg.m, cfg.n, generator=g))
    return torch.cat(parts)


def train_group(configs: list[dict], seed: int, threads: int | None = None, device: str = "cpu") -> dict:
    """Train the points of one group as one batched model on `device`; return each point's kept weights (on the
    CPU) and figures."""
    from monosemantic.toy.train import kept_tensors, train_toy

    if threads:
        torch.set_num_threads(threads)
    cfgs = [PointConfig.model_validate(c) for c in configs]
    c0 = cfgs[0]
    p = torch.tensor([[c.p] * c.n for c in cfgs], dtype=torch.float32)
    weight = torch.tensor([c.importance for c in cfgs], dtype=torch.float32)
    init = torch.cat([initial_weights(c, seed) for c in cfgs])
    run = train_toy(c0.model, c0.n, c0.m, p, weight, c0.steps, c0.batch, c0.starts, seed, c0.lr, c0.weight_decay,
                    c0.schedule, c0.warmup, c0.eval_batch, init=init, device=device)
    kept = kept_tensors(run)  # W: [points, m, n]
    rows = measures.summarize(kept["W"], c0.model in ("relu-hidden", "abs"))
    wall = run.log.wall_s
    out = []
    for i, c in enumerate(cfgs):
        out.append({
            "tensors": {k: v[i : i + 1].numpy() for k, v in kept.items()},
            "result": {
                "loss": run.loss[i], "loss_all_starts": run.all_loss[i], "kept_start": run.kept[i] % c.starts,
                "measures": rows[i], "wall_s": wall / len(cfgs), "group_wall_s": wall, "group_points": len(cfgs),
                "model_steps_per_s": len(cfgs) * c.starts * run.log.steps_done / wall if wall > 0 else None,
                "steps_done": run.log.steps_done, "diverged_at_step": run.log.diverged_at,
                "final_train_loss": run.log.loss[-1][run.kept[i]] if run.log.loss else None,
            },
        })
    return {"points": out, "wall_s": wall}


# ---- sharp transitions along sweep axes ----

def records_of(points: list[dict], results: list[dict]) -> list[dict]:
    """The per-point records `transitions` reads, from in-memory results (sweeps.collect reads them from disk)."""
    return [record(pt["params"], res["result"]) for pt, res in zip(points, results)]


def transitions(records: list[dict], axes: list[str], d_jump: float = D_JUMP) -> list[dict]:
    """Where, between neighbouring points along each axis (other parameters fixed), a feature switches on
    or off (its norm crosses 0.5), its dimensionality D_i jumps by more than `d_jump` while represented,
    or the geometry label changes. records: [{"params", "norms", "D", "geometry"}]."""
    found = []
    for axis in axes:
        lines: dict[tuple, list[dict]] = {}
        for rec in records:
            if axis not in rec["params"]:
                continue
            rest = tuple(sorted((k, v) for k, v in rec["params"].items() if k != axis))
            lines.setdefault(rest, []).append(rec)
        for rest, line in lines.items():
            line = sorted(line, key=lambda q: q["params"][axis])
            for a, b in zip(line, line[1:]):
                where = {"axis": axis, "from": a["params"][axis], "to": b["params"][axis], "at": dict(rest)}
                for i, (na, nb) in enumerate(zip(a["norms"], b["norms"])):
                    ra, rb = na > measures.REPRESENTED, nb > measures.REPRESENTED
                    if ra != rb:
                        found.append({**where, "feature": i, "kind": "switches on" if rb else "switches off",
                                      "norm": [na, nb]})
                    elif ra and abs(a["D"][i] - b["D"][i]) > d_jump:
                        found.append({**where, "feature": i, "kind": "dimensionality jumps",
                                      "D": [a["D"][i], b["D"][i]]})
                if a["geometry"] != b["geometry"]:
                    found.append({**where, "feature": None, "kind": "geometry changes",
                                  "geometry": [a["geometry"], b["geometry"]]})
    return found


# ---- backends ----

def _die_with_parent(parent: int) -> None:
    """A worker's initializer: the kernel kills this process when its parent dies (Linux's PR_SET_PDEATHSIG),
    so a SIGKILLed sweep leaves no orphan training on; where prctl is missing, workers exit when they see it."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _call(fn: Callable, args: tuple):
    """fn(*args) on one torch and one BLAS thread (a worker process or a Ray task gets one CPU). Reductions split
    over another number of threads differ in the last bit, so every backend runs a job on the same count."""
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    with threadpool_limits(1):
        return fn(*args)


class Workers:
    """Where jobs run: in this process (local, 1 worker), on `workers` spawned processes, or one Ray task each. The
    pool or the Ray session starts at the first `map` that needs it and serves every later one until `close`."""

    def __init__(self, backend: str = "local", workers: int = 1, ray_address: str | None = None):
        self.backend, self.workers, self.ray_address = backend, workers, ray_address
        self._pool = self._session = self._task = None

    def map(self, fn: Callable, jobs: list[tuple[Any, tuple]]):
        """Yield (job id, fn(*args)) for jobs [(id, args)] as they finish. fn and its arguments must pickle (a
        module-level function, plain data): every backend then computes the same numbers."""
        if self.backend == "ray":
            yield from self._ray(fn, jobs)
        elif self.workers <= 1 or len(jobs) <= 1 and self._pool is None:
            # one torch thread here too: a job's numbers do not depend on the backend it ran on
            threads = torch.get_num_threads()
            try:
                for jid, args in jobs:
                    yield jid, _call(fn, args)
            finally:
                torch.set_num_threads(threads)
        else:
            yield from self._processes(fn, jobs)

    def _processes(self, fn: Callable, jobs: list[tuple[Any, tuple]]):
        from concurrent.futures import as_completed

        if self._pool is None:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            # spawn, not fork: torch's thread pools do not survive a fork; one thread per worker process
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context("spawn"),
                                             initializer=_die_with_parent, initargs=(os.getpid(),))
        futures = {self._pool.submit(_call, fn, args): jid for jid, args in jobs}
        try:
            for fut in as_completed(futures):
                yield futures[fut], fut.result()
        finally:  # on Ctrl-C or an error, do not run the queued jobs
            for fut in futures:
                fut.cancel()

    def _ray(self, fn: Callable, jobs: list[tuple[Any, tuple]]):
        if self._session is None:
            self._session = ray_session(self.workers, self.ray_address)
            ray = self._session.__enter__()
            self._task = ray.remote(num_cpus=1)(_call)
        import ray

        refs = {self._task.remote(fn, args): jid for jid, args in jobs}
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                try:
                    yield refs[done[0]], ray.get(done[0])
                except ray.exceptions.RayTaskError as e:  # a worker's InputError comes back wrapped
                    cause = e.as_instanceof_cause()
                    if isinstance(cause, InputError):
                        raise InputError(str(cause).splitlines()[-1]) from None
                    raise
        finally:
            for ref in pending:
                ray.cancel(ref)

    def close(self) -> None:
        if self._pool is not None:  # do not wait for the queued jobs
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        if self._session is not None:
            self._session.__exit__(None, None, None)
            self._session = None


def map_calls(fn: Callable, jobs: list[tuple[Any, tuple]], backend: str = "local", workers: int = 1,
              ray_address: str | None = None):
    """`Workers.map` on a pool or Ray session of its own."""
    w = Workers(backend, workers, ray_address)
    try:
        yield from w.map(fn, jobs)
    finally:
        w.close()


@functools.lru_cache(maxsize=None)  # once per address: commands check early, then again when the session starts
def check_ray_address(address: str, timeout: float = 5.0) -> None:
    """Fail fast, naming the address, when nothing listens there (ray.init would retry for a minute)."""
    if address in ("auto", "local"):
        return
    if address.startswith("ray://"):  # Ray Client needs grpcio and a matching server: not offered
        raise InputError(f"Ray Client addresses (ray://) are not supported: run the command on a node of the "
                         f"cluster with --ray-address HOST:PORT (the head's GCS address) or auto")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"Ray address {address!r} is not HOST:PORT (or auto)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise InputError(f"cannot reach the Ray cluster at {address}: {e.strerror or e}") from None


def _import_ray():
    try:
        import ray
    except ImportError:
        raise InputError("the ray backend needs Ray: pip install 'monosemantic[ray]'") from None
    return ray


@contextmanager
def ray_session(workers: int | None, address: str | None):
    """Ray, joined at `address` or started locally with `workers` CPUs (and shut down after, if started here)."""
    ray = _import_ray()
    if address:  # train_spec's only check; run_sweep checks earlier, before it writes OUT
        check_ray_address(address)
    started = not ray.is_initialized()
    if started:
        try:
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                         object_store_memory=200 * 2**20)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise InputError(f"cannot start or join Ray at {address or 'a new local instance'}: "
                             f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def _mapper(jobs, seed: int, backend: str, workers: int, ray_address: str | None, device: str = "cpu"):
    """Yield (group id, result) as the groups finish, on the backend (in this process for 1 local worker)."""
    return map_calls(train_group, [(gid, (configs, seed, None, device)) for gid, configs in jobs], backend, workers,
                     ray_address)


def train_spec(spec: SweepSpec, workers: int = 1, backend: str = "local",
               ray_address: str | None = None, device: str = "cpu") -> tuple[list[dict], list[dict]]:
    """Train every point of a spec in memory, no directories: (points, each point's result, in point order).
    Each result has "tensors" (W: [1, m, n], b: [1, n] as numpy) and "result" (loss, measures, timings)."""
    points, groups = plan(spec)
    device = str(resolve(device))
    jobs = [(gid, [points[i]["config"].model_dump() for i in g]) for gid, g in enumerate(groups)]
    results: list[dict] = [{}] * len(points)
    for gid, res in _mapper(jobs, spec.seed, backend, workers, ray_address, device):
        for i, pr in zip(groups[gid], res["points"]):
            results[i] = pr
    return points, results


# ---- the sweep ----

def point_dir(out: Path, index: int) -> Path:
    return out / "points" / f"p{index:05d}"


def _point_done(path: Path, key: str) -> bool | None:
    """True: a whole run of this point; None: nothing there; False: half-written, corrupt or another point's."""
    if not path.exists():
        return None
    try:
        cfg, res, t = read_run(path)
        point_record({"index": 0, "params": cfg["params"]}, res)  # what collect reads must be there
        return (cfg.get("point_key") == key and _finite(res.get("loss")) and _finite(res.get("wall_s"))
                and isinstance(res.get("kept_start"), int) and isinstance(res["measures"]["geometry"], dict)
                and "W" in t and bool(torch.isfinite(t["W"]).all()))
    except (InputError, AttributeError, TypeError, KeyError, IndexError):
        return False


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _diverged(result: dict) -> bool:
    return result.get("diverged_at_step") is not None or not _finite(result.get("loss"))


class _Lock:
    """An exclusive lock on OUT/.lock for the whole run: a second sweep into the same OUT is refused at once."""

    def __init__(self, out: Path):
        self.path = out / ".lock"
        self.f = open(self.path, "a+")
        try:
            fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.f.seek(0)
            holder = self.f.read().strip() or "another process"
            self.f.close()
            raise InputError(f"another sweep is running into {out} (pid {holder}); wait for it to finish "
                             f"or use another --out") from None
        self.f.seek(0)
        self.f.truncate()
        self.f.write(str(os.getpid()))
        self.f.flush()

    def release(self) -> None:
        self.f.close()


def run_sweep(
    spec: SweepSpec,
    out: str | Path,
    backend: Literal["local", "ray"] = "local",
    workers: int | None = None,
    ray_address: str | None = None,
    progress: bool = False,
    on_group: Callable[[int, int], None] | None = None,
    device: str = "cpu",
) -> dict:
    """Run (or finish) a sweep in OUT; returns the content of sweep.json.

    Finished points are skipped; a point directory that is half-written, corrupt or another spec's is
    trained again with a SweepWarning. `on_group(done_groups, total_groups)` is called after each group
    is written (the CLI's progress, the tests' interruption). Groups train on `device` (cpu, cuda, cuda:N,
    auto); it is not part of a point's identity, so a sweep begun on one device can be finished on another.
    """
    device = str(resolve(device))
    check_backend(backend, workers, ray_address)  # before anything is written
    out = check_output_path(out)
    points, groups = plan(spec)
    if out.exists() and not (out / "sweep.json").exists() and (
            not out.is_dir() or any(p.name != ".lock" for p in out.iterdir())):
        raise InputError(f"{out} exists and is not a sweep directory")
    created = not out.exists()
    with disk_errors(out):
        out.mkdir(parents=True, exist_ok=True)
    lock = _Lock(out)
    try:
        return _run_locked(spec, out, points, groups, backend, workers, ray_address, progress, on_group, created,
                           device)
    finally:
        lock.release()


def _run_locked(spec: SweepSpec, out: Path, points: list[dict], groups: list[list[int]], backend: str,
                workers: int | None, ray_address: str | None, progress: bool, on_group, created: bool,
                device: str) -> dict:
    spec_json = spec.model_dump(mode="json")
    if (out / "sweep.json").exists():
        old = read_json(out / "sweep.json")
        if not isinstance(old, dict) or old.get("spec") != spec_json:
            raise InputError(f"{out} holds a different sweep (its sweep.json has another spec); use a new --out")
    with disk_errors(out):
        (out / "points").mkdir(exist_ok=True)
    for tmp in (out / "points").glob(".p*"):  # a killed write_run's leftovers: never a result
        shutil.rmtree(tmp, ignore_errors=True)
    missing: set[int] = set()
    for pt in points:
        state = _point_done(point_dir(out, pt["index"]), pt["key"])
        if state is False:
            warnings.warn(f"point {pt['index']} ({point_dir(out, pt['index'])}) is half-written, corrupt or "
                          f"another sweep's: training it again", SweepWarning, stacklevel=3)
            shutil.rmtree(point_dir(out, pt["index"]), ignore_errors=True)  # ours: a point directory of our sweep
        if not state:
            missing.add(pt["index"])
    todo = [(gid, g) for gid, g in enumerate(groups) if missing & set(g)]
    meta = {"spec": spec_json, "points": len(points), "groups": groups, "axes": axes(spec),
            "backend": backend, "device": device, "status": "running"}
    write_json(out / "sweep.json", meta)

    workers = workers or os.cpu_count() or 1
    jobs = [(gid, [points[i]["config"].model_dump() for i in g]) for gid, g in todo]
    mapper = _mapper(jobs, spec.seed, backend, workers, ray_address, device)
    bar = Bar(len(points), "sweep points", len(points) - len(missing)) if progress else None
    start, compute = time.perf_counter(), 0.0  # elapsed includes start-up and writing; compute does not
    written, diverged = 0, []
    try:
        for done, (gid, res) in enumerate(mapper, 1):
            compute += res["wall_s"]
            for i, pr in zip(groups[gid], res["points"]):
                if i not in missing:
                    continue
                pt = points[i]
                if _diverged(pr["result"]):  # never written: a rerun trains it again
                    diverged.append((i, pr["result"].get("diverged_at_step")))
                    continue
                config = {"kind": "sweep-point", "sweep": spec.name, "index": i, "params": pt["params"],
                          "point_key": pt["key"], "group": gid, "sweep_seed": spec.seed, "device": device,
                          **pt["config"].model_dump()}
                tensors = {k: torch.tensor(v) for k, v in pr["tensors"].items()}  # Ray hands back read-only arrays
                write_run(point_dir(out, i), config, pr["result"], {"model": tensors}, overwrite=True)
                written += 1
                if bar:
                    bar.advance()
            if on_group:
                on_group(done, len(todo))
    except BaseException:
        if created and written == 0:  # nothing trained (Ray unreachable, Ctrl-C at once): leave no sweep behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        if bar:
            bar.close()
    if diverged:
        write_json(out / "sweep.json", {**meta, "status": "diverged", "diverged_points": [i for i, _ in diverged]})
        where = ", ".join(f"point {i} ({', '.join(f'{k}={v}' for k, v in points[i]['params'].items())}) at step "
                          f"{step}" for i, step in diverged[:3])
        raise InputError(f"{len(diverged)} of {len(points)} points diverged (non-finite loss): {where}"
                         f"{' ...' if len(diverged) > 3 else ''}; lower lr. The other points are saved; a rerun "
                         f"trains only the missing ones")
    records = collect(out, points)
    write_csv(out / "results.csv", [r["row"] for r in records])

    meta.update(status="complete", trained_groups=len(todo), trained_points=len(missing),
                elapsed_s=time.perf_counter() - start, compute_s_this_run=compute,
                wall_s=sum(r["wall_s"] for r in records),  # training compute of every point, over all runs
                transitions=transitions(records, list(meta["axes"])))
    write_json(out / "sweep.json", meta)
    return meta


def collect(out: str | Path, points: list[dict]) -> list[dict]:
    """Every point's record from its run directory: {"params", "norms", "D", "geometry", "row"}, where
    row is its tidy results.csv line (grid parameters, loss, measures; per feature only for n <= 10)."""
    return [point_record(pt, read_json(point_dir(Path(out), pt["index"]) / "result.json")) for pt in points]


def point_record(pt: dict, res: dict) -> dict:
    """One point's record from its result.json (KeyError or TypeError when a piece is missing)."""
    ms = res["measures"]
    row = {"index": pt["index"], **pt["params"], "loss": res["loss"], "kept_start": res["kept_start"],
           "represented_features": ms["represented_features"], "dims_per_feature": ms["dims_per_feature"],
           "geometry": ms["geometry"]["label"]}
    if len(ms["feature_norm"]) <= 10:  # wide sweeps keep per-feature numbers in the run directories
        row.update({f"norm_{i}": v for i, v in enumerate(ms["feature_norm"])})
        row.update({f"D_{i}": v for i, v in enumerate(ms["feature_dimensionality"])})
    return {**record(pt["params"], res), "wall_s": res["wall_s"], "row": row}


def record(params: dict, result: dict) -> dict:
    """What `phase.transitions` reads of one point: {"params", "norms", "D", "geometry"}, from its result."""
    ms = result["measures"]
    return {"params": params, "norms": ms["feature_norm"], "D": ms["feature_dimensionality"],
            "geometry": ms["geometry"]["label"]}


def write_csv(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["index"], lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_text(path, buf.getvalue())


# ---- resumable points of any experiment (road 2 on toys, road 3's front) ----

def key_of(identity: dict) -> str:
    """A stable hash of what determines a point's numbers."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Points:
    """Resumable points of an experiment in OUT, computed in jobs on the sweep backends.

    OUT/config.json records the experiment's settings; each point is a run directory OUT/points/NAME (config.json
    with the point's key, result.json, point.safetensors), written as soon as its job ends. Running the same
    settings into OUT again reads the points already there and computes only the missing ones (a half-written,
    corrupt or stale point again, with a SweepWarning); other settings are refused unless `overwrite`, which replaces
    OUT (only a directory this tool wrote). OUT/.lock keeps a second run out. out=None: nothing is written.

        with Points(out, "road2-toy", settings, overwrite, backend, workers, ray_address) as pts:
            got = pts.run(jobs, fn, progress, "dictionaries")

    Jobs run on `Workers(backend, workers, ray_address)`, one pool or Ray session for every `run` (workers None:
    one per core).
    """

    def __init__(self, out: str | Path | None, kind: str, settings: dict, overwrite: bool = False,
                 backend: str = "local", workers: int | None = None, ray_address: str | None = None):
        check_backend(backend, workers, ray_address)
        self.out, self.kind, self.settings, self.overwrite = out, kind, settings, overwrite
        self.workers = Workers(backend, workers or os.cpu_count() or 1, ray_address)
        self.written, self.computed, self.created, self._lock = 0, 0, False, None

    def __enter__(self) -> Points:
        if self.out is None:
            return self
        out = self.out = check_output_path(self.out)
        tidy_leftovers(out)
        check_replaceable(out)
        self.created = not out.exists()
        with disk_errors(out):
            out.mkdir(parents=True, exist_ok=True)
        self._lock = _Lock(out)
        try:
            self._start()
        except BaseException:
            self._release(failed=True)
            raise
        return self

    def _start(self) -> None:
        out, settings = self.out, json.loads(dumps(self.settings))
        old = read_json(out / "config.json") if (out / "config.json").exists() else None
        others = [p for p in out.iterdir() if p.name != ".lock"]
        if others and not (isinstance(old, dict) and old.get("settings") == settings):
            if not self.overwrite:
                raise InputError(f"{out} holds another run (other settings, or not a {self.kind} run); pass "
                                 f"--overwrite to replace it, or choose another --out")
            for p in others:  # ours (check_replaceable): replaced on request
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        write_json(out / "config.json", {"kind": self.kind, "settings": settings, "status": "running",
                                         "environment": environment()})
        with disk_errors(out):
            (out / "points").mkdir(exist_ok=True)
        for tmp in (out / "points").glob(".*"):  # a killed write's leftovers: never a result
            shutil.rmtree(tmp, ignore_errors=True)

    def __exit__(self, kind, value, tb) -> None:
        self._release(failed=kind is not None)

    def _release(self, failed: bool) -> None:
        self.workers.close()
        if self._lock is None:
            return
        self._lock.release()
        self._lock = None
        if failed and self.created and self.written == 0 and self._bare():  # nothing computed: leave nothing
            shutil.rmtree(self.out, ignore_errors=True)

    def _bare(self) -> bool:
        """OUT holds only this class's bookkeeping. A job may keep work of its own beside the points (the LM
        roads' training checkpoints, OUT/train), which an interrupted first run must not lose."""
        try:
            left = {p.name for p in self.out.iterdir()} - {"config.json", ".lock", "points"}
            return not left and not any((self.out / "points").iterdir())
        except OSError:
            return False

    def _done(self, name: str, key: str) -> dict | None:
        """The point's whole run {"result", "tensors"}, or None (missing, or warned about and removed)."""
        path = self.out / "points" / name
        if not path.exists():
            return None
        try:
            cfg, res, t = read_run(path, "point")
            if cfg.get("point_key") == key and isinstance(res, dict):
                return {"result": res, "tensors": t}
        except (InputError, AttributeError, TypeError, KeyError):
            pass
        warnings.warn(f"point {name} ({path}) is half-written, corrupt or another run's: computing it again",
                      SweepWarning, stacklevel=4)
        shutil.rmtree(path, ignore_errors=True)  # ours: a point directory of this run
        return None

    def run(self, jobs: list[dict], fn: Callable, progress: bool = False, label: str = "points",
            on_job: Callable[[int, int], None] | None = None) -> dict[str, dict]:
        """{point name: {"result", "tensors"}} for every point of `jobs` = [{"args": tuple, "points": [{"name",
        "key"}]}], where fn(*args) returns one {"result": dict, "tensors": {name: array}} per point of its job.
        A job runs when any of its points is missing. on_job(done, total) is called after each job's points are
        written. A new point's result is what its result.json holds (a JSON round trip), so a resumed run and an
        uninterrupted one return the same numbers."""
        got: dict[str, dict] = {}
        if self.out is not None:
            for job in jobs:
                for pt in job["points"]:
                    done = self._done(pt["name"], pt["key"])
                    if done is not None:
                        got[pt["name"]] = done
        todo = [(i, job["args"]) for i, job in enumerate(jobs) if any(pt["name"] not in got for pt in job["points"])]
        total = sum(len(job["points"]) for job in jobs)
        bar = Bar(total, label, len(got)) if progress else None
        try:
            for done, (i, res) in enumerate(self.workers.map(fn, todo), 1):
                for pt, pr in zip(jobs[i]["points"], res):
                    if pt["name"] in got:
                        continue
                    tensors = {k: torch.tensor(np.asarray(v)) for k, v in pr["tensors"].items()}
                    if self.out is not None:
                        write_run(self.out / "points" / pt["name"], {"kind": f"{self.kind}-point",
                                  "point": pt["name"], "point_key": pt["key"]}, pr["result"], {"point": tensors},
                                  overwrite=True)
                        self.written += 1
                    got[pt["name"]] = {"result": json.loads(dumps(pr["result"])), "tensors": tensors}
                    self.computed += 1
                    if bar:
                        bar.advance()
                if on_job:
                    on_job(done, len(todo))
        finally:
            if bar:
                bar.close()
        return got

    def finish(self, result: dict, tensors: dict[str, dict[str, torch.Tensor]]) -> None:
        """Write OUT/result.json and OUT/STEM.safetensors for each {stem: tensors} (each file atomically) and mark
        the run complete."""
        if self.out is None:
            return
        for stem, t in tensors.items():
            save_tensors(self.out / f"{stem}.safetensors", t)
        write_json(self.out / "result.json", result)
        write_json(self.out / "config.json", {**read_json(self.out / "config.json"), "status": "complete"})


MAX_WORKERS = 4096  # processes (or Ray CPUs) of one machine; far more overflow the pool's C-int queue


def check_backend(backend: str, workers: int | None, ray_address: str | None) -> None:
    """The sweep options' checks, before anything is written."""
    if backend not in ("local", "ray"):
        raise InputError(f"unknown backend {backend!r}; choose local or ray")
    if ray_address and backend != "ray":
        raise InputError("--ray-address needs --backend ray")
    if workers is not None and workers < 1:
        raise InputError(f"workers must be at least 1, got {workers}")
    if workers is not None and workers > MAX_WORKERS:
        raise InputError(f"workers must be at most {MAX_WORKERS}, got {workers}")
    if backend == "ray":
        _import_ray()
        if ray_address:
            check_ray_address(ray_address)


def format_warning(message, category, *args, **kwargs) -> str:  # for the CLI: one plain line
    return f"warning: {message}\n"
