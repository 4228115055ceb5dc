"""BT-IR: image compression + an ideal capacity-achieving channel code, then CLIP on the image.

The separation baseline of the SemCLIP paper. The transmitter compresses the image so that its
payload fits the bit budget ``floor(L * C(snr))`` of ``L`` complex channel uses
(:class:`phy.theory.capacity.IdealCode`); the payload then arrives error-free. When even the smallest
encoding exceeds the budget the receiver gets **nothing**: the image is reported as not delivered
(``delivered=False``) and a task that needs it falls to chance — recorded, never hidden.

Codecs (each has ``encode_to_budget(img, max_bits) -> payload or None``, ``payload_bits(payload)`` and
``decode_payload(payload) -> img``):

:class:`baselines.learned_codec.LearnedCodec` (the default of the paper configs): a learned codec with a
    hyperprior and Gaussian-mixture likelihoods after Cheng et al. (CVPR 2020), the paper's reference [21],
    trained by the package; the highest quality level whose payload fits.
:class:`PillowCodec` (JPEG or WebP through Pillow; always available): the largest quality
    whose file fits the budget (binary search over quality 1..95).
:class:`CompressAICodec` (CompressAI's own pretrained ``cheng2020-attn``): used when ``compressai`` and
    its pretrained weights are available locally; otherwise it fails with a message saying how to
    provide them.

Capacity: ``"awgn"`` uses ``log2(1 + snr)``; on Rayleigh fading use ``"rayleigh_ergodic"`` (the
ergodic capacity: coding over many fades) or ``"rayleigh_outage"`` (see :mod:`phy.theory.capacity`).

Example
-------
>>> import torch
>>> bt = BTIR(PillowCodec("jpeg"), channel_uses=4096)
>>> res = bt.transmit(torch.rand(1, 3, 32, 32), snr_db=10.0)
>>> res.budget_bits  # floor(4096 * log2(1 + 10))
14169
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np
import torch
from PIL import Image

from phy.theory.capacity import IdealCode
from phy.utils.conventions import check_real, check_snr

__all__ = ["PillowCodec", "CompressAICodec", "BTIR", "BTIRResult", "tensor_to_pil", "pil_to_tensor"]


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """``[3, H, W]`` float in ``[0, 1]`` -> RGB PIL image.

    Examples
    --------
    >>> img = tensor_to_pil(torch.ones(3, 4, 6))
    >>> img.size, img.mode, img.getpixel((0, 0))
    ((6, 4), 'RGB', (255, 255, 255))
    """
    arr = (image.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(arr, mode="RGB")


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL image -> ``[3, H, W]`` float32 in ``[0, 1]``.

    Examples
    --------
    >>> x = pil_to_tensor(Image.new("RGB", (6, 4), (255, 0, 0)))
    >>> x.shape, x.dtype, x[:, 0, 0].tolist()
    (torch.Size([3, 4, 6]), torch.float32, [1.0, 0.0, 0.0])
    """
    return torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


class PillowCodec:
    """JPEG/WebP at the largest quality that fits a bit budget.

    Parameters
    ----------
    fmt : ``"jpeg"`` or ``"webp"``
    min_quality, max_quality : int
        Quality search range (Pillow's scale, 1..95).

    Examples
    --------
    >>> codec = PillowCodec("jpeg")
    >>> img = tensor_to_pil(torch.rand(3, 32, 32))
    >>> data, quality = codec.encode_to_budget(img, max_bits=8 * 2000)
    >>> len(data) * 8 <= 8 * 2000, 1 <= quality <= 95, codec.decode(data).size
    (True, True, (32, 32))
    >>> codec.encode_to_budget(img, max_bits=100) is None         # not even the lowest quality fits
    True
    """

    FORMATS = {"jpeg": "JPEG", "webp": "WEBP"}

    def __init__(self, fmt: str = "jpeg", min_quality: int = 1, max_quality: int = 95):
        if fmt not in self.FORMATS:
            raise ValueError(f"fmt must be one of {sorted(self.FORMATS)}, got {fmt!r}")
        if not (isinstance(min_quality, int) and isinstance(max_quality, int) and 1 <= min_quality <= max_quality <= 100):
            raise ValueError(f"need 1 <= min_quality <= max_quality <= 100, got {min_quality!r}, {max_quality!r}")
        self.fmt, self.min_quality, self.max_quality = fmt, min_quality, max_quality
        self.name = fmt

    def encode(self, img: Image.Image, quality: int) -> bytes:
        buf = io.BytesIO()
        img.save(buf, format=self.FORMATS[self.fmt], quality=int(quality))
        return buf.getvalue()

    def decode(self, data: bytes) -> Image.Image:
        return Image.open(io.BytesIO(data)).convert("RGB")

    def encode_to_budget(self, img: Image.Image, max_bits: int) -> Optional[Tuple[bytes, int]]:
        """``(data, quality)`` of the largest quality with ``8 * len(data) <= max_bits``; ``None`` if none fits."""
        lo, hi, best = self.min_quality, self.max_quality, None
        while lo <= hi:  # file size grows with quality (up to small wiggles, checked below)
            q = (lo + hi) // 2
            data = self.encode(img, q)
            if 8 * len(data) <= max_bits:
                best, lo = (data, q), q + 1
            else:
                hi = q - 1
        return best

    def payload_bits(self, payload: Tuple[bytes, int]) -> int:
        """Bits of an :meth:`encode_to_budget` result (the file's bytes times 8)."""
        return 8 * len(payload[0])

    def decode_payload(self, payload: Tuple[bytes, int]) -> Image.Image:
        """The received image of an :meth:`encode_to_budget` result."""
        return self.decode(payload[0])


class CompressAICodec:
    """CompressAI's ``cheng2020-attn`` learned codec (the paper's choice), from local weights only.

    Every quality level's weights file (CompressAI's name, e.g. ``cheng2020_attn-mse-6-*.pth.tar``) must
    be in ``weights_dir``; it is read with ``torch.load(weights_only=True)`` (no pickled code runs).
    Nothing is downloaded unless ``allow_download=True`` (CLI: ``--allow-download``), and then only
    the missing levels, through torch.hub into ``weights_dir``.

    Parameters
    ----------
    qualities : tuple of int
        Quality levels to try (cheng2020-attn has 1..6), highest first.
    weights_dir : path, optional
        Directory holding CompressAI's checkpoint files (default: the torch hub cache,
        ``$TORCH_HOME/hub/checkpoints``).
    allow_download : bool
        Fetch missing levels from CompressAI's server (default ``False``: a missing level is an error).

    Examples
    --------
    Needs CompressAI's ``cheng2020-attn`` weights files in ``weights_dir``, so the example is not run by
    the test-suite:

    >>> codec = CompressAICodec(weights_dir="weights/compressai")                  # doctest: +SKIP
    >>> payload, quality = codec.encode_to_budget(img, max_bits=20000)            # doctest: +SKIP
    >>> codec.decode_payload(payload).size                                        # doctest: +SKIP
    (256, 256)
    """

    ARCH = "cheng2020-attn"

    def __init__(self, qualities=(6, 5, 4, 3, 2, 1), weights_dir: Optional[Union[str, Path]] = None,
                 device="cpu", allow_download: bool = False):
        try:
            from compressai.zoo.image import model_urls
        except ImportError as exc:
            raise RuntimeError("CompressAICodec needs the 'compressai' package (pip install compressai) and its "
                               "cheng2020-attn weights; use PillowCodec('jpeg') where they are unavailable") from exc
        from urllib.parse import urlparse

        urls = model_urls[self.ARCH]["mse"]
        bad = [q for q in qualities if q not in urls]
        if bad or not qualities:
            raise ValueError(f"qualities must be a non-empty subset of {sorted(urls)}, got {tuple(qualities)}")
        hub = Path(weights_dir) if weights_dir else Path(torch.hub.get_dir()) / "checkpoints"
        self.files = {q: hub / Path(urlparse(urls[q]).path).name for q in qualities}
        missing = [q for q in qualities if not self.files[q].is_file()]
        if missing and not allow_download:
            raise FileNotFoundError(
                f"no cheng2020-attn weights for quality {missing} in {str(hub)!r} (expected "
                f"{[self.files[q].name for q in missing]}): on a connected machine rerun with --allow-download "
                "(allow_download=True) and copy the files here, or pass weights_dir= / fewer qualities")
        self._urls = urls
        self.qualities, self.device, self.name = tuple(qualities), torch.device(device), "cheng2020-attn"
        self._models = {}

    def _model(self, q):
        if q not in self._models:
            from compressai.zoo.image import model_architectures
            from compressai.zoo.pretrained import load_pretrained

            path = self.files[q]
            if not path.is_file():  # only reached with allow_download=True (checked in __init__)
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.hub.download_url_to_file(self._urls[q], str(path), progress=False)
            try:
                state = torch.load(str(path), map_location="cpu", weights_only=True)
            except Exception as exc:  # pickle.UnpicklingError (foreign objects), RuntimeError (not a zip)...
                from semantic.checkpoints import load_refusal

                raise ValueError(f"{path}: not a cheng2020-attn weights file ({load_refusal(exc)}); delete it") from None
            if isinstance(state, dict) and "state_dict" in state:
                state = state["state_dict"]
            net = model_architectures[self.ARCH].from_state_dict(load_pretrained(state))
            self._models[q] = net.eval().to(self.device)
        return self._models[q]

    @torch.no_grad()
    def encode_to_budget(self, img: Image.Image, max_bits: int):
        x = pil_to_tensor(img).unsqueeze(0).to(self.device)
        for q in self.qualities:
            enc = self._model(q).compress(x)
            bits = 8 * sum(len(s[0]) for s in enc["strings"])
            if bits <= max_bits:
                return (enc, q)
        return None

    def payload_bits(self, payload) -> int:
        """Bits of an :meth:`encode_to_budget` result (every compressed string's bytes times 8)."""
        return 8 * sum(len(s[0]) for s in payload[0]["strings"])

    @torch.no_grad()
    def decode_payload(self, payload) -> Image.Image:
        """The received image of an :meth:`encode_to_budget` result."""
        enc, q = payload
        out = self._model(q).decompress(enc["strings"], enc["shape"])["x_hat"][0]
        return tensor_to_pil(out)


@dataclass
class BTIRResult:
    """Per-image outcome of BT-IR.

    Attributes
    ----------
    images : list of Tensor ``[3, H, W]`` or None
        The received image, ``None`` where nothing was delivered.
    delivered : Tensor ``[B]`` bool
    payload_bits : list of int or None
        Bits actually sent (``None``: nothing fitted).
    quality : list of int or None
    budget_bits : int
        ``floor(L * C(snr))``.
    channel_uses : int
        ``L`` (spent whether or not anything fitted).

    Examples
    --------
    >>> res = BTIR(PillowCodec("jpeg"), channel_uses=4096).transmit(torch.rand(1, 3, 32, 32), snr_db=10.0)
    >>> isinstance(res, BTIRResult), res.payload_bits[0] <= res.budget_bits, res.channel_uses
    (True, True, 4096)
    """

    images: List[Optional[torch.Tensor]]
    delivered: torch.Tensor
    payload_bits: List[Optional[int]]
    quality: List[Optional[int]]
    budget_bits: int
    channel_uses: int
    notes: List[str] = field(default_factory=list)


class BTIR:
    """Compression to the capacity budget of ``channel_uses`` complex uses, then ideal delivery.

    Parameters
    ----------
    codec : LearnedCodec, PillowCodec or CompressAICodec
    channel_uses : int
        ``L`` complex channel uses per image.
    capacity : str
        Capacity mode of :class:`phy.theory.capacity.IdealCode` (``"awgn"``, ``"rayleigh_ergodic"``, ...).

    Examples
    --------
    >>> btir = BTIR(PillowCodec("jpeg"), channel_uses=4096)
    >>> res = btir.transmit(torch.rand(2, 3, 32, 32), snr_db=10.0)     # budget floor(4096 log2(11)) bits
    >>> res.budget_bits, res.delivered.tolist(), res.images[0].shape
    (14169, [True, True], torch.Size([3, 32, 32]))
    >>> btir.transmit(torch.rand(1, 3, 32, 32), snr_db=-30.0).delivered.tolist()   # nothing fits
    [False]
    """

    def __init__(self, codec, channel_uses: int, capacity: str = "awgn"):
        if not all(hasattr(codec, m) for m in ("encode_to_budget", "payload_bits", "decode_payload")):
            raise TypeError(f"codec must have encode_to_budget, payload_bits and decode_payload (LearnedCodec, "
                            f"PillowCodec, CompressAICodec), got {type(codec).__name__}")
        self.codec = codec
        self.ideal = IdealCode(channel_uses, capacity=capacity)

    @property
    def channel_uses(self) -> int:
        return self.ideal.n

    def transmit(self, images: torch.Tensor, snr_db: float) -> BTIRResult:
        """Send ``images`` ``[B, 3, H, W]`` in ``[0, 1]`` at Es/N0 ``snr_db`` (a number)."""
        check_real(images, "images")
        check_snr(snr_db)
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [batch, 3, H, W], got {tuple(images.shape)}")
        if isinstance(snr_db, torch.Tensor):
            snr_db = float(snr_db)
        if snr_db == float("inf"):  # floor(L * C) is unbounded: no finite bit budget to fit
            raise ValueError("snr_db must be finite for BT-IR (the capacity budget floor(L*C) is unbounded at "
                             "+inf dB), got inf")
        budget = self.ideal.max_payload(snr_db)
        out, delivered, bits, quality, notes = [], [], [], [], []
        for img in images:
            pil = tensor_to_pil(img)
            payload = self.codec.encode_to_budget(pil, budget)
            if payload is None:
                out.append(None), delivered.append(False), bits.append(None), quality.append(None)
                notes.append(f"budget {budget} bits below the smallest {self.codec.name} encoding: nothing delivered")
                continue
            rec, q, nbits = self.codec.decode_payload(payload), payload[1], self.codec.payload_bits(payload)
            out.append(pil_to_tensor(rec)), delivered.append(True), bits.append(nbits), quality.append(q)
        return BTIRResult(images=out, delivered=torch.tensor(delivered, dtype=torch.bool), payload_bits=bits,
                          quality=quality, budget_bits=int(budget), channel_uses=self.channel_uses, notes=notes)
