"""DJSCC-FT: a task-specific DNN semantic encoder + DeepJSCC, trained end to end on the seen classes.

The SemCLIP paper's task-oriented baseline: a small CNN maps the image to a ``D``-dim semantic
feature, the dense SNR-adaptive JSCC of :mod:`semantic.jscc` sends it over ``L`` complex channel
uses, and a linear head classifies the received feature among the **seen** classes; everything is
trained jointly with cross-entropy at an SNR drawn per example. Its head has no output for a class
it never saw, so on unseen classes it cannot be right — the zero-shot experiment shows exactly that.

::

    image -> [conv s2 + PReLU] x num_down -> global avg pool -> Linear -> feature [B, D]
          -> JSCC encoder (AF) -> L symbols -> channel -> JSCC decoder -> feature_hat -> Linear -> logits

Example
-------
>>> import torch
>>> from phy.channel.flat import AWGN
>>> m = DJSCCFT(image_size=32, num_classes=5, feature_dim=32, channel_uses=16, hidden=16, num_down=2)
>>> m(torch.rand(2, 3, 32, 32), AWGN(seed=0), snr_db=5.0).shape
torch.Size([2, 5])
"""
from __future__ import annotations

import numbers
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

from phy.channel.base import Channel
from phy.utils.conventions import check_real
from semantic.jscc import JSCCCodec, JSCCDecoder, JSCCEncoder, sample_snr_db

__all__ = ["DJSCCFT", "train_djscc_ft", "predict_global_labels"]


class DJSCCFT(ModelMixin, ConfigMixin):
    """CNN semantic encoder + dense JSCC + seen-class head (see the module docstring).

    Parameters
    ----------
    image_size, in_channels : int
    num_classes : int
        Number of seen classes the head covers.
    class_ids : list of int, optional
        Global label id of each head output (default ``0..num_classes-1``).
    feature_dim : int
        ``D``.
    channel_uses : int
        ``L`` complex channel uses per image.
    hidden, num_down : int
        CNN width and stride-2 stages.
    jscc_hidden : int
    use_af : bool

    Examples
    --------
    >>> from phy.channel.flat import AWGN
    >>> model = DJSCCFT(image_size=16, num_classes=3, class_ids=[2, 5, 7], feature_dim=16, channel_uses=8,
    ...                 hidden=8, num_down=2, jscc_hidden=16)
    >>> logits = model(torch.rand(4, 3, 16, 16), AWGN(seed=0), snr_db=10.0)
    >>> logits.shape, model.channel_uses
    (torch.Size([4, 3]), 8)
    """

    @register_to_config
    def __init__(self, image_size: int = 224, in_channels: int = 3, num_classes: int = 800,
                 class_ids: Optional[List[int]] = None, feature_dim: int = 512, channel_uses: int = 384,
                 hidden: int = 64, num_down: int = 4, jscc_hidden: int = 512, use_af: bool = True):
        super().__init__()
        for name, v in (("image_size", image_size), ("num_classes", num_classes), ("feature_dim", feature_dim),
                        ("channel_uses", channel_uses), ("hidden", hidden), ("num_down", num_down)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if class_ids is not None and len(class_ids) != num_classes:
            raise ValueError(f"class_ids must have num_classes={num_classes} entries, got {len(class_ids)}")
        chans = [in_channels] + [hidden] * num_down
        layers = []
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.BatchNorm2d(b), nn.PReLU(b)]
        self.backbone = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(hidden, feature_dim))
        kw = dict(token_dim=feature_dim, channel_uses=channel_uses, hidden_dim=jscc_hidden, num_hidden=1,
                  use_af=use_af)
        self.codec = JSCCCodec(JSCCEncoder(**kw), JSCCDecoder(**kw), equalizer="mmse")
        self.head = nn.Linear(feature_dim, num_classes)
        self.register_buffer("class_ids_t", torch.tensor(class_ids if class_ids is not None else range(num_classes)),
                             persistent=False)

    @property
    def channel_uses(self) -> int:
        return int(self.config.channel_uses)

    def forward(self, images: torch.Tensor, channel: Channel, snr_db) -> torch.Tensor:
        """``images`` ``[B, C, H, W]`` in ``[0, 1]`` -> logits ``[B, num_classes]`` over the seen classes."""
        check_real(images, "images")
        c = self.config
        if images.dim() != 4 or tuple(images.shape[1:]) != (c.in_channels, c.image_size, c.image_size):
            raise ValueError(f"images must be [batch, {c.in_channels}, {c.image_size}, {c.image_size}], got "
                             f"{tuple(images.shape)}")
        feat = self.backbone(images * 2.0 - 1.0)
        return self.head(self.codec(feat, channel, snr_db).x_hat)


def predict_global_labels(model: DJSCCFT, logits: torch.Tensor, k: int = 5) -> torch.Tensor:
    """Top-``k`` predictions as *global* label ids ``[B, k]`` (only seen classes can appear).

    Examples
    --------
    >>> model = DJSCCFT(image_size=16, num_classes=3, class_ids=[2, 5, 7], feature_dim=16, channel_uses=8,
    ...                 hidden=8, num_down=2, jscc_hidden=16)
    >>> predict_global_labels(model, torch.tensor([[0.1, 0.9, 0.3]]), k=2)      # head outputs -> global ids
    tensor([[5, 7]])
    """
    k = min(k, logits.shape[-1])
    return model.class_ids_t.to(logits.device)[logits.topk(k, dim=-1).indices]


def train_djscc_ft(model: DJSCCFT, images: torch.Tensor, labels: torch.Tensor, channel: Channel,
                   snr_range: Sequence[float], steps: int, batch_size: int = 32, lr: float = 1e-3, seed: int = 0,
                   device="cpu") -> List[Dict[str, float]]:
    """Cross-entropy training on seen-class images; ``labels`` are global ids within ``class_ids``.

    ``images`` ``[n, C, H, W]`` in ``[0, 1]``, ``labels`` ``[n]`` int64; returns one ``{"step", "loss"}`` per step.

    Examples
    --------
    >>> from phy.channel.flat import AWGN
    >>> model = DJSCCFT(image_size=16, num_classes=2, class_ids=[3, 9], feature_dim=16, channel_uses=8,
    ...                 hidden=8, num_down=2, jscc_hidden=16)
    >>> history = train_djscc_ft(model, torch.rand(8, 3, 16, 16), torch.tensor([3, 9] * 4), AWGN(seed=0),
    ...                          (0.0, 10.0), steps=2, batch_size=4)
    >>> len(history), sorted(history[0])
    (2, ['loss', 'step'])
    """
    check_real(images, "images")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"labels ({labels.shape[0]}) and images ({images.shape[0]}) differ in length")
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    ids = model.class_ids_t.cpu()
    lut = {int(g): i for i, g in enumerate(ids)}
    missing = sorted({int(l) for l in labels} - set(lut))
    if missing:
        raise ValueError(f"labels contain classes the head does not cover (not in class_ids): {missing[:10]}")
    local = torch.tensor([lut[int(l)] for l in labels])
    device = torch.device(device)
    model.to(device).train()
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for step in range(int(steps)):
        idx = torch.randint(0, images.shape[0], (min(batch_size, images.shape[0]),), generator=gen)
        snr = sample_snr_db(len(idx), snr_range, generator=gen).to(device)
        loss = F.cross_entropy(model(images[idx].to(device), channel, snr), local[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append({"step": step + 1, "loss": loss.item()})
    return history
