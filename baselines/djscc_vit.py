"""DJSCC-IR with a vision-transformer DeepJSCC: the SemCLIP paper's image baseline as it cites it.

The SemCLIP paper's DJSCC-IR sends images with "the state-of-the-art transformer-based DeepJSCC" of Wu et
al., "Transformer-Aided Wireless Image Transmission With Channel Feedback" (IEEE TWC 2024). This is that
design without the feedback link (the paper's baseline has none): patches are embedded, a ViT encoder with
SNR-adaptive modulation maps each patch token to channel symbols, and a mirrored ViT decoder rebuilds the
image; the CLIP encoder then turns the reconstruction into the token the zero-shot classifier uses. Trained
with MSE at an SNR drawn uniformly per example (:func:`baselines.djscc.train_image_jscc` /
:func:`baselines.djscc.train_resumable`).

::

    image [B,3,H,W] -> patches (p x p) -> Linear -> + positions -> [ViT block -> SNR modulation] x depth
      -> LayerNorm -> Linear(dim, c) per token -> n*c reals -> the first 2L sent (the rest punctured)
      -> L complex, mean |x|^2 = 1 per example -> channel -> (MMSE equaliser if faded)
      -> zeros at the punctured positions -> Linear(c, dim) + positions -> [ViT block -> SNR modulation] x depth
      -> LayerNorm -> Linear(dim, 3 p^2) -> image_hat in [0, 1] (sigmoid)

``n = (H/p)^2`` patch tokens each carry ``c = ceil(2L / n)`` reals, so every ``L`` is reachable (from a few
symbols to several per pixel, the SemCLIP paper's R = 1/12 point included); when ``n*c > 2L`` the last
``n*c - 2L`` reals are never sent (puncturing: a fixed, known pattern that the decoder fills with zeros), and
the channel uses spent are exactly ``L``. The SNR modulation is the channel-wise AF module of
:class:`semantic.jscc.AFModule` on the token mean (Wu et al. modulate the channel features by the SNR and
the feedback in the same place); ``use_af=False`` drops it.

The transmission (normalisation, channel, equaliser) is :class:`semantic.jscc.JSCCCodec`'s, as for the
convolutional ADJSCC of :mod:`baselines.djscc` (still selectable: :data:`IMAGE_JSCC_ARCHS`).

Example
-------
>>> import torch
>>> from phy.channel.flat import AWGN
>>> codec = ViTJSCCCodec.build(image_size=32, channel_uses=40, patch_size=8, dim=16, depth=1, heads=2)
>>> out = codec(torch.rand(2, 3, 32, 32), AWGN(seed=0), snr_db=10.0)
>>> out.x_hat.shape, out.channel_uses
(torch.Size([2, 3, 32, 32]), 40)
"""
from __future__ import annotations

import json
import math
import numbers
from pathlib import Path
from typing import Dict, Optional, Type, Union

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

from phy.link.base import complex_to_real, real_to_complex
from phy.utils.conventions import check_real, normalize_power
from semantic.jscc import AFModule, JSCCCodec, _snr_column

from .djscc import ImageJSCCCodec

__all__ = ["ViTJSCCEncoder", "ViTJSCCDecoder", "ViTJSCCCodec", "IMAGE_JSCC_ARCHS", "vit_patch_size",
           "load_image_jscc"]


def _check(image_size, in_channels, channel_uses, patch_size, dim, depth, heads) -> None:
    for name, v in (("image_size", image_size), ("in_channels", in_channels), ("channel_uses", channel_uses),
                    ("patch_size", patch_size), ("dim", dim), ("depth", depth), ("heads", heads)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if image_size % patch_size:
        raise ValueError(f"image_size={image_size} must be divisible by patch_size={patch_size}")
    if dim % heads:
        raise ValueError(f"dim={dim} must be divisible by heads={heads}")


def vit_patch_size(image_size: int) -> int:
    """The patch side used by default: 16 px (as ViT) when the image has at least 8 x 8 such patches, else
    the largest of 8, 4, 2, 1 px that divides the side and leaves at least 4 x 4 patches.

    Examples
    --------
    >>> vit_patch_size(336), vit_patch_size(224), vit_patch_size(32)
    (16, 16, 8)
    """
    size = int(image_size)
    if size % 16 == 0 and size // 16 >= 8:
        return 16
    for p in (8, 4, 2):
        if size % p == 0 and size // p >= 4:
            return p
    return 1


class _Block(nn.Module):
    """Pre-norm transformer block (self-attention + MLP), then the SNR modulation of its output."""

    def __init__(self, dim: int, heads: int, use_af: bool):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.af = AFModule(dim) if use_af else None

    def forward(self, x: torch.Tensor, snr: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        x = x + self.mlp(self.norm2(x))
        return x * self.af.mask(x.mean(dim=1), snr)[:, None, :] if self.af is not None else x


class _ViTBase(ModelMixin, ConfigMixin):
    def _geometry(self):
        c = self.config
        n = (c.image_size // c.patch_size) ** 2
        return n, math.ceil(2 * c.channel_uses / n)


class ViTJSCCEncoder(_ViTBase):
    """Image ``[B, C, H, W]`` in ``[0, 1]`` + SNR -> ``[B, L]`` complex64 symbols, mean ``|x|^2 = 1``.

    Parameters
    ----------
    image_size : int
        Square input side ``H = W`` (divisible by ``patch_size``).
    in_channels : int
    channel_uses : int
        ``L`` complex channel uses per image.
    patch_size : int
        Patch side ``p`` in pixels (``(H/p)^2`` tokens).
    dim, depth, heads : int
        Token width, transformer blocks, attention heads.
    use_af : bool
        SNR modulation after every block.

    Examples
    --------
    >>> enc = ViTJSCCEncoder(image_size=32, channel_uses=24, patch_size=8, dim=16, depth=1, heads=2)
    >>> x = enc(torch.rand(2, 3, 32, 32), snr_db=torch.zeros(2))
    >>> x.shape, x.dtype, x.abs().pow(2).mean(dim=1).round(decimals=4).tolist()
    (torch.Size([2, 24]), torch.complex64, [1.0, 1.0])
    """

    @register_to_config
    def __init__(self, image_size: int = 224, in_channels: int = 3, channel_uses: int = 384, patch_size: int = 16,
                 dim: int = 256, depth: int = 4, heads: int = 8, use_af: bool = True):
        super().__init__()
        _check(image_size, in_channels, channel_uses, patch_size, dim, depth, heads)
        n, c = self._geometry()
        self.embed = nn.Linear(in_channels * patch_size ** 2, dim)
        self.pos = nn.Parameter(torch.randn(1, n, dim) * 0.02)
        self.blocks = nn.ModuleList(_Block(dim, heads, use_af) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, c)

    def forward(self, images: torch.Tensor, snr_db) -> torch.Tensor:
        check_real(images, "images")
        c = self.config
        if images.dim() != 4 or tuple(images.shape[1:]) != (c.in_channels, c.image_size, c.image_size):
            raise ValueError(f"images must be [batch, {c.in_channels}, {c.image_size}, {c.image_size}], got "
                             f"{tuple(images.shape)}")
        snr = _snr_column(snr_db, images.shape[0], images)
        p = c.patch_size
        patches = nn.functional.unfold(images * 2.0 - 1.0, p, stride=p).transpose(1, 2)  # [B, n, C p^2]
        x = self.embed(patches) + self.pos
        for block in self.blocks:
            x = block(x, snr)
        z = self.head(self.norm(x)).flatten(1)[:, : 2 * c.channel_uses].float()  # the punctured tail not sent
        return normalize_power(real_to_complex(z)[0])[0]


class ViTJSCCDecoder(_ViTBase):
    """Equalised symbols ``[B, L]`` complex + SNR -> image ``[B, C, H, W]`` in ``[0, 1]`` (same config as the
    encoder).

    Examples
    --------
    >>> dec = ViTJSCCDecoder(image_size=32, channel_uses=24, patch_size=8, dim=16, depth=1, heads=2)
    >>> y = dec(torch.randn(2, 24, dtype=torch.complex64), snr_db=torch.zeros(2))
    >>> y.shape, bool(y.min() >= 0) and bool(y.max() <= 1)
    (torch.Size([2, 3, 32, 32]), True)
    """

    @register_to_config
    def __init__(self, image_size: int = 224, in_channels: int = 3, channel_uses: int = 384, patch_size: int = 16,
                 dim: int = 256, depth: int = 4, heads: int = 8, use_af: bool = True):
        super().__init__()
        _check(image_size, in_channels, channel_uses, patch_size, dim, depth, heads)
        n, c = self._geometry()
        self.unhead = nn.Linear(c, dim)
        self.pos = nn.Parameter(torch.randn(1, n, dim) * 0.02)
        self.blocks = nn.ModuleList(_Block(dim, heads, use_af) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, in_channels * patch_size ** 2)

    def forward(self, symbols: torch.Tensor, snr_db) -> torch.Tensor:
        c = self.config
        if not symbols.is_complex() or symbols.dim() != 2 or symbols.shape[1] != c.channel_uses:
            raise ValueError(f"symbols must be complex [batch, {c.channel_uses}], got {symbols.dtype} "
                             f"{tuple(symbols.shape)}")
        n, per_token = self._geometry()
        r = complex_to_real(symbols, 0)
        snr = _snr_column(snr_db, symbols.shape[0], r)
        r = nn.functional.pad(r, (0, n * per_token - r.shape[1]))  # zeros where the encoder punctured
        x = self.unhead(r.reshape(-1, n, per_token)) + self.pos
        for block in self.blocks:
            x = block(x, snr)
        patches = self.out(self.norm(x)).transpose(1, 2)  # [B, C p^2, n]
        img = nn.functional.fold(patches, (c.image_size, c.image_size), c.patch_size, stride=c.patch_size)
        return torch.sigmoid(img)


class ViTJSCCCodec(JSCCCodec):
    """:class:`semantic.jscc.JSCCCodec` with the ViT image encoder/decoder (see the module docstring).

    Examples
    --------
    >>> from phy.channel.flat import AWGN
    >>> codec = ViTJSCCCodec.build(image_size=32, channel_uses=40, patch_size=8, dim=16, depth=1, heads=2)
    >>> out = codec(torch.rand(2, 3, 32, 32), AWGN(seed=0), snr_db=10.0)
    >>> out.x_hat.shape, out.channel_uses
    (torch.Size([2, 3, 32, 32]), 40)
    """

    encoder_cls = ViTJSCCEncoder
    decoder_cls = ViTJSCCDecoder

    @classmethod
    def build(cls, image_size: int = 224, channel_uses: int = 384, patch_size: Optional[int] = None, dim: int = 256,
              depth: int = 4, heads: int = 8, use_af: bool = True, in_channels: int = 3,
              equalizer: str = "mmse") -> "ViTJSCCCodec":
        """New codec; ``patch_size`` defaults to :func:`vit_patch_size` of the image side."""
        kw = dict(image_size=image_size, in_channels=in_channels, channel_uses=channel_uses,
                  patch_size=patch_size or vit_patch_size(image_size), dim=dim, depth=depth, heads=heads,
                  use_af=use_af)
        return cls(ViTJSCCEncoder(**kw), ViTJSCCDecoder(**kw), equalizer)


#: DJSCC-IR architectures by name: ``vit`` (the transformer DeepJSCC the SemCLIP paper cites, the default) and
#: ``adjscc`` (the convolutional ADJSCC of :mod:`baselines.djscc`).
IMAGE_JSCC_ARCHS: Dict[str, Type[JSCCCodec]] = {"vit": ViTJSCCCodec, "adjscc": ImageJSCCCodec}


def load_image_jscc(path: Union[str, Path], equalizer: Optional[str] = None) -> JSCCCodec:
    """Load a DJSCC-IR codec folder of either architecture (read from ``encoder/config.json``).

    Examples
    --------
    >>> import tempfile
    >>> codec = ViTJSCCCodec.build(image_size=32, channel_uses=40, patch_size=8, dim=16, depth=1, heads=2)
    >>> type(load_image_jscc(codec.save_pretrained(tempfile.mkdtemp()))).__name__
    'ViTJSCCCodec'
    """
    path = Path(path)
    cfg_file = path / "encoder" / "config.json"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{str(path)!r} is not an image JSCC checkpoint folder (needs encoder/ and decoder/)")
    name = json.loads(cfg_file.read_text()).get("_class_name")
    for codec_cls in IMAGE_JSCC_ARCHS.values():
        if codec_cls.encoder_cls.__name__ == name:
            return codec_cls.from_pretrained(path, equalizer=equalizer)
    raise ValueError(f"{cfg_file}: encoder class {name!r} is not a DJSCC-IR architecture (known: "
                     f"{[c.encoder_cls.__name__ for c in IMAGE_JSCC_ARCHS.values()]})")
