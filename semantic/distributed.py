"""Helpers for data-parallel training under ``torchrun`` (or ``accelerate launch``), inert in one process.

``torchrun`` starts one process per GPU and sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``; ``accelerate launch`` (multi-GPU, no DeepSpeed/FSDP) sets the
same variables, so these helpers serve both. Without them (a plain ``python ...`` run) every
helper is a no-op: world size 1, rank 0, no process group, the module is not wrapped, every index
belongs to this process and every rank-0-only action runs. Single-process behaviour is unchanged.

Typical training loop::

    from semantic.distributed import (init_distributed, wrap_ddp, rank_slice, is_main_process,
                                      all_reduce_mean, barrier, cleanup)

    info = init_distributed()               # process group when WORLD_SIZE > 1; picks cuda:LOCAL_RANK
    model = wrap_ddp(model.to(info.device), info)
    for step in range(start, steps):
        idx = global_batch_indices(step)    # the SAME global batch on every rank (seeded from step)
        loss = loss_fn(model(x[rank_slice(idx, info)]))   # each rank takes its share
        loss.backward()                     # DDP averages the gradients over ranks
        opt.step(); opt.zero_grad()
        if is_main_process(info) and step % every == 0:
            save_checkpoint(...)            # rank 0 writes; others wait at the barrier
        barrier(info)
    cleanup(info)

Launch (4 GPUs on one node)::

    torchrun --standalone --nproc_per_node 4 my_train.py ...
    accelerate launch --multi_gpu --num_processes 4 my_train.py ...

Notes
-----
* A loss that is a mean over independent examples (MSE, cross-entropy, the diffusion noise loss)
  gives, with equal per-rank shares and DDP's gradient averaging, the gradient of the global batch.
  A *contrastive* loss over the batch (SemCLIP's eq. 4) does not decompose: the ranks must
  all-gather the received features (with gradients) before computing it, and scale the loss by the
  world size; see :func:`all_gather_with_grad` and :func:`semantic.semclip.train_jscc`.
* Seeded per-step generators keep every rank's global batch identical. Channel noise must then differ
  between the ranks' examples: either draw it from a generator seeded with ``(seed, step, rank)``
  (the VLF-MSC trainers: ``rank_seed``), or draw the noise of the whole global batch from the same
  seeded stream on every rank and keep the rank's rows (SemCLIP's ``train_jscc``: the run then equals
  the single-process one, and rank 0's checkpointed RNG state is every rank's).

Example
-------
>>> info = init_distributed()          # plain python: no process group
>>> info.world_size, info.rank, info.is_main
(1, 0, True)
>>> rank_slice(list(range(6)), info)
slice(0, 6, None)
"""
from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import torch
from torch import nn

__all__ = [
    "DistInfo",
    "env_world_size",
    "init_distributed",
    "wrap_ddp",
    "unwrap",
    "rank_slice",
    "shard_range",
    "distributed_sampler",
    "is_main_process",
    "barrier",
    "main_process_first",
    "run_on_main",
    "all_reduce_mean",
    "all_gather_with_grad",
    "cleanup",
]


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size``, ``local_rank`` on its node, its device,
    and whether a process group was initialised (``distributed``).

    Examples
    --------
    >>> info = DistInfo(rank=1, world_size=4)
    >>> info.rank, info.world_size, info.distributed, is_main_process(info)
    (1, 4, False, False)
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    distributed: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {text!r}") from None


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment (1 when unset).

    Examples
    --------
    >>> import os
    >>> os.environ.get("WORLD_SIZE") is None and env_world_size() == 1    # a plain python process
    True
    """
    return _env_int("WORLD_SIZE", 1)


def init_distributed(device: Union[None, str, torch.device] = None, backend: Optional[str] = None,
                     timeout_s: float = 1800.0, force: bool = False) -> DistInfo:
    """Initialise the default process group when ``WORLD_SIZE > 1`` (or ``force``); else do nothing.

    Parameters
    ----------
    device : str or torch.device, optional
        Default: ``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``. A ``"cuda"`` device
        without an index gets ``LOCAL_RANK``.
    backend : str, optional
        ``nccl`` for CUDA devices, ``gloo`` otherwise (default).
    timeout_s : float
        Collective timeout.
    force : bool
        Initialise a process group even for ``WORLD_SIZE = 1`` (tests; needs ``MASTER_ADDR``/``MASTER_PORT``).

    Returns
    -------
    DistInfo

    Examples
    --------
    >>> info = init_distributed(device="cpu")          # WORLD_SIZE unset: no process group
    >>> info.distributed, info.world_size, info.device
    (False, 1, device(type='cpu'))
    """
    import torch.distributed as dist

    world = env_world_size()
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    if world < 1 or not 0 <= rank < world or local_rank < 0:
        raise ValueError(f"inconsistent launcher environment: WORLD_SIZE={world}, RANK={rank}, LOCAL_RANK={local_rank}")
    if device is None:
        device = torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    use_group = world > 1 or force
    if use_group and not dist.is_available():
        raise RuntimeError("torch.distributed is not available in this PyTorch build; run a single process")
    if use_group and not dist.is_initialized():
        for var in ("MASTER_ADDR", "MASTER_PORT"):
            if not os.environ.get(var):
                raise ValueError(f"WORLD_SIZE={world} but {var} is not set: launch with torchrun or accelerate")
        backend = backend or ("nccl" if device.type == "cuda" else "gloo")
        dist.init_process_group(backend=backend, rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=timeout_s))
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=device,
                    distributed=use_group and dist.is_initialized())


def wrap_ddp(module: nn.Module, info: DistInfo, **ddp_kwargs: Any) -> nn.Module:
    """``DistributedDataParallel(module)`` in a process group, else ``module`` itself.

    The module must already be on ``info.device``. Modules without trainable parameters are
    returned as they are.

    Examples
    --------
    >>> net = nn.Linear(2, 2)
    >>> wrap_ddp(net, DistInfo()) is net               # no process group: the module itself
    True
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be an nn.Module, got {type(module).__name__}")
    if not info.distributed or not any(p.requires_grad for p in module.parameters()):
        return module
    from torch.nn.parallel import DistributedDataParallel

    if info.device.type == "cuda":
        ddp_kwargs.setdefault("device_ids", [info.device.index])
    return DistributedDataParallel(module, **ddp_kwargs)


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (for ``save_pretrained`` / ``state_dict`` without ``module.``).

    Examples
    --------
    >>> net = nn.Linear(2, 2)
    >>> unwrap(net) is net
    True
    """
    return getattr(module, "module", module) if type(module).__name__ == "DistributedDataParallel" else module


def shard_range(n: int, info: DistInfo) -> range:
    """This rank's contiguous share of ``range(n)`` (sizes differ by at most one).

    Examples
    --------
    >>> [list(shard_range(5, DistInfo(rank=r, world_size=2))) for r in (0, 1)]
    [[0, 1], [2, 3, 4]]
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    lo = n * info.rank // info.world_size
    hi = n * (info.rank + 1) // info.world_size
    return range(lo, hi)


def rank_slice(batch: Union[int, Sequence, torch.Tensor], info: DistInfo) -> slice:
    """Slice selecting this rank's contiguous share of a global batch (its length or the batch).

    ``batch`` may be the batch size, a sequence or a tensor ``[n, ...]`` (its first dimension).

    With ``world_size = 1`` it is ``slice(0, n)``: the whole batch.

    Examples
    --------
    >>> rank_slice(10, DistInfo(rank=1, world_size=3)), rank_slice(torch.zeros(10, 5), DistInfo())
    (slice(3, 6, None), slice(0, 10, None))
    """
    n = batch if isinstance(batch, int) else len(batch)
    r = shard_range(n, info)
    return slice(r.start, r.stop)


def distributed_sampler(dataset, info: DistInfo, shuffle: bool = True, seed: int = 0, drop_last: bool = False):
    """A ``DistributedSampler`` in a process group; ``None`` otherwise (keep the DataLoader's own
    ``shuffle``/``generator``). Call ``sampler.set_epoch(epoch)`` each epoch when not ``None``.

    Examples
    --------
    >>> distributed_sampler(list(range(8)), DistInfo()) is None    # no process group: keep the loader's shuffle
    True
    """
    if not info.distributed:
        return None
    from torch.utils.data.distributed import DistributedSampler

    return DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=shuffle, seed=seed,
                              drop_last=drop_last)


def is_main_process(info: Optional[DistInfo] = None) -> bool:
    """Rank 0 (or no process group).

    Examples
    --------
    >>> is_main_process(), is_main_process(DistInfo(rank=2, world_size=4))
    (True, False)
    """
    if info is not None:
        return info.is_main
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op without a process group).

    Examples
    --------
    >>> barrier(DistInfo()) is None                    # no process group: returns at once
    True
    """
    if info.distributed:
        import torch.distributed as dist

        dist.barrier()


@contextlib.contextmanager
def main_process_first(info: DistInfo) -> Iterator[None]:
    """Rank 0 runs the block first (e.g. a download or a feature cache), the others after it.

    Examples
    --------
    >>> with main_process_first(DistInfo()):
    ...     print("rank 0 first")
    rank 0 first
    """
    if not info.is_main:
        barrier(info)
    yield
    if info.is_main:
        barrier(info)


def run_on_main(info: DistInfo, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` on rank 0 only (checkpoints, logs), then a barrier; ``None`` elsewhere.

    Examples
    --------
    >>> run_on_main(DistInfo(), max, 2, 5), run_on_main(DistInfo(rank=1, world_size=2), max, 2, 5)
    (5, None)
    """
    out = fn(*args, **kwargs) if info.is_main else None
    barrier(info)
    return out


def all_reduce_mean(value: Union[float, torch.Tensor], info: DistInfo) -> torch.Tensor:
    """Mean of ``value`` over ranks (a detached copy; the value itself without a process group).

    ``value`` a number or a tensor of any shape (the same on every rank); the result has that shape.

    Examples
    --------
    >>> all_reduce_mean(torch.tensor([1.0, 3.0]), DistInfo())      # no process group: the value
    tensor([1., 3.])
    """
    t = torch.as_tensor(value, dtype=torch.float64 if not isinstance(value, torch.Tensor) else None).detach().clone()
    if not info.distributed:
        return t
    import torch.distributed as dist

    t = t.to(info.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t / info.world_size


def all_gather_with_grad(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Concatenate ``x`` ``[b, ...]`` of every rank along dim 0, keeping the gradient to this rank's
    part (equal ``b`` on every rank). For batch-level losses such as the contrastive JSCC loss.

    The other ranks' parts are constants here, so when every rank computes the same loss ``L`` of the
    gathered batch, rank ``r``'s backward gives only the part of ``dL/dtheta`` that flows through its
    own rows; the parts sum to ``dL/dtheta``, and DDP *averages* over ranks, which leaves
    ``dL/dtheta / world_size``. Backpropagate ``world_size * L`` to get the full-batch gradient (as
    :func:`semantic.semclip.train_jscc` does); a plain optimizer step on ``L`` itself would use a
    gradient ``world_size`` times too small (Adam hides most of that, but not all).

    Examples
    --------
    >>> x = torch.ones(2, 3, requires_grad=True)
    >>> y = all_gather_with_grad(x, DistInfo())        # one rank: x itself
    >>> y.shape, y.requires_grad
    (torch.Size([2, 3]), True)
    """
    if not info.distributed:
        return x
    import torch.distributed as dist

    parts = [torch.zeros_like(x) for _ in range(info.world_size)]
    dist.all_gather(parts, x.detach().contiguous())
    parts[info.rank] = x
    return torch.cat(parts, dim=0)


def cleanup(info: DistInfo) -> None:
    """Destroy the process group this run created (no-op otherwise).

    Examples
    --------
    >>> cleanup(DistInfo()) is None                    # nothing was created
    True
    """
    if info.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
