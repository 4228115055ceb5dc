"""TAPL: the transmission-aware prompt learner that turns received CLIP image tokens into class scores.

* A meta-network ``h`` (``N -> N/16 -> W``, ReLU) maps the decoded image token ``t_hat`` to a
  conditional vector ``pi = h(t_hat)`` (``W`` = width of CLIP's text transformer).
* ``M`` learnable context vectors ``v_1..v_M`` (initialised from the token embeddings of
  ``ctx_init = "a photo of a"``) are shifted, ``v_m(t_hat) = v_m + pi``, and placed in front of each
  class name: prompt ``p_g(t_hat) = [SOT, v_1(t_hat), ..., v_M(t_hat), <class g tokens>, ".", EOT]``.
* The frozen CLIP text encoder ``g`` gives ``w_g(t_hat) = g(p_g(t_hat))`` and the prediction is
  ``P(y = g | t_hat) = softmax_g(cos(t_hat, w_g(t_hat)) * exp(logit_scale))`` (SemCLIP eq. 2, 3);
  TAPL is trained with the cross entropy of these image-to-text logits (eq. 5), JSCC frozen.

All ``B x G`` prompts of a batch are encoded in batched passes of the text transformer
(``text_chunk`` prompts per pass), never in a per-image Python loop. :class:`CLIPTextTower`
replicates open_clip's ``encode_text`` (token embedding + positional embedding -> transformer with
the causal mask -> ``ln_final`` -> EOT position -> ``text_projection``) on given token embeddings,
for ``open_clip.CLIP`` (text modules on the model) and ``open_clip.CustomTextCLIP`` (on
``model.text``); Hugging Face text towers and CoCa's appended-CLS towers are not supported.

The meta-network's output layer starts at zero (``zero_init_meta=True``), so an untrained TAPL with
``ctx_init`` gives exactly CLIP's zero-shot classifier with the prompt ``"a photo of a {class}."``.

Example
-------
>>> from semantic.tapl import TAPL
>>> tapl = TAPL(token_dim=32, ctx_dim=16, n_ctx=4)
>>> import torch; tapl(torch.randn(2, 32)).shape     # the shifted context vectors
torch.Size([2, 4, 16])
"""
from __future__ import annotations

import numbers
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

__all__ = ["CLIPTextTower", "TAPL", "TaskPerformer", "zeroshot_classifier", "tapl_loss", "TAPL_LOSS_DIRECTIONS",
           "DEFAULT_TEMPLATE"]

#: The prompt of plain CLIP zero-shot classification (:func:`zeroshot_classifier`).
DEFAULT_TEMPLATE = "a photo of a {}."


class CLIPTextTower(nn.Module):
    """The frozen text encoder of an open_clip model, callable on token ids or on token embeddings.

    Parameters
    ----------
    clip_model : ``open_clip.CLIP`` or ``open_clip.CustomTextCLIP`` (with an open_clip TextTransformer)

    Examples
    --------
    >>> import tempfile, open_clip, semantic.clip_tokens
    >>> cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "patch_size": 16, "width": 32, "layers": 1,
    ...        "head_width": 16}, "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2,
    ...        "layers": 1}}
    >>> path = semantic.clip_tokens.save_open_clip_local_dir(open_clip.CLIP(**cfg), cfg, tempfile.mkdtemp(), {"size": 32})
    >>> model, preprocess, tokenizer = semantic.clip_tokens.load_open_clip("local-dir:" + str(path))   # a tiny random CLIP
    >>> tower = CLIPTextTower(model)
    >>> ids = tokenizer(["a photo of a cat", "a photo of a dog"])
    >>> tower.width, tower.context_length, tower(tower.embed(ids), ids).shape    # [B, D] text features
    (32, 16, torch.Size([2, 32]))
    """

    def __init__(self, clip_model: nn.Module):
        super().__init__()
        if hasattr(clip_model, "token_embedding") and hasattr(clip_model, "transformer"):
            src = clip_model
            pool = getattr(clip_model, "text_pool_type", "argmax")
            eos = getattr(clip_model, "text_eos_id", None)
        elif hasattr(getattr(clip_model, "text", None), "token_embedding"):
            src = clip_model.text
            pool = getattr(src, "pool_type", "argmax")
            eos = getattr(src, "eos_id", None)
            if getattr(src, "cls_emb", None) is not None:
                raise TypeError("text towers with an appended CLS embedding (CoCa) are not supported by TAPL")
        else:
            raise TypeError(f"clip_model must be an open_clip CLIP/CustomTextCLIP with an open_clip TextTransformer, "
                            f"got {type(clip_model).__name__} (Hugging Face text towers are not supported)")
        if pool not in ("argmax", "eos", "first", "last"):
            raise TypeError(f"unsupported text pooling {pool!r}")
        self.token_embedding = src.token_embedding
        self.positional_embedding = src.positional_embedding
        self.transformer = src.transformer
        self.ln_final = src.ln_final
        self.text_projection = src.text_projection
        mask = getattr(src, "attn_mask", None)
        self.register_buffer("attn_mask", mask.clone() if mask is not None else None, persistent=False)
        self.pool_type, self.eos_id = pool, eos
        self.requires_grad_(False)

    @property
    def width(self) -> int:
        return int(self.token_embedding.weight.shape[1])

    @property
    def context_length(self) -> int:
        return int(self.positional_embedding.shape[0])

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings ``[P, T, W]`` of token ids ``[P, T]``."""
        return self.token_embedding(ids.to(self.token_embedding.weight.device))

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Text features ``[P, D]`` from token embeddings ``x`` ``[P, T, W]`` (ids ``[P, T]`` locate EOT)."""
        cast = self.transformer.get_cast_dtype() if hasattr(self.transformer, "get_cast_dtype") else x.dtype
        T = x.shape[1]
        x = x.to(cast) + self.positional_embedding[:T].to(cast)
        mask = self.attn_mask[:T, :T] if self.attn_mask is not None else None
        x = self.transformer(x, attn_mask=mask)
        x = self.ln_final(x)
        rows = torch.arange(x.shape[0], device=x.device)
        ids = ids.to(x.device)
        if self.pool_type == "argmax":
            x = x[rows, ids.argmax(dim=-1)]
        elif self.pool_type == "eos":
            x = x[rows, (ids == self.eos_id).int().argmax(dim=-1)]
        elif self.pool_type == "first":
            x = x[:, 0]
        else:
            x = x[:, -1]
        if self.text_projection is not None:
            x = self.text_projection(x) if isinstance(self.text_projection, nn.Linear) else x @ self.text_projection
        return x

    def encode_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """Same as open_clip's ``encode_text(ids)`` (unnormalised) ``[P, D]``."""
        return self(self.embed(ids), ids)


@torch.no_grad()
def zeroshot_classifier(tower: CLIPTextTower, tokenizer: Callable, class_names: Sequence[str],
                        template: str = DEFAULT_TEMPLATE, chunk: int = 256) -> torch.Tensor:
    """Plain CLIP zero-shot weights ``[G, D]`` (unit norm) from ``template.format(class)``.

    Examples
    --------
    >>> import tempfile, open_clip, semantic.clip_tokens
    >>> cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "patch_size": 16, "width": 32, "layers": 1,
    ...        "head_width": 16}, "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2,
    ...        "layers": 1}}
    >>> path = semantic.clip_tokens.save_open_clip_local_dir(open_clip.CLIP(**cfg), cfg, tempfile.mkdtemp(), {"size": 32})
    >>> model, preprocess, tokenizer = semantic.clip_tokens.load_open_clip("local-dir:" + str(path))   # a tiny random CLIP
    >>> w = zeroshot_classifier(CLIPTextTower(model), tokenizer, ["cat", "dog", "car"])
    >>> w.shape, torch.allclose(w.norm(dim=-1), torch.ones(3))
    (torch.Size([3, 32]), True)
    """
    ids = tokenizer([template.format(c) for c in class_names])
    feats = torch.cat([tower.encode_ids(ids[i:i + chunk]).float() for i in range(0, ids.shape[0], chunk)])
    return F.normalize(feats, dim=-1)


class TAPL(ModelMixin, ConfigMixin):
    """The learnable part of TAPL: context vectors and the meta-network.

    Parameters
    ----------
    token_dim : int
        ``N``, width of the image token.
    ctx_dim : int
        ``W``, width of the CLIP text transformer (token embeddings).
    n_ctx : int
        ``M`` context vectors.
    meta_hidden : int, optional
        Meta-network hidden width (default ``max(4, N // 16)``).
    zero_init_meta : bool
        Zero the meta-network's output layer (``pi = 0`` at init).

    Notes
    -----
    ``forward(tokens [B, N]) -> ctx [B, M, W]`` (the context vectors shifted by ``pi``).

    Examples
    --------
    >>> tapl = TAPL(token_dim=16, ctx_dim=32, n_ctx=4)
    >>> ctx = tapl(torch.randn(3, 16))                       # tokens [B, N] -> context [B, M, W]
    >>> ctx.shape
    torch.Size([3, 4, 32])
    """

    @register_to_config
    def __init__(self, token_dim: int = 768, ctx_dim: int = 768, n_ctx: int = 4, meta_hidden: Optional[int] = None,
                 zero_init_meta: bool = True):
        super().__init__()
        for name, v in (("token_dim", token_dim), ("ctx_dim", ctx_dim), ("n_ctx", n_ctx)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        hidden = meta_hidden or max(4, token_dim // 16)
        self.ctx = nn.Parameter(torch.randn(n_ctx, ctx_dim) * 0.02)
        self.meta_net = nn.Sequential(nn.Linear(token_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, ctx_dim))
        if zero_init_meta:
            nn.init.zeros_(self.meta_net[2].weight)
            nn.init.zeros_(self.meta_net[2].bias)

    def conditional_vector(self, tokens: torch.Tensor) -> torch.Tensor:
        """``pi = h(t_hat)`` ``[B, W]`` (the token is L2-normalised first)."""
        if tokens.dim() != 2 or tokens.shape[1] != self.config.token_dim:
            raise ValueError(f"tokens must be [batch, {self.config.token_dim}], got {tuple(tokens.shape)}")
        w = self.meta_net[0].weight
        return self.meta_net(F.normalize(tokens.float(), dim=-1).to(w.dtype))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.ctx.unsqueeze(0) + self.conditional_vector(tokens).unsqueeze(1)

    @torch.no_grad()
    def init_context(self, tower: CLIPTextTower, tokenizer: Callable, ctx_init: str = "a photo of a") -> None:
        """Set the context vectors to the token embeddings of ``ctx_init`` (must be ``n_ctx`` tokens)."""
        ids = tokenizer([ctx_init])[0]
        n = int((ids != 0).sum()) - 2  # minus SOT and EOT
        if n != self.config.n_ctx:
            raise ValueError(f"ctx_init {ctx_init!r} has {n} tokens but n_ctx={self.config.n_ctx}")
        self.ctx.copy_(tower.embed(ids[None, 1:1 + n])[0].to(self.ctx.dtype))


class TaskPerformer(nn.Module):
    """TAPL + the frozen CLIP text tower: received image tokens -> class logits ``[B, G]``.

    Parameters
    ----------
    tapl : :class:`TAPL`
    tower : :class:`CLIPTextTower`
    tokenizer : open_clip tokenizer
    logit_scale : float
        ``exp(logit_scale)`` of CLIP (100 for the released models).
    ctx_init : str
        Text whose tokens the context vectors replace in every prompt (``"a photo of a"``); its token
        count must equal ``n_ctx``. The prompt of class ``c`` is ``f"{ctx_init} {c}."``.
    text_chunk : int
        Prompts per text-transformer pass.

    Examples
    --------
    >>> import tempfile, open_clip, semantic.clip_tokens
    >>> cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "patch_size": 16, "width": 32, "layers": 1,
    ...        "head_width": 16}, "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2,
    ...        "layers": 1}}
    >>> path = semantic.clip_tokens.save_open_clip_local_dir(open_clip.CLIP(**cfg), cfg, tempfile.mkdtemp(), {"size": 32})
    >>> model, preprocess, tokenizer = semantic.clip_tokens.load_open_clip("local-dir:" + str(path))   # a tiny random CLIP
    >>> tower = CLIPTextTower(model)
    >>> tapl = TAPL(token_dim=32, ctx_dim=tower.width, n_ctx=4)
    >>> tapl.init_context(tower, tokenizer, "a photo of a")
    >>> performer = TaskPerformer(tapl, tower, tokenizer)
    >>> performer(torch.randn(5, 32), ["cat", "dog", "car"]).shape          # logits [B, G]
    torch.Size([5, 3])
    """

    def __init__(self, tapl: TAPL, tower: CLIPTextTower, tokenizer: Callable, logit_scale: float = 100.0,
                 ctx_init: str = "a photo of a", text_chunk: int = 2048):
        super().__init__()
        if tower.width != tapl.config.ctx_dim:
            raise ValueError(f"TAPL ctx_dim={tapl.config.ctx_dim} does not match the text width {tower.width}")
        self.tapl, self.tower, self.tokenizer = tapl, tower, tokenizer
        self.logit_scale = float(logit_scale)
        self.ctx_init = ctx_init
        self.text_chunk = int(text_chunk)
        self._cache: Dict[Tuple[str, ...], Tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def class_prompts(self, class_names: Sequence[str]):
        """``(ids [G, T], prefix [G, 1, W], suffix [G, T-1-M, W])`` of the class prompts (cached)."""
        key = tuple(class_names)
        dev = self.tower.token_embedding.weight.device
        hit = self._cache.get(key)
        if hit is None or hit[0].device != dev:
            ids = self.tokenizer([f"{self.ctx_init} {c}." for c in class_names]).to(dev)
            with torch.no_grad():
                emb = self.tower.embed(ids)
            M = self.tapl.config.n_ctx
            hit = (ids, emb[:, :1], emb[:, 1 + M:])
            self._cache = {key: hit}
        return hit

    def text_features(self, tokens: torch.Tensor, class_names: Sequence[str]) -> torch.Tensor:
        """Instance-conditional class features ``[B, G, D]`` (unit norm) for received tokens ``[B, N]``."""
        ids, prefix, suffix = self.class_prompts(class_names)
        ctx = self.tapl(tokens).to(prefix.dtype)  # [B, M, W]
        B, G = ctx.shape[0], ids.shape[0]
        bi = torch.arange(B, device=ctx.device).repeat_interleave(G)  # pair p = (b, g)
        gi = torch.arange(G, device=ctx.device).repeat(B)
        out = []
        for lo in range(0, B * G, self.text_chunk):
            b, g = bi[lo:lo + self.text_chunk], gi[lo:lo + self.text_chunk]
            x = torch.cat([prefix[g], ctx[b], suffix[g]], dim=1)  # [P, T, W]
            out.append(self.tower(x, ids[g]).float())
        return F.normalize(torch.cat(out), dim=-1).reshape(B, G, -1)

    def forward(self, tokens: torch.Tensor, class_names: Sequence[str]) -> torch.Tensor:
        """Logits ``[B, G] = exp(logit_scale) * cos(t_hat_b, w_g(t_hat_b))``."""
        w = self.text_features(tokens, class_names)
        img = F.normalize(tokens.float(), dim=-1).to(w.device)
        return self.logit_scale * torch.einsum("bd,bgd->bg", img, w)


#: The directions of :func:`tapl_loss`: image-to-text only, or symmetric.
TAPL_LOSS_DIRECTIONS = ("i2t", "both")


def tapl_loss(logits: torch.Tensor, labels: torch.Tensor, direction: str = "i2t") -> torch.Tensor:
    """TAPL's contrastive loss (SemCLIP eq. 5) on ``logits`` ``[B, G]`` (image ``b``, class prompt ``g``).

    ``direction="i2t"`` (default): image-to-text, ``CE(logits[b], labels[b])`` averaged over the batch.
    ``direction="both"``: the mean of that and the text-to-image term, defined for the classes present in
    the batch: for each such class ``g``, ``-log sum_{b: y_b = g} softmax_b(logits[:, g])`` (the class
    prompt must pick one of its own images among the batch; several images of a class are all positives),
    averaged over those classes.

    Example
    -------
    >>> lg = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    >>> round(float(tapl_loss(lg, torch.tensor([0, 1]))), 4)
    0.2201
    """
    if logits.dim() != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(f"logits must be [B, G] and labels [B], got {tuple(logits.shape)} and {tuple(labels.shape)}")
    if direction not in TAPL_LOSS_DIRECTIONS:
        raise ValueError(f"direction must be one of {TAPL_LOSS_DIRECTIONS}, got {direction!r}")
    labels = labels.to(logits.device)
    i2t = F.cross_entropy(logits, labels)
    if direction == "i2t":
        return i2t
    present = torch.unique(labels)
    cols = logits[:, present].T                                   # [P, B]: class prompt -> images
    pos = labels[None, :] == present[:, None]                     # [P, B]
    t2i = -(torch.logsumexp(cols.masked_fill(~pos, float("-inf")), dim=1) - torch.logsumexp(cols, dim=1)).mean()
    return 0.5 * (i2t + t2i)
