"""Shared fixtures: every test is seeded; tiny models are built in fixtures."""
import os
import random

import numpy as np
import pytest
import torch

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
