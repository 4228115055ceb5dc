"""A learned image codec with a hyperprior and Gaussian-mixture likelihoods (BT-IR's source code).

The SemCLIP paper's BT-IR compresses each image with "the learned compression scheme from [21]" (Cheng,
Sun, Takeuchi, Katto, "Learned Image Compression With Discretized Gaussian Mixture Likelihoods and
Attention Modules", CVPR 2020; CompressAI's ``cheng2020-attn``) before capacity-achieving channel codes.
CompressAI and its pretrained weights cannot be installed or downloaded everywhere this package runs, so
this is a compact implementation of the same design, trained by the package (``semcom semclip
train-codec``); ``--btir-codec cheng2020-attn`` still loads CompressAI's own model where it is available.

::

    x -> g_a: [conv5 s2 -> GDN] x 3 (attention after the 2nd) -> conv5 s2 -> attention -> y     (M x H/16 x W/16)
    y -> h_a: conv3 -> LReLU -> conv5 s2 -> LReLU -> conv5 s2 -> z                              (N x H/64 x W/64)
    z_hat = round(z), P(z_hat): factorized, a K-component Gaussian mixture per channel
    z_hat -> h_s -> (weights, means, scales) of a K-component Gaussian mixture per element of y
    y_hat = round(y), P(y_hat | z_hat) = sum_k w_k [Phi((y+1/2-mu_k)/s_k) - Phi((y-1/2-mu_k)/s_k)]
    y_hat -> g_s: attention -> [deconv5 s2 -> IGDN] x 3 (attention after the 1st) -> deconv5 s2 -> x_hat

What differs from Cheng et al.: no autoregressive context model (it makes decoding serial; Cheng et al.
report it saves a few percent of rate), one width ``N = M`` for every quality, GDN layers instead of their
residual stages. Training minimises ``R + lambda * 255^2 * MSE`` (CompressAI's objective) with additive
uniform noise in place of rounding; at test time the latents are rounded and the payload size is the ideal
code length ``-log2 P(y_hat | z_hat) - log2 P(z_hat)`` rounded up, plus 2 bits per coded stream (what an
arithmetic coder adds at most): the bits a capacity-achieving channel code then has to carry
(:class:`baselines.bt_ir.BTIR`). Images are padded (replicate) to a multiple of 64 pixels and cropped back.

:class:`LearnedCodec` holds one trained model per quality level (one ``lambda`` each, CompressAI's six
``cheng2020-attn`` MSE points by default, :data:`LAMBDAS`) and sends an image at the highest quality whose
payload fits a bit budget.

Example
-------
>>> import torch
>>> model = GMMHyperpriorCodec(channels=8, mixtures=2)
>>> out = model(torch.rand(2, 3, 64, 64))
>>> out["x_hat"].shape, sorted(out["likelihoods"])
(torch.Size([2, 3, 64, 64]), ['y', 'z'])
>>> payload = model.compress(torch.rand(1, 3, 40, 40))
>>> model.decompress(payload).shape, payload.bits > 0
(torch.Size([1, 3, 40, 40]), True)
"""
from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

__all__ = ["LAMBDAS", "GDN", "AttentionBlock", "GMMHyperpriorCodec", "LearnedPayload", "LearnedCodec",
           "rd_loss", "train_levels", "STREAM_OVERHEAD_BITS"]

#: The rate-distortion weights of the quality levels, low to high (CompressAI's ``cheng2020-attn`` MSE models 1-6).
LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483)
#: Bits added per arithmetic-coded stream (``y`` and ``z``) to the ideal code length.
STREAM_OVERHEAD_BITS = 2
_SCALE_MIN = 0.11  # lower bound of the mixture scales (CompressAI's)
_PAD = 64          # total downsampling of the hyperprior path


class GDN(nn.Module):
    """Generalized divisive normalisation (Ballé et al.): ``x / sqrt(beta + gamma x^2)`` over channels;
    ``inverse=True`` multiplies instead (IGDN).

    Shapes: ``[B, C, H, W]`` -> ``[B, C, H, W]``.

    Examples
    --------
    >>> GDN(4)(torch.randn(2, 4, 8, 8)).shape
    torch.Size([2, 4, 8, 8])
    """

    def __init__(self, channels: int, inverse: bool = False):
        super().__init__()
        self.inverse = inverse
        self.beta = nn.Parameter(torch.ones(channels))
        self.gamma = nn.Parameter(0.1 * torch.eye(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        norm = F.conv2d(x * x, self.gamma.abs().reshape(c, c, 1, 1), self.beta.abs() + 1e-6)
        return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)


class _ResUnit(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        h = max(1, c // 2)
        self.body = nn.Sequential(nn.Conv2d(c, h, 1), nn.ReLU(), nn.Conv2d(h, h, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(h, c, 1))

    def forward(self, x):
        return F.relu(x + self.body(x))


class AttentionBlock(nn.Module):
    """Cheng et al.'s simplified attention module: ``x + trunk(x) * sigmoid(mask(x))`` (residual units each).

    Shapes: ``[B, C, H, W]`` -> ``[B, C, H, W]``.

    Examples
    --------
    >>> AttentionBlock(4)(torch.randn(1, 4, 8, 8)).shape
    torch.Size([1, 4, 8, 8])
    """

    def __init__(self, channels: int):
        super().__init__()
        self.trunk = nn.Sequential(*[_ResUnit(channels) for _ in range(3)])
        self.mask = nn.Sequential(*[_ResUnit(channels) for _ in range(3)], nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.trunk(x) * torch.sigmoid(self.mask(x))


def _conv(a, b, k=5, s=2):
    return nn.Conv2d(a, b, k, stride=s, padding=k // 2)


def _deconv(a, b, k=5, s=2):
    return nn.ConvTranspose2d(a, b, k, stride=s, padding=k // 2, output_padding=s - 1)


def _mixture_likelihood(v: torch.Tensor, w_logits: torch.Tensor, means: torch.Tensor, scales: torch.Tensor
                        ) -> torch.Tensor:
    """``P(v)`` of a discretised Gaussian mixture (the mixture axis is dim 1 of the parameters, ``[B, K, ...]``)."""
    w = torch.softmax(w_logits, dim=1)
    s = scales.clamp_min(_SCALE_MIN)
    v = v.unsqueeze(1)
    normal = torch.distributions.Normal(0.0, 1.0)
    p = normal.cdf((v + 0.5 - means) / s) - normal.cdf((v - 0.5 - means) / s)
    return (w * p).sum(dim=1).clamp_min(1e-9)


class GMMHyperpriorCodec(ModelMixin, ConfigMixin):
    """The learned codec of one quality level (see the module docstring).

    Parameters
    ----------
    channels : int
        ``N = M``, the width of every transform and of the latents.
    mixtures : int
        ``K``, Gaussian components per latent element (Cheng et al.: 3).
    lmbda : float
        The rate-distortion weight it is trained for (recorded in its config).

    Notes
    -----
    ``forward(x [B, 3, H, W] in [0, 1])`` returns ``{"x_hat", "likelihoods": {"y", "z"}}`` (training: noisy
    latents); ``compress`` / ``decompress`` are the deployment pair (rounded latents, :class:`LearnedPayload`).

    Examples
    --------
    >>> model = GMMHyperpriorCodec(channels=8, mixtures=2)
    >>> bits = model.compress(torch.rand(1, 3, 64, 64)).bits
    >>> isinstance(bits, int) and bits > 0
    True
    """

    @register_to_config
    def __init__(self, channels: int = 128, mixtures: int = 3, lmbda: float = 0.0130):
        super().__init__()
        for name, v in (("channels", channels), ("mixtures", mixtures)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if not isinstance(lmbda, numbers.Real) or not lmbda > 0:
            raise ValueError(f"lmbda must be a positive number, got {lmbda!r}")
        n, k = channels, mixtures
        self.g_a = nn.Sequential(_conv(3, n), GDN(n), _conv(n, n), GDN(n), AttentionBlock(n), _conv(n, n), GDN(n),
                                 _conv(n, n), AttentionBlock(n))
        self.g_s = nn.Sequential(AttentionBlock(n), _deconv(n, n), GDN(n, inverse=True), _deconv(n, n),
                                 GDN(n, inverse=True), AttentionBlock(n), _deconv(n, n), GDN(n, inverse=True),
                                 _deconv(n, 3))
        self.h_a = nn.Sequential(_conv(n, n, 3, 1), nn.LeakyReLU(), _conv(n, n), nn.LeakyReLU(), _conv(n, n))
        self.h_s = nn.Sequential(_deconv(n, n), nn.LeakyReLU(), _deconv(n, n), nn.LeakyReLU(),
                                 _conv(n, 3 * k * n, 3, 1))
        # the factorized prior of z: a K-component mixture per channel
        self.z_logits = nn.Parameter(torch.zeros(1, k, n, 1, 1))
        self.z_means = nn.Parameter(torch.linspace(-1.0, 1.0, k).reshape(1, k, 1, 1, 1).repeat(1, 1, n, 1, 1))
        self.z_scales = nn.Parameter(torch.ones(1, k, n, 1, 1))

    # -- pieces ----------------------------------------------------------------------------------
    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = (-h) % _PAD, (-w) % _PAD
        return F.pad(x, (0, pw, 0, ph), mode="replicate") if (ph or pw) else x

    def _y_params(self, z_hat: torch.Tensor, y_shape) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        k, n = self.config.mixtures, self.config.channels
        p = self.h_s(z_hat)[..., : y_shape[-2], : y_shape[-1]]
        p = p.reshape(p.shape[0], 3, k, n, *p.shape[-2:])
        return p[:, 0], p[:, 1], F.softplus(p[:, 2])

    def _likelihoods(self, y_q: torch.Tensor, z_q: torch.Tensor) -> Dict[str, torch.Tensor]:
        w, mu, s = self._y_params(z_q, y_q.shape)
        ly = _mixture_likelihood(y_q, w, mu, s)
        lz = _mixture_likelihood(z_q, self.z_logits, self.z_means, F.softplus(self.z_scales))
        return {"y": ly, "z": lz}

    def _check(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3 or x.is_complex():
            raise ValueError(f"images must be a real tensor [batch, 3, H, W] in [0, 1], got "
                             f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}")

    # -- training path ---------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> Dict[str, object]:
        """``x`` ``[B, 3, H, W]`` in ``[0, 1]`` -> ``{"x_hat" [B, 3, H, W], "likelihoods": {"y", "z"}}`` with
        additive uniform noise in place of rounding (the training relaxation)."""
        self._check(x)
        h, w = x.shape[-2:]
        y = self.g_a(self._pad(x) * 2.0 - 1.0)
        z = self.h_a(y)
        noise = (lambda t: t + torch.empty_like(t).uniform_(-0.5, 0.5)) if self.training else torch.round
        y_q, z_q = noise(y), noise(z)
        x_hat = torch.sigmoid(self.g_s(y_q))[..., :h, :w]
        return {"x_hat": x_hat, "likelihoods": self._likelihoods(y_q, z_q)}

    # -- deployment path -------------------------------------------------------------------------
    @torch.no_grad()
    def compress(self, x: torch.Tensor) -> "LearnedPayload":
        """One image ``[1, 3, H, W]`` -> :class:`LearnedPayload` (rounded latents and their code length)."""
        self._check(x)
        if x.shape[0] != 1:
            raise ValueError(f"compress takes one image [1, 3, H, W], got a batch of {x.shape[0]}")
        y = self.g_a(self._pad(x) * 2.0 - 1.0)
        z_q = torch.round(self.h_a(y))
        y_q = torch.round(y)
        lik = self._likelihoods(y_q, z_q)
        info = sum(float(-torch.log2(v).sum()) for v in lik.values())
        bits = int(math.ceil(info)) + STREAM_OVERHEAD_BITS * len(lik)
        return LearnedPayload(y=y_q.to(torch.int32), z=z_q.to(torch.int32), shape=tuple(x.shape[-2:]), bits=bits,
                              lmbda=float(self.config.lmbda))

    @torch.no_grad()
    def decompress(self, payload: "LearnedPayload") -> torch.Tensor:
        """:class:`LearnedPayload` -> image ``[1, 3, H, W]`` in ``[0, 1]``."""
        h, w = payload.shape
        return torch.sigmoid(self.g_s(payload.y.float()))[..., :h, :w]


@dataclass
class LearnedPayload:
    """What :meth:`GMMHyperpriorCodec.compress` sends: rounded latents ``y`` ``[1, M, h, w]`` and ``z``
    ``[1, N, h/4, w/4]`` (int32), the image size, and ``bits``, the payload's length in bits.

    Examples
    --------
    >>> p = GMMHyperpriorCodec(channels=4, mixtures=1).compress(torch.rand(1, 3, 32, 32))
    >>> p.y.shape, p.shape
    (torch.Size([1, 4, 4, 4]), (32, 32))
    """

    y: torch.Tensor
    z: torch.Tensor
    shape: Tuple[int, int]
    bits: int
    lmbda: float


def rd_loss(out: Dict[str, object], x: torch.Tensor, lmbda: float) -> torch.Tensor:
    """CompressAI's rate-distortion loss ``bpp + lambda * 255^2 * MSE`` of a :meth:`GMMHyperpriorCodec.forward`
    output against ``x`` ``[B, 3, H, W]``.

    Examples
    --------
    >>> model = GMMHyperpriorCodec(channels=4, mixtures=1)
    >>> x = torch.rand(2, 3, 32, 32)
    >>> rd_loss(model(x), x, 0.01).item() > 0
    True
    """
    pixels = x.shape[0] * x.shape[-1] * x.shape[-2]
    bpp = sum(-torch.log2(v).sum() for v in out["likelihoods"].values()) / pixels
    return bpp + float(lmbda) * 255.0 ** 2 * F.mse_loss(out["x_hat"], x)


def train_levels(images: torch.Tensor, lambdas: Sequence[float] = LAMBDAS, steps: int = 500, batch_size: int = 16,
                 lr: float = 1e-4, channels: int = 128, mixtures: int = 3, seed: int = 0,
                 device="cpu") -> "LearnedCodec":
    """One :class:`GMMHyperpriorCodec` per ``lambdas`` value (quality 1, 2, ... low to high), each trained with
    Adam on :func:`rd_loss` for ``steps`` batches of ``images`` ``[n, 3, H, W]`` in ``[0, 1]`` held in memory
    (``semcom semclip train-codec`` streams a data set from disk instead, resumably).

    Examples
    --------
    >>> codec = train_levels(torch.rand(4, 3, 32, 32), lambdas=(0.001, 0.01), steps=2, batch_size=2, channels=4,
    ...                      mixtures=1)
    >>> codec.qualities
    (2, 1)
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be [n, 3, H, W], got {tuple(images.shape)}")
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    models = {}
    for q, lmbda in enumerate(lambdas, 1):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + q)
            model = GMMHyperpriorCodec(channels=channels, mixtures=mixtures, lmbda=lmbda).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        gen = torch.Generator().manual_seed(seed + q)
        model.train()
        for _ in range(int(steps)):
            x = images[torch.randint(0, images.shape[0], (min(batch_size, images.shape[0]),), generator=gen)]
            x = x.to(device)
            loss = rd_loss(model(x), x, lmbda)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        models[q] = model.eval()
    return LearnedCodec(models, device=device)


class LearnedCodec:
    """The quality levels of :class:`GMMHyperpriorCodec` as a BT-IR codec: each image at the highest quality
    whose payload fits the bit budget.

    Parameters
    ----------
    models : dict quality -> GMMHyperpriorCodec
        Quality levels (higher = more bits).
    device : torch device

    Examples
    --------
    >>> from PIL import Image
    >>> codec = LearnedCodec({1: GMMHyperpriorCodec(channels=4, mixtures=1)})
    >>> img = Image.new("RGB", (32, 32), (200, 10, 10))
    >>> payload, quality = codec.encode_to_budget(img, max_bits=10 ** 6)
    >>> quality, codec.decode_payload((payload, quality)).size, codec.encode_to_budget(img, max_bits=1)
    (1, (32, 32), None)
    """

    def __init__(self, models: Dict[int, GMMHyperpriorCodec], device="cpu"):
        if not models:
            raise ValueError("models must hold at least one quality level")
        self.device = torch.device(device)
        self._models = {int(q): m.to(self.device).eval() for q, m in models.items()}
        self.qualities = tuple(sorted(self._models, reverse=True))
        self.name = "learned-gmm"

    @classmethod
    def from_pretrained(cls, path: Union[str, Path], device="cpu") -> "LearnedCodec":
        """Load the folder written by :meth:`save_pretrained` (``codec.json`` + one folder per quality)."""
        path = Path(path)
        meta_file = path / "codec.json"
        if not meta_file.is_file():
            raise FileNotFoundError(f"{str(path)!r} is not a learned-codec folder (no codec.json; train one with "
                                    "`semcom semclip train-codec`)")
        meta = json.loads(meta_file.read_text())
        models = {int(q): GMMHyperpriorCodec.from_pretrained(str(path / sub), low_cpu_mem_usage=False)
                  for q, sub in meta["qualities"].items()}
        return cls(models, device=device)

    def save_pretrained(self, path: Union[str, Path]) -> Path:
        """``path/q<k>/`` (config + safetensors) per quality and ``path/codec.json``."""
        path = Path(path)
        for q, m in self._models.items():
            m.save_pretrained(str(path / f"q{q}"))
        (path / "codec.json").write_text(json.dumps({"qualities": {str(q): f"q{q}" for q in self._models}}))
        return path

    def encode_to_budget(self, img, max_bits: int) -> Optional[Tuple[LearnedPayload, int]]:
        """``(payload, quality)`` of the highest quality with ``payload.bits <= max_bits``; ``None`` if none fits."""
        from .bt_ir import pil_to_tensor

        x = pil_to_tensor(img).unsqueeze(0).to(self.device)
        for q in self.qualities:
            payload = self._models[q].compress(x)
            if payload.bits <= max_bits:
                return payload, q
        return None

    def payload_bits(self, payload: Tuple[LearnedPayload, int]) -> int:
        """Bits of an :meth:`encode_to_budget` result."""
        return int(payload[0].bits)

    def decode_payload(self, payload: Tuple[LearnedPayload, int]):
        """The received image (PIL) of an :meth:`encode_to_budget` result."""
        from .bt_ir import tensor_to_pil

        data, q = payload
        return tensor_to_pil(self._models[q].decompress(data)[0].cpu())

