"""VLF-MSC image receiver: Stable Diffusion 1.5 conditioned on the received VLF (no text prompt).

::

    received VLF [B, N, d] --VLFToCLIPProjection (linear d -> D)--> [B, N, D]
        --as input embeddings: [BOS] (+ subject label tokens c_i while training) [N VLF tokens] [EOS] [pad...]
        --> CLIP text encoder (positions, causal mask, final layer norm) --> [B, L, D]
        --cross-attention--> U-Net, 50 DDIM steps from Gaussian latents --> VAE decoder --> image [B, 3, H, W]

Training (BLIP-Diffusion style, :class:`ImageDecoderTrainer`): the simplified latent-diffusion
objective ``|| eps - eps_theta(z_t, t, c) ||^2`` with DDPM timesteps drawn from a configurable range
(the paper uses ``t in [0, 100]``), gradient accumulation, mixed precision and resumable
checkpoints (``config.json`` + safetensors folders, a step counter and the optimizer state). Under
``torchrun`` the trainer runs data-parallel (DDP, ``dist_info=`` from
:func:`semantic.distributed.init_distributed`); the command line is
``torchrun --standalone --nproc_per_node N -m experiments.cli train-image-decoder ...``.

Checkpoint folders
------------------
* SD 1.5 base: any ``StableDiffusionPipeline`` layout (``unet/``, ``vae/``, ``text_encoder/``,
  ``tokenizer/``, ``scheduler/``), hub id :data:`DEFAULT_SD` or a folder.
* A trained image decoder (``--image-decoder DIR``): ``DIR/projection/`` (always) and, when they were
  trained, ``DIR/unet/`` and ``DIR/text_encoder/``; a bare projection folder (``config.json`` +
  safetensors) is accepted as well.

Example
-------
>>> dec = VLFImageDecoder.from_pretrained(DEFAULT_SD, vlf_dim=768, device="cuda")   # doctest: +SKIP
>>> images = dec.generate(received_vlf, seed=0)                                     # doctest: +SKIP
>>> images.shape                                                                     # doctest: +SKIP
torch.Size([B, 3, 256, 256])
"""
from __future__ import annotations

import contextlib
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .checkpoints import commit_dir, resolve_checkpoint, resolve_device, resolve_dtype, staging_dir
from .distributed import DistInfo, unwrap, wrap_ddp
from .vlf import check_vlf

__all__ = [
    "DEFAULT_SD",
    "VLFToCLIPProjection",
    "clip_text_from_embeddings",
    "VLFImageDecoder",
    "ImageDecoderTrainConfig",
    "ImageDecoderTrainer",
    "save_optimizer_state",
    "load_optimizer_state",
    "RANK_SEED_STRIDE",
    "rank_seed",
    "ddp_ignore_frozen",
    "check_same_config",
    "restore_trainer_state",
]

#: The Stable Diffusion 1.5 checkpoint the image decoder starts from (hub id).
DEFAULT_SD = "stable-diffusion-v1-5/stable-diffusion-v1-5"
PathLike = Union[str, os.PathLike]


class VLFToCLIPProjection(ModelMixin, ConfigMixin):
    """Learned linear map of the VLF into the CLIP text encoder's input-embedding space.

    Args:
        vlf_dim (`int`, *optional*, defaults to 768): ``d``.
        num_queries (`int`, *optional*, defaults to 32): ``N`` (checked on input).
        clip_dim (`int`, *optional*, defaults to 768): the CLIP text width ``D`` (SD 1.5: 768).

    Inputs ``[B, N, d]`` float -> outputs ``[B, N, D]`` float.

    Example
    -------
    >>> p = VLFToCLIPProjection(vlf_dim=8, num_queries=4, clip_dim=6)
    >>> p(torch.randn(2, 4, 8)).shape
    torch.Size([2, 4, 6])
    """

    @register_to_config
    def __init__(self, vlf_dim: int = 768, num_queries: int = 32, clip_dim: int = 768):
        super().__init__()
        self.linear = nn.Linear(vlf_dim, clip_dim)
        # start near the scale of CLIP token embeddings (std ~0.01-0.03), not that of the VLF
        nn.init.normal_(self.linear.weight, std=0.02 / math.sqrt(vlf_dim) * 4)
        nn.init.zeros_(self.linear.bias)

    def forward(self, vlf: torch.Tensor) -> torch.Tensor:
        check_vlf(vlf, "vlf")
        if tuple(vlf.shape[1:]) != (self.config.num_queries, self.config.vlf_dim):
            raise ValueError(f"vlf must have shape [batch, {self.config.num_queries}, {self.config.vlf_dim}], "
                             f"got {tuple(vlf.shape)}")
        return self.linear(vlf.to(self.linear.weight.dtype))


def _text_model(text_encoder: nn.Module) -> nn.Module:
    """The module holding ``embeddings``/``encoder``/``final_layer_norm`` (v4: ``.text_model``)."""
    return getattr(text_encoder, "text_model", text_encoder)


def clip_text_from_embeddings(text_encoder: nn.Module, inputs_embeds: torch.Tensor) -> torch.Tensor:
    """Run a ``CLIPTextModel`` on token *embeddings* ``[B, L, D]`` -> ``last_hidden_state [B, L, D]``.

    ``CLIPTextModel.forward`` only takes ``input_ids``, so its parts are run as it runs them:
    token embeddings + position embeddings, the encoder under a causal mask, the final layer norm.
    ``clip_text_from_embeddings(te, te.get_input_embeddings()(ids))`` equals ``te(ids).last_hidden_state``.

    Examples
    --------
    A tiny random CLIP text encoder stands in for SD 1.5's:

    >>> from transformers import CLIPTextConfig, CLIPTextModel
    >>> te = CLIPTextModel(CLIPTextConfig(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
    ...                                   num_attention_heads=2, max_position_embeddings=16,
    ...                                   bos_token_id=0, eos_token_id=1, pad_token_id=1)).eval()
    >>> ids = torch.randint(0, 100, (2, 16))
    >>> with torch.no_grad():
    ...     out = clip_text_from_embeddings(te, te.get_input_embeddings()(ids))
    ...     ref = te(ids).last_hidden_state
    >>> out.shape, torch.allclose(out, ref, atol=1e-5)
    (torch.Size([2, 16, 32]), True)
    """
    tm = _text_model(text_encoder)
    if inputs_embeds.dim() != 3:
        raise ValueError(f"inputs_embeds must be [batch, length, width], got {tuple(inputs_embeds.shape)}")
    hidden = tm.embeddings(inputs_embeds=inputs_embeds)
    b, L, _ = hidden.shape
    neg = torch.finfo(hidden.dtype).min
    causal = torch.full((L, L), neg, dtype=hidden.dtype, device=hidden.device).triu(1)
    mask = causal[None, None].expand(b, 1, L, L)
    out = tm.encoder(inputs_embeds=hidden, attention_mask=mask)
    last = out[0] if isinstance(out, tuple) else out.last_hidden_state
    return tm.final_layer_norm(last)


class VLFImageDecoder(nn.Module):
    """SD 1.5 U-Net + VAE + CLIP text encoder, conditioned on a VLF through :class:`VLFToCLIPProjection`.

    Parameters
    ----------
    unet : UNet2DConditionModel
    vae : AutoencoderKL
    text_encoder : CLIPTextModel
    projection : VLFToCLIPProjection
    scheduler : a diffusers scheduler used for sampling (DDIM by default)
    tokenizer : CLIPTokenizer, optional (needed only for subject labels while training)
    num_inference_steps : int (default 50)
    guidance_scale : float (default 1.0 = no classifier-free guidance; > 1 mixes in the unconditional
        prediction of an empty sequence ``[BOS, EOS, pad...]``)
    height, width : output size in pixels (default 256; multiples of the VAE scale factor)
    max_length : conditioning sequence length (default: the text encoder's positions, 77 for SD)

    Examples
    --------
    Needs the Stable Diffusion 1.5 weights (a hub id in the Hugging Face cache or a local folder), so the
    example is not run by the test-suite (``tests/tiny_models.py`` builds a tiny random stand-in):

    >>> decoder = VLFImageDecoder.from_pretrained(DEFAULT_SD, device="cuda")       # doctest: +SKIP
    >>> decoder.generate(torch.randn(2, 32, 768), generator=torch.Generator().manual_seed(0)).shape  # doctest: +SKIP
    torch.Size([2, 3, 256, 256])
    """

    def __init__(self, unet: nn.Module, vae: nn.Module, text_encoder: nn.Module,
                 projection: VLFToCLIPProjection, scheduler, tokenizer=None, num_inference_steps: int = 50,
                 guidance_scale: float = 1.0, height: int = 256, width: int = 256,
                 max_length: Optional[int] = None):
        super().__init__()
        clip_dim = text_encoder.get_input_embeddings().embedding_dim
        if projection.config.clip_dim != clip_dim:
            raise ValueError(f"projection outputs width {projection.config.clip_dim} but the text encoder "
                             f"expects {clip_dim}")
        self.unet = unet
        self.vae = vae
        self.text_encoder = text_encoder
        self.projection = projection
        self.scheduler = scheduler
        self.tokenizer = tokenizer
        self.num_inference_steps = int(num_inference_steps)
        self.guidance_scale = float(guidance_scale)
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        for name, v in (("height", height), ("width", width)):
            if int(v) <= 0 or int(v) % self.vae_scale_factor:
                raise ValueError(f"{name} must be a positive multiple of {self.vae_scale_factor}, got {v}")
        self.height, self.width = int(height), int(width)
        cfg = text_encoder.config
        self.max_length = int(max_length or cfg.max_position_embeddings)
        self.bos_token_id = int(cfg.bos_token_id)
        self.eos_token_id = int(cfg.eos_token_id)
        pad = getattr(cfg, "pad_token_id", None)
        self.pad_token_id = int(pad) if pad is not None else self.eos_token_id
        if tokenizer is not None:  # SD's tokenizer pads with <|endoftext|>; the config may say otherwise
            self.bos_token_id = int(tokenizer.bos_token_id)
            self.eos_token_id = int(tokenizer.eos_token_id)
            self.pad_token_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None
                                    else tokenizer.eos_token_id)
        self.vae.requires_grad_(False)
        self.text_encoder.requires_grad_(False)
        self.unet.requires_grad_(False)

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, checkpoint: PathLike = DEFAULT_SD, decoder: Optional[PathLike] = None, *,
                        vlf_dim: Optional[int] = None, num_queries: Optional[int] = None, device=None,
                        dtype=None, allow_download: Optional[bool] = None, scheduler: str = "ddim",
                        **kwargs) -> "VLFImageDecoder":
        """Load SD 1.5 from ``checkpoint`` and the trained parts from ``decoder`` (a folder).

        ``decoder`` may hold ``projection/`` (+ optional ``unet/``, ``text_encoder/``) or be a bare
        projection folder. Without ``decoder`` a fresh, untrained projection of ``vlf_dim``/``num_queries``
        is created (its outputs are meaningless until trained: for tests and for training).
        """
        from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, UNet2DConditionModel
        from transformers import AutoTokenizer, CLIPTextModel

        base = resolve_checkpoint(checkpoint, what="Stable Diffusion 1.5 (U-Net, VAE, CLIP text encoder)",
                                  required_files=("unet/config.json", "vae/config.json",
                                                  "text_encoder/config.json", "scheduler/scheduler_config.json"),
                                  allow_download=allow_download, option="--sd-checkpoint")
        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev)
        trained = None
        if decoder is not None:
            trained = resolve_checkpoint(decoder, what="trained VLF image decoder (projection [+ U-Net])",
                                         option="--image-decoder")
        unet_dir = trained / "unet" if trained is not None and (trained / "unet").is_dir() else base / "unet"
        te_dir = (trained / "text_encoder" if trained is not None and (trained / "text_encoder").is_dir()
                  else base / "text_encoder")
        unet = UNet2DConditionModel.from_pretrained(unet_dir, torch_dtype=dt)
        vae = AutoencoderKL.from_pretrained(base / "vae", torch_dtype=dt)
        text_encoder = CLIPTextModel.from_pretrained(te_dir, dtype=dt)
        tokenizer = AutoTokenizer.from_pretrained(base / "tokenizer") if (base / "tokenizer").is_dir() else None
        sched_cls = {"ddim": DDIMScheduler, "ddpm": DDPMScheduler}.get(scheduler)
        if sched_cls is None:
            raise ValueError(f"scheduler must be 'ddim' or 'ddpm', got {scheduler!r}")
        # latents are not bounded: never clip the predicted x0 (DDIM's default when the config, like
        # SD 1.5's PNDM config, does not say)
        sched = sched_cls.from_pretrained(base, subfolder="scheduler", clip_sample=False)
        clip_dim = text_encoder.get_input_embeddings().embedding_dim
        if trained is not None:
            pdir = trained / "projection" if (trained / "projection").is_dir() else trained
            if not (pdir / "config.json").is_file():
                raise FileNotFoundError(f"image decoder folder {str(trained)!r} has no projection/config.json")
            projection = VLFToCLIPProjection.from_pretrained(pdir)
            for name, want in (("vlf_dim", vlf_dim), ("num_queries", num_queries)):
                if want is not None and getattr(projection.config, name) != want:
                    raise ValueError(f"the projection in {str(pdir)!r} has {name}={getattr(projection.config, name)}"
                                     f" but the VLF has {name}={want}")
        else:
            if vlf_dim is None or num_queries is None:
                raise ValueError("without a trained decoder folder, vlf_dim and num_queries are needed to build "
                                 "a fresh projection")
            projection = VLFToCLIPProjection(vlf_dim=vlf_dim, num_queries=num_queries, clip_dim=clip_dim)
        projection = projection.to(dev)  # float32: small and trained
        dec = cls(unet.to(dev).eval(), vae.to(dev).eval(), text_encoder.to(dev).eval(), projection.eval(), sched,
                  tokenizer=tokenizer, **kwargs)
        return dec

    @property
    def device(self) -> torch.device:
        return self.projection.linear.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    # -- conditioning ----------------------------------------------------------------------------
    def _label_ids(self, labels: Optional[Sequence[Optional[str]]], batch: int) -> List[List[int]]:
        if labels is None:
            return [[] for _ in range(batch)]
        if isinstance(labels, str) or len(labels) != batch:
            raise ValueError(f"labels must be a list of {batch} strings (or None entries), got {labels!r}")
        if any(l for l in labels) and self.tokenizer is None:
            raise ValueError("subject labels need the CLIP tokenizer (tokenizer/ folder of the SD checkpoint)")
        return [self.tokenizer(l, add_special_tokens=False)["input_ids"] if l else [] for l in labels]

    def condition_embeddings(self, received: torch.Tensor, labels=None) -> torch.Tensor:
        """Input embeddings ``[B, L, D]``: BOS, label tokens, projected VLF tokens, EOS, padding."""
        check_vlf(received)
        b = received.shape[0]
        proj = self.projection(received.to(self.device))  # [B, N, D] float32
        emb = self.text_encoder.get_input_embeddings()
        te_dtype = emb.weight.dtype
        proj = proj.to(te_dtype)
        label_ids = self._label_ids(labels, b)
        n = proj.shape[1]
        rows = []
        for i in range(b):
            total = 2 + len(label_ids[i]) + n
            if total > self.max_length:
                raise ValueError(f"conditioning sequence of {total} tokens (BOS + {len(label_ids[i])} label "
                                 f"tokens + {n} VLF tokens + EOS) exceeds the text encoder's {self.max_length} "
                                 f"positions; shorten labels[{i}]")
            pre = torch.tensor([self.bos_token_id] + label_ids[i], dtype=torch.long, device=self.device)
            post = torch.tensor([self.eos_token_id] + [self.pad_token_id] * (self.max_length - total),
                                dtype=torch.long, device=self.device)
            rows.append(torch.cat([emb(pre), proj[i], emb(post)], dim=0))
        return torch.stack(rows)

    def encode_condition(self, received: torch.Tensor, labels=None) -> torch.Tensor:
        """Received VLF ``[B, N, d]`` -> cross-attention states ``[B, L, D]`` (the text encoder output)."""
        return clip_text_from_embeddings(self.text_encoder, self.condition_embeddings(received, labels))

    def unconditional_condition(self, batch: int) -> torch.Tensor:
        """Text-encoder output of the empty sequence ``[BOS, EOS, pad...]``, ``[batch, L, D]``."""
        ids = torch.full((1, self.max_length), self.pad_token_id, dtype=torch.long, device=self.device)
        ids[0, 0], ids[0, 1] = self.bos_token_id, self.eos_token_id
        emb = self.text_encoder.get_input_embeddings()(ids)
        return clip_text_from_embeddings(self.text_encoder, emb).expand(batch, -1, -1)

    # -- sampling --------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, received: torch.Tensor, num_inference_steps: Optional[int] = None,
                 guidance_scale: Optional[float] = None, seed: Optional[int] = None,
                 generator: Optional[torch.Generator] = None, height: Optional[int] = None,
                 width: Optional[int] = None, latents: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Images ``[B, 3, H, W]`` in ``[0, 1]`` (float32, CPU-independent device) from a received VLF.

        The initial latents come from ``generator``, or a fresh generator seeded with ``seed``
        (default 0), so the same VLF and seed give the same image and only the VLF changes between
        SNR points.
        """
        check_vlf(received)
        steps = int(num_inference_steps or self.num_inference_steps)
        gs = float(self.guidance_scale if guidance_scale is None else guidance_scale)
        h, w = int(height or self.height), int(width or self.width)
        b = received.shape[0]
        dev, dt = self.device, self.dtype
        cond = self.encode_condition(received).to(dt)
        if gs > 1.0:
            cond = torch.cat([self.unconditional_condition(b).to(dt), cond])
        shape = (b, self.unet.config.in_channels, h // self.vae_scale_factor, w // self.vae_scale_factor)
        if latents is None:
            if generator is None:
                generator = torch.Generator(device=dev).manual_seed(0 if seed is None else int(seed))
            latents = torch.randn(shape, generator=generator, device=dev, dtype=torch.float32)
        elif tuple(latents.shape) != shape:
            raise ValueError(f"latents must have shape {shape}, got {tuple(latents.shape)}")
        self.scheduler.set_timesteps(steps, device=dev)
        latents = (latents * self.scheduler.init_noise_sigma).to(dt)
        for t in self.scheduler.timesteps:
            inp = torch.cat([latents] * 2) if gs > 1.0 else latents
            inp = self.scheduler.scale_model_input(inp, t)
            eps = self.unet(inp, t, encoder_hidden_states=cond).sample
            if gs > 1.0:
                e_u, e_c = eps.chunk(2)
                eps = e_u + gs * (e_c - e_u)
            latents = self.scheduler.step(eps, t, latents).prev_sample
        return self.decode_latents(latents)

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """VAE decode: latents ``[B, 4, h, w]`` -> images ``[B, 3, H, W]`` in [0, 1], float32."""
        x = self.vae.decode(latents.to(self.vae.dtype) / self.vae.config.scaling_factor).sample
        return (x.float() / 2 + 0.5).clamp(0, 1)

    def encode_images(self, images: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Images ``[B, 3, H, W]`` in [0, 1] -> scaled VAE latents ``[B, 4, H/f, W/f]``."""
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be a tensor [batch, 3, H, W] in [0, 1], got "
                             f"{tuple(getattr(images, 'shape', ()))}")
        x = images.to(self.device, self.vae.dtype) * 2 - 1
        dist = self.vae.encode(x).latent_dist
        z = dist.sample(generator) if generator is not None else dist.mean
        return z * self.vae.config.scaling_factor

    # -- training objective ----------------------------------------------------------------------
    def diffusion_loss(self, images: torch.Tensor, vlf: torch.Tensor, noise_scheduler, labels=None,
                       timesteps: Optional[torch.Tensor] = None, noise: Optional[torch.Tensor] = None,
                       t_range: Tuple[int, int] = (0, 100), generator: Optional[torch.Generator] = None,
                       cond_drop_prob: float = 0.0) -> torch.Tensor:
        """Simplified latent-diffusion loss ``MSE(eps_theta(z_t, t, c), target)`` on one batch.

        Parameters
        ----------
        images : ``[B, 3, H, W]`` in [0, 1]
        vlf : ``[B, N, d]`` (clean or received) VLFs
        noise_scheduler : DDPMScheduler (``add_noise``; ``prediction_type`` epsilon or v_prediction)
        labels : B subject labels ``c_i`` (or None)
        timesteps, noise : fix them for a deterministic loss; otherwise drawn from ``generator``,
            timesteps uniformly in ``t_range`` (inclusive).
        cond_drop_prob : probability of replacing an example's condition by the empty sequence
            (enables classifier-free guidance at sampling).
        """
        check_vlf(vlf, "vlf")
        if images.shape[0] != vlf.shape[0]:
            raise ValueError(f"images ({images.shape[0]}) and vlf ({vlf.shape[0]}) batch sizes differ")
        with torch.no_grad():
            z0 = self.encode_images(images).float()
        b = z0.shape[0]
        lo, hi = int(t_range[0]), int(t_range[1])
        T = int(noise_scheduler.config.num_train_timesteps)
        if not 0 <= lo <= hi < T:
            raise ValueError(f"t_range must satisfy 0 <= lo <= hi < {T}, got {t_range}")
        if noise is None:
            noise = torch.randn(z0.shape, generator=generator, dtype=z0.dtype) if generator is not None \
                else torch.randn_like(z0)
        if tuple(noise.shape) != tuple(z0.shape):
            raise ValueError(f"noise must have the latent shape {tuple(z0.shape)}, got {tuple(noise.shape)}")
        noise = noise.to(z0.device, z0.dtype)
        if timesteps is None:
            timesteps = torch.randint(lo, hi + 1, (b,), generator=generator, device="cpu").to(z0.device)
        timesteps = timesteps.to(z0.device).long()
        zt = noise_scheduler.add_noise(z0, noise, timesteps)
        cond = self.encode_condition(vlf, labels)
        if cond_drop_prob > 0:
            drop = torch.rand(b, generator=generator, device="cpu").to(cond.device) < cond_drop_prob
            if drop.any():
                cond = torch.where(drop[:, None, None], self.unconditional_condition(b).to(cond.dtype), cond)
        pred = self.unet(zt.to(self.unet.dtype), timesteps, encoder_hidden_states=cond.to(self.unet.dtype)).sample
        ptype = noise_scheduler.config.prediction_type
        if ptype == "epsilon":
            target = noise
        elif ptype == "v_prediction":
            target = noise_scheduler.get_velocity(z0, noise, timesteps)
        else:
            raise ValueError(f"unsupported prediction_type {ptype!r} (epsilon or v_prediction)")
        return F.mse_loss(pred.float(), target.float())

    # -- saving ----------------------------------------------------------------------------------
    def save_trained(self, path: PathLike, unet: bool = False, text_encoder: bool = False) -> None:
        """Save ``projection/`` (and ``unet/``/``text_encoder/`` when asked) under ``path``."""
        path = Path(path)
        self.projection.save_pretrained(path / "projection")
        if unet:
            self.unet.save_pretrained(path / "unet")
        if text_encoder:
            self.text_encoder.save_pretrained(path / "text_encoder")


# ------------------------------------------------------------------------------------------------
# Optimizer state as safetensors + JSON
# ------------------------------------------------------------------------------------------------
def save_optimizer_state(optimizer: torch.optim.Optimizer, path: PathLike) -> None:
    """Write ``optimizer.safetensors`` (tensors) + ``optimizer.json`` (param groups, scalars) in ``path``.

    Examples
    --------
    >>> import tempfile
    >>> net = nn.Linear(2, 1)
    >>> opt = torch.optim.Adam(net.parameters())
    >>> net(torch.ones(1, 2)).sum().backward(); opt.step()
    >>> path = tempfile.mkdtemp()
    >>> save_optimizer_state(opt, path)
    >>> sorted(p.name for p in Path(path).iterdir())
    ['optimizer.json', 'optimizer.safetensors']
    """
    from safetensors.torch import save_file

    path = Path(path)
    sd = optimizer.state_dict()
    tensors: Dict[str, torch.Tensor] = {}
    scalars: Dict[str, Dict[str, object]] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[k] = v
    save_file(tensors, str(path / "optimizer.safetensors"))
    (path / "optimizer.json").write_text(json.dumps({"param_groups": sd["param_groups"], "scalars": scalars},
                                                    indent=1))


def load_optimizer_state(optimizer: torch.optim.Optimizer, path: PathLike) -> None:
    """Inverse of :func:`save_optimizer_state` (tensors go to the device of their parameters).

    Examples
    --------
    >>> import tempfile
    >>> net = nn.Linear(2, 1)
    >>> opt = torch.optim.Adam(net.parameters())
    >>> net(torch.ones(1, 2)).sum().backward(); opt.step()
    >>> path = tempfile.mkdtemp()
    >>> save_optimizer_state(opt, path)
    >>> fresh = torch.optim.Adam(net.parameters())
    >>> load_optimizer_state(fresh, path)
    >>> fresh.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]
    tensor(True)
    """
    from safetensors.torch import load_file

    path = Path(path)
    meta = json.loads((path / "optimizer.json").read_text())
    tensors = load_file(str(path / "optimizer.safetensors"))
    state: Dict[int, Dict[str, object]] = {}
    for key, v in tensors.items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    for pid, d in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(d)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


# ------------------------------------------------------------------------------------------------
# Data-parallel helpers
# ------------------------------------------------------------------------------------------------
RANK_SEED_STRIDE = 1_000_003
"""Seed offset between ranks: rank ``r`` draws its noise from ``seed + r * RANK_SEED_STRIDE``."""


def rank_seed(seed: int, rank: int = 0) -> int:
    """The seed of rank ``rank`` (``seed`` itself on rank 0, so one process is unchanged).

    Examples
    --------
    >>> rank_seed(7), rank_seed(7, rank=1) != 7
    (7, True)
    """
    return int(seed) + int(rank) * RANK_SEED_STRIDE


def ddp_ignore_frozen(module: nn.Module) -> None:
    """Tell DDP not to broadcast the frozen parameters and the buffers of ``module`` at wrap time.

    The frozen parts (VAE, CLIP text encoder, OPT) are loaded from the same checkpoint on every rank,
    so broadcasting them would only cost time and memory; the trainable parameters are still
    broadcast from rank 0 and their gradients averaged.

    Examples
    --------
    >>> net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    >>> _ = net[0].requires_grad_(False)
    >>> ddp_ignore_frozen(net)
    >>> sorted(net._ddp_params_and_buffers_to_ignore)
    ['0.bias', '0.weight']
    """
    from torch.nn.parallel import DistributedDataParallel

    ignore = [n for n, p in module.named_parameters() if not p.requires_grad]
    ignore += [n for n, _ in module.named_buffers()]
    setter = getattr(DistributedDataParallel, "_set_params_and_buffers_to_ignore_for_model", None)
    if setter is not None and ignore:
        setter(module, ignore)


class _DiffusionLossModule(nn.Module):
    """``forward(...) = decoder.diffusion_loss(...)``: the unit that DDP wraps, so that the forward
    runs through the wrapper (DDP's gradient averaging needs that) while the decoder keeps its
    plain attributes (``decoder.projection.config`` etc.)."""

    def __init__(self, decoder: "VLFImageDecoder"):
        super().__init__()
        self.decoder = decoder

    def forward(self, images, vlf, noise_scheduler, **kwargs) -> torch.Tensor:
        return self.decoder.diffusion_loss(images, vlf, noise_scheduler, **kwargs)


# ------------------------------------------------------------------------------------------------
# Trainer
# ------------------------------------------------------------------------------------------------
@dataclass
class ImageDecoderTrainConfig:
    """Training recipe of the image decoder (defaults follow the paper where it states them).

    Examples
    --------
    >>> cfg = ImageDecoderTrainConfig(lr=2e-5, grad_accum=4)
    >>> cfg.lr, cfg.grad_accum, cfg.t_min, cfg.t_max
    (2e-05, 4, 0, 100)
    >>> ImageDecoderTrainConfig(t_min=50, t_max=10)
    Traceback (most recent call last):
    ...
    ValueError: ...
    """

    lr: float = 1e-5                      # U-Net / text encoder learning rate
    projection_lr: float = 1e-4           # the new linear map learns faster
    weight_decay: float = 1e-2
    t_min: int = 0                        # DDPM timesteps drawn uniformly in [t_min, t_max] (paper: [0, 100])
    t_max: int = 100
    grad_accum: int = 1                   # micro-batches per optimizer step
    mixed_precision: str = "no"           # "no" | "fp16" (CUDA, with a GradScaler) | "bf16" (CUDA or CPU)
    train_unet: bool = True
    train_text_encoder: bool = False
    cond_drop_prob: float = 0.0           # > 0 enables classifier-free guidance at sampling
    max_grad_norm: Optional[float] = 1.0
    seed: int = 0

    def __post_init__(self):
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError(f"mixed_precision must be 'no', 'fp16' or 'bf16', got {self.mixed_precision!r}")
        if not (isinstance(self.grad_accum, int) and self.grad_accum >= 1):
            raise ValueError(f"grad_accum must be an int >= 1, got {self.grad_accum!r}")
        if not 0 <= self.t_min <= self.t_max:
            raise ValueError(f"need 0 <= t_min <= t_max, got t_min={self.t_min}, t_max={self.t_max}")
        if not 0.0 <= self.cond_drop_prob < 1.0:
            raise ValueError(f"cond_drop_prob must be in [0, 1), got {self.cond_drop_prob}")
        for name in ("lr", "projection_lr"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < float("inf"):
                raise ValueError(f"{name} (learning rate) must be a finite number > 0, got {v!r}")


class ImageDecoderTrainer:
    """Optimise the projection (+ U-Net, + text encoder) of a :class:`VLFImageDecoder`.

    ``trainer.step(images, vlf, labels)`` does one micro-batch; every ``grad_accum`` micro-batches
    it applies an optimizer step and increments ``trainer.global_step``. ``save(dir)`` writes a
    resumable checkpoint folder; ``ImageDecoderTrainer.resume(decoder, dir)`` continues from it.

    Checkpoint folder: ``projection/``, [``unet/``], [``text_encoder/``] (config.json + safetensors),
    ``optimizer.safetensors`` + ``optimizer.json``, ``trainer_state.json`` (step, config, scaler,
    generator state, and ``trainer.extra_state``: a JSON dict the caller may fill, e.g. the command
    line's run settings and data position).

    Data parallel (``torchrun``): pass ``dist_info`` from :func:`semantic.distributed.init_distributed`.
    With a process group the trainable modules (projection, and the U-Net / text encoder when trained)
    are wrapped in ``DistributedDataParallel`` (through a small module whose forward is the diffusion
    loss, so the decoder keeps its plain attributes); gradients are averaged over ranks on the last
    micro-batch of each optimizer step (``no_sync()`` on the others). Each rank draws its timesteps,
    latent noise and condition dropout from ``rank_seed(config.seed, rank)``. Without a process group
    (``dist_info=None`` or world size 1) nothing is wrapped and the behaviour is the single-process one.
    :meth:`save` writes files: call it on rank 0 only (then ``barrier``).

    Examples
    --------
    Needs a :class:`VLFImageDecoder` (Stable Diffusion 1.5 weights), so the example is not run by the
    test-suite (``tests/test_vlf_msc_training.py`` trains a tiny random stand-in):

    >>> trainer = ImageDecoderTrainer(decoder, ImageDecoderTrainConfig(grad_accum=2))   # doctest: +SKIP
    >>> loss = trainer.step(images, vlf, labels)                                          # doctest: +SKIP
    >>> trainer.save("runs/decoder/step-1")                                               # doctest: +SKIP
    """

    def __init__(self, decoder: VLFImageDecoder, config: Optional[ImageDecoderTrainConfig] = None,
                 noise_scheduler=None, dist_info: Optional[DistInfo] = None):
        from diffusers import DDPMScheduler

        self.decoder = decoder
        self.config = config or ImageDecoderTrainConfig()
        cfg = self.config
        self.dist_info = dist_info if dist_info is not None else DistInfo(device=decoder.device)
        if noise_scheduler is None:
            noise_scheduler = DDPMScheduler.from_config(decoder.scheduler.config)
        self.noise_scheduler = noise_scheduler
        T = int(noise_scheduler.config.num_train_timesteps)
        if cfg.t_max >= T:
            raise ValueError(f"t_max={cfg.t_max} must be < num_train_timesteps={T}")
        dev = decoder.device
        self.device_type = dev.type
        self.autocast_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(cfg.mixed_precision)
        groups = [{"params": list(decoder.projection.parameters()), "lr": cfg.projection_lr}]
        decoder.projection.requires_grad_(True)
        for flag, mod in ((cfg.train_unet, decoder.unet), (cfg.train_text_encoder, decoder.text_encoder)):
            if flag:
                if next(mod.parameters()).dtype != torch.float32:
                    raise ValueError("trained modules must be loaded in float32 (use mixed_precision for speed)")
                mod.requires_grad_(True)
                groups.append({"params": list(mod.parameters()), "lr": cfg.lr})
        self.params = [p for g in groups for p in g["params"]]
        self.optimizer = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
        self.scaler = torch.amp.GradScaler("cuda") if (cfg.mixed_precision == "fp16" and dev.type == "cuda") \
            else None
        self.generator = torch.Generator().manual_seed(rank_seed(cfg.seed, self.dist_info.rank))
        loss_module = _DiffusionLossModule(decoder)
        if self.dist_info.distributed:
            ddp_ignore_frozen(loss_module)
        self.model = wrap_ddp(loss_module, self.dist_info)  # the module itself without a process group
        self.global_step = 0
        self.micro_step = 0
        self.last_loss: Optional[float] = None
        self.extra_state: Dict[str, object] = {}  # caller's JSON state, saved and restored with the checkpoint

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.autocast_dtype)

    def _set_train(self, on: bool) -> None:
        d, cfg = self.decoder, self.config
        d.projection.train(on)
        if cfg.train_unet:
            d.unet.train(on)
        if cfg.train_text_encoder:
            d.text_encoder.train(on)

    def step(self, images: torch.Tensor, vlf: torch.Tensor, labels=None, timesteps=None, noise=None) -> float:
        """One micro-batch; returns its loss. An optimizer step every ``grad_accum`` calls."""
        cfg = self.config
        self._set_train(True)
        syncs = (self.micro_step + 1) % cfg.grad_accum == 0  # last micro-batch: DDP averages the gradients
        no_sync = getattr(self.model, "no_sync", None)
        with (contextlib.nullcontext() if syncs or no_sync is None else no_sync()):
            with self._autocast():
                loss = self.model(images, vlf, self.noise_scheduler, labels=labels, timesteps=timesteps,
                                  noise=noise, t_range=(cfg.t_min, cfg.t_max), generator=self.generator,
                                  cond_drop_prob=cfg.cond_drop_prob)
            scaled = loss / cfg.grad_accum
            (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
        self.micro_step += 1
        if self.micro_step % cfg.grad_accum == 0:
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)
            if cfg.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm)
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.global_step += 1
        self._set_train(False)
        self.last_loss = float(loss.detach())
        return self.last_loss

    # -- checkpoints -----------------------------------------------------------------------------
    def save(self, path: PathLike) -> Path:
        """Write a resumable checkpoint folder atomically (to ``path.tmp``, then renamed)."""
        path = Path(path)
        tmp = staging_dir(path)
        cfg = self.config
        decoder = unwrap(self.model).decoder  # the plain modules, without DDP's ``module.`` prefix
        decoder.save_trained(tmp, unet=cfg.train_unet, text_encoder=cfg.train_text_encoder)
        save_optimizer_state(self.optimizer, tmp)
        state = {"global_step": self.global_step, "micro_step": self.micro_step, "config": asdict(cfg),
                 "last_loss": self.last_loss,
                 "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                 "generator_state": self.generator.get_state().tolist(), "extra": self.extra_state}
        (tmp / "trainer_state.json").write_text(json.dumps(state, indent=1))
        return commit_dir(tmp, path)

    @classmethod
    def resume(cls, decoder: VLFImageDecoder, path: PathLike, noise_scheduler=None,
               dist_info: Optional[DistInfo] = None,
               config: Optional[ImageDecoderTrainConfig] = None) -> "ImageDecoderTrainer":
        """Load the trained weights of ``path`` into ``decoder`` and restore step counter + optimizer.

        The training config is the checkpoint's; ``config``, when given, must equal it (a
        ``ValueError`` names each differing field, with the checkpoint's and the given value).
        ``trainer.extra_state`` comes back as it was saved.

        Every rank loads the same folder. The saved random-generator state is rank 0's; ranks > 0
        restart theirs from ``rank_seed(seed, rank) + global_step`` (independent of rank 0's).
        ``semcom train-image-decoder`` saves every rank's generators in ``extra_state`` and
        restores them exactly (:func:`experiments.commands.train_image_decoder.run_training_loop`).
        """
        path = Path(path)
        state = json.loads((path / "trainer_state.json").read_text())
        if config is not None:
            check_same_config(state["config"], asdict(config), path)
        cfg = ImageDecoderTrainConfig(**state["config"])
        _load_module_weights(decoder.projection, path / "projection")
        if cfg.train_unet:
            _load_module_weights(decoder.unet, path / "unet")
        if cfg.train_text_encoder:
            _load_module_weights(decoder.text_encoder, path / "text_encoder")
        tr = cls(decoder, cfg, noise_scheduler, dist_info=dist_info)
        if tr.scaler is not None and state.get("scaler"):
            tr.scaler.load_state_dict(state["scaler"])
        return restore_trainer_state(tr, state, path, cfg.seed)


def restore_trainer_state(trainer, state: dict, path: PathLike, seed: int):
    """Put a checkpoint's step counters, optimizer and per-step generator back into ``trainer``.

    Shared by the image-decoder and text-projection trainers: ``state`` is the checkpoint's
    ``trainer_state.json``; rank 0 restores its saved generator state, ranks above 0 (whose states
    the CLIs restore from the per-rank record) are reseeded from ``(seed, rank, step)``.

    Examples
    --------
    A checkpoint's counters and optimizer go back into any trainer-like object (here a stand-in with the
    attributes both trainers have):

    >>> import tempfile, types
    >>> from semantic.distributed import DistInfo
    >>> net = nn.Linear(2, 1)
    >>> opt = torch.optim.Adam(net.parameters())
    >>> path = tempfile.mkdtemp()
    >>> save_optimizer_state(opt, path)
    >>> trainer = types.SimpleNamespace(optimizer=opt, dist_info=DistInfo(), generator=torch.Generator())
    >>> state = {"global_step": 12, "micro_step": 48, "last_loss": 0.5, "extra": {"epoch": 2}}
    >>> t = restore_trainer_state(trainer, state, path, seed=0)
    >>> t.global_step, t.micro_step, t.extra_state
    (12, 48, {'epoch': 2})
    """
    load_optimizer_state(trainer.optimizer, path)
    trainer.global_step = int(state["global_step"])
    trainer.micro_step = int(state["micro_step"])
    trainer.last_loss = state.get("last_loss")
    trainer.extra_state = dict(state.get("extra") or {})
    if trainer.dist_info.rank > 0:
        trainer.generator.manual_seed(rank_seed(seed, trainer.dist_info.rank) + trainer.global_step)
    elif state.get("generator_state") is not None:
        trainer.generator.set_state(torch.tensor(state["generator_state"], dtype=torch.uint8))
    return trainer


def check_same_config(saved: dict, given: dict, path: PathLike) -> None:
    """Raise ``ValueError`` naming every field whose value differs between a checkpoint's training
    config (``saved``, from ``trainer_state.json``) and the config a resume was asked for (``given``).

    Values are compared after a JSON round trip (tuples and lists are equal).

    Example
    -------
    >>> check_same_config({"lr": 0.01, "seed": 0}, {"lr": 0.01, "seed": 0}, "ck")
    >>> check_same_config({"lr": 0.01}, {"lr": 0.001}, "ck")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: the checkpoint 'ck' was trained with another config (lr: checkpoint 0.01, given 0.001); ...
    """
    def canon(v):
        return json.loads(json.dumps(v))

    diffs = [f"{k}: checkpoint {json.dumps(canon(saved.get(k)))}, given {json.dumps(canon(v))}"
             for k, v in given.items() if canon(saved.get(k)) != canon(v)]
    if diffs:
        raise ValueError(f"the checkpoint {str(path)!r} was trained with another config ({'; '.join(diffs)}); "
                         f"resume with the checkpoint's config or start a new run")


def _load_module_weights(module: nn.Module, folder: Path) -> None:
    """Load the safetensors weights of a ``save_pretrained`` folder into ``module`` (strict)."""
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no .safetensors weights in {str(folder)!r}")
    sd: Dict[str, torch.Tensor] = {}
    for f in files:  # one file, or the shards of a large module
        sd.update(load_file(str(f), device=str(next(module.parameters()).device)))
    missing, unexpected = module.load_state_dict(sd, strict=False)
    if unexpected or [m for m in missing if "position_ids" not in m]:
        raise ValueError(f"weights in {str(folder)!r} do not match the module: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
