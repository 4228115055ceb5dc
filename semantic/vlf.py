"""VLF-MSC transmitter: BLIP-2's frozen vision encoder + Q-Former produce the vision-language feature.

::

    image [3, 256, 256] --Blip2Processor (resize 224, CLIP norm)--> ViT-g (frozen)
        --image tokens--> Q-Former (N learned queries, cross-attention) --> VLF [N = 32, d = 768]

The VLF is the Q-Former's ``last_hidden_state`` *before* BLIP-2's language projection; it is what
:class:`phy.link.analog.AnalogLink` maps onto ``N*d/2 = 12288`` complex channel uses. One BLIP-2 checkpoint
(``Salesforce/blip2-opt-6.7b`` by default, ``Salesforce/blip2-opt-2.7b`` selectable) holds both the
transmitter and the text receiver (OPT + language projection); :func:`load_blip2` loads it once and
:meth:`VLFEncoder.from_blip2` / :meth:`semantic.text_decoder.OPTTextDecoder.from_blip2` share its modules.

Example
-------
>>> enc = VLFEncoder.from_pretrained("Salesforce/blip2-opt-2.7b", device="cuda")  # doctest: +SKIP
>>> vlf = enc.encode(list_of_pil_images)                                             # doctest: +SKIP
>>> vlf.shape, enc.channel_uses(), round(enc.bandwidth_compression_ratio(), 4)       # doctest: +SKIP
(torch.Size([B, 32, 768]), 12288, 0.0625)
"""
from __future__ import annotations

import math
import os
from typing import Any, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from phy.utils.conventions import bandwidth_compression_ratio

from .checkpoints import resolve_checkpoint, resolve_device, resolve_dtype

__all__ = ["DEFAULT_BLIP2", "BLIP2_CHECKPOINTS", "load_blip2", "VLFEncoder", "images_to_list", "check_vlf"]

#: The BLIP-2 checkpoint of the VLF-MSC paper (transmitter and OPT text receiver).
DEFAULT_BLIP2 = "Salesforce/blip2-opt-6.7b"
#: The BLIP-2 checkpoints known to work (OPT-6.7b, and the smaller OPT-2.7b).
BLIP2_CHECKPOINTS = ("Salesforce/blip2-opt-6.7b", "Salesforce/blip2-opt-2.7b")

ImagesLike = Union[torch.Tensor, Sequence[Any]]


def check_vlf(vlf, name: str = "received") -> torch.Tensor:
    """A (received) VLF must be a float tensor ``[batch, N, d]``; ``ValueError`` naming ``name`` otherwise.

    Examples
    --------
    >>> check_vlf(torch.zeros(2, 32, 768)).shape
    torch.Size([2, 32, 768])
    >>> check_vlf(torch.zeros(2, 768), name="vlf")
    Traceback (most recent call last):
    ...
    ValueError: vlf must be ...
    """
    if not isinstance(vlf, torch.Tensor) or vlf.dim() != 3 or not vlf.is_floating_point():
        raise ValueError(f"{name} must be a float tensor [batch, N, d], got "
                         f"{getattr(vlf, 'dtype', type(vlf).__name__)} {tuple(getattr(vlf, 'shape', ()))}")
    return vlf


def load_blip2(checkpoint: Union[str, os.PathLike] = DEFAULT_BLIP2, *, device=None, dtype=None,
               device_map=None, allow_download: Optional[bool] = None):
    """Load ``Blip2ForConditionalGeneration`` and its ``Blip2Processor`` from a hub id or folder.

    Parameters
    ----------
    checkpoint : str or PathLike
        Hub id (``"Salesforce/blip2-opt-6.7b"``, ``"Salesforce/blip2-opt-2.7b"``) or a local folder.
    device : str or torch.device, optional
        Where to put the model (default: CUDA if available). Ignored when ``device_map`` is given.
    dtype : str or torch.dtype, optional
        ``"auto"``/None: float16 on CUDA, float32 on CPU. The Q-Former and query tokens stay in
        float32 (``_keep_in_fp32_modules`` of transformers).
    device_map : str or dict, optional
        Passed to ``from_pretrained`` (e.g. ``"auto"`` to spread the 6.7B model over GPUs; needs
        ``accelerate``).

    Returns
    -------
    (model, processor)

    Raises
    ------
    semantic.checkpoints.CheckpointNotFoundError
        When the checkpoint is not available locally (see :mod:`semantic.checkpoints`).

    Examples
    --------
    Needs the BLIP-2 weights (about 15 GB for OPT-2.7b) in the Hugging Face cache or a local folder, so
    the example is not run by the test-suite:

    >>> model, processor = load_blip2("Salesforce/blip2-opt-2.7b", device="cuda")   # doctest: +SKIP
    >>> model.config.num_query_tokens                                               # doctest: +SKIP
    32
    """
    from transformers import Blip2ForConditionalGeneration, Blip2Processor

    path = resolve_checkpoint(checkpoint, what="BLIP-2 (vision encoder, Q-Former, OPT)",
                              required_files=("config.json",), allow_download=allow_download,
                              option="--blip2-checkpoint")
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    kwargs = dict(dtype=dt)
    if device_map is not None:
        kwargs["device_map"] = device_map
    model = Blip2ForConditionalGeneration.from_pretrained(path, **kwargs)
    if device_map is None:
        model = model.to(dev)
    model.eval().requires_grad_(False)
    processor = Blip2Processor.from_pretrained(path)
    return model, processor


def images_to_list(images: ImagesLike) -> List[Any]:
    """Validate a batch of images: a list of PIL images / ``[3, H, W]`` tensors, or a ``[B, 3, H, W]`` tensor.

    Tensors must be real, in ``[0, 1]``.

    Examples
    --------
    >>> len(images_to_list(torch.rand(2, 3, 8, 8))), len(images_to_list([torch.rand(3, 8, 8)]))
    (2, 1)
    >>> images_to_list(torch.rand(2, 3, 8, 8) * 255)
    Traceback (most recent call last):
    ...
    ValueError: ...
    """
    if isinstance(images, torch.Tensor):
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images tensor must have shape [batch, 3, height, width], got {tuple(images.shape)}")
        images = list(images)
    if not isinstance(images, (list, tuple)) or len(images) == 0:
        raise TypeError(f"images must be a non-empty list of PIL images / [3, H, W] tensors or a "
                        f"[B, 3, H, W] tensor, got {type(images).__name__}")
    out = []
    for i, im in enumerate(images):
        if isinstance(im, torch.Tensor):
            if im.dim() != 3 or im.shape[0] != 3 or not im.is_floating_point():
                raise ValueError(f"images[{i}] must be a float tensor [3, H, W] in [0, 1], got "
                                 f"{im.dtype} {tuple(im.shape)}")
            if im.numel() and (im.min() < -1e-6 or im.max() > 1 + 1e-6):
                raise ValueError(f"images[{i}] must be in [0, 1], got range [{im.min().item():.3f}, "
                                 f"{im.max().item():.3f}]")
        elif not hasattr(im, "convert"):
            raise TypeError(f"images[{i}] must be a PIL image or a [3, H, W] tensor, got {type(im).__name__}")
        out.append(im)
    return out


class VLFEncoder(nn.Module):
    """Frozen BLIP-2 vision encoder + Q-Former: images -> VLF ``[batch, N, d]``.

    Parameters
    ----------
    vision_model : Blip2VisionModel
    qformer : Blip2QFormerModel
    query_tokens : nn.Parameter, ``[1, N, d]``
    image_processor : BlipImageProcessor, optional
        Needed by :meth:`preprocess`/:meth:`encode` (not by :meth:`forward`).
    checkpoint : str, optional
        Name of the checkpoint, used as part of VLF cache keys.

    Inputs/outputs
    --------------
    ``forward(pixel_values [B, 3, S, S] float) -> vlf [B, N, d] float32``

    Examples
    --------
    Needs the BLIP-2 weights, so the example is not run by the test-suite (``tests/tiny_models.py``
    builds a tiny random BLIP-2 with the same layout):

    >>> encoder = VLFEncoder.from_pretrained("Salesforce/blip2-opt-2.7b")          # doctest: +SKIP
    >>> encoder.encode(torch.rand(2, 3, 256, 256)).shape                           # doctest: +SKIP
    torch.Size([2, 32, 768])
    >>> encoder.channel_uses                                                        # doctest: +SKIP
    12288
    """

    def __init__(self, vision_model: nn.Module, qformer: nn.Module, query_tokens: nn.Parameter,
                 image_processor=None, checkpoint: Optional[str] = None):
        super().__init__()
        if query_tokens.dim() != 3 or query_tokens.shape[0] != 1:
            raise ValueError(f"query_tokens must have shape [1, N, d], got {tuple(query_tokens.shape)}")
        self.vision_model = vision_model
        self.qformer = qformer
        self.query_tokens = query_tokens
        self.image_processor = image_processor
        self.checkpoint = checkpoint
        self.requires_grad_(False)

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_blip2(cls, model, processor=None, checkpoint: Optional[str] = None) -> "VLFEncoder":
        """Share the vision encoder, Q-Former and queries of a loaded BLIP-2 model (no copy)."""
        ip = getattr(processor, "image_processor", processor)
        name = checkpoint or getattr(model.config, "_name_or_path", None)
        return cls(model.vision_model, model.qformer, model.query_tokens, ip, name)

    @classmethod
    def from_pretrained(cls, checkpoint: Union[str, os.PathLike] = DEFAULT_BLIP2, **kwargs) -> "VLFEncoder":
        """Load from a BLIP-2 checkpoint (see :func:`load_blip2` for the keyword arguments).

        This loads the whole BLIP-2 model; use :func:`load_blip2` + :meth:`from_blip2` to share it
        with the text decoder.
        """
        model, processor = load_blip2(checkpoint, **kwargs)
        return cls.from_blip2(model, processor, os.fspath(checkpoint))

    # -- shapes and ledger -----------------------------------------------------------------------
    @property
    def num_queries(self) -> int:
        """N, the number of Q-Former queries (32 for BLIP-2)."""
        return int(self.query_tokens.shape[1])

    @property
    def dim(self) -> int:
        """d, the Q-Former width (768 for BLIP-2)."""
        return int(self.query_tokens.shape[2])

    @property
    def vlf_shape(self) -> Tuple[int, int]:
        return (self.num_queries, self.dim)

    @property
    def device(self) -> torch.device:
        return self.query_tokens.device

    def channel_uses(self) -> int:
        """Complex channel uses per image: ``ceil(N*d/2)`` (12288 for N=32, d=768)."""
        return math.ceil(self.num_queries * self.dim / 2)

    def bandwidth_compression_ratio(self, source_shape: Sequence[int] = (3, 256, 256),
                                    convention: str = "complex") -> float:
        """BCR for a source of ``source_shape`` (default: the 256x256 RGB input), complex convention."""
        return bandwidth_compression_ratio(self.channel_uses(), source_shape, convention)

    def ledger(self, source_shape: Sequence[int] = (3, 256, 256), convention: str = "complex") -> dict:
        """``{"n_ch": ..., "bcr": ..., "vlf_shape": [N, d], "source_shape": [...], "convention": ...}``."""
        return {"n_ch": self.channel_uses(), "bcr": self.bandwidth_compression_ratio(source_shape, convention),
                "vlf_shape": list(self.vlf_shape), "source_shape": list(source_shape), "convention": convention}

    # -- encoding --------------------------------------------------------------------------------
    def preprocess(self, images: ImagesLike) -> torch.Tensor:
        """Images -> ``pixel_values [B, 3, S, S]`` on the encoder's device, in the vision dtype."""
        if self.image_processor is None:
            raise ValueError("this VLFEncoder has no image_processor; build it with from_blip2(model, processor)")
        imgs = images_to_list(images)
        is_tensor = isinstance(imgs[0], torch.Tensor)
        if is_tensor:
            imgs = [im.detach().float().cpu() for im in imgs]
        kw = {"do_rescale": False} if is_tensor else {}
        pv = self.image_processor(images=imgs, return_tensors="pt", **kw)["pixel_values"]
        vdt = next(self.vision_model.parameters()).dtype
        return pv.to(device=self.device, dtype=vdt)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``pixel_values [B, 3, S, S]`` -> VLF ``[B, N, d]`` (float32: the Q-Former output)."""
        if not isinstance(pixel_values, torch.Tensor) or pixel_values.dim() != 4:
            raise ValueError(f"pixel_values must be a tensor [batch, 3, height, width], got "
                             f"{getattr(pixel_values, 'shape', type(pixel_values).__name__)}")
        vdt = next(self.vision_model.parameters()).dtype
        image_embeds = self.vision_model(pixel_values=pixel_values.to(vdt), return_dict=True).last_hidden_state
        qdt = self.query_tokens.dtype
        mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
        queries = self.query_tokens.expand(image_embeds.shape[0], -1, -1)
        out = self.qformer(query_embeds=queries, encoder_hidden_states=image_embeds.to(qdt),
                           encoder_attention_mask=mask, return_dict=True)
        return out.last_hidden_state.float()

    @torch.no_grad()
    def encode(self, images: ImagesLike) -> torch.Tensor:
        """Images (PIL list or ``[B, 3, H, W]`` in [0, 1]) -> VLF ``[B, N, d]`` float32."""
        return self.forward(self.preprocess(images))
