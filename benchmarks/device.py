"""The name of the device a benchmark ran on, as its printed header states it."""

import platform

import torch


def device_name(device: str) -> str:
    """The GPU's name for ``"cuda"``; else the CPU's and the torch threads it uses."""
    if device == "cuda":
        return torch.cuda.get_device_name()
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
