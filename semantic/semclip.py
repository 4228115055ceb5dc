"""SemCLIP: zero-shot semantic communication of CLIP image tokens over the shared channel core.

Pipeline (transmitter -> channel -> receiver)::

    image --CLIP image encoder (frozen, extracted once: semantic.clip_tokens)--> token t [N]
      --JSCC encoder (SNR-adaptive, semantic.jscc)--> L complex symbols, mean |x|^2 = 1
      --phy channel (AWGN / Rayleigh + MMSE or ZF)--> JSCC decoder --> t_hat [N]
      --TAPL (semantic.tapl) + frozen CLIP text encoder--> class scores over *unseen* classes;
        text queries rank the received t_hat for text-to-image retrieval.

Training: stage 1 trains the JSCC with the contrastive loss (eq. 4) at SNRs drawn uniformly from
``snr_train_range`` per example; stage 2 freezes it and trains TAPL on the *seen* classes with the
image-text loss (eq. 5). Evaluation uses the unseen classes of a seeded split. The SNR given to the
JSCC (encoder and decoder) is the channel's known Es/N0.

Both training loops are resumable: ``<out>/checkpoint/`` holds the model folders plus
``train_state.pt`` (optimizer, AMP scaler, step, loss history) every ``checkpoint_every`` steps;
a rerun with the same ``out`` continues from there. The final model is written to ``<out>/``.

:func:`train_jscc` also runs data parallel under ``torchrun`` (pass ``dist_info`` from
:func:`semantic.distributed.init_distributed`; the CLI does it: ``torchrun --standalone
--nproc_per_node 4 -m experiments.cli semclip train-jscc ...``) and then follows the single-process
run on the same global batch step for step (see its docstring).

Example
-------
>>> import torch
>>> from phy.channel.flat import AWGN
>>> from semantic.semclip import SemCLIPConfig, train_jscc
>>> cfg = SemCLIPConfig(token_dim=16, channel_uses=4, hidden_dim=32, jscc_steps=3, jscc_batch_size=8)
>>> codec, hist = train_jscc(torch.randn(20, 16), cfg, out_dir=None, progress=False)
>>> len(hist)
3
"""
from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from phy.channel.base import Channel, ChannelOutput
from phy.channel.registry import make_channel
from phy.utils.conventions import bandwidth_compression_ratio

from .distributed import DistInfo, all_gather_with_grad, barrier, rank_slice, unwrap, wrap_ddp
from .jscc import JSCCCodec, contrastive_jscc_loss, sample_snr_db
from .tapl import TAPL, TAPL_LOSS_DIRECTIONS, CLIPTextTower, TaskPerformer, tapl_loss, zeroshot_classifier

__all__ = [
    "SemCLIPConfig",
    "SemCLIP",
    "train_jscc",
    "train_tapl",
    "load_train_state",
    "transmit_tokens",
    "classification_topk",
    "text_to_image_retrieval",
    "feature_retrieval_topk",
    "evaluate_zeroshot",
]


@dataclass
class SemCLIPConfig:
    """Every setting of a SemCLIP system (saved as ``semclip_config.json`` next to checkpoints).

    Attributes
    ----------
    clip_model, pretrained : open_clip model name (or ``local-dir:``) and tag/file.
    token_dim : ``N`` (768 for ViT-L-14-336).
    channel_uses : ``L`` complex channel uses per image (default 384 = N/2).
    hidden_dim, num_hidden, use_af, linear_skip : JSCC architecture (``use_af=False``: the ablation;
        ``linear_skip``: a linear shortcut from input to output of the encoder and of the decoder).
    channel : channel name for :func:`phy.channel.registry.make_channel` (``awgn``, ``rayleigh``...).
    equalizer : ``mmse`` or ``zf`` (used on fading channels).
    snr_train_range : (low, high) dB, SNR drawn uniformly per example in training.
    temperature : of the contrastive JSCC loss (eq. 4 of the paper has none, i.e. 1; 0.07 is CLIP's).
    tapl_loss : ``"i2t"`` (image-to-text cross entropy) or ``"both"`` (mean with the text-to-image term
        over the classes present in the batch); see :func:`semantic.tapl.tapl_loss`.
    jscc_batch_size, jscc_lr, jscc_steps, tapl_batch_size, tapl_lr, tapl_steps : batch size, learning rate, steps.
    n_ctx, ctx_init : TAPL context length and initialisation text.
    tapl_classes_per_step : classes scored per TAPL step (the batch's labels plus random others;
        ``None`` = all seen classes). Needed because the text encoder runs on B x G prompts.
    text_chunk : prompts per text-encoder pass.
    checkpoint_every : steps between resumable checkpoints.
    unseen_fraction, split_seed : the seen/unseen class split.
    seed : training seed (batches, SNRs, channel).

    Examples
    --------
    >>> import tempfile
    >>> cfg = SemCLIPConfig(token_dim=32, channel_uses=16, channel="rayleigh")
    >>> path = Path(tempfile.mkdtemp()) / "semclip_config.json"
    >>> cfg.save(path)
    >>> SemCLIPConfig.load(path) == cfg
    True
    """

    clip_model: str = "ViT-L-14-336"
    pretrained: Optional[str] = "openai"
    token_dim: int = 768
    channel_uses: int = 384
    hidden_dim: int = 1024
    num_hidden: int = 2
    use_af: bool = True
    linear_skip: bool = True
    channel: str = "awgn"
    equalizer: str = "mmse"
    snr_train_range: Tuple[float, float] = (-10.0, 10.0)
    temperature: float = 0.07
    tapl_loss: str = "i2t"
    jscc_batch_size: int = 256
    jscc_lr: float = 1e-3
    jscc_steps: int = 20000
    n_ctx: int = 4
    ctx_init: str = "a photo of a"
    tapl_batch_size: int = 32
    tapl_lr: float = 2e-3
    tapl_steps: int = 5000
    tapl_classes_per_step: Optional[int] = 100
    text_chunk: int = 2048
    checkpoint_every: int = 500
    unseen_fraction: float = 0.2
    split_seed: int = 0
    seed: int = 0

    def __post_init__(self):
        for name in ("token_dim", "channel_uses", "hidden_dim", "num_hidden", "jscc_batch_size", "jscc_steps",
                     "n_ctx", "tapl_batch_size", "tapl_steps", "text_chunk", "checkpoint_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0 or (v == 0 and not name.endswith("steps")):
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        k = self.tapl_classes_per_step
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise ValueError(f"tapl_classes_per_step must be a positive int or None (all classes), got {k!r}")
        lo, hi = (float(v) for v in self.snr_train_range)
        if hi < lo:
            raise ValueError(f"snr_train_range must be (low, high), got {self.snr_train_range!r}")
        self.snr_train_range = (lo, hi)
        if self.equalizer not in ("mmse", "zf"):
            raise ValueError(f"equalizer must be 'mmse' or 'zf', got {self.equalizer!r}")
        for name in ("jscc_lr", "tapl_lr"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < math.inf:
                raise ValueError(f"{name} (learning rate) must be a finite number > 0, got {v!r}")
        if not 0 < self.temperature:
            raise ValueError(f"temperature must be > 0, got {self.temperature!r}")
        if self.tapl_loss not in TAPL_LOSS_DIRECTIONS:
            raise ValueError(f"tapl_loss must be one of {TAPL_LOSS_DIRECTIONS}, got {self.tapl_loss!r}")
        from phy.utils.memory import check_memory

        check_memory(self.jscc_training_bytes(), f"training the JSCC (token_dim {self.token_dim}, channel_uses "
                     f"{self.channel_uses}, hidden_dim {self.hidden_dim}, batch {self.jscc_batch_size})",
                     hint="use a smaller --channel-uses / --hidden-dim / --batch-size")

    def jscc_training_bytes(self) -> int:
        """Bytes the JSCC encoder + decoder need in training: weights, gradients and two Adam moments (16 bytes
        per parameter) and the activations of one batch.

        Examples
        --------
        >>> SemCLIPConfig(token_dim=32, channel_uses=16, hidden_dim=64).jscc_training_bytes() < 2 ** 21
        True
        """
        n, m, h, k = self.token_dim, 2 * self.channel_uses, self.hidden_dim, self.num_hidden
        dense = lambda a, b: a * b + a * h + max(k - 1, 0) * h * h + h * b + k * (h + 1) * max(8, h // 4) * 2  # noqa: E731
        params = dense(n, m) + dense(m, n)
        return 16 * params + 4 * self.jscc_batch_size * (2 * (n + m) + 4 * k * h)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SemCLIPConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown SemCLIPConfig keys: {sorted(unknown)}")
        d = dict(d)
        if "snr_train_range" in d:
            d["snr_train_range"] = tuple(d["snr_train_range"])
        return cls(**d)

    def save(self, path: Union[str, Path]) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: Union[str, Path]) -> "SemCLIPConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def _progress(total: int, initial: int, desc: str, enabled: Optional[bool]):
    from tqdm.auto import tqdm

    disable = not sys.stderr.isatty() if enabled is None else not enabled
    return tqdm(total=total, initial=initial, desc=desc, disable=disable)


def _step_generator(seed: int, step: int, device) -> torch.Generator:
    """A generator for one training step: batches and SNRs depend only on (seed, step), so a resumed
    run draws exactly what an uninterrupted one would."""
    g = torch.Generator(device=device)
    g.manual_seed((int(seed) * 1_000_003 + int(step)) % (2**62))
    return g


def _save_checkpoint(out_dir: Path, save_models: Callable[[Path], None], state: dict) -> None:
    """Write ``<out>/checkpoint`` atomically (build in ``checkpoint.tmp``, then swap)."""
    tmp, final, old = out_dir / "checkpoint.tmp", out_dir / "checkpoint", out_dir / "checkpoint.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_models(tmp)
    torch.save(state, tmp / "train_state.pt")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


# settings that do not change what a training stage computes (checked on resume: every other one)
_NOT_DEFINING = {"jscc": ("checkpoint_every", "text_chunk", "clip_model", "pretrained", "n_ctx", "ctx_init",
                          "tapl_batch_size", "tapl_lr", "tapl_steps", "tapl_classes_per_step"),
                 "tapl": ("checkpoint_every", "text_chunk")}


def stage_settings(cfg: SemCLIPConfig, stage: str) -> Dict[str, object]:
    """The settings of ``cfg`` that define training ``stage`` (``"jscc"`` or ``"tapl"``), JSON-ready:
    recorded in every checkpoint and compared on resume."""
    return json.loads(json.dumps({k: v for k, v in cfg.to_dict().items() if k not in _NOT_DEFINING[stage]}))


def _describe(obj) -> str:
    """A stable one-line identity: a channel's repr, or a module's class and a digest of its weights."""
    if isinstance(obj, Channel):
        return " ".join(repr(obj).split())
    import hashlib

    h = hashlib.sha1()
    for name, t in sorted(obj.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return f"{type(obj).__name__}:{h.hexdigest()[:16]}"


def load_train_state(ck: Path, device, given: Dict[str, object]) -> dict:
    """``ck/train_state.pt`` read with ``weights_only=True`` (tensors and plain containers only: a
    planted pickle cannot run), refused unless it records the same ``given`` settings (its
    ``"settings"`` entry). Shared by every resumable trainer (SemCLIP's stages, the DJSCC baselines).

    Examples
    --------
    >>> import tempfile
    >>> ck = Path(tempfile.mkdtemp())
    >>> torch.save({"step": 7, "settings": {"lr": 0.001}}, ck / "train_state.pt")
    >>> load_train_state(ck, "cpu", {"lr": 0.001})["step"]
    7
    >>> load_train_state(ck, "cpu", {"lr": 0.01})
    Traceback (most recent call last):
    ...
    ValueError: ...
    """
    path = ck / "train_state.pt"
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError (a non-tensor object), RuntimeError (not a zip)...
        from semantic.checkpoints import load_refusal

        raise ValueError(f"{path} is not a checkpoint this code wrote ({load_refusal(exc)}); "
                         f"delete {ck} to start over") from None
    saved = state.get("settings") if isinstance(state, dict) else None
    if not isinstance(saved, dict):
        raise ValueError(f"{path} records no training settings, so resuming could mix two runs; "
                         f"delete {ck} to start over, or use another out folder")
    diff = sorted(k for k in set(saved) | set(given) if saved.get(k) != given.get(k))
    if diff:
        raise ValueError(f"{ck} was trained with other settings (" + ", ".join(
            f"{k}: {saved.get(k)!r} -> {given.get(k)!r}" for k in diff) + "); resuming would mix them: "
            "use another out folder or delete it")
    return state


def _find_checkpoint(out_dir: Path) -> Optional[Path]:
    for name in ("checkpoint", "checkpoint.old"):
        p = out_dir / name
        if (p / "train_state.pt").is_file():
            return p
    return None


def _channel(channel: Union[Channel, str, None], cfg: SemCLIPConfig, seed: int) -> Channel:
    if channel is None:
        return make_channel(cfg.channel, seed=seed)
    if isinstance(channel, str):
        return make_channel(channel, seed=seed)
    if not isinstance(channel, Channel):
        raise TypeError(f"channel must be a phy.channel.base.Channel or a name, got {type(channel).__name__}")
    return channel


class _GlobalBatchRows(Channel):
    """``channel`` acting on this rank's ``rows`` of a global batch of ``global_batch`` examples.

    Each call places the rank's symbols ``x`` ``[b, L]`` (and a per-example ``N0`` ``[b, 1]``) at
    ``rows`` of a zero ``[global_batch, L]`` batch (``N0 = 1`` elsewhere), sends the whole batch through
    ``channel`` and keeps ``rows`` of ``y`` (and of ``h``). The
    channel thus draws the fading and noise of the *global* batch, exactly as a single process does
    for it; since every rank's copy of ``channel`` has the same seed, every rank draws the same
    realisations and keeps its own rows. Consequences: the ranks' examples get independent noise,
    the data-parallel run equals the single-process one, and the channel streams of all ranks stay
    in step (so rank 0's checkpointed RNG state resumes every rank). Valid for channels that act on
    each example (row) separately, as every :mod:`phy.channel` model does. The cost is drawing
    ``global_batch x L`` noise values per rank and step.

    ``generator`` is the wrapped channel's; the JSCC's equaliser (perfect CSI) draws nothing from it.
    """

    name = "global-batch-rows"

    def __init__(self, channel: Channel, global_batch: int, rows: slice):
        super().__init__(seed=channel.seed)
        if not 0 <= rows.start <= rows.stop <= global_batch:
            raise ValueError(f"rows must lie in [0, {global_batch}], got {rows}")
        self.channel, self.global_batch, self.rows = channel, int(global_batch), rows

    def generator(self, device: Union[str, torch.device]) -> torch.Generator:
        return self.channel.generator(device)

    def forward(self, x: torch.Tensor, no) -> ChannelOutput:
        no_t = self._check_inputs(x, no)
        lo, hi = self.rows.start, self.rows.stop
        if x.dim() < 1 or x.shape[0] != hi - lo:
            raise ValueError(f"x must hold this rank's {hi - lo} examples (rows {lo}:{hi}), got shape {tuple(x.shape)}")

        def pad(t: torch.Tensor, fill: float) -> torch.Tensor:
            before = t.new_full((lo, *t.shape[1:]), fill)
            after = t.new_full((self.global_batch - hi, *t.shape[1:]), fill)
            return torch.cat([before, t, after])

        # N0 keeps its own shape (per example [b, 1] -> [B, 1]; a scalar stays one), so the wrapped
        # channel sees the arguments of the single-process call and takes the same code path
        per_row = no_t.dim() == x.dim() and no_t.shape[0] == hi - lo
        out = self.channel(pad(x, 0.0), pad(no_t, 1.0) if per_row else no_t)
        h = out.h
        if h is not None and h.dim() == x.dim() and h.shape[0] == self.global_batch:
            h = h[lo:hi]
        return ChannelOutput(y=out.y[lo:hi], h=h, no=no_t)

    def extra_repr(self) -> str:
        return f"global_batch={self.global_batch}, rows={self.rows.start}:{self.rows.stop}"


# ------------------------------------------------------------------------------------------------
# stage 1: JSCC
# ------------------------------------------------------------------------------------------------
def train_jscc(features: torch.Tensor, cfg: SemCLIPConfig, out_dir: Optional[Union[str, Path]] = None,
               channel: Union[Channel, str, None] = None, device: Union[str, torch.device, None] = None,
               steps: Optional[int] = None, progress: Optional[bool] = None,
               codec: Optional[JSCCCodec] = None, stop_at: Optional[int] = None,
               dist_info: Optional[DistInfo] = None) -> Tuple[JSCCCodec, List[float]]:
    """Train the SNR-adaptive JSCC with the contrastive loss (eq. 4) on tokens ``features`` ``[n, N]``.

    Each step draws a global batch of ``B = min(cfg.jscc_batch_size, n)`` tokens and ``B`` SNRs from a
    generator seeded with ``(cfg.seed, step)`` (a resumed run draws what an uninterrupted one would).

    Data parallel (``torchrun``; pass ``dist_info`` from :func:`semantic.distributed.init_distributed`)::

        torchrun --standalone --nproc_per_node 4 -m experiments.cli semclip train-jscc \\
            --features runs/feats-train --out runs/jscc --batch-size 256

    Every rank holds all of ``features`` and draws the same global batch; rank ``r`` encodes, sends and
    decodes its contiguous share (:func:`semantic.distributed.rank_slice`; ``B`` must be a multiple of
    the world size) through the channel wrapped so that it draws the noise and fading of the whole
    global batch from its seeded stream and keeps the rank's rows: the realisations are those of the
    single-process run, and all ranks' channel streams stay identical. The received tokens are
    all-gathered (:func:`semantic.distributed.all_gather_with_grad`: gradient to the rank's own rows
    only) and each rank computes eq. 4 over the full ``B x B`` similarity matrix. Rank ``r``'s
    backward then holds only its rows' part of the full-batch gradient; these parts sum to it, and
    DDP *averages* over ranks, so the loss is multiplied by the world size before ``backward``: the
    averaged gradient is the single-process gradient of the global batch (float rounding aside) and
    the run follows the single-process one step for step. The reported loss is eq. 4 itself (the
    same on every rank). Rank 0 alone writes checkpoints, the config and the final folder (the others
    wait at barriers); every rank reads the checkpoint on resume. As the draws do not depend on the
    number of processes, a checkpoint resumes under any world size that divides ``B`` (one process
    included). ``out_dir`` must be shared by the ranks (one node, or a shared file system).

    Parameters
    ----------
    features : Tensor ``[n, N]`` float (raw tokens; the codec L2-normalises them)
    cfg : :class:`SemCLIPConfig`
    out_dir : path, optional
        Checkpoints (resumable) and the final codec; ``None`` keeps everything in memory.
    channel : Channel or name, optional (default ``cfg.channel`` seeded with ``cfg.seed``)
        Under ``torchrun`` every rank must pass an identically seeded channel.
    device : str or torch.device, optional
        Default ``dist_info.device`` when ``dist_info`` is given, else ``"cpu"``.
    steps : int, optional (default ``cfg.jscc_steps``): total steps, including resumed ones.
    progress : bool, optional (default: a progress bar when stderr is a TTY)
    codec : JSCCCodec, optional (a fresh one from ``cfg`` by default)
    stop_at : int, optional
        Checkpoint and return after this step (a time-limited job); a rerun resumes. The final
        model folder is only written when all ``steps`` are done.
    dist_info : :class:`semantic.distributed.DistInfo`, optional
        This process's place in a ``torchrun`` job. ``None`` (or no process group): one process.

    Returns
    -------
    codec (on ``device``, eval mode; the plain module, not the DDP wrapper), loss history (one float per
    step, resumed ones included; identical on every rank)

    Examples
    --------
    A few steps on random tokens (the real run trains on CLIP tokens for ``cfg.jscc_steps``):

    >>> cfg = SemCLIPConfig(token_dim=16, channel_uses=8, hidden_dim=32, jscc_batch_size=8)
    >>> codec, losses = train_jscc(torch.randn(32, 16), cfg, channel="awgn", device="cpu", steps=3, progress=False)
    >>> len(losses), codec.encoder.config.channel_uses
    (3, 8)
    """
    info, world, device, B = _jscc_setup(features, cfg, device, dist_info)
    steps = cfg.jscc_steps if steps is None else int(steps)
    if codec is None:
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the global stream
            torch.manual_seed(cfg.seed)
            codec = JSCCCodec.build(cfg.token_dim, cfg.channel_uses, cfg.hidden_dim, cfg.num_hidden, cfg.use_af,
                                    cfg.equalizer, cfg.linear_skip)
    codec.to(device).train()
    ch = _channel(channel, cfg, cfg.seed)
    opt = torch.optim.AdamW(codec.parameters(), lr=cfg.jscc_lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, max(steps, 1)) / max(steps, 1))) * 0.95 + 0.05)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    state = {"optimizer": opt, "scheduler": sched, "scaler": scaler}
    settings = {**stage_settings(cfg, "jscc"), "steps": steps, "channel": _describe(ch)}
    out = Path(out_dir) if out_dir is not None else None
    start, history = _jscc_resume(out, codec, state, ch, device, settings, cfg, info)
    feats = features.float().to(device)
    n = feats.shape[0]
    rows = rank_slice(B, info) if world > 1 else slice(0, B)  # this rank's share of the global batch
    link = _GlobalBatchRows(ch, B, rows) if world > 1 else ch
    model = wrap_ddp(codec, info) if world > 1 else codec
    bar = _progress(steps, start, "train-jscc", progress if info.is_main else False)
    for step in range(start, steps):
        g = _step_generator(cfg.seed, step, device)
        idx = torch.randperm(n, generator=g, device=device)[:B]  # the same global batch on every rank
        snr = sample_snr_db(B, cfg.snr_train_range, generator=g, device=device)
        sent = feats[idx]
        with torch.autocast(device_type=device.type, enabled=use_amp):
            t_hat = model(sent[rows], link, snr[rows]).x_hat
        received = all_gather_with_grad(t_hat.float(), info) if world > 1 else t_hat.float()
        loss = contrastive_jscc_loss(sent, received, cfg.temperature)
        opt.zero_grad(set_to_none=True)
        # world > 1: rank r's backward holds its rows' share of the full-batch gradient and DDP
        # averages the shares, so the loss is scaled by the world size (see the docstring)
        scaler.scale(loss * world if world > 1 else loss).backward()
        scaler.step(opt)
        scaler.update()
        sched.step()
        history.append(float(loss.detach()))
        bar.update(1)
        bar.set_postfix(loss=f"{history[-1]:.3f}")
        last = step + 1 == steps or (stop_at is not None and step + 1 >= stop_at)
        if out is not None and ((step + 1) % cfg.checkpoint_every == 0 or last):
            _jscc_checkpoint(out, codec, step + 1, history, state, ch, device, settings, info)
        if last:
            break
    bar.close()
    if out is not None and len(history) >= steps:
        if info.is_main:
            codec.save_pretrained(out)
            (out / "train_history.json").write_text(json.dumps(history))
        barrier(info)
    return unwrap(model).eval(), history


def _jscc_setup(features: torch.Tensor, cfg: SemCLIPConfig, device, dist_info: Optional[DistInfo]):
    """Check the inputs of :func:`train_jscc`; ``(dist info, world size, device, global batch B)``."""
    if not isinstance(features, torch.Tensor) or features.dim() != 2 or features.shape[1] != cfg.token_dim:
        raise ValueError(f"features must be a [n, {cfg.token_dim}] tensor (cfg.token_dim), got "
                         f"{tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__}")
    if features.shape[0] < 2:
        raise ValueError("the contrastive loss needs at least 2 examples")
    if dist_info is not None and not isinstance(dist_info, DistInfo):
        raise TypeError(f"dist_info must be a semantic.distributed.DistInfo or None, got {type(dist_info).__name__}")
    info = dist_info if dist_info is not None else DistInfo()
    world = info.world_size if info.distributed else 1
    if device is None:
        device = info.device if dist_info is not None else "cpu"
    device = torch.device(device)
    if info.distributed and device != info.device:
        raise ValueError(f"device must be this rank's device {info.device} (dist_info.device), got {device}")
    B = min(cfg.jscc_batch_size, features.shape[0])
    if B % world:
        raise ValueError(f"the global batch (min(jscc_batch_size, n) = {B}) must be a multiple of the world size "
                         f"{world}: every rank takes an equal share")
    return info, world, device, B


def _jscc_resume(out: Optional[Path], codec: JSCCCodec, state: Dict[str, object], ch: Channel, device,
                 settings: Dict[str, object], cfg: SemCLIPConfig, info: DistInfo) -> Tuple[int, List[float]]:
    """Load the newest checkpoint under ``out`` into the codec, the optimiser, scheduler and scaler of
    ``state`` and the channel stream; ``(step, loss history)`` to go on from (``(0, [])`` for a fresh run).
    Rank 0 then records the config."""
    start, history = 0, []
    if out is None:
        return start, history
    ck = _find_checkpoint(out)
    if ck is not None:
        saved = load_train_state(ck, device, settings)
        state["optimizer"].load_state_dict(saved["optimizer"])
        state["scheduler"].load_state_dict(saved["scheduler"])
        codec.load_state_dict(JSCCCodec.from_pretrained(ck).state_dict())
        state["scaler"].load_state_dict(saved["scaler"])
        start, history = int(saved["step"]), list(saved["history"])
        ch.generator(device).set_state(saved["channel_rng"].cpu())
    barrier(info)  # every rank has read the checkpoint before rank 0 writes a new one
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        cfg.save(out / "semclip_config.json")
    return start, history


def _jscc_checkpoint(out: Path, codec: JSCCCodec, step: int, history: List[float], state: Dict[str, object],
                     ch: Channel, device, settings: Dict[str, object], info: DistInfo) -> None:
    """Rank 0 writes the checkpoint after ``step`` steps; every rank waits for it."""
    if info.is_main:
        _save_checkpoint(out, codec.save_pretrained,
                         {"step": step, "history": history, "optimizer": state["optimizer"].state_dict(),
                          "scheduler": state["scheduler"].state_dict(), "scaler": state["scaler"].state_dict(),
                          "channel_rng": ch.generator(device).get_state(), "settings": settings})
    barrier(info)


# ------------------------------------------------------------------------------------------------
# transmission and metrics
# ------------------------------------------------------------------------------------------------
@torch.no_grad()
def transmit_tokens(tokens: torch.Tensor, codec: Optional[JSCCCodec], channel: Optional[Channel], snr_db,
                    batch_size: int = 1024, device: Union[str, torch.device] = "cpu") -> torch.Tensor:
    """Received tokens ``[n, N]`` for ``tokens`` ``[n, N]`` at ``snr_db`` (``codec=None``: ideal link).

    Examples
    --------
    >>> from phy.channel.flat import AWGN
    >>> tokens = torch.randn(6, 16)
    >>> torch.equal(transmit_tokens(tokens, None, None, snr_db=0.0), tokens)        # ideal link
    True
    >>> from semantic.jscc import JSCCDecoder, JSCCEncoder
    >>> codec = JSCCCodec(JSCCEncoder(16, 8, 32), JSCCDecoder(16, 8, 32))
    >>> transmit_tokens(tokens, codec, AWGN(seed=0), snr_db=5.0, batch_size=4).shape
    torch.Size([6, 16])
    """
    if codec is None:
        return tokens.float()
    device = torch.device(device)
    codec.to(device).eval()
    outs = []
    for lo in range(0, tokens.shape[0], batch_size):
        t = tokens[lo:lo + batch_size].float().to(device)
        with torch.autocast(device_type=device.type, enabled=device.type == "cuda"):
            outs.append(codec(t, channel, snr_db).x_hat.float().cpu())
    return torch.cat(outs)


def classification_topk(logits: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)) -> Dict[int, float]:
    """Top-k accuracies of ``logits`` ``[n, G]`` for ``labels`` ``[n]`` (k capped at G).

    Examples
    --------
    >>> logits = torch.tensor([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    >>> classification_topk(logits, torch.tensor([1, 2]), ks=(1, 2))
    {1: 0.5, 2: 1.0}
    """
    out = {}
    for k in ks:
        kk = min(int(k), logits.shape[1])
        top = logits.topk(kk, dim=1).indices
        out[int(k)] = float((top == labels[:, None].to(top.device)).any(dim=1).float().mean())
    return out


def text_to_image_retrieval(scores: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)
                            ) -> Dict[int, float]:
    """Text-to-image retrieval: each class text query ranks the images by ``scores[:, g]``.

    ``scores`` ``[n_images, G]`` (image-text similarities); a query ``g`` is a hit at ``k`` when one of
    its ``k`` best-ranked images has label ``g``. Averaged over the classes present in ``labels``.

    Examples
    --------
    >>> scores = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.1, 0.7]])   # 3 images x 2 class queries
    >>> text_to_image_retrieval(scores, torch.tensor([1, 0, 1]), ks=(1, 2))
    {1: 0.5, 2: 1.0}
    """
    present = torch.unique(labels)
    out = {}
    for k in ks:
        kk = min(int(k), scores.shape[0])
        top = scores[:, present].topk(kk, dim=0).indices  # [k, Q]
        hit = (labels[top] == present[None, :]).any(dim=0).float()
        out[int(k)] = float(hit.mean())
    return out


def feature_retrieval_topk(received: torch.Tensor, database: torch.Tensor, targets: Optional[torch.Tensor] = None,
                           ks: Sequence[int] = (1, 5), chunk: int = 4096) -> Dict[int, float]:
    """Fraction of received features whose own item is among the ``k`` nearest database items (cosine).

    ``received`` ``[q, D]``, ``database`` ``[n, D]``, ``targets`` ``[q]`` index of each query's item in the
    database (default ``arange(q)``).

    Examples
    --------
    >>> db = torch.eye(3)
    >>> feature_retrieval_topk(db + 0.1, db, ks=(1,))
    {1: 1.0}
    """
    if targets is None:
        targets = torch.arange(received.shape[0])
    db = F.normalize(database.float(), dim=-1)
    hits = {int(k): 0 for k in ks}
    for lo in range(0, received.shape[0], chunk):
        sim = F.normalize(received[lo:lo + chunk].float(), dim=-1) @ db.T
        top = sim.topk(max(hits), dim=1).indices
        tgt = targets[lo:lo + chunk, None].to(top.device)
        for k in hits:
            hits[k] += int((top[:, :k] == tgt).any(dim=1).sum())
    return {k: v / received.shape[0] for k, v in hits.items()}


# ------------------------------------------------------------------------------------------------
# the system object
# ------------------------------------------------------------------------------------------------
class SemCLIP(torch.nn.Module):
    """A SemCLIP receiver/transmitter pair around the frozen CLIP text tower.

    Parameters
    ----------
    cfg : :class:`SemCLIPConfig`
    codec : :class:`JSCCCodec` or None (None = ideal link, the CLIP-FT upper bound)
    tower : :class:`CLIPTextTower`
    tokenizer : open_clip tokenizer
    tapl : :class:`TAPL` or None (None = plain zero-shot classifier ``"a photo of a {class}."``)
    logit_scale : float

    Examples
    --------
    >>> import tempfile, open_clip
    >>> from semantic.clip_tokens import load_open_clip, save_open_clip_local_dir
    >>> cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "patch_size": 16, "width": 32, "layers": 1,
    ...        "head_width": 16}, "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2,
    ...        "layers": 1}}
    >>> path = save_open_clip_local_dir(open_clip.CLIP(**cfg), cfg, tempfile.mkdtemp(), {"size": 32})
    >>> model, preprocess, tokenizer = load_open_clip("local-dir:" + str(path))   # a tiny random CLIP
    >>> cfg = SemCLIPConfig(clip_model="local-dir:" + str(path), token_dim=32, channel_uses=16)
    >>> system = SemCLIP.from_clip(cfg, model, tokenizer)    # no codec: an ideal link, plain zero-shot
    >>> received = system.transmit(torch.randn(5, 32), None, snr_db=0.0)
    >>> system.scores(received, ["cat", "dog", "car"]).shape     # [n, G]
    torch.Size([5, 3])
    """

    def __init__(self, cfg: SemCLIPConfig, codec: Optional[JSCCCodec], tower: CLIPTextTower, tokenizer: Callable,
                 tapl: Optional[TAPL] = None, logit_scale: float = 100.0):
        super().__init__()
        self.cfg, self.codec, self.tower, self.tokenizer, self.tapl = cfg, codec, tower, tokenizer, tapl
        self.logit_scale = float(logit_scale)
        self.performer = (TaskPerformer(tapl, tower, tokenizer, logit_scale, cfg.ctx_init, cfg.text_chunk)
                          if tapl is not None else None)

    @classmethod
    def from_clip(cls, cfg: SemCLIPConfig, clip_model, tokenizer, codec=None, tapl=None) -> "SemCLIP":
        return cls(cfg, codec, CLIPTextTower(clip_model), tokenizer, tapl, float(clip_model.logit_scale.exp()))

    def channel_uses(self) -> int:
        return self.codec.channel_uses if self.codec is not None else math.ceil(self.cfg.token_dim / 2)

    def bandwidth_ratio(self, image_shape: Sequence[int]) -> float:
        """``L / (C*H*W)`` (complex channel uses per real source value)."""
        return bandwidth_compression_ratio(self.channel_uses(), tuple(image_shape))

    def transmit(self, tokens: torch.Tensor, channel: Optional[Channel], snr_db, device="cpu") -> torch.Tensor:
        return transmit_tokens(tokens, self.codec, channel, snr_db, device=device)

    @torch.no_grad()
    def scores(self, received: torch.Tensor, class_names: Sequence[str], batch_size: int = 64,
               device="cpu") -> torch.Tensor:
        """Class logits ``[n, G]`` for received tokens ``[n, N]`` (TAPL if present, else the plain classifier)."""
        device = torch.device(device)
        self.tower.to(device)
        if self.performer is None:
            w = zeroshot_classifier(self.tower, self.tokenizer, class_names, chunk=self.cfg.text_chunk)
            return self.logit_scale * F.normalize(received.float().to(device), dim=-1) @ w.T
        self.performer.to(device).eval()
        out = []
        for lo in range(0, received.shape[0], batch_size):
            with torch.autocast(device_type=device.type, enabled=device.type == "cuda"):
                out.append(self.performer(received[lo:lo + batch_size].to(device), class_names).float().cpu())
        return torch.cat(out)


def evaluate_zeroshot(system: SemCLIP, tokens: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str],
                      channel: Optional[Channel], snr_db: float, device="cpu", batch_size: int = 64
                      ) -> Dict[str, float]:
    """Zero-shot top-1/top-5 accuracy and text-to-image retrieval top-1/top-5 of received tokens.

    ``tokens`` ``[n, N]`` float, ``labels`` ``[n]`` int64 indices into ``class_names``.

    Examples
    --------
    >>> import tempfile, open_clip
    >>> from semantic.clip_tokens import load_open_clip, save_open_clip_local_dir
    >>> cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "patch_size": 16, "width": 32, "layers": 1,
    ...        "head_width": 16}, "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2,
    ...        "layers": 1}}
    >>> path = save_open_clip_local_dir(open_clip.CLIP(**cfg), cfg, tempfile.mkdtemp(), {"size": 32})
    >>> model, preprocess, tokenizer = load_open_clip("local-dir:" + str(path))   # a tiny random CLIP
    >>> cfg = SemCLIPConfig(clip_model="local-dir:" + str(path), token_dim=32)
    >>> system = SemCLIP.from_clip(cfg, model, tokenizer)
    >>> res = evaluate_zeroshot(system, torch.randn(6, 32), torch.tensor([0, 1, 2] * 2), ["cat", "dog", "car"],
    ...                         None, snr_db=0.0)
    >>> sorted(res), res["top5"]          # 3 classes: every label is in the top 5
    (['retrieval_top1', 'retrieval_top5', 'top1', 'top5'], 1.0)
    """
    received = system.transmit(tokens, channel, snr_db, device=device)
    logits = system.scores(received, class_names, batch_size=batch_size, device=device).cpu()
    acc = classification_topk(logits, labels, (1, 5))
    ret = text_to_image_retrieval(logits, labels, (1, 5))
    return {"top1": acc[1], "top5": acc[5], "retrieval_top1": ret[1], "retrieval_top5": ret[5]}


# ------------------------------------------------------------------------------------------------
# stage 2: TAPL
# ------------------------------------------------------------------------------------------------
def train_tapl(tokens: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str], codec: Optional[JSCCCodec],
               clip_model, tokenizer, cfg: SemCLIPConfig, out_dir: Optional[Union[str, Path]] = None,
               channel: Union[Channel, str, None] = None, device: Union[str, torch.device] = "cpu",
               steps: Optional[int] = None, progress: Optional[bool] = None,
               stop_at: Optional[int] = None) -> Tuple[TAPL, List[float]]:
    """Train TAPL on the *seen* classes through the frozen JSCC (stage 2, eq. 5).

    ``tokens`` ``[n, N]`` float, ``labels`` ``[n]`` int64 indices into ``class_names``.

    Each step: a batch of tokens, SNRs drawn from ``cfg.snr_train_range``, received tokens from the
    frozen codec (``codec=None``: ideal link), logits over ``cfg.tapl_classes_per_step`` classes
    (all the batch's labels plus random others), cross entropy. Resumable like :func:`train_jscc`.

    Examples
    --------
    A few steps on random tokens through an ideal link (``codec=None``) with a tiny random CLIP:

    >>> import tempfile, open_clip
    >>> from semantic.clip_tokens import load_open_clip, save_open_clip_local_dir
    >>> cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "patch_size": 16, "width": 32, "layers": 1,
    ...        "head_width": 16}, "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2,
    ...        "layers": 1}}
    >>> path = save_open_clip_local_dir(open_clip.CLIP(**cfg), cfg, tempfile.mkdtemp(), {"size": 32})
    >>> model, preprocess, tokenizer = load_open_clip("local-dir:" + str(path))   # a tiny random CLIP
    >>> cfg = SemCLIPConfig(clip_model="local-dir:" + str(path), token_dim=32, tapl_batch_size=4,
    ...                     tapl_classes_per_step=None)
    >>> tapl, losses = train_tapl(torch.randn(8, 32), torch.tensor([0, 1] * 4), ["cat", "dog"], None, model,
    ...                           tokenizer, cfg, steps=2, progress=False)
    >>> len(losses), tapl(torch.randn(1, 32)).shape             # context [B, M, W]
    (2, torch.Size([1, 4, 32]))
    """
    if tokens.dim() != 2 or labels.shape != (tokens.shape[0],):
        raise ValueError(f"tokens must be [n, N] and labels [n], got {tuple(tokens.shape)} and {tuple(labels.shape)}")
    device = torch.device(device)
    steps = cfg.tapl_steps if steps is None else int(steps)
    tower = CLIPTextTower(clip_model).to(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        tapl = TAPL(token_dim=tokens.shape[1], ctx_dim=tower.width, n_ctx=cfg.n_ctx)
    tapl.init_context(tower, tokenizer, cfg.ctx_init)
    ch = _channel(channel, cfg, cfg.seed + 1)
    settings = {**stage_settings(cfg, "tapl"), "steps": steps, "channel": _describe(ch),
                "codec": None if codec is None else _describe(codec), "classes": list(class_names)}
    out = Path(out_dir) if out_dir is not None else None
    opt = torch.optim.AdamW(tapl.parameters(), lr=cfg.tapl_lr, weight_decay=0.0)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    start, history = 0, []
    if out is not None:
        ck = _find_checkpoint(out)
        if ck is not None:
            state = load_train_state(ck, device, settings)
            tapl = TAPL.from_pretrained(str(ck / "tapl"), low_cpu_mem_usage=False)
            tapl.to(device)
            opt = torch.optim.AdamW(tapl.parameters(), lr=cfg.tapl_lr, weight_decay=0.0)
            opt.load_state_dict(state["optimizer"])
            scaler.load_state_dict(state["scaler"])
            start, history = int(state["step"]), list(state["history"])
            ch.generator(device).set_state(state["channel_rng"].cpu())
        out.mkdir(parents=True, exist_ok=True)
        cfg.save(out / "semclip_config.json")
    tapl.to(device).train()
    performer = TaskPerformer(tapl, tower, tokenizer, float(clip_model.logit_scale.exp()), cfg.ctx_init,
                              cfg.text_chunk)
    if codec is not None:
        codec.to(device).eval().requires_grad_(False)
    feats, labs = tokens.float().to(device), labels.long().to(device)
    n, B, G = feats.shape[0], min(cfg.tapl_batch_size, feats.shape[0]), len(class_names)
    K = G if cfg.tapl_classes_per_step is None else min(G, cfg.tapl_classes_per_step)
    names = list(class_names)
    bar = _progress(steps, start, "train-tapl", progress)
    for step in range(start, steps):
        g = _step_generator(cfg.seed + 7, step, device)
        idx = torch.randperm(n, generator=g, device=device)[:B]
        snr = sample_snr_db(B, cfg.snr_train_range, generator=g, device=device)
        with torch.no_grad(), torch.autocast(device_type=device.type, enabled=use_amp):
            received = codec(feats[idx], ch, snr).x_hat.float() if codec is not None else feats[idx]
        y = labs[idx]
        if K < G:  # the batch's classes + random others, relabelled into the subset
            pos = torch.unique(y)
            score = torch.rand(G, generator=g, device=device)
            score[pos] = 2.0
            cls = score.topk(max(K, pos.numel())).indices.sort().values
            remap = torch.full((G,), -1, dtype=torch.long, device=device)
            remap[cls] = torch.arange(cls.numel(), device=device)
            y = remap[y]
            sub = [names[i] for i in cls.tolist()]
        else:
            sub = names
        with torch.autocast(device_type=device.type, enabled=use_amp):
            logits = performer(received, sub)
        loss = tapl_loss(logits.float(), y, cfg.tapl_loss)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        history.append(float(loss.detach()))
        bar.update(1)
        bar.set_postfix(loss=f"{history[-1]:.3f}")
        last = step + 1 == steps or (stop_at is not None and step + 1 >= stop_at)
        if out is not None and ((step + 1) % cfg.checkpoint_every == 0 or last):
            _save_checkpoint(out, lambda p: tapl.save_pretrained(str(p / "tapl")),
                             {"step": step + 1, "history": history, "optimizer": opt.state_dict(),
                              "scaler": scaler.state_dict(), "channel_rng": ch.generator(device).get_state(),
                              "settings": settings})
        if last:
            break
    bar.close()
    if out is not None and len(history) >= steps:
        tapl.save_pretrained(str(out / "tapl"))
        (out / "train_history.json").write_text(json.dumps(history))
    return tapl.eval(), history
