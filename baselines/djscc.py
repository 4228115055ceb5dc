"""DJSCC-IR: image deep joint source-channel coding, then the CLIP encoder on the reconstruction.

The image baseline of the SemCLIP paper: a convolutional DeepJSCC encoder/decoder with
attention-feature (AF) modules in the ADJSCC style (Xu et al., 2021) maps an image to ``L`` complex
channel uses, power-normalised per example, sent over the shared channel; the decoder rebuilds the
image, and the (frozen) CLIP image encoder turns the reconstruction into the token the zero-shot
classifier uses. Trained with MSE at an SNR drawn uniformly per example.

::

    image [B,3,H,W] -> (conv s2 + PReLU + AF) x num_down -> 1x1 conv -> flatten -> Linear -> 2L reals
      -> L complex, mean |x|^2 = 1 per example -> channel -> (MMSE equaliser if faded)
      -> Linear -> (deconv s2 + PReLU + AF) x num_down -> conv -> sigmoid -> image_hat in [0, 1]

``bottleneck="conv"`` is the fully convolutional design of DeepJSCC / ADJSCC themselves: the 1x1 conv
outputs ``c = 2L / s^2`` channels on the ``s x s`` map (``s = H / 2**num_down``), which are the 2L reals
(no Linear), and the decoder starts from that map. It needs ``2L`` divisible by ``s^2`` and stays small at
large ``L``, where the dense layer (``latent_channels * s^2 * 2L`` weights) does not: at 336 px and
``L = 28224`` (the SemCLIP paper's DJSCC-IR point, R = 1/12) the dense one would be ~400M parameters per side.

The transmission (normalisation, channel, equaliser) is :class:`semantic.jscc.JSCCCodec`'s, so the
image and the token JSCC spend channel uses by the same rules.

Example
-------
>>> import torch
>>> from phy.channel.flat import AWGN
>>> codec = ImageJSCCCodec.build(image_size=32, channel_uses=64, hidden=16, num_down=2)
>>> out = codec(torch.rand(2, 3, 32, 32), AWGN(seed=0), snr_db=10.0)
>>> out.x_hat.shape, out.channel_uses
(torch.Size([2, 3, 32, 32]), 64)
"""
from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

from phy.channel.base import Channel
from phy.utils.conventions import check_real, normalize_power
from phy.link.base import complex_to_real, real_to_complex
from semantic.jscc import AFModule, JSCCCodec, _snr_column, sample_snr_db

__all__ = ["ConvAF", "ImageJSCCEncoder", "ImageJSCCDecoder", "ImageJSCCCodec", "train_image_jscc", "BOTTLENECKS",
           "conv_bottleneck_fits", "train_resumable"]


#: How the image JSCC maps its feature map to channel symbols: a dense layer or a convolution.
BOTTLENECKS = ("dense", "conv")


def _check_geometry(image_size, num_down, hidden, channel_uses, in_channels, bottleneck="dense"):
    for name, v in (("image_size", image_size), ("num_down", num_down), ("hidden", hidden),
                    ("channel_uses", channel_uses), ("in_channels", in_channels)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if image_size % (2 ** num_down):
        raise ValueError(f"image_size={image_size} must be divisible by 2**num_down={2 ** num_down}")
    if bottleneck not in BOTTLENECKS:
        raise ValueError(f"bottleneck must be one of {BOTTLENECKS}, got {bottleneck!r}")
    side2 = (image_size // 2 ** num_down) ** 2
    if bottleneck == "conv" and (2 * channel_uses) % side2:
        raise ValueError(f"bottleneck='conv' needs 2 * channel_uses divisible by the {side2} positions of the "
                         f"{image_size // 2 ** num_down}x{image_size // 2 ** num_down} map, got channel_uses="
                         f"{channel_uses} (valid: multiples of {side2 // math.gcd(side2, 2)})")


def conv_bottleneck_fits(image_size: int, num_down: int, channel_uses: int) -> bool:
    """Whether ``bottleneck="conv"`` can carry ``channel_uses`` (``2L`` divisible by the map's positions).

    Examples
    --------
    >>> conv_bottleneck_fits(224, 4, 384), conv_bottleneck_fits(224, 4, 100)   # 14 x 14 positions
    (False, False)
    >>> conv_bottleneck_fits(32, 2, 64)                                        # 8 x 8 positions, 128 reals
    True
    """
    return (2 * int(channel_uses)) % (int(image_size) // 2 ** int(num_down)) ** 2 == 0


class ConvAF(nn.Module):
    """Channel-wise AF module: ``f * sigmoid(MLP([mean_hw(f), snr]))[:, :, None, None]``.

    Shapes: ``f`` ``[B, C, H, W]``, ``snr_db`` ``[B, 1]`` -> ``[B, C, H, W]``.

    Examples
    --------
    >>> af = ConvAF(channels=4)
    >>> af(torch.randn(2, 4, 8, 8), torch.zeros(2, 1)).shape
    torch.Size([2, 4, 8, 8])
    """

    def __init__(self, channels: int):
        super().__init__()
        self.af = AFModule(channels)

    def forward(self, f: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        return f * self.af.mask(f.mean(dim=(2, 3)), snr_db)[:, :, None, None]


class _Stage(nn.Module):
    def __init__(self, conv: nn.Module, channels: int, use_af: bool):
        super().__init__()
        self.conv, self.act = conv, nn.PReLU(channels)
        self.af = ConvAF(channels) if use_af else None

    def forward(self, x, snr):
        x = self.act(self.conv(x))
        return self.af(x, snr) if self.af is not None else x


class ImageJSCCEncoder(ModelMixin, ConfigMixin):
    """Image ``[B, C, H, W]`` in ``[0, 1]`` + SNR -> ``[B, L]`` complex64 symbols, mean ``|x|^2 = 1``.

    Parameters
    ----------
    image_size : int
        Square input side ``H = W`` (divisible by ``2**num_down``).
    in_channels : int
    channel_uses : int
        ``L`` complex channel uses per image.
    hidden : int
        Convolution width.
    num_down : int
        Stride-2 stages.
    latent_channels : int
        Channels of the last feature map before the dense layer.
    use_af : bool
    bottleneck : ``"dense"`` (default: a Linear to ``2L`` reals) or ``"conv"`` (the 1x1 conv's
        ``2L / s^2`` output channels are the reals; ``latent_channels`` is then unused).

    Examples
    --------
    >>> enc = ImageJSCCEncoder(image_size=32, channel_uses=64, hidden=8, num_down=2, latent_channels=4)
    >>> x = enc(torch.rand(2, 3, 32, 32), snr_db=torch.zeros(2))
    >>> x.shape, x.dtype, x.abs().pow(2).mean(dim=1).round(decimals=4).tolist()
    (torch.Size([2, 64]), torch.complex64, [1.0, 1.0])
    """

    @register_to_config
    def __init__(self, image_size: int = 224, in_channels: int = 3, channel_uses: int = 384, hidden: int = 64,
                 num_down: int = 4, latent_channels: int = 16, use_af: bool = True, bottleneck: str = "dense"):
        super().__init__()
        _check_geometry(image_size, num_down, hidden, channel_uses, in_channels, bottleneck)
        chans = [in_channels] + [hidden] * num_down
        self.stages = nn.ModuleList(_Stage(nn.Conv2d(a, b, 5, stride=2, padding=2), b, use_af)
                                    for a, b in zip(chans[:-1], chans[1:]))
        side = image_size // 2 ** num_down
        if bottleneck == "conv":
            self.to_latent = nn.Conv2d(hidden, 2 * channel_uses // (side * side), 1)
            self.dense = nn.Identity()
        else:
            self.to_latent = nn.Conv2d(hidden, latent_channels, 1)
            self.dense = nn.Linear(latent_channels * side * side, 2 * channel_uses)

    def forward(self, images: torch.Tensor, snr_db) -> torch.Tensor:
        check_real(images, "images")
        c = self.config
        if images.dim() != 4 or tuple(images.shape[1:]) != (c.in_channels, c.image_size, c.image_size):
            raise ValueError(f"images must be [batch, {c.in_channels}, {c.image_size}, {c.image_size}], got "
                             f"{tuple(images.shape)}")
        snr = _snr_column(snr_db, images.shape[0], images)
        x = images * 2.0 - 1.0
        for stage in self.stages:
            x = stage(x, snr)
        z = self.dense(self.to_latent(x).flatten(1)).float()
        return normalize_power(real_to_complex(z)[0])[0]


class ImageJSCCDecoder(ModelMixin, ConfigMixin):
    """Equalised symbols ``[B, L]`` complex + SNR -> image ``[B, C, H, W]`` in ``[0, 1]`` (same config).

    Examples
    --------
    >>> dec = ImageJSCCDecoder(image_size=32, channel_uses=64, hidden=8, num_down=2, latent_channels=4)
    >>> y = dec(torch.randn(2, 64, dtype=torch.complex64), snr_db=torch.zeros(2))
    >>> y.shape, bool(y.min() >= 0) and bool(y.max() <= 1)
    (torch.Size([2, 3, 32, 32]), True)
    """

    @register_to_config
    def __init__(self, image_size: int = 224, in_channels: int = 3, channel_uses: int = 384, hidden: int = 64,
                 num_down: int = 4, latent_channels: int = 16, use_af: bool = True, bottleneck: str = "dense"):
        super().__init__()
        _check_geometry(image_size, num_down, hidden, channel_uses, in_channels, bottleneck)
        self.side = image_size // 2 ** num_down
        if bottleneck == "conv":
            self.map_channels = 2 * channel_uses // (self.side * self.side)
            self.dense = nn.Identity()
        else:
            self.map_channels = latent_channels
            self.dense = nn.Linear(2 * channel_uses, latent_channels * self.side * self.side)
        self.from_latent = nn.Conv2d(self.map_channels, hidden, 1)
        self.stages = nn.ModuleList(
            _Stage(nn.ConvTranspose2d(hidden, hidden, 5, stride=2, padding=2, output_padding=1), hidden, use_af)
            for _ in range(num_down))
        self.out = nn.Conv2d(hidden, in_channels, 3, padding=1)

    def forward(self, symbols: torch.Tensor, snr_db) -> torch.Tensor:
        c = self.config
        if not symbols.is_complex() or symbols.dim() != 2 or symbols.shape[1] != c.channel_uses:
            raise ValueError(f"symbols must be complex [batch, {c.channel_uses}], got {symbols.dtype} "
                             f"{tuple(symbols.shape)}")
        r = complex_to_real(symbols, 0)
        snr = _snr_column(snr_db, symbols.shape[0], r)
        x = self.dense(r).reshape(-1, self.map_channels, self.side, self.side)
        x = self.from_latent(x)
        for stage in self.stages:
            x = stage(x, snr)
        return torch.sigmoid(self.out(x))


class ImageJSCCCodec(JSCCCodec):
    """:class:`semantic.jscc.JSCCCodec` with the convolutional image encoder/decoder.

    Examples
    --------
    >>> from phy.channel.flat import AWGN
    >>> kw = dict(image_size=32, channel_uses=64, hidden=8, num_down=2, latent_channels=4)
    >>> codec = ImageJSCCCodec(ImageJSCCEncoder(**kw), ImageJSCCDecoder(**kw))
    >>> out = codec(torch.rand(2, 3, 32, 32), AWGN(seed=0), snr_db=10.0)
    >>> out.x_hat.shape, out.channel_uses
    (torch.Size([2, 3, 32, 32]), 64)
    """

    encoder_cls = ImageJSCCEncoder
    decoder_cls = ImageJSCCDecoder

    @classmethod
    def build(cls, image_size: int = 224, channel_uses: int = 384, hidden: int = 64, num_down: int = 4,
              latent_channels: int = 16, use_af: bool = True, in_channels: int = 3,
              equalizer: str = "mmse", bottleneck: str = "dense") -> "ImageJSCCCodec":
        kw = dict(image_size=image_size, in_channels=in_channels, channel_uses=channel_uses, hidden=hidden,
                  num_down=num_down, latent_channels=latent_channels, use_af=use_af, bottleneck=bottleneck)
        return cls(ImageJSCCEncoder(**kw), ImageJSCCDecoder(**kw), equalizer)


def train_image_jscc(codec: ImageJSCCCodec, images: torch.Tensor, channel: Channel, snr_range: Sequence[float],
                     steps: int, batch_size: int = 32, lr: float = 1e-3, seed: int = 0,
                     device="cpu") -> List[Dict[str, float]]:
    """Train with MSE at an SNR drawn uniformly from ``snr_range`` per example.

    Parameters
    ----------
    images : Tensor ``[n, C, H, W]`` in ``[0, 1]``
    steps : int
        Optimiser steps (batches drawn with a ``seed``-ed generator).

    Returns
    -------
    history : list of ``{"step", "loss"}``

    Examples
    --------
    >>> from phy.channel.flat import AWGN
    >>> kw = dict(image_size=16, channel_uses=32, hidden=8, num_down=2, latent_channels=4)
    >>> codec = ImageJSCCCodec(ImageJSCCEncoder(**kw), ImageJSCCDecoder(**kw))
    >>> history = train_image_jscc(codec, torch.rand(8, 3, 16, 16), AWGN(seed=0), (0.0, 10.0), steps=2, batch_size=4)
    >>> [sorted(h) for h in history]
    [['loss', 'step'], ['loss', 'step']]
    """
    check_real(images, "images")
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    device = torch.device(device)
    codec.to(device).train()
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(codec.parameters(), lr=lr)
    history = []
    for step in range(int(steps)):
        idx = torch.randint(0, images.shape[0], (min(batch_size, images.shape[0]),), generator=gen)
        x = images[idx].to(device)
        snr = sample_snr_db(x.shape[0], snr_range, generator=gen).to(device)
        loss = F.mse_loss(codec(x, channel, snr).x_hat, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append({"step": step + 1, "loss": loss.item()})
    return history


def train_resumable(model: nn.Module, loss_fn: Callable[[nn.Module, torch.Tensor, Optional[torch.Tensor],
                                                        torch.Tensor], torch.Tensor],
                    load_batch: Callable[[torch.Tensor], Tuple[torch.Tensor, Optional[torch.Tensor]]], num_items: int,
                    channel: Optional[Channel], snr_range: Optional[Sequence[float]], steps: int, out_dir,
                    batch_size: int = 32,
                    lr: float = 1e-3, seed: int = 0, device="cpu", checkpoint_every: int = 500,
                    stop_at: Optional[int] = None, settings: Optional[Dict[str, object]] = None
                    ) -> List[Dict[str, float]]:
    """The image baselines' training loop, streaming batches from disk and resumable bit for bit.

    ``load_batch(indices [b]) -> (images [b, C, H, W], labels [b] or None)``; ``loss_fn(model, images, labels,
    snr_db [b])`` returns a scalar loss.

    Each step draws ``batch_size`` item indices and one SNR per item from a generator seeded with ``seed``
    (the same draws as :func:`train_image_jscc`), loads those items with ``load_batch(indices) ->
    (images, labels or None)`` (so the whole training set is used and never held in memory) and minimises
    ``loss_fn(model, images, labels, snr_db)`` with Adam. Every ``checkpoint_every`` steps and at the end,
    ``out_dir/train_state.pt`` (step, model, optimiser, batch generator, channel stream, history) is
    replaced atomically; a rerun resumes from it: the file is read with ``weights_only=True`` (a planted
    pickle never runs) and only if it records the same ``settings`` (the JSON-ready options that define
    the run, plus ``steps``, ``batch_size``, ``lr`` and ``seed``; another value raises ``ValueError``
    naming it). When ``steps`` are done the model is saved with
    ``save_pretrained`` in ``out_dir/model`` (config + safetensors) with ``train_history.json``.
    ``stop_at`` stops after that step (an interruption, for tests). A model trained without a channel (a
    source codec) passes ``channel=None`` and ``snr_range=None``: no SNR is drawn and ``loss_fn`` gets
    ``snr_db=None``.

    Returns
    -------
    history : list of ``{"step", "loss"}``

    Examples
    --------
    A two-step run on random images; a second call with the same settings finds the run finished:

    >>> import tempfile
    >>> from phy.channel.flat import AWGN
    >>> kw = dict(image_size=16, channel_uses=32, hidden=8, num_down=2, latent_channels=4)
    >>> codec = ImageJSCCCodec(ImageJSCCEncoder(**kw), ImageJSCCDecoder(**kw))
    >>> data = torch.rand(8, 3, 16, 16)
    >>> mse = lambda model, x, labels, snr: F.mse_loss(model(x, AWGN(seed=0), snr).x_hat, x)
    >>> out = tempfile.mkdtemp()
    >>> history = train_resumable(codec, mse, lambda idx: (data[idx], None), 8, AWGN(seed=0), (0.0, 10.0),
    ...                           steps=2, out_dir=out, batch_size=4)
    >>> len(history), sorted(p.name for p in Path(out).iterdir())
    (2, ['model', 'train_state.pt'])
    """
    import json
    import os

    from semantic.checkpoints import commit_dir, staging_dir

    for name, v in (("steps", steps), ("num_items", num_items), ("batch_size", batch_size),
                    ("checkpoint_every", checkpoint_every)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    out, device = Path(out_dir), torch.device(device)
    out.mkdir(parents=True, exist_ok=True)
    model.to(device).train()
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    start, history = 0, []
    state_file = out / "train_state.pt"
    from semantic.semclip import load_train_state

    given = json.loads(json.dumps({**dict(settings or {}), "steps": int(steps), "batch_size": int(batch_size),
                                   "lr": float(lr), "seed": int(seed)}))
    if state_file.is_file():
        state = load_train_state(out, device, given)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        if channel is not None:
            channel.generator(device).set_state(state["channel_rng"].cpu())
        start, history = int(state["step"]), list(state["history"])
    B = min(int(batch_size), int(num_items))
    for step in range(start, int(steps)):
        idx = torch.randint(0, int(num_items), (B,), generator=gen)
        snr = sample_snr_db(B, snr_range, generator=gen).to(device) if snr_range is not None else None
        images, labels = load_batch(idx)
        loss = loss_fn(model, images.to(device), labels.to(device) if labels is not None else None, snr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append({"step": step + 1, "loss": loss.item()})
        last = step + 1 == steps or (stop_at is not None and step + 1 >= stop_at)
        if (step + 1) % checkpoint_every == 0 or last:
            tmp = state_file.with_name(f"train_state.{os.getpid()}.tmp")
            torch.save({"step": step + 1, "model": model.state_dict(), "optimizer": opt.state_dict(),
                        "generator": gen.get_state(),
                        "channel_rng": channel.generator(device).get_state() if channel is not None else None,
                        "history": history, "settings": given}, tmp)
            os.replace(tmp, state_file)
        if last:
            break
    if len(history) >= steps and not (out / "model" / "train_history.json").is_file():
        tmp = staging_dir(out / "model")
        model.save_pretrained(str(tmp))
        (tmp / "train_history.json").write_text(json.dumps(history))
        commit_dir(tmp, out / "model")
    return history
