"""semantic.distributed: inert in one process; a real (gloo) process group of size 1 behaves the same."""

import pytest
import torch
from torch import nn

from semantic import distributed as D
from launchers import run_torchrun





def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))


def _grads(model, x, y):
    model.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    return [p.grad.clone() for p in model.parameters()]


def test_single_process_is_a_no_op(plain_env, tmp_path):
    info = D.init_distributed(device="cpu")
    assert (info.rank, info.world_size, info.local_rank, info.distributed, info.is_main) == (0, 1, 0, False, True)
    m = _model()
    assert D.wrap_ddp(m, info) is m and D.unwrap(m) is m
    assert D.rank_slice(10, info) == slice(0, 10) and D.shard_range(7, info) == range(7)
    assert D.distributed_sampler(list(range(5)), info) is None
    calls = []
    assert D.run_on_main(info, lambda a: calls.append(a) or "saved", 3) == "saved" and calls == [3]
    with D.main_process_first(info):
        calls.append("first")
    assert calls == [3, "first"]
    assert float(D.all_reduce_mean(2.5, info)) == 2.5
    x = torch.randn(3, 2, requires_grad=True)
    assert D.all_gather_with_grad(x, info) is x
    assert D.is_main_process(info) and D.is_main_process()
    D.cleanup(info)


def test_rank_shares_partition_the_batch():
    for world in (1, 2, 3, 5):
        parts = [D.shard_range(11, D.DistInfo(rank=r, world_size=world)) for r in range(world)]
        flat = [i for p in parts for i in p]
        assert flat == list(range(11))
        assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1


def test_bad_launcher_environment(plain_env):
    plain_env.setenv("WORLD_SIZE", "2")
    plain_env.setenv("RANK", "0")
    with pytest.raises(ValueError, match="MASTER_ADDR is not set"):
        D.init_distributed(device="cpu")
    plain_env.setenv("RANK", "5")
    with pytest.raises(ValueError, match="inconsistent launcher environment"):
        D.init_distributed(device="cpu")
    plain_env.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE must be an integer"):
        D.init_distributed(device="cpu")
    with pytest.raises(TypeError, match="nn.Module"):
        D.wrap_ddp("model", D.DistInfo())




def test_gloo_group_of_one_matches_plain_training(group_of_one_env):
    """A real process group (gloo, world size 1): DDP gradients equal the plain module's, the
    collectives return the local values and the sampler covers the data set once."""
    info = D.init_distributed(device="cpu", force=True)
    try:
        assert info.distributed and torch.distributed.is_initialized()
        plain, wrapped_src = _model(), _model()
        ddp = D.wrap_ddp(wrapped_src, info)
        assert type(ddp).__name__ == "DistributedDataParallel" and D.unwrap(ddp) is wrapped_src
        g = torch.Generator().manual_seed(1)
        x, y = torch.randn(6, 4, generator=g), torch.randn(6, 2, generator=g)
        for a, b in zip(_grads(plain, x, y), _grads(ddp, x, y)):
            torch.testing.assert_close(a, b)
        assert float(D.all_reduce_mean(torch.tensor(3.0), info)) == 3.0
        sampler = D.distributed_sampler(list(range(9)), info, seed=0)
        assert sorted(sampler) == list(range(9))
        x.requires_grad_(True)
        gathered = D.all_gather_with_grad(x, info)
        gathered.sum().backward()
        torch.testing.assert_close(x.grad, torch.ones_like(x))
        assert D.run_on_main(info, lambda: "ok") == "ok" and D.is_main_process()
    finally:
        D.cleanup(info)
    assert not torch.distributed.is_initialized()


_DDP_SCRIPT = r'''
import json, os, sys
import torch
from torch import nn
from semantic import distributed as D

info = D.init_distributed(device="cpu")
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
ddp = D.wrap_ddp(model, info)
g = torch.Generator().manual_seed(1)
x, y = torch.randn(6, 4, generator=g), torch.randn(6, 2, generator=g)   # the same global batch on each rank
share = D.rank_slice(x, info)
nn.functional.mse_loss(ddp(x[share]), y[share]).backward()
grads = [p.grad.flatten().tolist() for p in D.unwrap(ddp).parameters()]
mean_loss = float(D.all_reduce_mean(float(info.rank), info))
D.run_on_main(info, lambda: open(os.path.join(sys.argv[1], "main.txt"), "w").write("rank0"))
with open(os.path.join(sys.argv[1], f"rank{info.rank}.json"), "w") as fh:
    json.dump({"rank": info.rank, "world": info.world_size, "grads": grads, "mean": mean_loss,
               "share": [share.start, share.stop]}, fh)
D.cleanup(info)
'''


@pytest.mark.slow
def test_two_process_ddp_under_torchrun_equals_full_batch_gradient(tmp_path):
    """``torchrun --nproc_per_node 2`` (gloo): each rank takes half of the global batch, DDP averages
    the gradients, and the result equals the single-process gradient of the whole batch."""
    import json

    script = tmp_path / "ddp_step.py"
    script.write_text(_DDP_SCRIPT)
    proc = run_torchrun(script, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = [json.load(open(tmp_path / f"rank{r}.json")) for r in (0, 1)]
    assert [r["world"] for r in res] == [2, 2] and [r["share"] for r in res] == [[0, 3], [3, 6]]
    assert res[0]["mean"] == res[1]["mean"] == 0.5
    assert (tmp_path / "main.txt").read_text() == "rank0"
    model = _model()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(6, 4, generator=g), torch.randn(6, 2, generator=g)
    ref = [t.flatten() for t in _grads(model, x, y)]
    for r in res:  # both ranks hold the averaged gradient = the full-batch gradient (equal shares)
        for a, b in zip(r["grads"], ref):
            torch.testing.assert_close(torch.tensor(a), b, rtol=1e-5, atol=1e-6)
