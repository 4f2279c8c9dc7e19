"""Helpers shared by the benchmarks: the machine line."""
import os
import platform

import torch


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}; {os.cpu_count()} cpus; torch {torch.__version__}, {torch.get_num_threads()} threads; "
            f"python {platform.python_version()}")
