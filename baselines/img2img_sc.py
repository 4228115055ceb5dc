"""Img2Img-SC: the Stable Diffusion latent and a caption sent digitally, SD img2img at the receiver.

The image baseline of the VLF-MSC paper (public code: github.com/ispamm/Img2Img-SC,
``scripts/semantic_i2i.py`` and ``scripts/qam.py``)::

    image --SD VAE encoder (x scaling_factor)--> latent [4, H/8, W/8] --latent bits--+
    caption --character bits--------------------------------------------------------+--channel (mode)-->
      received latent, received caption --SD img2img (DDIM, 50-step schedule, strength 0.6 = 30 steps run,
        guidance 9; the received latent is the initial latent, the received caption the prompt)--> image [3, H, W]

Channel modes (:attr:`Img2ImgSCConfig.mode`)
--------------------------------------------
* ``"bit-true"`` (default): latent -> :class:`phy.source.quantization.UniformQuantizer` (``latent_bits`` per
  value, per-image min/max range as side information) -> :class:`phy.link.digital.DigitalLink` (``code`` +
  ``modulation``, default uncoded 16-QAM) over the experiment's shared channel: modem, fading, ZF
  and demapping simulated symbol by symbol at Es/N0 = ``snr_db``. The caption goes through
  :class:`baselines.ascii_hamming.AsciiHamming` (7-bit ASCII) with the same code and modulation.
  This is the default because it is the fair comparison: the same SNR convention (Es/N0 per complex
  channel use), fading, modem and random stream as every other system over the shared channel, and
  every transmitted bit occupies counted channel uses.
* ``"bsc"``: the same quantiser and 7-bit ASCII caption, but the modem is not simulated: every bit is
  flipped independently with the exact closed-form uncoded Gray-``modulation`` BER at Es/N0 =
  ``snr_db`` (:class:`phy.link.digital.BSCEquivalentLink`; AWGN, or its average over Rayleigh fading). A
  binary-symmetric-channel shortcut of ``"bit-true"`` in the package's SNR convention; it ignores the
  correlation of bit errors within a symbol. It is *not* the public code's channel (no quantiser
  there, other bit widths, another SNR convention): that is ``"public-code"``.
* ``"public-code"``: the channel model of the public code, reproduced:

  - latent: the VAE posterior *sample* x scaling factor (LDM's ``get_first_stage_encoding``; pass
    ``sample_latent=False`` for the mean), each float32 value sent as the 64 bits of its exact
    IEEE-754 float64 (sign bit first), no quantiser;
  - caption: 8 bits per character, ``'{0:08b}'.format(ord(c))`` (a character with ``ord(c) >= 256``
    takes its ``ord(c).bit_length()`` bits, as there);
  - every bit flipped independently with :func:`public_code_bit_error_rate` (``snr_db`` taken as
    **Eb/N0**; uncoded 16-QAM symbol-error formula divided by 4 bits; no modem, no channel code, no
    fading: AWGN only);
  - received doubles that are NaN/Inf, > 10, < -10 or in (-0.01, 0.01) are replaced by N(0, 1) draws,
    checked in that order as there (:func:`public_code_replace_outliers`), then rounded to float32;
    received characters are ``chr`` of the flipped values.

  Flips and normals are drawn from the shared channel's random stream (vectorised, not per bit), so
  ``channel_seed`` reproduces them. Differences from the public code: (1) other random draws (torch
  generator instead of Python's ``random`` and NumPy's global stream; same distributions); (2) the
  input side is ``image_size`` (default 256 px, latent 4 x 32 x 32) where the public code uses 512 px
  (4 x 64 x 64); (3) the caption is the one the caller passes (``vlf-msc-eval``: BLIP-2's), not BLIP's;
  (4) the public code does not count channel uses; they are reported here as the uncoded 16-QAM
  symbols the bits would occupy, ``ceil(bits / 4)``: 16 per latent value + ``ceil(8 chars / 4)``;
  (5) diffusers' img2img adds the initial noise at the first timestep it denoises (581 of 1000 for 50
  steps, strength 0.6) where LDM's ``stochastic_encode`` in the public code noises to the next DDIM
  timestep (601) and then denoises from 581; (6) a received character code that is not a valid
  Unicode scalar (> 0x10FFFF or a surrogate; reachable only from characters wider than 8 bits)
  becomes U+FFFD instead of raising or producing a lone surrogate.

  Its SNR axis is not the package's: Pb at Eb/N0 = x is the usual approximation of the exact Gray
  16-QAM BER at Es/N0 = x + 6.02 dB (4.2 % below it at x = 5 dB, 0.18 % at 10 dB), so at the same
  ``snr_db`` label this channel is 6.02 dB more favourable than ``"bit-true"``/``"bsc"`` with uncoded
  16-QAM (at 10 dB: Pb = 1.75e-3 against a BER of 5.90e-2). Even at infinite SNR the replacement
  rule turns every latent value in (-0.01, 0.01) into N(0, 1) noise (0.8 % of the values of a
  standard normal latent).

Channel uses per image (reported per item, :attr:`Img2ImgSCOutput.channel_uses`) =
latent uses + caption uses: bit-true ``DigitalLink.channel_uses(latent bits, padded to k)`` +
``AsciiHamming.channel_uses(caption)``; BSC ``ceil(latent bits / m) + ceil(7 chars / m)``
(``m`` bits per symbol); public-code ``ceil(64 values / 4) + ceil(caption bits / 4)``. In the
quantised modes the quantiser's range (two floats per image) is side information, not counted.

Checkpoints: the SD 1.5 VAE, U-Net, CLIP text encoder, tokenizer and scheduler are loaded by the
same code as VLF-MSC's image decoder (:meth:`semantic.image_decoder.VLFImageDecoder.from_pretrained`,
which resolves the checkpoint with :func:`semantic.checkpoints.resolve_checkpoint` and fails at
once, naming the checkpoint, when it is missing) and assembled into diffusers'
``StableDiffusionImg2ImgPipeline`` with a ``DDIMScheduler``.

Example
-------
>>> from phy.channel.flat import AWGN
>>> sc = Img2ImgSC.from_pretrained(Img2ImgSCConfig(sd_checkpoint="stable-diffusion-v1-5/stable-diffusion-v1-5"),
...                                channel=AWGN(seed=0))                              # doctest: +SKIP
>>> out = sc(images, ["a dog on a beach"], snr_db=10.0)                            # doctest: +SKIP
>>> out.images.shape, out.channel_uses                                             # doctest: +SKIP
(torch.Size([1, 3, 256, 256]), [8220])
>>> round(public_code_bit_error_rate(10.0), 6)         # the public code's flip probability at Eb/N0 = 10 dB
0.001751
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

import semantic  # noqa: F401  (torchvision shim before diffusers/transformers)
from phy.channel.base import Channel
from phy.channel.registry import make_channel
from phy.utils.conventions import check_snr
from phy.link.digital import BSCEquivalentLink, DigitalLink
from phy.mapping.modulation import bits_per_symbol
from phy.sim.points import point_seed
from phy.source.quantization import UniformQuantizer
from phy.source.text_codec import BITS_PER_CHAR, TextCodec
from semantic.image_decoder import DEFAULT_SD

from .ascii_hamming import AsciiHamming, AsciiHammingConfig

__all__ = ["IMG2IMG_MODES", "Img2ImgSCConfig", "Img2ImgSCOutput", "Img2ImgSC", "load_sd_components",
           "PUBLIC_CODE_BITS_PER_VALUE", "PUBLIC_CODE_BITS_PER_SYMBOL", "public_code_bit_error_rate",
           "float64_bits", "public_code_flip", "public_code_replace_outliers", "public_code_latent_channel",
           "public_code_caption_bits", "public_code_caption_channel"]

#: The channel models of Img2Img-SC: bit-true link, closed-form bit flips, or the public code's model.
IMG2IMG_MODES = ("bit-true", "bsc", "public-code")

#: Bits per latent value in the public code (IEEE-754 float64).
PUBLIC_CODE_BITS_PER_VALUE = 64     # IEEE-754 float64 per latent value
PUBLIC_CODE_BITS_PER_CHAR = 8       # '{0:08b}'.format(ord(c)); wider characters keep their bit length
#: Bits per channel symbol in the public code (uncoded 16-QAM; only for the channel-use count).
PUBLIC_CODE_BITS_PER_SYMBOL = 4     # uncoded 16-QAM: only for the channel-use count
PUBLIC_CODE_LIMIT = 10.0            # received values > 10 or < -10 are replaced
PUBLIC_CODE_DEADZONE = 0.01         # received values in (-0.01, 0.01) are replaced
_CODE_POINT_BITS = 21               # bits of the largest code point 0x10FFFF


# ------------------------------------------------------------------------------------------------
# The public code's channel model (pure functions)
# ------------------------------------------------------------------------------------------------
def public_code_bit_error_rate(snr_db):
    """Bit-flip probability of the public Img2Img-SC code, with ``snr_db`` taken as Eb/N0 [dB].

    ``Pb = Ps / K``, ``Ps = 1 - (1 - Pm)^2``, ``Pm = (1 - 1/sqrt(M)) erfc(sqrt(3 K Eb/N0 / (2 (M - 1))))``
    with ``K = 4``, ``M = 16`` (square 16-QAM on AWGN, symbol errors spread over the 4 bits), evaluated
    as written in float64: ``1 - (1 - Pm)^2`` rounds to 0 from Eb/N0 = 19.4 dB on.

    Parameters
    ----------
    snr_db : float or array-like
        Eb/N0 in dB.

    Returns
    -------
    float for a number, else ``np.ndarray`` float64 of the same shape.

    Example
    -------
    >>> round(public_code_bit_error_rate(0.0), 6), public_code_bit_error_rate(30.0)
    (0.119795, 0.0)
    """
    scalar = isinstance(snr_db, numbers.Real) and not isinstance(snr_db, bool)
    if not scalar and not isinstance(snr_db, (bool, torch.Tensor)):
        arr = np.asarray(snr_db)
        if arr.dtype.kind not in "iuf":
            raise TypeError(f"snr_db must be a real number or array (Eb/N0 in dB), got {snr_db!r}")
        snr_db = torch.as_tensor(arr.astype(np.float64))
    check_snr(snr_db)
    ebno = 10.0 ** (torch.as_tensor(snr_db, dtype=torch.float64, device="cpu") / 10.0)
    k, m = 4.0, 16.0
    pm = (1 - 1 / math.sqrt(m)) * torch.special.erfc(torch.sqrt(3 / 2 / (m - 1) * k * ebno))
    pb = (1 - (1 - pm) ** 2) / k
    return float(pb) if scalar else pb.numpy()


def _pack_msb_first(flags: torch.Tensor) -> torch.Tensor:
    """bool ``[..., n]`` (``n <= 64``, most significant bit first) -> int64 ``[...]`` with those bits set."""
    n = flags.shape[-1]
    w = [1 << (n - 1 - k) for k in range(n)]
    weights = torch.tensor([v - (1 << 64) if v >= 1 << 63 else v for v in w], dtype=torch.int64,
                           device=flags.device)
    return (flags.to(torch.int64) * weights).sum(-1)  # distinct powers of two: the sum is the bitwise OR


def float64_bits(values: torch.Tensor) -> torch.Tensor:
    """The IEEE-754 float64 bit strings of ``values`` (sign bit first, as ``bitstring``'s ``.bin``).

    ``values [...]`` (any real dtype, converted to float64 exactly from float32/16) -> bool ``[..., 64]``.

    Example
    -------
    >>> float64_bits(torch.tensor([-2.0]))[0, :12].int().tolist()   # sign 1, exponent 0x400
    [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    """
    words = values.detach().to(torch.float64).contiguous().view(torch.int64)
    shifts = torch.arange(63, -1, -1, device=words.device)
    return ((words.unsqueeze(-1) >> shifts) & 1).bool()


def public_code_flip(values: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Flip bits of the float64 representation of ``values``.

    Parameters
    ----------
    values : ``[...]`` real tensor (converted to float64)
    flips : ``[..., 64]`` bool, bit ``k`` of the float64 string (0 = sign bit) flipped where True

    Returns
    -------
    ``[...]`` float64: the doubles with those bits XOR-ed (may be NaN, Inf, huge or subnormal).

    Examples
    --------
    >>> flips = torch.zeros(2, 64, dtype=torch.bool)
    >>> flips[0, 0] = True                        # the sign bit of the first value
    >>> public_code_flip(torch.tensor([1.5, 2.0]), flips)
    tensor([-1.5000,  2.0000], dtype=torch.float64)
    """
    if flips.dtype != torch.bool or tuple(flips.shape) != tuple(values.shape) + (PUBLIC_CODE_BITS_PER_VALUE,):
        raise ValueError(f"flips must be a bool tensor of shape {tuple(values.shape) + (64,)}, got "
                         f"{flips.dtype} {tuple(flips.shape)}")
    words = values.detach().to(torch.float64).contiguous().view(torch.int64)
    return (words ^ _pack_msb_first(flips.to(words.device))).view(torch.float64)


def public_code_replace_outliers(values: torch.Tensor, generator: Optional[torch.Generator] = None
                                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    """The public code's repair of received doubles, checked in its order.

    ``v`` NaN/Inf -> ``r1``; then ``v > 10`` -> ``r2``; then ``v < -10`` -> ``r3``; then
    ``-0.01 < v < 0.01`` -> ``r4``, with ``r1..r4`` independent N(0, 1) draws (so a replacement that
    lands in (-0.01, 0.01) is drawn once more, as there). Four normals are drawn per value from
    ``generator`` whether used or not, so the stream does not depend on the data.

    Parameters
    ----------
    values : ``[...]`` float64 (CPU or the generator's device)
    generator : torch.Generator, optional

    Returns
    -------
    ``(repaired [...] float64, replaced [...] bool)``

    Example
    -------
    >>> v = torch.tensor([float("nan"), 1e3, 1e-3, -0.5], dtype=torch.float64)
    >>> out, replaced = public_code_replace_outliers(v, torch.Generator().manual_seed(0))
    >>> replaced.tolist(), out[3].item()
    ([True, True, True, False], -0.5)
    """
    if not isinstance(values, torch.Tensor) or values.dtype != torch.float64:
        raise TypeError(f"values must be a float64 tensor, got {getattr(values, 'dtype', type(values).__name__)}")
    r = torch.randn((4,) + tuple(values.shape), generator=generator, dtype=torch.float64, device=values.device)
    v = values
    rules = (lambda x: ~torch.isfinite(x), lambda x: x > PUBLIC_CODE_LIMIT, lambda x: x < -PUBLIC_CODE_LIMIT,
             lambda x: (x < PUBLIC_CODE_DEADZONE) & (x > -PUBLIC_CODE_DEADZONE))
    replaced = torch.zeros_like(values, dtype=torch.bool)
    for i, rule in enumerate(rules):
        hit = rule(v)
        v = torch.where(hit, r[i], v)
        replaced |= hit
    return v, replaced


def public_code_latent_channel(latents: torch.Tensor, snr_db: float, generator: Optional[torch.Generator] = None
                               ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The public code's latent channel: float64 bits, i.i.d. flips, outlier repair, float32.

    Parameters
    ----------
    latents : ``[B, ...]`` real tensor (float32 values are represented exactly in float64)
    snr_db : float
        Eb/N0 in dB (:func:`public_code_bit_error_rate`).
    generator : torch.Generator, optional
        A CPU generator: per value 64 uniforms (flips), then 4 normals (:func:`public_code_replace_outliers`).

    Returns
    -------
    ``(received [B, ...] float32 on the CPU, bit_errors [B] int64, replaced [B] int64)``: flipped bits
    and replaced values per item.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> out = public_code_latent_channel(torch.randn(2, 4, 8, 8), snr_db=40.0, generator=g)
    >>> len(out), out[0].shape, out[0].dtype
    (3, torch.Size([2, 4, 8, 8]), torch.float32)
    """
    if not isinstance(latents, torch.Tensor) or latents.dim() < 1 or not latents.is_floating_point():
        raise ValueError(f"latents must be a float tensor [B, ...], got "
                         f"{getattr(latents, 'dtype', type(latents).__name__)} {tuple(getattr(latents, 'shape', ()))}")
    pb = public_code_bit_error_rate(snr_db)
    x = latents.detach().to("cpu", torch.float64).reshape(latents.shape[0], -1)
    flips = torch.rand(tuple(x.shape) + (PUBLIC_CODE_BITS_PER_VALUE,), generator=generator, dtype=torch.float64) < pb
    y, replaced = public_code_replace_outliers(public_code_flip(x, flips), generator)
    return (y.to(torch.float32).reshape(latents.shape), flips.sum((-2, -1)), replaced.sum(-1))


def _char_bits(code: int) -> int:
    return max(PUBLIC_CODE_BITS_PER_CHAR, code.bit_length())


def public_code_caption_bits(caption: str) -> int:
    """Bits the public code sends for ``caption``: 8 per character (more for ``ord(c) >= 256``).

    Examples
    --------
    >>> public_code_caption_bits("a dog"), public_code_caption_bits("caf\u00e9")
    (40, 32)
    """
    if not isinstance(caption, str):
        raise TypeError(f"caption must be a str, got {type(caption).__name__}")
    return sum(_char_bits(ord(c)) for c in caption)


def _to_char(code: int) -> str:
    return chr(code) if code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else "\ufffd"


def public_code_caption_channel(captions: Sequence[str], snr_db: float, generator: Optional[torch.Generator] = None
                                ) -> Tuple[List[str], List[int]]:
    """The public code's caption channel: each character's bits flipped i.i.d., ``chr`` of the result.

    Every character of every caption (in order) takes 21 uniforms from ``generator`` (CPU); only its
    own ``max(8, ord(c).bit_length())`` low bits can flip. Returns ``(received captions, flipped bits
    per caption)``; the received caption has the same length as the sent one.

    Example
    -------
    >>> public_code_caption_channel(["a cat"], 40.0, torch.Generator().manual_seed(0))
    (['a cat'], [0])
    """
    if isinstance(captions, str) or not all(isinstance(c, str) for c in captions):
        raise TypeError("captions must be a sequence of str")
    pb = public_code_bit_error_rate(snr_db)
    codes = [ord(ch) for c in captions for ch in c]
    if not codes:
        return [""] * len(captions), [0] * len(captions)
    sent = torch.tensor(codes, dtype=torch.int64)
    width = torch.tensor([_char_bits(c) for c in codes], dtype=torch.int64)
    flips = torch.rand(len(codes), _CODE_POINT_BITS, generator=generator, dtype=torch.float64) < pb
    flips &= torch.arange(_CODE_POINT_BITS - 1, -1, -1) < width.unsqueeze(-1)  # bit weight < 2**width
    received = (sent ^ _pack_msb_first(flips)).tolist()
    per_char = flips.sum(-1).tolist()
    out, errs, i = [], [], 0
    for c in captions:
        out.append("".join(_to_char(v) for v in received[i:i + len(c)]))
        errs.append(int(sum(per_char[i:i + len(c)])))
        i += len(c)
    return out, errs


@dataclass
class Img2ImgSCConfig:
    """Configuration of Img2Img-SC (defaults: the public code's sampler settings).

    ``mode``: ``"bit-true"`` (default; DigitalLink over the shared channel), ``"bsc"`` (closed-form
    flips, package Es/N0 convention) or ``"public-code"`` (the public code's channel model, ``snr_db``
    as Eb/N0; needs ``modulation="16qam"``, ``code="none"`` and an AWGN channel; ``latent_bits``,
    ``latent_clip``, ``gray``, ``interleave`` unused). See the module docstring.

    Examples
    --------
    >>> cfg = Img2ImgSCConfig(mode="bsc", latent_bits=6)
    >>> cfg.mode, cfg.latent_bits, cfg.modulation, cfg.strength
    ('bsc', 6, '16qam', 0.6)
    >>> Img2ImgSCConfig(mode="analog")
    Traceback (most recent call last):
    ...
    ValueError: ...
    """

    sd_checkpoint: str = DEFAULT_SD
    mode: str = "bit-true"                          # "bit-true" | "bsc" | "public-code"
    latent_bits: int = 8                            # quantiser bits per latent value (not public-code)
    latent_clip: Optional[Tuple[float, float]] = None   # fixed range; None: per-image min/max
    gray: bool = False                              # Gray-code the quantiser levels
    modulation: str = "16qam"
    code: str = "none"                              # bit-true mode only: "none" | "hamming74" | "ldpc5g"
    code_kwargs: Optional[Dict[str, int]] = None
    interleave: bool = False
    strength: float = 0.6
    guidance_scale: float = 9.0
    num_inference_steps: int = 50                   # DDIM steps (strength * steps are run)
    image_size: Optional[int] = 256                 # input resized to this side first (None: keep)
    sample_latent: Optional[bool] = None            # VAE posterior sample instead of its mean
                                                    # (None: True in public-code mode, else False)
    seed: int = 0                                   # diffusion noise
    device: Optional[str] = None
    dtype: str = "auto"
    allow_download: Optional[bool] = None

    def __post_init__(self):
        if self.mode not in IMG2IMG_MODES:
            raise ValueError(f"mode must be one of {IMG2IMG_MODES}, got {self.mode!r}")
        if not 0.0 < float(self.strength) <= 1.0:
            raise ValueError(f"strength must be in (0, 1], got {self.strength!r}")
        if isinstance(self.num_inference_steps, bool) or not isinstance(self.num_inference_steps, int) \
                or self.num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be a positive int, got {self.num_inference_steps!r}")
        if self.image_size is not None and (not isinstance(self.image_size, int) or self.image_size <= 0):
            raise ValueError(f"image_size must be a positive int or None, got {self.image_size!r}")
        if self.mode in ("bsc", "public-code") and self.code not in ("none", "uncoded"):
            raise ValueError(f"mode={self.mode!r} models uncoded {self.modulation}; code must be 'none', "
                             f"got {self.code!r}")
        if self.mode == "public-code" and bits_per_symbol(self.modulation) != PUBLIC_CODE_BITS_PER_SYMBOL:
            raise ValueError(f"mode='public-code' is the public code's uncoded 16-QAM formula; modulation must be "
                             f"'16qam', got {self.modulation!r}")
        if self.sample_latent is not None and not isinstance(self.sample_latent, bool):
            raise TypeError(f"sample_latent must be a bool or None, got {type(self.sample_latent).__name__}")


@dataclass
class Img2ImgSCOutput:
    """Result of one Img2Img-SC transmission.

    Attributes
    ----------
    images : ``[B, 3, H, W]`` float32 in [0, 1] (None when only transmitted)
    captions : received captions (the prompts used)
    latents, received_latents : ``[B, 4, h, w]`` sent (unquantised) and received latents
    channel_uses : per image, latent + caption
    info : ``latent_uses``, ``caption_uses`` (lists), ``latent_bit_errors``, ``caption_char_errors``,
        ``latent_bits``, ``caption_bits`` (per image); public-code mode also ``latent_replaced``,
        ``caption_bit_errors`` and ``bit_error_rate`` (see :meth:`Img2ImgSC.transmit`)

    Examples
    --------
    >>> out = Img2ImgSCOutput(images=None, captions=["a dog"], latents=torch.zeros(1, 4, 32, 32),
    ...                       received_latents=torch.zeros(1, 4, 32, 32), channel_uses=[8200])
    >>> out.received_latents.shape, out.channel_uses, out.info
    (torch.Size([1, 4, 32, 32]), [8200], {})
    """

    images: Optional[torch.Tensor]
    captions: List[str]
    latents: torch.Tensor
    received_latents: torch.Tensor
    channel_uses: List[int]
    info: Dict[str, Any] = field(default_factory=dict)


def load_sd_components(checkpoint: str = DEFAULT_SD, device=None, dtype="auto",
                       allow_download: Optional[bool] = None) -> Dict[str, Any]:
    """SD 1.5 parts (``vae, unet, text_encoder, tokenizer, scheduler``) loaded by VLF-MSC's loader.

    Uses :meth:`semantic.image_decoder.VLFImageDecoder.from_pretrained` (same checkpoint
    resolution, required files, dtype/device handling and error message) and keeps its SD parts.

    Examples
    --------
    Needs the Stable Diffusion 1.5 weights (a hub id in the Hugging Face cache or a local folder), so the
    example is not run by the test-suite:

    >>> sorted(load_sd_components(DEFAULT_SD, device="cpu"))                           # doctest: +SKIP
    ['scheduler', 'text_encoder', 'tokenizer', 'unet', 'vae']
    """
    from semantic.image_decoder import VLFImageDecoder

    dec = VLFImageDecoder.from_pretrained(checkpoint, None, vlf_dim=1, num_queries=1, device=device, dtype=dtype,
                                          allow_download=allow_download, scheduler="ddim")
    if dec.tokenizer is None:
        raise FileNotFoundError(f"Img2Img-SC needs the CLIP tokenizer of the SD checkpoint {str(checkpoint)!r} "
                                "(its tokenizer/ folder is missing); pass a complete SD 1.5 folder with "
                                "--sd-checkpoint")
    return dict(vae=dec.vae, unet=dec.unet, text_encoder=dec.text_encoder, tokenizer=dec.tokenizer,
                scheduler=dec.scheduler)


class Img2ImgSC(nn.Module):
    """Img2Img-SC transceiver (see the module docstring).

    Calling it on ``images [B, 3, H, W]`` in ``[0, 1]`` with ``B`` captions returns an :class:`Img2ImgSCOutput`
    (latents ``[B, 4, h, w]``, images ``[B, 3, H, W]``); :meth:`transmit` sends latents only.

    Parameters
    ----------
    vae, unet, text_encoder, tokenizer, scheduler :
        SD 1.5 components (the scheduler's config is used to build a fresh ``DDIMScheduler``).
    channel : phy.channel.base.Channel or str
        The experiment's shared channel.
    config : Img2ImgSCConfig

    Examples
    --------
    Needs the Stable Diffusion 1.5 weights, so the example is not run by the test-suite
    (``tests/test_img2img_sc.py`` runs it on a tiny random stand-in):

    >>> parts = load_sd_components()                                                   # doctest: +SKIP
    >>> sc = Img2ImgSC(**parts, channel="awgn", config=Img2ImgSCConfig(latent_bits=8))  # doctest: +SKIP
    >>> out = sc(images, ["a dog on a beach"], snr_db=10.0)      # images [1, 3, 256, 256]  # doctest: +SKIP
    >>> out.images.shape, out.received_latents.shape                                   # doctest: +SKIP
    (torch.Size([1, 3, 256, 256]), torch.Size([1, 4, 32, 32]))
    """

    def __init__(self, vae: nn.Module, unet: nn.Module, text_encoder: nn.Module, tokenizer, scheduler,
                 channel: Union[Channel, str] = "awgn", config: Optional[Img2ImgSCConfig] = None):
        super().__init__()
        from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline

        self.config = config or Img2ImgSCConfig()
        if not isinstance(self.config, Img2ImgSCConfig):
            raise TypeError(f"config must be an Img2ImgSCConfig, got {type(self.config).__name__}")
        cfg = self.config
        if isinstance(channel, str):
            channel = make_channel(channel)
        if not isinstance(channel, Channel):
            raise TypeError(f"channel must be a phy.channel.base.Channel or a name, got {type(channel).__name__}")
        self.vae, self.unet, self.text_encoder, self.tokenizer = vae, unet, text_encoder, tokenizer
        self.pipe = StableDiffusionImg2ImgPipeline(
            vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
            scheduler=DDIMScheduler.from_config(scheduler.config), safety_checker=None, feature_extractor=None,
            requires_safety_checker=False)
        self.pipe.set_progress_bar_config(disable=True)
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        if cfg.image_size is not None and cfg.image_size % self.vae_scale_factor:
            raise ValueError(f"image_size must be a multiple of the VAE scale factor {self.vae_scale_factor}, "
                             f"got {cfg.image_size}")
        self.latent_link: Union[DigitalLink, BSCEquivalentLink, None] = None
        self.text: Optional[AsciiHamming] = None
        if cfg.mode == "public-code":
            if getattr(channel, "name", None) != "awgn":
                raise ValueError(f"mode='public-code' is the public code's AWGN bit-error formula; channel must be "
                                 f"AWGN, got {getattr(channel, 'name', type(channel).__name__)!r}")
        elif cfg.mode == "bit-true":
            self.latent_link = DigitalLink(
                channel, code=cfg.code, modulation=cfg.modulation, interleave=cfg.interleave,
                code_kwargs=cfg.code_kwargs)
            self.text = AsciiHamming(channel, AsciiHammingConfig(code=cfg.code, modulation=cfg.modulation,
                                                                 interleave=cfg.interleave,
                                                                 code_kwargs=cfg.code_kwargs))
        else:
            self.latent_link = BSCEquivalentLink(cfg.modulation, channel=channel)
            self.codec = TextCodec(block_size=1, errors="replace")
        self.channel = channel

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, config: Optional[Img2ImgSCConfig] = None,
                        channel: Union[Channel, str, None] = None) -> "Img2ImgSC":
        """Load SD 1.5 from ``config.sd_checkpoint`` (see :func:`load_sd_components`)."""
        cfg = config or Img2ImgSCConfig()
        parts = load_sd_components(cfg.sd_checkpoint, device=cfg.device, dtype=cfg.dtype,
                                   allow_download=cfg.allow_download)
        return cls(**parts, channel=channel if channel is not None else "awgn", config=cfg)

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    @property
    def bits_per_symbol(self) -> int:
        """Bits per channel symbol (public-code: 4, its uncoded 16-QAM)."""
        if self.latent_link is None:
            return PUBLIC_CODE_BITS_PER_SYMBOL
        return int(self.latent_link.bits_per_symbol)

    @property
    def sample_latent(self) -> bool:
        """Whether the VAE posterior is sampled (config value; default True only in public-code mode)."""
        if self.config.sample_latent is None:
            return self.config.mode == "public-code"
        return bool(self.config.sample_latent)

    # -- ledger ----------------------------------------------------------------------------------
    def latent_shape(self, image_size: Optional[int] = None) -> Tuple[int, int, int]:
        """``(C, h, w)`` of the latent of a square image of ``image_size`` (default the config's)."""
        s = image_size or self.config.image_size
        if s is None:
            raise ValueError("image_size is needed (the config keeps the input size)")
        c = int(self.vae.config.latent_channels)
        return (c, s // self.vae_scale_factor, s // self.vae_scale_factor)

    def latent_num_bits(self, num_values: int) -> int:
        """Information bits of a latent with ``num_values`` values (padded to the code's ``k``;
        public-code: 64 per value)."""
        if self.latent_link is None:
            return int(num_values) * PUBLIC_CODE_BITS_PER_VALUE
        b = int(num_values) * self.config.latent_bits
        if isinstance(self.latent_link, DigitalLink):
            b += (-b) % self.latent_link.k
        return b

    def latent_channel_uses(self, num_values: int) -> int:
        """Complex channel uses of the latent bits (public-code: ``ceil(bits / 4)``, uncounted there)."""
        if self.latent_link is None:
            return math.ceil(self.latent_num_bits(num_values) / PUBLIC_CODE_BITS_PER_SYMBOL)
        return int(self.latent_link.channel_uses(self.latent_num_bits(num_values)))

    def caption_channel_uses(self, caption: str) -> int:
        """Complex channel uses of the caption's ASCII bits (0 for ``""``)."""
        if not isinstance(caption, str):
            raise TypeError(f"caption must be a str, got {type(caption).__name__}")
        if self.text is not None:
            return int(self.text.channel_uses(caption))
        if self.latent_link is None:
            return math.ceil(public_code_caption_bits(caption) / PUBLIC_CODE_BITS_PER_SYMBOL)
        return math.ceil(BITS_PER_CHAR * len(caption) / self.bits_per_symbol)

    def channel_uses(self, captions: Sequence[str], num_values: Optional[int] = None) -> List[int]:
        """Per image: latent uses + caption uses (``num_values`` default: the configured latent)."""
        if num_values is None:
            num_values = math.prod(self.latent_shape())
        lat = self.latent_channel_uses(num_values)
        return [lat + self.caption_channel_uses(c) for c in captions]

    # -- transmitter -----------------------------------------------------------------------------
    def _check_images(self, images) -> torch.Tensor:
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3 \
                or not images.is_floating_point():
            raise ValueError(f"images must be a float tensor [B, 3, H, W] in [0, 1], got "
                             f"{getattr(images, 'dtype', type(images).__name__)} {tuple(getattr(images, 'shape', ()))}")
        s = self.config.image_size
        if s is not None and tuple(images.shape[-2:]) != (s, s):
            images = torch.nn.functional.interpolate(images.float(), size=(s, s), mode="bicubic",
                                                     align_corners=False, antialias=True).clamp(0, 1)
        h, w = images.shape[-2:]
        if h % self.vae_scale_factor or w % self.vae_scale_factor:
            raise ValueError(f"image sides must be multiples of {self.vae_scale_factor}, got {h}x{w} "
                             f"(set image_size)")
        return images

    @torch.no_grad()
    def encode_latents(self, images: torch.Tensor, generator: Optional[torch.Generator] = None,
                       seed: Optional[int] = None) -> torch.Tensor:
        """Images ``[B, 3, H, W]`` in [0, 1] -> SD latents ``[B, 4, H/f, W/f]`` float32 (x scaling factor).

        The posterior mean, or with :attr:`sample_latent` a posterior sample drawn from ``generator``
        (default: a CPU generator seeded from ``seed``, default the config's, through
        :func:`phy.sim.points.point_seed`, so it differs from the diffusion noise of the same seed).
        """
        images = self._check_images(images)
        x = images.to(self.device, self.vae.dtype) * 2 - 1
        dist = self.vae.encode(x).latent_dist
        if self.sample_latent:
            if generator is None:
                base = self.config.seed if seed is None else seed
                generator = torch.Generator().manual_seed(point_seed(int(base), "img2img-sc vae posterior"))
            z = dist.sample(generator)
        else:
            z = dist.mean
        return (z * self.vae.config.scaling_factor).float()

    def _quantizers(self, latents: torch.Tensor) -> List[UniformQuantizer]:
        cfg = self.config
        qs = []
        for z in latents:
            q = UniformQuantizer(cfg.latent_bits, clip=cfg.latent_clip, gray=cfg.gray)
            if cfg.latent_clip is None:
                q.fit(z.detach().cpu())
            qs.append(q)
        return qs

    # -- channel ---------------------------------------------------------------------------------
    def _send_bits(self, bits: torch.Tensor, snr_db: float) -> Tuple[torch.Tensor, int]:
        """Bits ``[B, L]`` through the latent link -> (received bits ``[B, L]``, uses per item)."""
        L = bits.shape[-1]
        if isinstance(self.latent_link, DigitalLink):
            padded, pad = self.latent_link.pad_payload(bits)
            out = self.latent_link(padded, snr_db=snr_db)
            return out.x_hat[..., :L], int(out.channel_uses)
        out = self.latent_link(bits, snr_db=snr_db)
        return out.x_hat, int(out.channel_uses)

    def _send_captions(self, captions: Sequence[str], snr_db: float) -> Tuple[List[str], List[int], List[int]]:
        """(received captions, uses per caption, character errors per caption)."""
        if self.text is not None:
            codec = self.text.codec
            rx, uses = self.text.transmit(list(captions), snr_db)
        else:
            codec = self.codec
            rx: List[str] = [""] * len(captions)
            uses = [0] * len(captions)
            groups: Dict[int, List[int]] = {}
            for i, c in enumerate(captions):
                if c:
                    groups.setdefault(len(c), []).append(i)
            for n in sorted(groups):
                idx = groups[n]
                bits, lengths = codec.encode_batch([captions[i] for i in idx])
                out = self.latent_link(bits.to(self.device), snr_db=snr_db)
                texts = codec.decode_batch(out.x_hat.cpu(), lengths)
                for j, i in enumerate(idx):
                    rx[i], uses[i] = texts[j], int(out.channel_uses)
        errs = [sum(a != b for a, b in zip(sent, got)) + abs(len(sent) - len(got))
                for sent, got in zip(captions, rx)]
        return rx, uses, errs

    def _transmit_public_code(self, latents: torch.Tensor, captions: Sequence[str], snr_db: float
                              ) -> Tuple[torch.Tensor, List[str], List[int], Dict[str, Any]]:
        gen = self.channel.generator("cpu")
        received, bit_errs, replaced = public_code_latent_channel(latents, snr_db, gen)
        rx_caps, cap_bit_errs = public_code_caption_channel(list(captions), snr_db, gen)
        B = latents.shape[0]
        n = math.prod(latents.shape[1:])
        lat_uses = self.latent_channel_uses(n)
        cap_uses = [self.caption_channel_uses(c) for c in captions]
        info = {"latent_uses": [lat_uses] * B, "caption_uses": cap_uses,
                "latent_bits": [self.latent_num_bits(n)] * B,
                "caption_bits": [public_code_caption_bits(c) for c in captions],
                "latent_bit_errors": bit_errs.tolist(), "latent_replaced": replaced.tolist(),
                "caption_bit_errors": cap_bit_errs,
                "caption_char_errors": [sum(a != b for a, b in zip(c, r)) for c, r in zip(captions, rx_caps)],
                "bit_error_rate": public_code_bit_error_rate(snr_db)}
        return received.to(latents.device), rx_caps, [lat_uses + c for c in cap_uses], info

    @torch.no_grad()
    def transmit(self, latents: torch.Tensor, captions: Sequence[str], snr_db: float, seed: Optional[int] = None
                 ) -> Tuple[torch.Tensor, List[str], List[int], Dict[str, Any]]:
        """Send latents ``[B, C, h, w]`` and captions at ``snr_db`` [dB] (Es/N0; public-code mode: Eb/N0).

        Returns ``(received latents [B, C, h, w] float32, received captions, channel uses per image, info)``.
        ``seed`` restarts the shared channel's random stream first. ``info``: ``latent_uses``,
        ``caption_uses``, ``latent_bits``, ``caption_bits``, ``latent_bit_errors``,
        ``caption_char_errors``; public-code also ``latent_replaced`` (values repaired by the outlier
        rule), ``caption_bit_errors`` and ``bit_error_rate`` (Pb).
        """
        if not isinstance(latents, torch.Tensor) or latents.dim() != 4 or not latents.is_floating_point():
            raise ValueError(f"latents must be a float tensor [B, C, h, w], got {tuple(getattr(latents, 'shape', ()))}")
        if isinstance(captions, str) or len(captions) != latents.shape[0] \
                or not all(isinstance(c, str) for c in captions):
            raise ValueError(f"captions must be a list of {latents.shape[0]} str (one per latent)")
        if isinstance(snr_db, bool) or not isinstance(snr_db, numbers.Real):
            raise TypeError(f"snr_db must be a number (Es/N0 in dB), got {type(snr_db).__name__}")
        check_snr(snr_db)
        if seed is not None:
            self.channel.reset(seed)
        if self.config.mode == "public-code":
            return self._transmit_public_code(latents, captions, float(snr_db))
        B = latents.shape[0]
        flat = latents.detach().float().cpu().reshape(B, -1)
        qs = self._quantizers(flat)
        bits = torch.stack([q.encode(z.unsqueeze(0))[0] for q, z in zip(qs, flat)])  # [B, N*b]
        rx_bits, lat_uses = self._send_bits(bits.to(self.device), float(snr_db))
        rx_bits = rx_bits.cpu()
        received = torch.stack([q.decode(b.unsqueeze(0))[0] for q, b in zip(qs, rx_bits)]).reshape(latents.shape)
        rx_caps, cap_uses, cap_errs = self._send_captions(captions, float(snr_db))
        info = {"latent_uses": [lat_uses] * B, "caption_uses": cap_uses,
                "latent_bits": [int(bits.shape[-1])] * B,
                "caption_bits": [BITS_PER_CHAR * len(c) for c in captions],
                "latent_bit_errors": (rx_bits != bits).sum(-1).tolist(),
                "caption_char_errors": cap_errs}
        uses = [lat_uses + c for c in cap_uses]
        return received.to(latents.device), rx_caps, uses, info

    # -- receiver --------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, received_latents: torch.Tensor, captions: Sequence[str], seed: Optional[int] = None,
                 num_inference_steps: Optional[int] = None) -> torch.Tensor:
        """SD img2img from the received latents and captions -> images ``[B, 3, H, W]`` float32 in [0, 1]."""
        cfg = self.config
        if len(captions) != received_latents.shape[0]:
            raise ValueError(f"need one caption per latent, got {len(captions)} for {received_latents.shape[0]}")
        gen = torch.Generator(device=self.device).manual_seed(int(cfg.seed if seed is None else seed))
        out = self.pipe(prompt=list(captions), image=received_latents.to(self.device, self.unet.dtype),
                        strength=float(cfg.strength), guidance_scale=float(cfg.guidance_scale),
                        num_inference_steps=int(num_inference_steps or cfg.num_inference_steps),
                        generator=gen, output_type="pt")
        return out.images.float().clamp(0, 1)

    # -- end to end ------------------------------------------------------------------------------
    def forward(self, images: torch.Tensor, captions: Sequence[str], snr_db: float,
                channel_seed: Optional[int] = None, seed: Optional[int] = None,
                latents: Optional[torch.Tensor] = None, generate: bool = True) -> Img2ImgSCOutput:
        """Encode (or take precomputed ``latents``), transmit at ``snr_db``, regenerate the images.

        ``channel_seed`` restarts the channel stream; ``seed`` the diffusion noise and, with
        :attr:`sample_latent`, the posterior sample (default the config's).
        """
        if latents is None:
            latents = self.encode_latents(images, seed=seed)
        received, caps, uses, info = self.transmit(latents, captions, snr_db, seed=channel_seed)
        imgs = self.generate(received, caps, seed=seed) if generate else None
        return Img2ImgSCOutput(images=imgs, captions=caps, latents=latents, received_latents=received,
                               channel_uses=uses, info=info)

    def extra_repr(self) -> str:
        c = self.config
        bits = "float64" if c.mode == "public-code" else c.latent_bits
        return (f"mode={c.mode!r}, latent_bits={bits}, modulation={c.modulation!r}, code={c.code!r}, "
                f"sample_latent={self.sample_latent}, strength={c.strength}, guidance_scale={c.guidance_scale}, "
                f"steps={c.num_inference_steps}")
