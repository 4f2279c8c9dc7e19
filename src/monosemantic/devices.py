"""Where tensors live and in what precision: one home for `device=` and `dtype=` of every trainer and solver.

    resolve("auto")        -> cuda:0 when CUDA is available, else cpu
    resolve("cuda:1")      -> that GPU, or an InputError naming the devices this machine has
    check_dtype("bfloat16", device) -> torch.bfloat16 where the GPU supports it; refused on the CPU

Models keep float32 parameters and optimiser state whatever the compute precision: bfloat16 is for the
matmuls of the forward and backward passes (the data and activations), where a GPU doubles its throughput.
"""
from __future__ import annotations

import torch

from monosemantic.errors import InputError

DEVICES = ("auto", "cpu", "cuda", "cuda:N")  # what a `device` option accepts
DEFAULT = "auto"  # the configs' and the command line's device; library functions default to "cpu" (reproducible)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def available() -> list[str]:
    """The devices this machine has: cpu, then cuda:0, cuda:1, ..."""
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return ["cpu"] + [f"cuda:{i}" for i in range(n)]


def resolve(device: str | torch.device | None = "auto") -> torch.device:
    """A device name ("cpu", "cuda", "cuda:N", "auto"; None = "auto") as a torch.device that exists here."""
    if isinstance(device, torch.device):
        device = str(device)
    name = "auto" if device is None else str(device).strip().lower()
    have = available()
    if name == "auto":
        return torch.device(have[1] if len(have) > 1 else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise InputError(f"unknown device {device!r}; choose from auto, {', '.join(have)}")
    if dev.type == "cpu":
        return torch.device("cpu")
    index = 0 if dev.index is None else dev.index
    if f"cuda:{index}" not in have:
        why = "CUDA is not available on this machine" if len(have) == 1 else f"no GPU {index}"
        raise InputError(f"device {device!r}: {why}; available: auto, {', '.join(have)}")
    return torch.device("cuda", index)


def check_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """The compute dtype: float32 anywhere, bfloat16 on a GPU that supports it (refused on the CPU)."""
    name = str(dtype).removeprefix("torch.")
    if name not in DTYPES:
        raise InputError(f"unknown dtype {dtype!r}; choose from {', '.join(DTYPES)}")
    if name == "bfloat16":
        if device.type != "cuda":
            raise InputError(f"bfloat16 needs a GPU; device {device} runs float32 only (available: "
                             f"{', '.join(available())})")
        if not torch.cuda.is_bf16_supported():
            raise InputError(f"bfloat16 is not supported by {torch.cuda.get_device_name(device)}; use float32")
    return DTYPES[name]


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a clock read after it times the compute (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
