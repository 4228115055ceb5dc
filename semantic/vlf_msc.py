"""VLF-MSC: one vision-language feature, sent once over the channel, decoded to text *and* images.

::

    image --BLIP-2 ViT + Q-Former--> VLF [N, d] --AnalogLink (N*d/2 complex uses, per-example power
    normalisation)--> AWGN/Rayleigh (+MMSE) --> received VLF --+--> OPT (soft prompt)      --> caption
                                                              +--> SD 1.5 (VLF -> CLIP)   --> image

The encoder runs once per image for any number of SNR points: :meth:`VLFMSC.encode` caches VLFs in
memory (and on disk, as one safetensors file per image, when ``vlf_cache_dir`` is set), keyed by the
checkpoint and the image's content hash (or a key you pass, e.g. a file's SHA-1).

Example
-------
>>> cfg = VLFMSCConfig(blip2_checkpoint="Salesforce/blip2-opt-2.7b", channel="rayleigh")  # doctest: +SKIP
>>> system = VLFMSC.from_config(cfg)                                                    # doctest: +SKIP
>>> outs = system.sweep(images, snr_dbs=[-5, 0, 5, 10])                                  # doctest: +SKIP
>>> outs[0].captions, outs[0].images.shape, outs[0].channel_uses                        # doctest: +SKIP
(['a dog ...', ...], torch.Size([B, 3, 256, 256]), 12288)
"""
from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
from torch import nn

from phy.channel.base import Channel
from phy.channel.registry import make_channel
from phy.mimo.equalization import EQUALIZERS
from phy.link.analog import AnalogLink
from phy.link.base import LinkOutput

from .image_decoder import DEFAULT_SD, VLFImageDecoder
from .text_decoder import TEXT_MODES, OPTTextDecoder
from .vlf import DEFAULT_BLIP2, VLFEncoder, images_to_list, load_blip2

__all__ = ["RECEIVERS", "VLFMSCConfig", "VLFMSCOutput", "VLFMSC", "image_key", "link_equalizer"]

#: Receivers of an analog feature: the MMSE and ZF equalisers, or ``"identity"`` (the decoder gets the received
#: ``y = x + n`` as it is: the VLF-MSC paper's AWGN receiver; AWGN only).
RECEIVERS = EQUALIZERS + ("identity",)


def link_equalizer(receiver: str, channel: Union[Channel, str]) -> str:
    """The equaliser an analog link runs for ``receiver`` (one of :data:`RECEIVERS`) on ``channel``.

    ``"identity"`` is only defined on AWGN, where it is ZF with ``h = 1`` (the received ``y`` untouched); on a
    fading channel the decoder would get ``h x + n`` with nothing to undo ``h``, which this package does not
    model, so it is refused there. MMSE on AWGN is not the identity: it scales ``y`` by ``1 / (1 + N0)``.

    Examples
    --------
    >>> link_equalizer("identity", "awgn"), link_equalizer("mmse", "rayleigh")
    ('zf', 'mmse')
    >>> link_equalizer("identity", "rayleigh")
    Traceback (most recent call last):
    ...
    ValueError: ...
    """
    if receiver not in RECEIVERS:
        raise ValueError(f"receiver must be one of {RECEIVERS}, got {receiver!r}")
    if receiver != "identity":
        return receiver
    name = channel if isinstance(channel, str) else getattr(channel, "name", type(channel).__name__)
    if str(name).split("(")[0] != "awgn":
        raise ValueError(f"the identity receiver (no equaliser) is defined on AWGN only, got channel {name!r}; "
                         "use mmse (the default with fading) or zf")
    return "zf"



@dataclass
class VLFMSCConfig:
    """Configuration of a VLF-MSC system (models, channel, decoding).

    ``equalizer`` defaults to ``"mmse"``: the VLF is an analog feature, and on per-symbol Rayleigh
    fading ZF divides by ``h`` (``E[1/|h|^2]`` is infinite), which measured a received-VLF NMSE of
    47.7 / 16.1 / 1.27 at -5 / 0 / 10 dB against MMSE's 0.79 / 0.60 / 0.20 (``"zf"`` stays selectable).
    On AWGN, ZF is the identity while MMSE scales the received VLF by ``1 / (1 + N0)`` (0.24 at -5 dB, 0.5 at
    0 dB) before decoders trained on clean VLFs; ``"identity"`` (AWGN only, :func:`link_equalizer`) is the
    paper's AWGN receiver.

    Examples
    --------
    >>> cfg = VLFMSCConfig(channel="rayleigh", image_size=128)
    >>> cfg.equalizer, cfg.text_mode, cfg.blip2_checkpoint
    ('mmse', 'pooled', 'Salesforce/blip2-opt-6.7b')
    >>> VLFMSCConfig(text_mode="tokens")
    Traceback (most recent call last):
    ...
    ValueError: ...
    """

    blip2_checkpoint: str = DEFAULT_BLIP2          # transmitter + OPT text receiver (one checkpoint)
    sd_checkpoint: str = DEFAULT_SD                # Stable Diffusion 1.5 base
    image_decoder: Optional[str] = None            # trained projection (+ U-Net) folder; None = untrained
    text_projection: Optional[str] = None          # fine-tuned W_proj folder; None = BLIP-2's projection
    text_mode: str = "pooled"                      # "pooled" (paper: one soft prompt) | "blip2" (N tokens)
    channel: str = "awgn"                          # any phy.channel name: awgn | rayleigh | rician | ...
    equalizer: str = "mmse"                        # "mmse" (default; fading) | "zf" | "identity" (AWGN only)
    channel_seed: int = 0
    device: Optional[str] = None                   # None: CUDA if available
    dtype: str = "auto"                            # auto: float16 on CUDA, float32 on CPU
    device_map: Optional[str] = None               # e.g. "auto" for the 6.7B model over GPUs (accelerate)
    decode_text: bool = True
    decode_images: bool = True
    num_inference_steps: int = 50                  # DDIM steps
    guidance_scale: float = 1.0
    image_size: int = 256                          # generated image side in pixels
    seed: int = 0                                  # diffusion initial latents
    max_new_tokens: int = 30
    num_beams: int = 1
    prompt: str = ""
    vlf_cache_dir: Optional[str] = None
    allow_download: Optional[bool] = None

    def __post_init__(self):
        if self.text_mode not in TEXT_MODES:
            raise ValueError(f"text_mode must be one of {TEXT_MODES}, got {self.text_mode!r}")
        if not (self.decode_text or self.decode_images):
            raise ValueError("at least one of decode_text / decode_images must be True")
        if self.equalizer not in RECEIVERS:
            raise ValueError(f"equalizer must be one of {RECEIVERS}, got {self.equalizer!r}")
        if self.equalizer == "identity":
            link_equalizer(self.equalizer, self.channel)  # AWGN only: refused at once otherwise


@dataclass
class VLFMSCOutput:
    """Result of one SNR point.

    Attributes
    ----------
    snr_db : float
    vlf : ``[B, N, d]`` sent VLF
    received : ``[B, N, d]`` received VLF (the input of *both* decoders)
    captions : list of B str, or None
    images : ``[B, 3, H, W]`` in [0, 1], or None
    channel_uses : complex channel uses per image

    Examples
    --------
    >>> out = VLFMSCOutput(snr_db=5.0, vlf=torch.zeros(2, 32, 768), received=torch.zeros(2, 32, 768),
    ...                    captions=["a dog", "a cat"], images=None, channel_uses=12288)
    >>> out.received.shape, out.captions
    (torch.Size([2, 32, 768]), ['a dog', 'a cat'])
    """

    snr_db: float
    vlf: torch.Tensor
    received: torch.Tensor
    captions: Optional[List[str]]
    images: Optional[torch.Tensor]
    channel_uses: int
    info: Dict[str, Any] = field(default_factory=dict)


def image_key(image) -> str:
    """Content hash (SHA-1) of a PIL image or an image tensor (for VLF cache keys).

    Examples
    --------
    >>> x = torch.zeros(3, 4, 4)
    >>> image_key(x) == image_key(x.clone()), image_key(x) == image_key(torch.ones(3, 4, 4)), len(image_key(x))
    (True, False, 40)
    """
    h = hashlib.sha1()
    if isinstance(image, torch.Tensor):
        t = image.detach().float().cpu().contiguous()
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    else:
        h.update(f"{image.mode}{image.size}".encode())
        h.update(image.tobytes())
    return h.hexdigest()


class VLFMSC(nn.Module):
    """The VLF-MSC system: :class:`~semantic.vlf.VLFEncoder`, an analog link over the shared channel,
    :class:`~semantic.text_decoder.OPTTextDecoder` and :class:`~semantic.image_decoder.VLFImageDecoder`.

    Parameters
    ----------
    encoder : VLFEncoder
    text_decoder : OPTTextDecoder, optional
    image_decoder : VLFImageDecoder, optional
    channel : phy.channel.base.Channel or name
        The experiment's channel object (shared with any other scheme being compared).
    config : VLFMSCConfig, optional (decoding defaults, cache folder)
    blip2_projection : nn.Linear, optional
        BLIP-2's own ``language_projection`` (kept when a fine-tuned ``W_proj`` replaces it in the text
        decoder), so that BLIP-2's native caption of an image stays available (:meth:`blip2_captioner`).

    Examples
    --------
    Needs the BLIP-2 and Stable Diffusion 1.5 weights, so the example is not run by the test-suite
    (``tests/test_vlf_msc.py`` runs the system on tiny random stand-ins):

    >>> system = VLFMSC.from_config(VLFMSCConfig(blip2_checkpoint="Salesforce/blip2-opt-2.7b"))  # doctest: +SKIP
    >>> out = system(images, snr_db=10.0)                 # images: [B, 3, H, W] in [0, 1]     # doctest: +SKIP
    >>> out.received.shape, len(out.captions), out.images.shape                               # doctest: +SKIP
    (torch.Size([2, 32, 768]), 2, torch.Size([2, 3, 256, 256]))
    """

    def __init__(self, encoder: VLFEncoder, text_decoder: Optional[OPTTextDecoder] = None,
                 image_decoder: Optional[VLFImageDecoder] = None, channel: Union[Channel, str] = "awgn",
                 config: Optional[VLFMSCConfig] = None, blip2_projection: Optional[nn.Linear] = None):
        super().__init__()
        if text_decoder is None and image_decoder is None:
            raise ValueError("VLF-MSC needs at least one decoder (text_decoder or image_decoder)")
        self.config = config or VLFMSCConfig()
        self.encoder = encoder
        self.text_decoder = text_decoder
        self.image_decoder = image_decoder
        if isinstance(channel, str):
            channel = make_channel(channel, seed=self.config.channel_seed)
        self.link = AnalogLink(channel, equalizer=link_equalizer(self.config.equalizer, channel))
        self.blip2_projection = blip2_projection
        self._cache: Dict[str, torch.Tensor] = {}

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: VLFMSCConfig, channel: Optional[Channel] = None) -> "VLFMSC":
        """Load every model named in ``config`` (one BLIP-2 load shared by transmitter and OPT)."""
        cfg = config
        model, processor = load_blip2(cfg.blip2_checkpoint, device=cfg.device, dtype=cfg.dtype,
                                      device_map=cfg.device_map, allow_download=cfg.allow_download)
        encoder = VLFEncoder.from_blip2(model, processor, checkpoint=str(cfg.blip2_checkpoint))
        text = None
        if cfg.decode_text:
            text = OPTTextDecoder.from_blip2(model, processor.tokenizer, mode=cfg.text_mode,
                                             projection=cfg.text_projection, prompt=cfg.prompt,
                                             max_new_tokens=cfg.max_new_tokens, num_beams=cfg.num_beams)
        else:  # free the LLM
            model.language_model = None
        image = None
        if cfg.decode_images:
            if cfg.image_decoder is None:
                warnings.warn("VLF-MSC: no trained image decoder given (image_decoder / --image-decoder); the "
                              "VLF -> CLIP projection is freshly initialised, so generated images are not "
                              "meaningful. Train one with `semcom train-image-decoder`.", stacklevel=2)
            with torch.random.fork_rng(devices=[]):  # an untrained projection drawn from cfg.seed, not the global stream
                torch.manual_seed(cfg.seed)
                image = VLFImageDecoder.from_pretrained(
                    cfg.sd_checkpoint, cfg.image_decoder, vlf_dim=encoder.dim, num_queries=encoder.num_queries,
                    device=cfg.device if cfg.device_map is None else encoder.device, dtype=cfg.dtype,
                    allow_download=cfg.allow_download, num_inference_steps=cfg.num_inference_steps,
                    guidance_scale=cfg.guidance_scale, height=cfg.image_size, width=cfg.image_size)
        return cls(encoder, text, image, channel if channel is not None else cfg.channel, cfg,
                   blip2_projection=model.language_projection if text is not None else None)

    @property
    def channel(self) -> Channel:
        return self.link.channel

    def channel_uses(self) -> int:
        """Complex channel uses per image (``N*d/2``)."""
        return self.link.channel_uses(self.encoder.vlf_shape)

    def ledger(self, source_shape: Sequence[int] = (3, 256, 256), convention: str = "complex") -> dict:
        """Channel-use ledger: ``n_ch``, ``bcr`` (for the 256x256 RGB input by default), VLF shape."""
        led = self.encoder.ledger(source_shape, convention)
        led["n_ch"] = self.channel_uses()
        led["channel"] = self.channel.name if hasattr(self.channel, "name") else type(self.channel).__name__
        return led

    # -- transmitter -----------------------------------------------------------------------------
    def _cache_file(self, key: str) -> Optional[Path]:
        if not self.config.vlf_cache_dir:
            return None
        name = hashlib.sha1(f"{self.encoder.checkpoint}|{key}".encode()).hexdigest()
        return Path(self.config.vlf_cache_dir) / f"{name}.safetensors"

    def _cache_get(self, key: str) -> Optional[torch.Tensor]:
        if key in self._cache:
            return self._cache[key]
        f = self._cache_file(key)
        if f is not None and f.is_file():
            from safetensors.torch import load_file

            v = load_file(str(f))["vlf"]
            if tuple(v.shape) == self.encoder.vlf_shape:
                self._cache[key] = v
                return v
        return None

    def _cache_put(self, key: str, v: torch.Tensor) -> None:
        v = v.detach().float().cpu().contiguous()
        self._cache[key] = v
        f = self._cache_file(key)
        if f is not None:
            from safetensors.torch import save_file

            f.parent.mkdir(parents=True, exist_ok=True)
            tmp = f.with_name(f"{f.name}.{os.getpid()}.tmp")  # one per process (torchrun ranks)
            save_file({"vlf": v}, str(tmp), metadata={"key": key, "checkpoint": str(self.encoder.checkpoint)})
            os.replace(tmp, f)

    def encode(self, images, keys: Optional[Sequence[str]] = None, use_cache: bool = True) -> torch.Tensor:
        """Images (PIL list or ``[B, 3, H, W]`` in [0, 1]) -> VLF ``[B, N, d]`` float32 on the encoder device.

        ``keys`` (one per image, e.g. a file path hash) name the images in the cache; by default the
        pixel content is hashed. Only images not in the cache go through BLIP-2.
        """
        imgs = images_to_list(images)
        if keys is None:
            keys = [image_key(im) for im in imgs] if use_cache else [None] * len(imgs)
        elif len(keys) != len(imgs):
            raise ValueError(f"keys must have one entry per image ({len(imgs)}), got {len(keys)}")
        out: List[Optional[torch.Tensor]] = [self._cache_get(k) if (use_cache and k) else None for k in keys]
        todo = [i for i, v in enumerate(out) if v is None]
        if todo:
            new = self.encoder.encode([imgs[i] for i in todo])
            for j, i in enumerate(todo):
                out[i] = new[j]
                if use_cache and keys[i]:
                    self._cache_put(keys[i], new[j])
        dev = self.encoder.device
        return torch.stack([v.to(dev, torch.float32) for v in out])

    # -- channel ---------------------------------------------------------------------------------
    def transmit(self, vlf: torch.Tensor, channel: Union[None, Channel, str] = None, snr_db=10.0,
                 seed: Optional[int] = None, return_output: bool = False):
        """Send VLFs ``[B, N, d]`` through the analog link at Es/N0 ``snr_db`` -> received ``[B, N, d]``.

        ``channel`` overrides the system's channel for this call (an object, or a name built with the
        config's ``channel_seed``); ``seed`` restarts the channel's random stream first, so the same seed
        gives the same noise. ``return_output=True`` returns the full :class:`phy.link.base.LinkOutput`.
        """
        if not isinstance(vlf, torch.Tensor) or vlf.dim() != 3:
            raise ValueError(f"vlf must be a tensor [batch, N, d], got {tuple(getattr(vlf, 'shape', ()))}")
        link = self.link
        if channel is not None:
            ch = make_channel(channel, seed=self.config.channel_seed) if isinstance(channel, str) else channel
            link = AnalogLink(ch, equalizer=link_equalizer(self.config.equalizer, ch))
        if seed is not None:
            link.channel.reset(seed)
        out: LinkOutput = link(vlf.float(), snr_db=snr_db)
        return out if return_output else out.x_hat

    # -- receivers -------------------------------------------------------------------------------
    def blip2_captioner(self) -> OPTTextDecoder:
        """BLIP-2's native captioner on this system's OPT: all ``N`` query tokens through BLIP-2's own
        ``language_projection`` (also when a fine-tuned ``W_proj`` drives :attr:`text_decoder`).

        Applied to the noiseless VLF it gives "the BLIP-2 caption" of an image: the paper's original
        text, the text baselines' payload and the default text reference of ``semcom vlf-msc-eval``.
        """
        from .text_decoder import SoftPromptProjection

        td = self.text_decoder
        if td is None:
            raise ValueError("this VLFMSC has no text decoder (decode_text=False): BLIP-2's OPT is not loaded")
        if td.mode == "blip2" and self.blip2_projection is None:
            return td
        linear = self.blip2_projection if self.blip2_projection is not None else td.projection.linear
        proj = SoftPromptProjection.from_linear(linear, mode="blip2")
        return OPTTextDecoder(td.language_model, td.tokenizer, proj, prompt=td.prompt,
                              max_new_tokens=td.max_new_tokens, num_beams=td.num_beams)

    def decode_text(self, received: torch.Tensor, **kwargs) -> List[str]:
        """Captions from a received VLF ``[B, N, d]`` (see :meth:`OPTTextDecoder.generate`)."""
        if self.text_decoder is None:
            raise ValueError("this VLFMSC has no text decoder (decode_text=False)")
        return self.text_decoder.generate(received, **kwargs)

    def decode_image(self, received: torch.Tensor, seed: Optional[int] = None, **kwargs) -> torch.Tensor:
        """Images ``[B, 3, H, W]`` in [0, 1] from a received VLF (see :meth:`VLFImageDecoder.generate`)."""
        if self.image_decoder is None:
            raise ValueError("this VLFMSC has no image decoder (decode_images=False)")
        return self.image_decoder.generate(received, seed=self.config.seed if seed is None else seed, **kwargs)

    def decode(self, received: torch.Tensor):
        """``(captions or None, images or None)``: the *same* received VLF feeds both decoders."""
        caps = self.decode_text(received) if self.text_decoder is not None else None
        imgs = self.decode_image(received) if self.image_decoder is not None else None
        return caps, imgs

    # -- end to end ------------------------------------------------------------------------------
    def forward(self, images, snr_db: float, keys: Optional[Sequence[str]] = None,
                channel_seed: Optional[int] = None) -> VLFMSCOutput:
        """Encode (cached), transmit at ``snr_db``, decode to captions and images."""
        vlf = self.encode(images, keys)
        return self._one_point(vlf, snr_db, channel_seed)

    def _one_point(self, vlf: torch.Tensor, snr_db: float, channel_seed: Optional[int]) -> VLFMSCOutput:
        out = self.transmit(vlf, snr_db=snr_db, seed=channel_seed, return_output=True)
        received = out.x_hat
        caps, imgs = self.decode(received)
        return VLFMSCOutput(snr_db=float(snr_db), vlf=vlf, received=received, captions=caps, images=imgs,
                            channel_uses=out.channel_uses)

    def sweep(self, images, snr_dbs: Sequence[float], keys: Optional[Sequence[str]] = None,
              channel_seed: Optional[int] = None) -> List[VLFMSCOutput]:
        """One :class:`VLFMSCOutput` per SNR; BLIP-2 runs once. ``channel_seed`` (default: the config's)
        restarts the channel stream at each point with ``channel_seed + index``."""
        vlf = self.encode(images, keys)
        base = self.config.channel_seed if channel_seed is None else channel_seed
        return [self._one_point(vlf, s, base + i) for i, s in enumerate(snr_dbs)]
