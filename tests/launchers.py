"""Launcher helpers shared by the multi-process tests: the torchrun variables and a CPU torchrun run."""
import os
import subprocess
import sys
from typing import Any

#: The variables torchrun / accelerate set; removed for single-process tests and torchrun children.
LAUNCH_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_torchrun(script: Any, *args: Any, nproc: int = 2, timeout: float = 300, cwd: Any = None
                 ) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node nproc script args...`` from a clean launcher environment,
    one OpenMP thread per rank and the repository on ``PYTHONPATH``; output captured as text."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           str(script), *map(str, args)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=None if cwd is None else str(cwd))
