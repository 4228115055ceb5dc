"""VLF-MSC text receiver: an OPT language model conditioned on the received VLF.

::

    received VLF [B, N, d] --mean over N (paper mode)--> [B, 1, d] --W_proj (d -> H)--> soft prompt [B, 1, H]
        --prepend to the embeddings of "</s>" (+ optional prompt)--> OPT --greedy/beam--> caption

* ``mode="pooled"`` (the paper): one soft prompt, the VLF averaged over its ``N`` queries.
* ``mode="blip2"`` (BLIP-2 native): all ``N`` projected query tokens, as BLIP-2 itself does.

``W_proj`` (:class:`SoftPromptProjection`, a ``ModelMixin``/``ConfigMixin`` saved as ``config.json`` +
safetensors) starts from BLIP-2's trained ``language_projection``; :func:`finetune_projection_step`
fine-tunes it on image-caption pairs with channel noise (OPT stays frozen);
:class:`TextProjectionTrainer` is the resumable (and ``torchrun`` data-parallel) version used by
``semcom train-text-projection``.

Example
-------
>>> from semantic.vlf import load_blip2                                           # doctest: +SKIP
>>> model, proc = load_blip2("Salesforce/blip2-opt-2.7b")                        # doctest: +SKIP
>>> dec = OPTTextDecoder.from_blip2(model, proc.tokenizer, mode="pooled")        # doctest: +SKIP
>>> dec.generate(received_vlf)                                                   # doctest: +SKIP
['a dog running on the beach', ...]
"""
from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .checkpoints import commit_dir, resolve_checkpoint, staging_dir
from .distributed import DistInfo, unwrap, wrap_ddp
from .vlf import check_vlf

__all__ = ["TEXT_MODES", "SoftPromptProjection", "OPTTextDecoder", "finetune_projection_step",
           "finetune_projection", "TextProjectionTrainConfig", "TextProjectionTrainer"]

#: How the VLF conditions OPT: one pooled soft prompt (the paper) or BLIP-2's ``N`` query tokens.
TEXT_MODES = ("pooled", "blip2")


class SoftPromptProjection(ModelMixin, ConfigMixin):
    """``W_proj``: VLF ``[B, N, d]`` -> soft prompt ``[B, 1, H]`` (pooled) or ``[B, N, H]`` (blip2).

    Args:
        vlf_dim (`int`, *optional*, defaults to 768): ``d``.
        hidden_size (`int`, *optional*, defaults to 4096): the LLM width ``H`` (OPT-6.7b: 4096, 2.7b: 2560).
        mode (`str`, *optional*, defaults to ``"pooled"``): ``"pooled"`` or ``"blip2"``.

    Example
    -------
    >>> p = SoftPromptProjection(vlf_dim=8, hidden_size=6)
    >>> p(torch.randn(2, 4, 8)).shape
    torch.Size([2, 1, 6])
    """

    @register_to_config
    def __init__(self, vlf_dim: int = 768, hidden_size: int = 4096, mode: str = "pooled"):
        super().__init__()
        if mode not in TEXT_MODES:
            raise ValueError(f"mode must be one of {TEXT_MODES}, got {mode!r}")
        self.linear = nn.Linear(vlf_dim, hidden_size)

    @classmethod
    def from_linear(cls, linear: nn.Linear, mode: str = "pooled") -> "SoftPromptProjection":
        """A copy of a trained ``nn.Linear`` (BLIP-2's ``language_projection``), kept in float32."""
        proj = cls(vlf_dim=linear.in_features, hidden_size=linear.out_features, mode=mode)
        with torch.no_grad():
            proj.linear.weight.copy_(linear.weight.float())
            proj.linear.bias.copy_(linear.bias.float())
        return proj.to(linear.weight.device)

    def forward(self, vlf: torch.Tensor) -> torch.Tensor:
        check_vlf(vlf, "vlf")
        if vlf.shape[-1] != self.config.vlf_dim:
            raise ValueError(f"vlf has width d={vlf.shape[-1]} but the projection expects {self.config.vlf_dim}")
        if self.config.mode == "pooled":
            vlf = vlf.mean(dim=1, keepdim=True)
        return self.linear(vlf.to(self.linear.weight.dtype))


class OPTTextDecoder(nn.Module):
    """OPT conditioned on a received VLF through a soft prompt.

    Parameters
    ----------
    language_model : OPTForCausalLM (frozen)
    tokenizer : the OPT tokenizer (``GPT2Tokenizer`` with ``</s>`` as BOS/EOS)
    projection : SoftPromptProjection
    prompt : str
        Text after the soft prompt (default ``""``: the tokenizer's BOS only, as BLIP-2 captioning).
    max_new_tokens, num_beams : generation defaults (greedy when ``num_beams == 1``).

    Examples
    --------
    Needs the BLIP-2 weights (its OPT and projection), so the example is not run by the test-suite
    (``tests/test_vlf_msc.py`` uses a tiny random stand-in):

    >>> decoder = OPTTextDecoder.from_pretrained("Salesforce/blip2-opt-2.7b")       # doctest: +SKIP
    >>> decoder.generate(received)          # received VLF [B, N, d] -> B captions    # doctest: +SKIP
    ['a dog running on the beach', ...]
    """

    def __init__(self, language_model: nn.Module, tokenizer, projection: SoftPromptProjection,
                 prompt: str = "", max_new_tokens: int = 30, num_beams: int = 1):
        super().__init__()
        hidden = language_model.get_input_embeddings().embedding_dim
        if projection.config.hidden_size != hidden:
            raise ValueError(f"projection outputs width {projection.config.hidden_size} but the language model "
                             f"expects {hidden}")
        self.language_model = language_model.requires_grad_(False)
        self.tokenizer = tokenizer
        self.projection = projection
        self.prompt = prompt
        self.max_new_tokens = int(max_new_tokens)
        self.num_beams = int(num_beams)

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_blip2(cls, model, tokenizer, mode: str = "pooled",
                   projection: Union[None, str, os.PathLike, SoftPromptProjection] = None,
                   **kwargs) -> "OPTTextDecoder":
        """Share a loaded BLIP-2's OPT; ``W_proj`` from ``projection`` (a folder or module) or, by
        default, a float32 copy of BLIP-2's ``language_projection``."""
        if mode not in TEXT_MODES:
            raise ValueError(f"mode must be one of {TEXT_MODES}, got {mode!r}")
        if projection is None:
            proj = SoftPromptProjection.from_linear(model.language_projection, mode=mode)
        elif isinstance(projection, SoftPromptProjection):
            proj = projection
        else:
            path = resolve_checkpoint(projection, what="text soft-prompt projection W_proj",
                                      required_files=("config.json",), option="--text-projection")
            proj = SoftPromptProjection.from_pretrained(path).to(model.language_projection.weight.device)
            if proj.config.mode != mode:
                raise ValueError(f"the projection in {projection!s} was trained for mode "
                                 f"{proj.config.mode!r}, not {mode!r}")
        tok = getattr(tokenizer, "tokenizer", tokenizer)  # accept a Blip2Processor too
        return cls(model.language_model, tok, proj, **kwargs)

    @classmethod
    def from_pretrained(cls, checkpoint="Salesforce/blip2-opt-6.7b", mode: str = "pooled", projection=None,
                        device=None, dtype=None, device_map=None, allow_download=None,
                        **kwargs) -> "OPTTextDecoder":
        """Load a BLIP-2 checkpoint (see :func:`semantic.vlf.load_blip2`) and take its OPT + projection."""
        from .vlf import load_blip2

        model, processor = load_blip2(checkpoint, device=device, dtype=dtype, device_map=device_map,
                                      allow_download=allow_download)
        return cls.from_blip2(model, processor.tokenizer, mode=mode, projection=projection, **kwargs)

    @property
    def mode(self) -> str:
        return self.projection.config.mode

    @property
    def device(self) -> torch.device:
        return self.projection.linear.weight.device

    # -- inputs ----------------------------------------------------------------------------------
    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.language_model.get_input_embeddings()(ids)

    def soft_prompt(self, received: torch.Tensor) -> torch.Tensor:
        """Received VLF ``[B, N, d]`` -> soft prompt ``[B, P, H]`` in the LM dtype (P = 1 or N)."""
        check_vlf(received)
        lm_dtype = self.language_model.get_input_embeddings().weight.dtype
        return self.projection(received.to(self.device)).to(lm_dtype)

    def _prompt_ids(self, batch: int) -> torch.Tensor:
        ids = self.tokenizer(self.prompt, add_special_tokens=True, return_tensors="pt")["input_ids"]
        bos = self.tokenizer.bos_token_id
        if bos is not None and (ids.shape[1] == 0 or ids[0, 0].item() != bos):
            ids = torch.cat([torch.tensor([[bos]]), ids], dim=1)
        return ids.expand(batch, -1).to(self.device)

    def build_inputs(self, received: torch.Tensor):
        """``(inputs_embeds [B, P + T, H], attention_mask [B, P + T])``: soft prompt, then BOS/prompt."""
        sp = self.soft_prompt(received)
        ids = self._prompt_ids(sp.shape[0])
        embeds = torch.cat([sp, self._embed(ids)], dim=1)
        mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
        return embeds, mask

    # -- generation ------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, received: torch.Tensor, max_new_tokens: Optional[int] = None,
                 num_beams: Optional[int] = None, **generate_kwargs) -> List[str]:
        """Captions for a received VLF ``[B, N, d]`` (greedy, or beam search with ``num_beams > 1``)."""
        embeds, mask = self.build_inputs(received)
        tok = self.tokenizer
        out = self.language_model.generate(
            inputs_embeds=embeds, attention_mask=mask,
            max_new_tokens=int(max_new_tokens or self.max_new_tokens),
            num_beams=int(num_beams or self.num_beams), do_sample=False,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
            **generate_kwargs)
        return [t.strip() for t in tok.batch_decode(out, skip_special_tokens=True)]

    # -- training --------------------------------------------------------------------------------
    def caption_loss(self, received: torch.Tensor, captions: Sequence[str]) -> torch.Tensor:
        """Language-model loss of ``captions`` given the received VLF (labels on caption + EOS only)."""
        check_vlf(received)
        if isinstance(captions, str) or len(captions) != received.shape[0]:
            raise ValueError(f"captions must be a list of {received.shape[0]} strings (one per VLF), got "
                             f"{captions!r}")
        tok = self.tokenizer
        embeds, mask = self.build_inputs(received)
        n_prefix = embeds.shape[1]
        rows = [tok(c.strip(), add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for c in captions]
        width = max(len(r) for r in rows)
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], dtype=torch.long, device=self.device)
        cmask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], dtype=torch.long,
                             device=self.device)
        all_embeds = torch.cat([embeds, self._embed(ids)], dim=1)
        all_mask = torch.cat([mask, cmask], dim=1)
        labels = torch.cat([torch.full((ids.shape[0], n_prefix), -100, dtype=torch.long, device=self.device),
                            ids.masked_fill(cmask == 0, -100)], dim=1)
        out = self.language_model(inputs_embeds=all_embeds, attention_mask=all_mask, labels=labels)
        return out.loss

    def save_projection(self, path: Union[str, os.PathLike]) -> None:
        """Save ``W_proj`` as ``config.json`` + ``diffusion_pytorch_model.safetensors`` in ``path``."""
        self.projection.save_pretrained(path)


def finetune_projection_step(decoder: OPTTextDecoder, optimizer: torch.optim.Optimizer, vlf: torch.Tensor,
                             captions: Sequence[str], link=None, snr_db=None) -> float:
    """One optimisation step of ``W_proj`` on (VLF, caption) pairs, the VLF sent through ``link`` first.

    Parameters
    ----------
    decoder : OPTTextDecoder
    optimizer : an optimizer over ``decoder.projection.parameters()``
    vlf : ``[B, N, d]`` clean VLFs
    captions : B reference captions
    link : phy.link.analog.AnalogLink, optional
        When given (with ``snr_db``: a number, or a ``[B]`` tensor of per-example SNRs), the VLF is
        sent through it, so W_proj learns to read noisy VLFs.

    Returns
    -------
    float : the loss before the step.

    Examples
    --------
    Needs an :class:`OPTTextDecoder` (BLIP-2 weights), so the example is not run by the test-suite:

    >>> from phy.link.analog import AnalogLink
    >>> opt = torch.optim.AdamW(decoder.projection.parameters(), lr=1e-4)             # doctest: +SKIP
    >>> finetune_projection_step(decoder, opt, vlf, ["a dog on a beach"], link=AnalogLink("awgn"),
    ...                          snr_db=5.0)                                         # doctest: +SKIP
    2.31...
    """
    if (link is None) != (snr_db is None):
        raise ValueError("give both link and snr_db (channel noise) or neither")
    decoder.projection.train()
    if link is not None:
        with torch.no_grad():
            vlf = link(vlf, snr_db=snr_db).x_hat
    optimizer.zero_grad(set_to_none=True)
    loss = decoder.caption_loss(vlf, captions)
    loss.backward()
    optimizer.step()
    decoder.projection.eval()
    return float(loss.detach())


def finetune_projection(decoder: OPTTextDecoder, batches: Iterable, steps: int, lr: float = 1e-4,
                        link=None, snr_range_db=None, seed: int = 0) -> List[float]:
    """A short loop of :func:`finetune_projection_step` over ``batches`` of ``(vlf, captions)``.

    ``snr_range_db=(lo, hi)`` draws one SNR per example uniformly in that range (needs ``link``).
    Returns the per-step losses.

    Examples
    --------
    Needs an :class:`OPTTextDecoder` (BLIP-2 weights), so the example is not run by the test-suite:

    >>> losses = finetune_projection(decoder, batches, steps=100, link=AnalogLink("awgn"),
    ...                              snr_range_db=(-5.0, 10.0))                     # doctest: +SKIP
    >>> len(losses)                                                                  # doctest: +SKIP
    100
    """
    if snr_range_db is not None and link is None:
        raise ValueError("snr_range_db needs a link")
    opt = torch.optim.AdamW(decoder.projection.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    losses: List[float] = []
    it = iter(batches)
    for _ in range(int(steps)):
        try:
            vlf, caps = next(it)
        except StopIteration:
            it = iter(batches)
            vlf, caps = next(it)
        snr = None
        if snr_range_db is not None:
            lo, hi = snr_range_db
            snr = (lo + (hi - lo) * torch.rand(vlf.shape[0], generator=gen)).to(vlf.device)
        losses.append(finetune_projection_step(decoder, opt, vlf, caps, link, snr))
    return losses


# ------------------------------------------------------------------------------------------------
# Resumable W_proj trainer (semcom train-text-projection)
# ------------------------------------------------------------------------------------------------
@dataclass
class TextProjectionTrainConfig:
    """Recipe of the W_proj fine-tuning (OPT frozen).

    ``snr_range_db=(lo, hi)``: each VLF goes through the link at an SNR drawn uniformly in
    ``[lo, hi]`` dB (Es/N0), one per example; ``None``: clean VLFs.

    Examples
    --------
    >>> cfg = TextProjectionTrainConfig(snr_range_db=(-5, 10))
    >>> cfg.snr_range_db, cfg.lr
    ((-5.0, 10.0), 0.0001)
    >>> TextProjectionTrainConfig(snr_range_db=(10, -5))
    Traceback (most recent call last):
    ...
    ValueError: snr_range_db must be (lo, hi) with lo <= hi, got (10, -5)
    """

    lr: float = 1e-4
    weight_decay: float = 0.0
    snr_range_db: Optional[Tuple[float, float]] = (-5.0, 10.0)
    grad_accum: int = 1
    max_grad_norm: Optional[float] = 1.0
    seed: int = 0

    def __post_init__(self):
        if not (isinstance(self.grad_accum, int) and self.grad_accum >= 1):
            raise ValueError(f"grad_accum must be an int >= 1, got {self.grad_accum!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.snr_range_db is not None:
            if len(self.snr_range_db) != 2 or float(self.snr_range_db[0]) > float(self.snr_range_db[1]):
                raise ValueError(f"snr_range_db must be (lo, hi) with lo <= hi, got {self.snr_range_db!r}")
            self.snr_range_db = (float(self.snr_range_db[0]), float(self.snr_range_db[1]))


class _CaptionLossModule(nn.Module):
    """``forward(vlf, captions) = decoder.caption_loss(vlf, captions)``: the unit DDP wraps."""

    def __init__(self, decoder: OPTTextDecoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, vlf: torch.Tensor, captions: Sequence[str]) -> torch.Tensor:
        return self.decoder.caption_loss(vlf, captions)


class TextProjectionTrainer:
    """Fine-tune ``W_proj`` of an :class:`OPTTextDecoder` on (VLF, caption) pairs, resumably.

    ``trainer.step(vlf, captions)`` does one micro-batch (the VLF sent through ``link`` at SNRs
    drawn from ``config.snr_range_db`` first); every ``grad_accum`` micro-batches it applies an
    AdamW step and increments ``global_step``. ``save(dir)`` writes a checkpoint folder that is also
    a valid ``--text-projection`` folder: ``config.json`` + safetensors of W_proj,
    ``optimizer.safetensors`` + ``optimizer.json``, ``trainer_state.json`` (step, config, generator
    state, and ``trainer.extra_state``: a JSON dict the caller may fill).
    ``TextProjectionTrainer.resume(decoder, dir, link)`` continues from it.

    Under ``torchrun`` pass ``dist_info`` (:func:`semantic.distributed.init_distributed`): W_proj is
    wrapped in ``DistributedDataParallel`` (gradients averaged over ranks, ``no_sync()`` on
    accumulation micro-batches) and each rank draws its SNRs from ``seed + rank * RANK_SEED_STRIDE``.

    Example
    -------
    >>> tr = TextProjectionTrainer(decoder, TextProjectionTrainConfig(snr_range_db=(0, 10)), link)  # doctest: +SKIP
    >>> tr.step(vlf, ["a dog on the beach", ...])                                                  # doctest: +SKIP
    >>> tr.save("runs/wproj/checkpoint-0000100")                                                   # doctest: +SKIP
    """

    def __init__(self, decoder: OPTTextDecoder, config: Optional[TextProjectionTrainConfig] = None, link=None,
                 dist_info: Optional[DistInfo] = None):
        from .image_decoder import ddp_ignore_frozen, rank_seed

        self.decoder = decoder
        self.config = config or TextProjectionTrainConfig()
        cfg = self.config
        if cfg.snr_range_db is not None and link is None:
            raise ValueError("config.snr_range_db needs a link (phy.link.analog.AnalogLink) to add channel noise")
        self.link = link
        self.dist_info = dist_info if dist_info is not None else DistInfo(device=decoder.device)
        if next(decoder.projection.parameters()).dtype != torch.float32:
            raise ValueError("W_proj must be float32 to be trained")
        decoder.projection.requires_grad_(True)
        self.params = list(decoder.projection.parameters())
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.generator = torch.Generator().manual_seed(rank_seed(cfg.seed, self.dist_info.rank))
        module = _CaptionLossModule(decoder)
        if self.dist_info.distributed:
            ddp_ignore_frozen(module)  # the frozen OPT is identical on every rank
        self.model = wrap_ddp(module, self.dist_info)
        self.global_step = 0
        self.micro_step = 0
        self.last_loss: Optional[float] = None
        self.extra_state: Dict[str, Any] = {}  # caller's JSON state, saved and restored with the checkpoint

    def draw_snr(self, batch: int) -> Optional[torch.Tensor]:
        """``[batch]`` SNRs in dB uniform in ``config.snr_range_db`` (``None`` without a range)."""
        if self.config.snr_range_db is None:
            return None
        lo, hi = self.config.snr_range_db
        return lo + (hi - lo) * torch.rand(batch, generator=self.generator, dtype=torch.float64).float()

    def step(self, vlf: torch.Tensor, captions: Sequence[str], snr_db=None) -> float:
        """One micro-batch of clean VLFs ``[B, N, d]`` and ``B`` captions; returns its loss.

        ``snr_db`` (number or ``[B]``) overrides the drawn SNRs; the noise itself comes from the link's
        channel stream.
        """
        check_vlf(vlf, "vlf")
        cfg = self.config
        if snr_db is None:
            snr_db = self.draw_snr(vlf.shape[0])
        if snr_db is not None:
            if self.link is None:
                raise ValueError("snr_db given but the trainer has no link")
            with torch.no_grad():
                snr = snr_db.to(vlf.device) if isinstance(snr_db, torch.Tensor) else snr_db
                vlf = self.link(vlf.float(), snr_db=snr).x_hat
        self.decoder.projection.train()
        syncs = (self.micro_step + 1) % cfg.grad_accum == 0
        no_sync = getattr(self.model, "no_sync", None)
        with (contextlib.nullcontext() if syncs or no_sync is None else no_sync()):
            loss = self.model(vlf, list(captions))
            (loss / cfg.grad_accum).backward()
        self.micro_step += 1
        if syncs:
            if cfg.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.global_step += 1
        self.decoder.projection.eval()
        self.last_loss = float(loss.detach())
        return self.last_loss

    def save(self, path: Union[str, os.PathLike]) -> Path:
        """Write a resumable checkpoint folder atomically (``path.tmp`` then renamed); rank 0 only."""
        from .image_decoder import save_optimizer_state

        path = Path(path)
        tmp = staging_dir(path)
        unwrap(self.model).decoder.projection.save_pretrained(tmp)
        save_optimizer_state(self.optimizer, tmp)
        state = {"global_step": self.global_step, "micro_step": self.micro_step, "config": asdict(self.config),
                 "last_loss": self.last_loss, "generator_state": self.generator.get_state().tolist(),
                 "extra": self.extra_state}
        (tmp / "trainer_state.json").write_text(json.dumps(state, indent=1))
        return commit_dir(tmp, path)

    @classmethod
    def resume(cls, decoder: OPTTextDecoder, path: Union[str, os.PathLike], link=None,
               dist_info: Optional[DistInfo] = None,
               config: Optional[TextProjectionTrainConfig] = None) -> "TextProjectionTrainer":
        """Load W_proj, optimizer state and step counter of ``path`` into a new trainer.

        The training config is the checkpoint's; ``config``, when given, must equal it (a
        ``ValueError`` names each differing field, with the checkpoint's and the given value).
        ``trainer.extra_state`` comes back as it was saved.

        The saved generator state is rank 0's; ranks > 0 restart theirs from their rank seed
        + ``global_step``. The link's channel stream is not part of the trainer: ``semcom
        train-text-projection`` saves it, and every rank's generators, in ``extra_state`` and
        restores them (:func:`experiments.commands.train_image_decoder.run_training_loop`).
        """
        from .image_decoder import check_same_config, restore_trainer_state

        path = Path(path)
        state = json.loads((path / "trainer_state.json").read_text())
        if config is not None:
            check_same_config(state["config"], asdict(config), path)
        cfg = TextProjectionTrainConfig(**state["config"])
        saved = json.loads((path / "config.json").read_text())
        if saved.get("mode", decoder.mode) != decoder.mode:
            raise ValueError(f"the checkpoint {str(path)!r} was trained for text mode {saved.get('mode')!r}, "
                             f"not {decoder.mode!r}")
        # (the folder also holds optimizer.safetensors: load W_proj through its own loader)
        saved_proj = SoftPromptProjection.from_pretrained(path)
        decoder.projection.load_state_dict(saved_proj.state_dict())
        tr = cls(decoder, cfg, link, dist_info=dist_info)
        return restore_trainer_state(tr, state, path, cfg.seed)
