"""Run directories: `config.json`, `result.json` and `*.safetensors`, written atomically.

The one atomic writer of the package: a file or a run directory is first written under a temporary name beside
its destination and then renamed, so a killed run leaves either nothing or a whole result. What it writes gets the
user's umask (a temporary file starts private), so a report or a run can be shared like any other file. Tensors are safetensors only: nothing a
user hands us is ever unpickled.
"""
from __future__ import annotations

import errno
import glob
import json
import math
import os
import platform
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from monosemantic._version import __version__
from monosemantic.errors import InputError


def environment() -> dict[str, Any]:
    """Package versions and machine, recorded in every config.json."""
    import scipy
    import sklearn

    return {
        "monosemantic": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, torch threads {torch.get_num_threads()}",
    }


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None  # JSON has no NaN
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dumps(obj: Any) -> str:
    return json.dumps(_jsonable(obj), indent=2) + "\n"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_file(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Write one file atomically: `write(tmp)` fills a temporary file beside `path`, which then replaces `path`.

    The temporary name keeps the suffix (numpy's save appends ".npy" to a name without it); the file gets the
    permissions a plain open() would give (0666 less the umask)."""
    path = check_output_path(path)
    if path.is_dir():
        raise InputError(f"output path is a directory: {path}")
    with disk_errors(path):
        path.absolute().parent.mkdir(parents=True, exist_ok=True)  # missing parent directories are made
        tidy_leftovers(path)
        fd, tmp = tempfile.mkstemp(dir=path.resolve().parent, prefix=_tmp_prefix(path), suffix=f".tmp{path.suffix}")
        os.close(fd)
        tmp = Path(tmp)
        try:
            write(tmp)
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return path


class disk_errors:
    """A context turning a failed write (full or read-only disk, no permission, a file too large) into one
    InputError naming the path; what was there before is untouched, since every write goes to a temporary name."""

    def __init__(self, path: str | Path):
        self.path = path

    def __enter__(self):
        return self

    def __exit__(self, kind, e, tb):
        if kind is not None and issubclass(kind, OSError) and not isinstance(e, InputError):
            why = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                   errno.EROFS: "read-only file system", errno.EFBIG: "file too large"}.get(e.errno, e.strerror or e)
            raise InputError(f"cannot write {self.path}: {why}") from None
        return False


def check_output_path(path: str | Path) -> Path:
    """An output path that can be created: a name, not a link, inside an existing directory."""
    path = Path(path)
    if "\x00" in str(path):
        raise InputError(f"output path holds a NUL character: {str(path)!r}")
    if str(path) == "" or path.name in ("", ".", ".."):
        raise InputError(f"output path must name a file or directory, got {str(path)!r}")
    if path.is_symlink():
        raise InputError(f"output path is a symbolic link: {path} (give the path it points to)")
    parent = path.absolute().parent
    if not parent.is_dir():
        below = next((q for q in [parent, *parent.parents] if q.exists()), None)
        if below is not None and not below.is_dir():
            raise InputError(f"cannot create {path}: {below} is a file, not a directory")
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Write text atomically."""
    return atomic_file(path, lambda p: p.write_text(text))


def write_json(path: str | Path, obj: Any) -> Path:
    """Write JSON atomically (NaN and inf as null)."""
    return write_text(path, dumps(obj))


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor]) -> Path:
    """Write a safetensors file atomically (float tensors as given, made contiguous)."""
    return atomic_file(path, lambda p: save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()},
                                                 str(p)))


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"missing file: {path}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"corrupt JSON in {path}: {e}") from None


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"missing file: {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise InputError(f"corrupt safetensors file {path}: {e}") from None


MARKERS = ("config.json", "cfg.json", "sweep.json")  # a directory holding one of these (ours) may be replaced


def written_by_us(path: Path) -> bool:
    """True when `path` is a directory this tool wrote: its config.json (or an SAE's cfg.json, a sweep's
    sweep.json) is a JSON object recording monosemantic's version. Only such a directory is ever replaced."""
    for name in MARKERS:
        try:
            obj = json.loads((path / name).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(obj, dict) and (isinstance(obj.get("monosemantic"), (dict, str))
                                      or isinstance(obj.get("environment"), dict)
                                      and "monosemantic" in obj["environment"]
                                      or name == "sweep.json" and "spec" in obj):
            return True
    return False


def check_replaceable(out: Path) -> None:
    """Refuse to replace anything but an empty directory or a directory this tool wrote."""
    if out.is_dir() and any(out.iterdir()) and not written_by_us(out):
        raise InputError(f"{out} exists and was not written by monosemantic (no config.json of ours); "
                         f"refusing to replace it: choose another output directory")
    if out.exists() and not out.is_dir():
        raise InputError(f"output path exists and is not a directory: {out}")


def memory_limit() -> int:
    """The memory one command may plan to use: what the kernel reports available now (MemAvailable), else the
    machine's physical memory; never more than its container's limit."""
    try:
        limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        limit = 16 << 30
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                limit = min(limit, int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    for cgroup in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(cgroup).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            limit = min(limit, int(text))
    return limit


def check_memory(need: float, what: str, hint: str, limit: int | None = None) -> None:
    """Refuse, before allocating, work whose estimated peak memory `need` (bytes) exceeds the limit."""
    have = memory_limit() if limit is None else limit
    if need > have:
        raise InputError(f"{what} needs about {_size(need)}, more than the {_size(have)} available; {hint}")


def _size(b: float) -> str:
    return f"{b / 2**30:.1f} GiB" if b < 2**50 else f"{b / 2**40:.3g} TiB"


def check_new_dir(out: str | Path, overwrite: bool) -> Path:
    """Refuse an existing output directory (unless overwrite, and then only one this tool wrote) or an
    unwritable parent, before any work."""
    out = check_output_path(out)
    tidy_leftovers(out)
    if out.exists() and not overwrite:
        raise InputError(f"output directory exists: {out} (pass --overwrite to replace it)")
    check_replaceable(out)
    parent = out.absolute().parent
    if not parent.exists():
        with disk_errors(parent):
            parent.mkdir(parents=True)
    if not os.access(parent, os.W_OK):
        read_only = os.statvfs(parent).f_flag & os.ST_RDONLY
        raise InputError(f"cannot write to {parent}: {'read-only file system' if read_only else 'permission denied'}")
    return out


def check_writable_dir(out: str | Path) -> Path:
    """A directory that exists (made if missing) and takes a file: refused now rather than after the work."""
    out = check_output_path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"output path exists and is not a directory: {out}")
    with disk_errors(out):
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".probe.")
        os.close(fd)
        os.unlink(probe)
    return out


def _old_name(out: Path, pid: int) -> Path:
    return out.with_name(f".{out.name}.old-{pid}")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process is not writing OUT now: whatever it left is done with
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tmp_prefix(path: Path) -> str:
    return f".{path.name}.pid{os.getpid()}."


def tidy_leftovers(out: Path) -> None:
    """What a killed writer of OUT left beside it (ours by name, its process gone): a temporary file or directory
    `.NAME.pidPID.*tmp*` is removed; a directory swap cut between its two renames is finished: `.NAME.old-PID`, the
    previous whole directory, is moved back when OUT is missing and removed when OUT is whole again."""
    out = Path(out)
    parent = out.absolute().parent
    for old in [*parent.glob(f".{glob.escape(out.name)}.old-*"), *parent.glob(f".{glob.escape(out.name)}.pid*.*tmp*")]:
        pid = re.search(r"\.(?:old-|pid)(\d+)", old.name[len(out.name) + 1:])
        if pid is None or _alive(int(pid.group(1))):
            continue
        try:
            if old.is_symlink() or old.is_file():
                old.unlink()
            elif ".old-" in old.name and not out.exists() and not out.is_symlink():
                os.replace(old, out)
            else:
                shutil.rmtree(old)
        except OSError:  # a read-only disk: left for a later run that can write
            pass


def write_run(
    out: str | Path,
    config: dict[str, Any],
    result: dict[str, Any],
    tensors: dict[str, dict[str, torch.Tensor]],
    overwrite: bool = False,
    extra_json: dict[str, Any] | None = None,
    extra_files: dict[str, Callable[[Path], None]] | None = None,
) -> Path:
    """Write a whole run directory atomically.

    `tensors` maps file stems to tensor dicts: {"model": {"W": ..., "b": ...}} -> model.safetensors;
    `extra_json` maps further file names to objects written as JSON ({"features.json": rows});
    `extra_files` maps file names to functions writing them ({"plot.png": figure_file(fig)}).
    The directory appears under its final name only once every file is written.
    """
    out = check_new_dir(out, overwrite)
    files = {"config.json": lambda p: write_json(p, {**config, "environment": environment()}),
             "result.json": lambda p: write_json(p, result)}
    files.update({f"{stem}.safetensors": (lambda p, t=tdict: save_tensors(p, t)) for stem, tdict in tensors.items()})
    files.update(json_files(extra_json))
    files.update(extra_files or {})
    return write_dir(out, files)


def figure_file(fig, dpi: int = 110) -> Callable[[Path], None]:
    """A `write_dir` writer for a matplotlib figure as PNG, with the same figure as SVG beside it (NAME.svg);
    the figure is closed once written."""
    def write(p: Path) -> None:
        import matplotlib.pyplot as plt

        fig.savefig(p, format="png", dpi=dpi, bbox_inches="tight")
        fig.savefig(p.with_suffix(".svg"), format="svg", bbox_inches="tight")
        plt.close(fig)
    return write


def json_files(extra: dict[str, Any] | None) -> dict[str, Callable[[Path], None]]:
    """{name: object} -> {name: function writing that object as JSON}, for `write_dir`."""
    return {name: (lambda p, obj=obj: write_json(p, obj)) for name, obj in (extra or {}).items()}


def write_dir(out: Path, files: dict[str, Callable[[Path], None]]) -> Path:
    """Write a directory atomically: `files` maps file names to functions writing that file at a given path.

    The files are written into a temporary directory beside `out`, which then replaces `out` (an existing one
    is moved aside first and removed after the swap, so a crash never leaves neither).
    """
    out = check_output_path(out)
    tidy_leftovers(out)
    check_replaceable(out)
    with disk_errors(out):
        out.absolute().parent.mkdir(parents=True, exist_ok=True)  # missing parent directories are made
        tmp = Path(tempfile.mkdtemp(dir=out.absolute().parent, prefix=_tmp_prefix(out), suffix=".tmp"))
        try:
            os.chmod(tmp, 0o777 & ~_umask())
            for name, write in files.items():
                write(tmp / name)
            if out.exists():
                old = _old_name(out, os.getpid())
                os.replace(out, old)
                os.replace(tmp, out)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return out


def read_run(run_dir: str | Path, stem: str = "model") -> tuple[dict, dict, dict[str, torch.Tensor]]:
    """(config, result, tensors of `stem`.safetensors) of a run directory, with clear errors."""
    run_dir = Path(run_dir)
    tidy_leftovers(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"not a run directory: {run_dir}")
    return read_json(run_dir / "config.json"), read_json(run_dir / "result.json"), load_tensors(
        run_dir / f"{stem}.safetensors"
    )
