"""The input checks' accelerator path (no host synchronisation), exercised on CPU.

Counting real CUDA synchronisations needs a GPU (``benchmarks/gpu_check.py`` does it with
``torch.cuda.set_sync_debug_mode("error")``); here the device path is forced on CPU tensors and every
way of reading a tensor on the host is made to fail, so a check that still synchronises is caught."""
import pytest
import torch

import phy.utils.conventions as conv
import phy.link.digital as links
from phy.channel.flat import AWGN
from phy.utils.conventions import check_finite, check_no


class HostRead(AssertionError):
    pass


@pytest.fixture
def device_path(monkeypatch):
    """Checks take the accelerator path, and any host read of a tensor value raises HostRead."""
    monkeypatch.setattr(conv, "device_checks", lambda t: True)
    monkeypatch.setattr(links, "device_checks", lambda t: True)

    def no_host_read(*args, **kwargs):
        raise HostRead("a host synchronisation on the hot path")

    for name in ("__bool__", "item", "tolist", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, no_host_read)


def test_device_path_reads_nothing_on_the_host(device_path):
    x = torch.randn(4, 8, dtype=torch.complex64)
    assert check_finite(x, "x") is x
    no = torch.full((4, 1), 0.5)
    assert check_no(no, "no", finite=True) is no
    bits = torch.randint(0, 2, (4, 16)).float()
    assert links._check_bits(bits, 1) is bits
    # the whole torch channel path (checks, noise, output) with the checks on the device path
    y = AWGN(seed=0, backend="torch")(x, no).y
    assert y.shape == x.shape


def test_device_path_still_detects_bad_values(device_path):
    with pytest.raises(RuntimeError, match=r"x must be finite, got NaN/Inf value\(s\) in a tensor of shape \(2,\)"):
        check_finite(torch.tensor([1.0, float("inf")]), "x")
    with pytest.raises(RuntimeError, match=r"no \(noise power N0\) must be >= 0 and not NaN and finite"):
        check_no(torch.tensor([0.1, -1.0]), "no", finite=True)
    with pytest.raises(RuntimeError, match=r"no \(noise power N0\) must be >= 0 and not NaN"):
        check_no(torch.tensor([float("nan")]), "no")
    with pytest.raises(RuntimeError, match="bits must contain only 0 and 1"):
        links._check_bits(torch.tensor([[0.0, 2.0]]), 1)
    # the accepted edge values pass: N0 = 0 and +inf without finite=True
    check_no(torch.tensor([0.0, float("inf")]), "no")


def test_cpu_path_is_unchanged():
    """Without the patch a CPU tensor takes the exact synchronous path: ValueError at once."""
    assert not conv.device_checks(torch.zeros(1))
    with pytest.raises(ValueError, match="x must be finite, got 1 NaN/Inf value"):
        check_finite(torch.tensor([1.0, float("nan")]), "x")
    with pytest.raises(ValueError, match="must be >= 0, got min -1.0"):
        check_no(torch.tensor([-1.0]), "no")
    with pytest.raises(ValueError, match="bits must contain only 0 and 1"):
        links._check_bits(torch.tensor([[0.0, 2.0]]), 1)
