"""Shared fixtures: every test is seeded; tiny models are built in fixtures."""
import os
import random
import socket

import numpy as np
import pytest
import torch

from launchers import LAUNCH_VARS

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# One intra-op thread for the whole suite: the tests use small batches and tiny models, where extra
# threads only add synchronisation, and on a busy 2-core machine two threads make Sionna's BP decoder
# and tiny convolutions 10-100x slower (spin-waiting). Benchmarks set their own thread counts.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield



@pytest.fixture
def plain_env(monkeypatch):
    """A plain ``python`` process: no launcher variables."""
    for v in LAUNCH_VARS:
        monkeypatch.delenv(v, raising=False)
    return monkeypatch


@pytest.fixture
def group_of_one_env(plain_env):
    """The launcher variables of a one-process group on a free local port (gloo)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for name, value in (("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", str(port)), ("WORLD_SIZE", "1"),
                        ("RANK", "0")):
        plain_env.setenv(name, value)
    return plain_env
