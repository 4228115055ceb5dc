"""SNR-adaptive joint source-channel coding of a semantic token (SemCLIP's JSCC), and its loss.

Architecture (dense, ADJSCC-style attention-feature modules)::

    token [B, N] --L2-normalise, * sqrt(N)--Linear--PReLU--AF--Linear--PReLU--AF--Linear--(+ linear skip)-->
        [B, 2L] real --pair into L complex symbols--> normalize_power (per example, mean |x|^2 = 1)
        --> channel (phy.channel) --> equaliser (phy.mimo.equalization)
        --> [B, 2L] real --Linear--PReLU--AF--Linear--PReLU--AF--Linear--(+ linear skip)--> token_hat [B, N]

The linear shortcut (``linear_skip=True``, a bias-free ``Linear(in, out)`` added to the MLP output)
lets training start from a linear code (it can learn e.g. a whitened projection) and add the
non-linear, SNR-adaptive part on top. It is a design choice of this implementation (not in the
paper's description): on the MiniLM benchmark (``benchmarks/bench_semclip_minilm.py``, transductive,
L = 48, 2000 steps) removing it lowered retrieval top-1 at -10 / -5 dB from 0.32 / 0.93 to 0.26 / 0.87.

An *AF module* concatenates the intermediate feature vector ``f`` ``[B, D]`` with the SNR in dB
``[B, 1]``, passes it through a small MLP (``D+1 -> D/4 -> D``, ReLU) and scales ``f`` by the
sigmoid of the result (a channel-wise attention on the SNR). ``use_af=False`` drops the modules
(a JSCC that does not see the SNR: the ablation). The SNR fed to the encoder and the decoder is
the channel's known SNR (the Es/N0 the simulation draws); the receiver is assumed to know it,
as it knows ``h`` for equalisation.

Fading: on Rayleigh/Rician channels the receiver equalises before the decoder (MMSE by default,
which keeps the decoder input bounded in deep fades; ``equalizer="zf"`` is available); on AWGN the
decoder sees ``y`` itself (MMSE on AWGN would only be a known scaling that the decoder learns anyway).

Example
-------
>>> import torch
>>> from phy.channel.flat import AWGN
>>> from semantic.jscc import JSCCCodec
>>> codec = JSCCCodec.build(token_dim=16, channel_uses=4, hidden_dim=32)
>>> out = codec(torch.randn(3, 16), AWGN(seed=0), snr_db=5.0)
>>> out.x_hat.shape, out.channel_uses
(torch.Size([3, 16]), 4)
"""
from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

from phy.channel.base import Channel
from phy.utils.conventions import check_finite, check_real, normalize_power
from phy.mimo.equalization import Equalizer
from phy.link.base import LinkOutput, complex_to_real, real_to_complex, snr_to_no_tensor

__all__ = ["AFModule", "JSCCEncoder", "JSCCDecoder", "JSCCCodec", "contrastive_jscc_loss", "sample_snr_db"]


def _pos_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


class AFModule(nn.Module):
    """Attention-feature module: ``f * sigmoid(MLP([f, snr_db]))``.

    Parameters
    ----------
    dim : int
        Feature width ``D``.
    hidden : int, optional
        MLP width (default ``max(8, D // 4)``).

    Shapes: ``f`` ``[B, D]`` float, ``snr_db`` ``[B, 1]`` float -> ``[B, D]``.

    Examples
    --------
    >>> af = AFModule(dim=8)
    >>> af(torch.randn(4, 8), torch.full((4, 1), 5.0)).shape
    torch.Size([4, 8])
    """

    def __init__(self, dim: int, hidden: Optional[int] = None):
        super().__init__()
        hidden = hidden or max(8, dim // 4)
        self.mlp = nn.Sequential(nn.Linear(dim + 1, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def mask(self, f: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        """The scaling ``sigmoid(MLP([f, snr_db / 10]))`` ``[B, D]`` (also used channel-wise by conv AF blocks)."""
        # the SNR enters in units of 10 dB to keep the MLP input well scaled
        ctx = torch.cat([f, (snr_db / 10.0).to(f.dtype)], dim=-1)
        return torch.sigmoid(self.mlp(ctx))

    def forward(self, f: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        return f * self.mask(f, snr_db)


class _DenseAF(nn.Module):
    """``in -> [Linear, PReLU, (AF)] * n_hidden -> Linear -> out`` (+ a linear shortcut ``in -> out``)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_hidden: int, use_af: bool,
                 linear_skip: bool = True):
        super().__init__()
        self.skip = nn.Linear(in_dim, out_dim, bias=False) if linear_skip else None
        dims = [in_dim] + [hidden_dim] * num_hidden
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.acts = nn.ModuleList(nn.PReLU() for _ in range(num_hidden))
        self.afs = nn.ModuleList(AFModule(hidden_dim) for _ in range(num_hidden)) if use_af else None
        self.out = nn.Linear(dims[-1], out_dim)

    def forward(self, x: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        h = x
        for i, (lin, act) in enumerate(zip(self.layers, self.acts)):
            h = act(lin(h))
            if self.afs is not None:
                h = self.afs[i](h, snr_db)
        return self.out(h) + self.skip(x) if self.skip is not None else self.out(h)


def _snr_column(snr_db, batch: int, ref: torch.Tensor) -> torch.Tensor:
    """SNR in dB as ``[B, 1]`` float on ``ref``'s device (a number or a tensor broadcastable to [B])."""
    s = torch.as_tensor(snr_db, dtype=torch.float32, device=ref.device)
    if s.dim() == 2 and s.shape[-1] == 1:
        s = s[:, 0]
    try:
        s = torch.broadcast_to(s, (batch,))
    except RuntimeError as exc:
        raise ValueError(f"snr_db of shape {tuple(s.shape)} must broadcast to the batch [{batch}]") from exc
    if torch.isinf(s).any():
        # infinite SNR (noiseless) is fed to the AF modules as a large finite value
        s = torch.nan_to_num(s, posinf=100.0, neginf=-100.0)
    return s.reshape(batch, 1)


class JSCCEncoder(ModelMixin, ConfigMixin):
    """Token ``[B, N]`` + SNR -> ``L`` power-normalised complex channel symbols ``[B, L]`` (complex64).

    The token is L2-normalised and scaled by ``sqrt(N)`` first (only its direction matters downstream:
    every use of the received token is a cosine similarity).

    Parameters
    ----------
    token_dim : int
        ``N`` (768 for ViT-L-14-336).
    channel_uses : int
        ``L``, complex channel uses per token (default ``N / 2``: 384 for N = 768).
    hidden_dim : int
    num_hidden : int
        Hidden dense layers (each followed by an AF module when ``use_af``).
    use_af : bool

    Examples
    --------
    >>> enc = JSCCEncoder(token_dim=16, channel_uses=8, hidden_dim=32)
    >>> x = enc(torch.randn(3, 16), snr_db=torch.zeros(3))
    >>> x.shape, x.dtype, x.abs().pow(2).mean(dim=1).round(decimals=4).tolist()    # unit power per example
    (torch.Size([3, 8]), torch.complex64, [1.0, 1.0, 1.0])
    """

    @register_to_config
    def __init__(self, token_dim: int = 768, channel_uses: int = 384, hidden_dim: int = 1024, num_hidden: int = 2,
                 use_af: bool = True, linear_skip: bool = True):
        super().__init__()
        _pos_int(token_dim, "token_dim"), _pos_int(channel_uses, "channel_uses")
        _pos_int(hidden_dim, "hidden_dim"), _pos_int(num_hidden, "num_hidden")
        self.net = _DenseAF(token_dim, hidden_dim, 2 * channel_uses, num_hidden, use_af, linear_skip)

    def forward(self, tokens: torch.Tensor, snr_db) -> torch.Tensor:
        """``tokens`` ``[B, N]`` real -> symbols ``[B, L]`` complex64 with mean ``|x|^2 = 1`` per example."""
        check_real(tokens, "tokens")
        if tokens.dim() != 2 or tokens.shape[1] != self.config.token_dim:
            raise ValueError(f"tokens must be [batch, {self.config.token_dim}], got {tuple(tokens.shape)}")
        t = F.normalize(tokens, dim=-1) * math.sqrt(self.config.token_dim)  # unit-variance entries
        z = self.net(t, _snr_column(snr_db, tokens.shape[0], tokens)).float()
        sym, _ = real_to_complex(z)
        return normalize_power(sym)[0]


class JSCCDecoder(ModelMixin, ConfigMixin):
    """Equalised symbols ``[B, L]`` complex + SNR -> reconstructed token ``[B, N]`` (same config as the encoder).

    Examples
    --------
    >>> dec = JSCCDecoder(token_dim=16, channel_uses=8, hidden_dim=32)
    >>> dec(torch.randn(3, 8, dtype=torch.complex64), snr_db=torch.zeros(3)).shape
    torch.Size([3, 16])
    """

    @register_to_config
    def __init__(self, token_dim: int = 768, channel_uses: int = 384, hidden_dim: int = 1024, num_hidden: int = 2,
                 use_af: bool = True, linear_skip: bool = True):
        super().__init__()
        _pos_int(token_dim, "token_dim"), _pos_int(channel_uses, "channel_uses")
        self.net = _DenseAF(2 * channel_uses, hidden_dim, token_dim, num_hidden, use_af, linear_skip)

    def forward(self, symbols: torch.Tensor, snr_db) -> torch.Tensor:
        if not symbols.is_complex() or symbols.dim() != 2 or symbols.shape[1] != self.config.channel_uses:
            raise ValueError(f"symbols must be complex [batch, {self.config.channel_uses}], got "
                             f"{symbols.dtype} {tuple(symbols.shape)}")
        r = complex_to_real(symbols, 0)
        return self.net(r, _snr_column(snr_db, symbols.shape[0], r))


class JSCCCodec(nn.Module):
    """Encoder + channel + equaliser + decoder.

    Parameters
    ----------
    encoder, decoder : :class:`JSCCEncoder`, :class:`JSCCDecoder`
    equalizer : ``"mmse"`` (default) or ``"zf"``; only acts when the channel returns ``h``.

    Examples
    --------
    >>> from phy.channel.flat import Rayleigh
    >>> codec = JSCCCodec(JSCCEncoder(16, 8, 32), JSCCDecoder(16, 8, 32))
    >>> out = codec(torch.randn(3, 16), Rayleigh(seed=0), snr_db=10.0)
    >>> out.x_hat.shape, out.channel_uses
    (torch.Size([3, 16]), 8)
    """

    encoder_cls = JSCCEncoder  # subclasses (e.g. the image JSCC of DJSCC-IR) swap the pair
    decoder_cls = JSCCDecoder

    def __init__(self, encoder: JSCCEncoder, decoder: JSCCDecoder, equalizer: str = "mmse"):
        super().__init__()
        ce, cd = ({k: v for k, v in m.config.items() if not k.startswith("_")} for m in (encoder, decoder))
        if ce != cd:
            raise ValueError(f"encoder and decoder configs differ: {ce} vs {cd}")
        self.encoder, self.decoder = encoder, decoder
        self.equalizer = Equalizer(equalizer)

    @classmethod
    def build(cls, token_dim: int = 768, channel_uses: Optional[int] = None, hidden_dim: int = 1024,
              num_hidden: int = 2, use_af: bool = True, equalizer: str = "mmse",
              linear_skip: bool = True) -> "JSCCCodec":
        """New codec; ``channel_uses`` defaults to ``token_dim // 2``."""
        L = channel_uses if channel_uses is not None else max(1, token_dim // 2)  # 0 is refused, not replaced
        kw = dict(token_dim=token_dim, channel_uses=L, hidden_dim=hidden_dim,
                  num_hidden=num_hidden, use_af=use_af, linear_skip=linear_skip)
        return cls(JSCCEncoder(**kw), JSCCDecoder(**kw), equalizer)

    @property
    def channel_uses(self) -> int:
        return int(self.encoder.config.channel_uses)

    @property
    def token_dim(self) -> int:
        return int(self.encoder.config.token_dim)

    def forward(self, tokens: torch.Tensor, channel: Channel, snr_db) -> LinkOutput:
        """Send ``tokens`` ``[B, N]`` at Es/N0 ``snr_db`` (number or ``[B]`` tensor, ``inf`` = noiseless).

        Returns a :class:`phy.link.base.LinkOutput` whose ``x_hat`` is the reconstructed token ``[B, N]``
        and ``channel_uses`` is ``L``; ``info["symbols"]`` holds the sent symbols.
        """
        if not isinstance(channel, Channel):
            raise TypeError(f"channel must be a phy.channel.base.Channel, got {type(channel).__name__}")
        check_finite(tokens, "tokens")
        snr = _snr_column(snr_db, tokens.shape[0], tokens)[:, 0]  # +inf clipped to 100 dB for the AF input
        x = self.encoder(tokens, snr)
        raw = torch.broadcast_to(torch.as_tensor(snr_db, dtype=torch.float32, device=x.device).reshape(-1),
                                 (tokens.shape[0],))
        no = snr_to_no_tensor(raw, (tokens.shape[0],), 1.0, torch.float32, x.device)  # inf dB -> N0 = 0
        out = channel(x, no)
        if out.h is None:  # AWGN: the decoder takes y itself
            y, no_eff = out.y, out.no
        else:
            y, no_eff = self.equalizer(out, channel.generator(x.device))
        t_hat = self.decoder(y, snr)
        return LinkOutput(x_hat=t_hat, channel_uses=x.shape[-1], no=out.no, info={"symbols": x, "no_eff": no_eff})

    # -- checkpoints: <dir>/encoder, <dir>/decoder (config.json + diffusion_pytorch_model.safetensors) --
    def save_pretrained(self, path: Union[str, Path]) -> Path:
        path = Path(path)
        self.encoder.save_pretrained(str(path / "encoder"))
        self.decoder.save_pretrained(str(path / "decoder"))
        (path / "codec.json").write_text(f'{{"equalizer": "{self.equalizer.method}"}}\n')
        return path

    @classmethod
    def from_pretrained(cls, path: Union[str, Path], equalizer: Optional[str] = None) -> "JSCCCodec":
        import json

        path = Path(path)
        if not (path / "encoder" / "config.json").is_file():
            raise FileNotFoundError(f"{str(path)!r} is not a JSCC checkpoint folder (needs encoder/ and decoder/)")
        meta = json.loads((path / "codec.json").read_text()) if (path / "codec.json").is_file() else {}
        return cls(cls.encoder_cls.from_pretrained(str(path / "encoder"), low_cpu_mem_usage=False),
                   cls.decoder_cls.from_pretrained(str(path / "decoder"), low_cpu_mem_usage=False),
                   equalizer or meta.get("equalizer", "mmse"))


def contrastive_jscc_loss(sent: torch.Tensor, received: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """Symmetric InfoNCE over the ``B x B`` cosine similarities of sent and received tokens (SemCLIP eq. 4).

    ``S_ij = cos(sent_i, received_j) / temperature``;
    ``loss = (CE(S, diag) + CE(S^T, diag)) / 2`` (row-wise: each sent token must pick its own
    reconstruction among the batch, column-wise: each reconstruction its own source).

    Parameters
    ----------
    sent, received : Tensor ``[B, N]``
    temperature : float > 0

    Examples
    --------
    >>> sent = torch.eye(4)
    >>> contrastive_jscc_loss(sent, sent).item() < 0.01        # each received token matches only its own
    True
    >>> round(contrastive_jscc_loss(sent, torch.ones(4, 4)).item(), 4)   # all alike: log(B)
    1.3863
    """
    if sent.shape != received.shape or sent.dim() != 2:
        raise ValueError(f"sent and received must both be [B, N], got {tuple(sent.shape)} and {tuple(received.shape)}")
    if not isinstance(temperature, numbers.Real) or temperature <= 0:
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    s = F.normalize(sent.float(), dim=-1) @ F.normalize(received.float(), dim=-1).T / temperature
    target = torch.arange(s.shape[0], device=s.device)
    return 0.5 * (F.cross_entropy(s, target) + F.cross_entropy(s.T, target))


def sample_snr_db(batch: int, snr_range: Sequence[float], generator: Optional[torch.Generator] = None,
                  device=None) -> torch.Tensor:
    """``[batch]`` SNRs drawn uniformly from ``[lo, hi]`` dB (one per example).

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> snr = sample_snr_db(1000, (-5.0, 10.0), generator=g)
    >>> snr.shape, bool(snr.min() >= -5.0), bool(snr.max() <= 10.0)
    (torch.Size([1000]), True, True)
    """
    lo, hi = float(snr_range[0]), float(snr_range[1])
    if hi < lo:
        raise ValueError(f"snr_range must be (low, high) with low <= high, got {tuple(snr_range)}")
    u = torch.rand(batch, generator=generator, device=device)
    return lo + (hi - lo) * u
