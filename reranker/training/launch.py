"""Where training runs: the precision the device supports, and DDP through torchrun."""

from __future__ import annotations

import os
import sys

from reranker.core.errors import PipelineError


def check_precision(args: dict) -> None:
    """bf16/fp16 on a device without them fails deep inside torch; say so up front instead. `args` is
    train.args."""
    import torch

    cuda = torch.cuda.is_available()
    if args.get("bf16") and not args.get("use_cpu") and not (cuda and torch.cuda.is_bf16_supported()):
        raise PipelineError("train.args.bf16 is true but no GPU here supports bf16; set train.args.bf16=false "
                            "(or fp16=true on an older GPU)")
    if args.get("fp16") and not cuda:
        raise PipelineError("train.args.fp16 is true but there is no CUDA GPU here; set train.args.fp16=false")


def relaunch_under_torchrun(num_processes: int, module: str) -> None:
    """One param, train.num_processes, turns a stage into a DDP run: re-execute `module` under torchrun."""
    if num_processes > 1 and "LOCAL_RANK" not in os.environ:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={num_processes}", "-m", module, *sys.argv[1:]]
        print(f"train: launching {num_processes} processes: {' '.join(command[2:])}", flush=True)
        os.execv(sys.executable, command)
