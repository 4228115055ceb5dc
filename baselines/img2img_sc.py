"""Img2Img-SC: the Stable Diffusion latent and a caption sent digitally, SD img2img at the receiver.

The image baseline of the VLF-MSC paper::

    image --SD VAE encoder (x scaling_factor)--> latent [4, H/8, W/8]
      --UniformQuantizer (b bits, per-image min/max range as side information)--> latent bits
    caption --7-bit ASCII (TextCodec)--> caption bits
    latent bits, caption bits --channel (mode below)--> received latent, received caption
      --SD img2img (DDIM, strength 0.6, guidance 9, 50 steps; the received latent is the initial
        latent, the received caption the prompt)--> image [3, H, W]

Channel modes (:attr:`Img2ImgSCConfig.mode`)
--------------------------------------------
* ``"bit-true"``: both payloads through :class:`phy.links.DigitalLink` (``code`` + ``modulation``,
  default uncoded 16-QAM) over the experiment's shared channel: modem, fading, ZF and demapping
  simulated symbol by symbol. The caption goes through
  :class:`baselines.ascii_hamming.AsciiHamming` with the same code and modulation.
* ``"bsc"``: the shortcut of the original public code, reproduced number for number: every bit is
  flipped independently with the closed-form uncoded BER of ``modulation``
  (:class:`phy.links.BSCEquivalentLink`; AWGN or Rayleigh only). The channel uses are those the bits
  would occupy with uncoded ``modulation``.

Channel uses per image (reported per item, :attr:`Img2ImgSCOutput.channel_uses`) =
latent uses + caption uses: bit-true ``DigitalLink.channel_uses(latent bits, padded to k)`` +
``AsciiHamming.channel_uses(caption)``; BSC ``ceil(latent bits / m) + ceil(7 chars / m)``
(``m`` bits per symbol). The quantiser's range (two floats per image) is side information, not
counted, as in the original code.

Checkpoints: the SD 1.5 VAE, U-Net, CLIP text encoder, tokenizer and scheduler are loaded by the
same code as VLF-MSC's image decoder (:meth:`semantic.image_decoder.VLFImageDecoder.from_pretrained`,
which resolves the checkpoint with :func:`semantic.checkpoints.resolve_checkpoint` and fails at
once, naming the checkpoint, when it is missing) and assembled into diffusers'
``StableDiffusionImg2ImgPipeline`` with a ``DDIMScheduler``.

Example
-------
>>> from phy.channels import AWGN
>>> sc = Img2ImgSC.from_pretrained(Img2ImgSCConfig(sd_checkpoint="stable-diffusion-v1-5/stable-diffusion-v1-5"),
...                                channel=AWGN(seed=0))                              # doctest: +SKIP
>>> out = sc(images, ["a dog on a beach"], snr_db=10.0)                            # doctest: +SKIP
>>> out.images.shape, out.channel_uses                                             # doctest: +SKIP
(torch.Size([1, 3, 256, 256]), [8228])
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

import semantic  # noqa: F401  (torchvision shim before diffusers/transformers)
from phy.channels import Channel, make_channel
from phy.conventions import check_snr
from phy.links import BSCEquivalentLink, DigitalLink
from phy.quantization import UniformQuantizer
from phy.text_codec import BITS_PER_CHAR, TextCodec
from semantic.image_decoder import DEFAULT_SD

from .ascii_hamming import AsciiHamming, AsciiHammingConfig

__all__ = ["IMG2IMG_MODES", "Img2ImgSCConfig", "Img2ImgSCOutput", "Img2ImgSC", "load_sd_components"]

IMG2IMG_MODES = ("bit-true", "bsc")


@dataclass
class Img2ImgSCConfig:
    """Configuration of Img2Img-SC (defaults: the public code's sampler settings)."""

    sd_checkpoint: str = DEFAULT_SD
    mode: str = "bit-true"                          # "bit-true" (DigitalLink) | "bsc" (closed-form flips)
    latent_bits: int = 8                            # quantiser bits per latent value
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
    sample_latent: bool = False                     # VAE posterior sample instead of its mean
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
        if self.mode == "bsc" and self.code not in ("none", "uncoded"):
            raise ValueError(f"mode='bsc' models uncoded {self.modulation}; code must be 'none', got {self.code!r}")


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
        ``latent_bits``, ``caption_bits`` (per image)
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

    Parameters
    ----------
    vae, unet, text_encoder, tokenizer, scheduler :
        SD 1.5 components (the scheduler's config is used to build a fresh ``DDIMScheduler``).
    channel : phy.channels.Channel or str
        The experiment's shared channel.
    config : Img2ImgSCConfig
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
            raise TypeError(f"channel must be a phy.channels.Channel or a name, got {type(channel).__name__}")
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
        if cfg.mode == "bit-true":
            self.latent_link: Union[DigitalLink, BSCEquivalentLink] = DigitalLink(
                channel, code=cfg.code, modulation=cfg.modulation, interleave=cfg.interleave,
                code_kwargs=cfg.code_kwargs)
            self.text = AsciiHamming(channel, AsciiHammingConfig(code=cfg.code, modulation=cfg.modulation,
                                                                 interleave=cfg.interleave,
                                                                 code_kwargs=cfg.code_kwargs))
        else:
            self.latent_link = BSCEquivalentLink(cfg.modulation, channel=channel)
            self.text = None
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
        return int(self.latent_link.bits_per_symbol)

    # -- ledger ----------------------------------------------------------------------------------
    def latent_shape(self, image_size: Optional[int] = None) -> Tuple[int, int, int]:
        """``(C, h, w)`` of the latent of a square image of ``image_size`` (default the config's)."""
        s = image_size or self.config.image_size
        if s is None:
            raise ValueError("image_size is needed (the config keeps the input size)")
        c = int(self.vae.config.latent_channels)
        return (c, s // self.vae_scale_factor, s // self.vae_scale_factor)

    def latent_num_bits(self, num_values: int) -> int:
        """Information bits of a latent with ``num_values`` values (padded to the code's ``k``)."""
        b = int(num_values) * self.config.latent_bits
        if isinstance(self.latent_link, DigitalLink):
            b += (-b) % self.latent_link.k
        return b

    def latent_channel_uses(self, num_values: int) -> int:
        """Complex channel uses of the latent bits."""
        return int(self.latent_link.channel_uses(self.latent_num_bits(num_values)))

    def caption_channel_uses(self, caption: str) -> int:
        """Complex channel uses of the caption's ASCII bits (0 for ``""``)."""
        if not isinstance(caption, str):
            raise TypeError(f"caption must be a str, got {type(caption).__name__}")
        if self.text is not None:
            return int(self.text.channel_uses(caption))
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
    def encode_latents(self, images: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Images ``[B, 3, H, W]`` in [0, 1] -> SD latents ``[B, 4, H/f, W/f]`` float32 (x scaling factor)."""
        images = self._check_images(images)
        x = images.to(self.device, self.vae.dtype) * 2 - 1
        dist = self.vae.encode(x).latent_dist
        z = dist.sample(generator) if self.config.sample_latent else dist.mean
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

    @torch.no_grad()
    def transmit(self, latents: torch.Tensor, captions: Sequence[str], snr_db: float, seed: Optional[int] = None
                 ) -> Tuple[torch.Tensor, List[str], List[int], Dict[str, Any]]:
        """Send latents ``[B, C, h, w]`` and captions at Es/N0 ``snr_db`` [dB].

        Returns ``(received latents [B, C, h, w] float32, received captions, channel uses per image, info)``.
        ``seed`` restarts the shared channel's random stream first.
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

        ``channel_seed`` restarts the channel stream; ``seed`` the diffusion noise (default the config's).
        """
        if latents is None:
            latents = self.encode_latents(images)
        received, caps, uses, info = self.transmit(latents, captions, snr_db, seed=channel_seed)
        imgs = self.generate(received, caps, seed=seed) if generate else None
        return Img2ImgSCOutput(images=imgs, captions=caps, latents=latents, received_latents=received,
                               channel_uses=uses, info=info)

    def extra_repr(self) -> str:
        c = self.config
        return (f"mode={c.mode!r}, latent_bits={c.latent_bits}, modulation={c.modulation!r}, code={c.code!r}, "
                f"strength={c.strength}, guidance_scale={c.guidance_scale}, steps={c.num_inference_steps}")
