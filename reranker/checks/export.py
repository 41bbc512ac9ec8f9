"""Checks of the export section that its schema cannot make: variants whose packages are installed, listed once, and
an int8 quantization config the CPU can run. Each problem is one PipelineError line naming the key and the fix.

Example: ``check_export(params.export)`` raises ``PipelineError("export.quantization 'avx512_vnni' needs a CPU with
avx512_vnni, which this one lacks; ...")`` on a CPU without it."""

from __future__ import annotations

import platform
from pathlib import Path

from reranker.core.errors import PipelineError
from reranker.export.variants import VARIANTS, missing_packages

# The CPU feature each of the library's dynamic quantization configs emits instructions for
QUANTIZATION_NEEDS = {"avx512_vnni": "avx512_vnni", "avx512": "avx512f", "avx2": "avx2", "arm64": None}
ARM = ("aarch64", "arm64")


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags (Linux); None where they cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    line = next((line for line in text.splitlines() if line.startswith(("flags", "Features"))), None)
    return set(line.split(":", 1)[1].split()) if line else None


def check_quantization(config: str, flags: set[str] | None, machine: str) -> None:
    if config == "arm64":
        if machine.lower() not in ARM:
            raise PipelineError(f"export.quantization 'arm64' is for ARM CPUs, and this one is {machine}; use avx2 "
                                "(or avx512_vnni where the CPU has it)")
        return
    if machine.lower() in ARM:
        raise PipelineError(f"export.quantization '{config}' is for x86 CPUs, and this one is {machine}; use arm64")
    needed = QUANTIZATION_NEEDS[config]
    if flags is not None and needed not in flags:
        has = [name for name, flag in QUANTIZATION_NEEDS.items() if flag and flag in flags]
        raise PipelineError(f"export.quantization '{config}' needs a CPU with {needed}, which this one lacks; use "
                            f"{' or '.join(has) if has else 'another config'}")


def check_export(export, flags: set[str] | None = None, machine: str | None = None) -> None:
    """`export` is params.export; `flags` and `machine` default to this CPU's."""
    if len(set(export.variants)) != len(export.variants):
        raise PipelineError(f"export.variants {export.variants} names a variant twice; list each once")
    for name, module in missing_packages(export.variants).items():
        raise PipelineError(f"export.variants: {name} needs the package {module}, which is not installed; "
                            f"pip install {module}, or remove {name} from export.variants")
    if any(VARIANTS[name].backend == "onnx" and VARIANTS[name].precision == "int8" for name in export.variants):
        check_quantization(export.quantization, cpu_flags() if flags is None else flags,
                           machine or platform.machine())
