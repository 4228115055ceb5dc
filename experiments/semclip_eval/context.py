"""The run context of ``semcom semclip-eval``: CLIP, the evaluated and training data, and every model a study
needs (loaded from a checkpoint, or trained once into ``<out>/models`` and reused), built lazily."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

__all__ = ["EvalSet", "Context", "djscc_num_down", "snr_tag", "check_noaf_template"]


@dataclass
class EvalSet:
    """Images of the evaluated classes: clean CLIP tokens, labels and the raw images.

    ``labels`` index ``class_names``; ``global_labels`` are the labels in the training data's class
    space (``None`` for another data set); ``dataset[indices[i]]`` is image ``i`` in ``[0, 1]``.

    Examples
    --------
    >>> import torch
    >>> images = [(torch.rand(3, 8, 8), 0), (torch.rand(3, 8, 8), 1)]     # (image in [0, 1], label)
    >>> es = EvalSet("unseen", torch.randn(2, 16), torch.tensor([0, 1]), ["cat", "dog"], images, [0, 1])
    >>> len(es), [tuple(imgs.shape) for imgs, _, _ in es.image_batches(batch_size=2)]
    (2, [(2, 3, 8, 8)])
    """

    name: str
    features: "object"
    labels: "object"
    class_names: List[str]
    dataset: "object"
    indices: List[int]
    global_labels: "object" = None

    def __len__(self) -> int:
        return len(self.indices)

    def image_batches(self, batch_size: int):
        """Yield ``(images [b, 3, H, W] in [0, 1], labels [b], positions [b])``."""
        import torch

        for lo in range(0, len(self.indices), batch_size):
            pos = list(range(lo, min(lo + batch_size, len(self.indices))))
            imgs = torch.stack([self.dataset[self.indices[i]][0] for i in pos])
            yield imgs, self.labels[pos], torch.tensor(pos)


def _split_preprocess(preprocess):
    """open_clip's eval preprocess -> (to-tensor part giving [0, 1] images, the Normalize)."""
    from torchvision import transforms as T

    steps = list(getattr(preprocess, "transforms", []))
    if not steps or not isinstance(steps[-1], T.Normalize):
        raise ValueError("the CLIP preprocess must end with a Normalize transform (open_clip's eval preprocess)")
    return T.Compose(steps[:-1]), steps[-1]


class Context:
    """Everything the studies share. Models are built on first use and cached on disk.

    Examples
    --------
    Needs CLIP weights and an image data set, so the example is not run by the test-suite
    (``tests/test_semclip_eval.py`` builds contexts on a tiny random CLIP):

    >>> import argparse
    >>> from experiments.commands.semclip_eval import add_arguments
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> ctx = Context(parser.parse_args(["--data", "data/pets", "--out", "runs/eval"]))     # doctest: +SKIP
    >>> ctx.system_channel_uses("clip-ft", 48)                                               # doctest: +SKIP
    384
    """

    def __init__(self, args):
        import torch

        from semantic.checkpoints import resolve_device
        from semantic.clip_tokens import CLIPImageEncoder, load_open_clip, model_image_shape
        from semantic.tapl import CLIPTextTower

        self.args = args
        self.device = resolve_device(args.device)
        self.out = Path(args.out)
        self.progress = False if args.no_progress else None
        self.model, self.preprocess, self.tokenizer = load_open_clip(args.clip_model, args.pretrained,
                                                                     device=self.device)
        self.encoder = CLIPImageEncoder(self.model, key=f"{args.clip_model}|{args.pretrained}")
        self.to_tensor, self.normalize = _split_preprocess(self.preprocess)
        self.image_shape = model_image_shape(self.model)
        if self.image_shape[1] != self.image_shape[2]:
            raise ValueError(f"the image baselines need a square CLIP input, got {self.image_shape}")
        self.token_dim = int(self.model.visual.output_dim)
        self.tower = CLIPTextTower(self.model)
        self.logit_scale = float(self.model.logit_scale.exp())
        lo, hi = (float(v) for v in args.snr_train_range.split(","))
        self.snr_train_range = (lo, hi)
        self._cache: Dict[tuple, object] = {}
        self._zs: Dict[tuple, torch.Tensor] = {}
        self._data: Dict[str, object] = {}

    # -- data --------------------------------------------------------------------------------------
    def _dataset(self, layout: str, root: str, transform):
        from semantic.datasets import DATASETS, image_folder

        if layout in DATASETS:
            return DATASETS[layout](root, transform=transform)
        return image_folder(root, transform=transform)

    def features_of(self, name: str, layout: str, root: str):
        """Clean CLIP tokens of every image of a data set (extracted once into ``<out>/features/<name>``)."""
        from semantic.clip_tokens import extract_features

        if name not in self._data:
            ds = self._dataset(layout, root, self.preprocess)
            fs = extract_features(self.encoder, ds, self.out / "features" / name, batch_size=self.args.batch_size,
                                  num_workers=0, progress=self.progress)
            self._data[name] = (fs, self._dataset(layout, root, self.to_tensor))
        return self._data[name]

    def split(self):
        from semantic.datasets import split_classes

        fs, _ = self.features_of("eval", self.args.layout, self.args.data)
        return split_classes(len(fs.class_names), self.args.unseen_fraction, self.args.split_seed)

    def eval_set(self) -> EvalSet:
        """Unseen classes of ``--data`` (at most ``--max-images``, a seeded subset)."""
        if "eval_set" in self._cache:
            return self._cache["eval_set"]
        fs, raw = self.features_of("eval", self.args.layout, self.args.data)
        _, unseen = self.split()
        es = self._subset("unseen", fs, raw, unseen, self.args.max_images)
        self._cache["eval_set"] = es
        return es

    def _subset(self, name, fs, raw, classes, cap) -> EvalSet:
        import torch

        remap = torch.full((len(fs.class_names),), -1, dtype=torch.long)
        remap[torch.tensor(classes)] = torch.arange(len(classes))
        idx = (remap[fs.labels] >= 0).nonzero().squeeze(1)
        if cap is not None and idx.numel() > cap:
            g = torch.Generator().manual_seed(self.args.seed)
            idx = idx[torch.randperm(idx.numel(), generator=g)[:cap]].sort().values
        return EvalSet(name, fs.features[idx].float(), remap[fs.labels[idx]], [fs.class_names[c] for c in classes],
                       raw, idx.tolist(), global_labels=fs.labels[idx])

    def train_set(self) -> EvalSet:
        """Seen classes of ``--train-data`` (default ``--data``); labels are global class ids."""
        if "train_set" in self._cache:
            return self._cache["train_set"]
        a = self.args
        fs_eval, _ = self.features_of("eval", a.layout, a.data)
        if a.train_data and Path(a.train_data).resolve() != Path(a.data).resolve():
            fs, raw = self.features_of("train", a.layout, a.train_data)
            if fs.class_names != fs_eval.class_names:
                raise ValueError("--train-data must have the same classes (folders) as --data")
        else:
            fs, raw = self.features_of("eval", a.layout, a.data)
        seen, _ = self.split()
        ts = self._subset("seen", fs, raw, seen, None)
        self._cache["train_set"] = ts
        return ts

    def train_images(self):
        """``(images [n, 3, H, W] in [0, 1], global labels [n])`` of at most ``--train-images`` seen images."""
        import torch

        if "train_images" not in self._cache:
            ts = self.train_set()
            n = len(ts)
            pos = torch.arange(n)
            if self.args.train_images is not None and n > self.args.train_images:
                g = torch.Generator().manual_seed(self.args.seed + 1)
                pos = torch.randperm(n, generator=g)[: self.args.train_images].sort().values
            imgs = torch.stack([ts.dataset[ts.indices[i]][0] for i in pos.tolist()])
            self._cache["train_images"] = (imgs, ts.global_labels[pos])
        return self._cache["train_images"]

    # -- CLIP helpers ------------------------------------------------------------------------------
    def zeroshot_weights(self, class_names: Sequence[str]):
        from semantic.tapl import zeroshot_classifier

        key = tuple(class_names)
        if key not in self._zs:
            self.tower.to(self.device)
            self._zs[key] = zeroshot_classifier(self.tower, self.tokenizer, class_names).to(self.device)
        return self._zs[key]

    def plain_logits(self, tokens, class_names):
        import torch.nn.functional as F

        w = self.zeroshot_weights(class_names)
        return (self.logit_scale * F.normalize(tokens.float().to(self.device), dim=-1) @ w.T).cpu()

    def encode_images(self, images):
        """CLIP tokens of images in ``[0, 1]`` (the CLIP normalisation applied here)."""
        return self.encoder(self.normalize(images.clamp(0, 1).to(self.device))).float()

    def channel(self, offset: int = 0):
        from phy.channel.registry import make_channel

        return make_channel(self.args.channel, seed=self.args.seed + offset)

    # -- models ------------------------------------------------------------------------------------
    @property
    def _tag(self) -> str:
        """Model folders trained on a fading channel are kept apart from the AWGN ones."""
        return "" if self.args.channel == "awgn" else f"-{self.args.channel}"

    def _given(self, opt: Optional[str], L: int) -> Optional[Path]:
        if not opt:
            return None
        return Path(opt.replace("{L}", str(L)))

    def _semclip_config(self, L: int, use_af: bool, train_snr: Optional[float] = None):
        from semantic.semclip import SemCLIPConfig

        a = self.args
        steps = int(a.train_steps)
        snr_range = self.snr_train_range if train_snr is None else (float(train_snr), float(train_snr))
        return SemCLIPConfig(clip_model=a.clip_model, pretrained=a.pretrained, token_dim=self.token_dim,
                             channel_uses=L, hidden_dim=a.hidden_dim, linear_skip=a.linear_skip, use_af=use_af,
                             channel=a.channel,
                             equalizer=a.equalizer, snr_train_range=snr_range, temperature=a.temperature,
                             tapl_loss=a.tapl_loss,
                             jscc_batch_size=a.train_batch_size, jscc_steps=steps,
                             tapl_steps=steps if a.tapl_steps is None else int(a.tapl_steps),
                             tapl_batch_size=min(32, a.train_batch_size),
                             tapl_classes_per_step=a.tapl_classes_per_step or None,
                             checkpoint_every=max(1, min(500, steps)), unseen_fraction=a.unseen_fraction,
                             split_seed=a.split_seed, seed=a.seed)

    def jscc(self, L: int, use_af: bool = True, train_snr: Optional[float] = None):
        """SemCLIP's token JSCC with ``L`` channel uses (loaded, or trained into ``<out>/models``).

        ``train_snr``: the no-AF ablation trained at this one SNR (``{snr}`` in ``--semclip-noaf-jscc``,
        ``-snr<value>`` in the in-run folder name); ``None``: trained over ``--snr-train-range``.
        """
        import torch

        from semantic.jscc import JSCCCodec
        from semantic.semclip import train_jscc

        key = ("jscc", L, use_af, train_snr)
        if key in self._cache:
            return self._cache[key]
        opt = self.args.semclip_jscc if use_af else self.args.semclip_noaf_jscc
        if train_snr is not None:
            check_noaf_template(opt)
        given = self._given(opt.replace("{snr}", snr_tag(train_snr)) if (opt and train_snr is not None) else opt, L)
        codec = None
        if given is not None:
            codec = JSCCCodec.from_pretrained(given, equalizer=self.args.equalizer)
            if codec.channel_uses != L:
                print(f"[semclip-eval] {given} has L={codec.channel_uses}, not {L}: training one for L={L}")
                codec = None
            elif bool(codec.encoder.config.use_af) != use_af:
                raise ValueError(f"{given} has use_af={codec.encoder.config.use_af}, expected {use_af}")
        if codec is None:
            folder = self.out / "models" / f"{'semclip' if use_af else 'semclip-noaf'}-jscc{self._tag}-L{L}"
            if train_snr is not None:
                folder = folder.with_name(f"{folder.name}-snr{snr_tag(train_snr)}")
            if (folder / "train_history.json").is_file():
                codec = JSCCCodec.from_pretrained(folder, equalizer=self.args.equalizer)
            else:
                with torch.enable_grad():  # models are built lazily, possibly inside an evaluation's no_grad
                    codec, _ = train_jscc(self.train_set().features, self._semclip_config(L, use_af, train_snr),
                                          out_dir=folder, device=self.device, progress=self.progress)
        codec.to(self.device).eval().requires_grad_(False)
        self._cache[key] = codec
        return codec

    def tapl(self, L: int):
        """TAPL trained through the frozen ``L``-use JSCC on the seen classes."""
        import torch

        from semantic.semclip import train_tapl
        from semantic.tapl import TAPL

        key = ("tapl", L)
        if key in self._cache:
            return self._cache[key]
        given = self._given(self.args.tapl, L)
        if given is not None:
            sub = given / "tapl" if (given / "tapl" / "config.json").is_file() else given
            tapl = TAPL.from_pretrained(str(sub), low_cpu_mem_usage=False)
        else:
            folder = self.out / "models" / f"semclip-tapl{self._tag}-L{L}"
            if (folder / "train_history.json").is_file():
                tapl = TAPL.from_pretrained(str(folder / "tapl"), low_cpu_mem_usage=False)
            else:
                ts = self.train_set()
                seen_names = ts.class_names
                codec = self.jscc(L, True)
                with torch.enable_grad():
                    tapl, _ = train_tapl(ts.features, ts.labels, seen_names, codec, self.model, self.tokenizer,
                                         self._semclip_config(L, True), out_dir=folder, device=self.device,
                                         progress=self.progress)
        tapl.to(self.device).eval().requires_grad_(False)
        self._cache[key] = tapl
        return tapl

    def performer(self, L: int):
        from semantic.tapl import TaskPerformer

        key = ("performer", L)
        if key not in self._cache:
            self._cache[key] = TaskPerformer(self.tapl(L), self.tower, self.tokenizer, self.logit_scale).to(self.device)
        return self._cache[key]

    def _num_down(self) -> int:
        return djscc_num_down(self.image_shape[1])

    def _save_atomic(self, model, folder: Path, history) -> None:
        import json

        from semantic.checkpoints import commit_dir, staging_dir

        tmp = staging_dir(folder)
        model.save_pretrained(str(tmp))
        (tmp / "train_history.json").write_text(json.dumps(history))
        commit_dir(tmp, folder)

    def djscc_ir_bottleneck(self, L: int) -> Tuple[Optional[str], str]:
        """``(bottleneck, note)`` of DJSCC-IR at ``L`` uses (``--djscc-bottleneck``); ``(None, reason)`` when
        neither design can carry ``L`` within the limits."""
        from baselines.djscc import conv_bottleneck_fits

        a = self.args
        if a.djscc_ir:  # a trained folder: its own architecture decides (loading it checks L)
            return "given", ""
        if a.djscc_ir_arch == "vit":  # the ViT codec carries any L (puncturing)
            return "vit", ""
        H, nd = self.image_shape[1], self._num_down()
        dense = 16 * (H // 2 ** nd) ** 2 * 2 * L  # latent_channels * s^2 * 2L weights of the dense layer
        fits = conv_bottleneck_fits(H, nd, L)
        if a.djscc_bottleneck == "dense" or (a.djscc_bottleneck == "auto" and dense <= a.djscc_dense_limit):
            return "dense", ""
        if fits:
            return "conv", (f"DJSCC-IR: convolutional bottleneck (ADJSCC's design; a dense one would need "
                            f"{dense / 1e6:.0f}M weights)" if a.djscc_bottleneck == "auto" else "")
        return None, (f"DJSCC-IR not run at L={L}: a dense bottleneck would need {dense / 1e6:.0f}M weights "
                      f"(> --djscc-dense-limit) and 2L is not a multiple of the {(H // 2 ** nd) ** 2} positions "
                      "of the convolutional one")

    def djscc_ir(self, L: int, train: bool = True):
        """DJSCC-IR image codec with ``L`` channel uses at the CLIP input resolution."""
        import torch

        from baselines.djscc import train_image_jscc
        from baselines.djscc_vit import load_image_jscc

        key = ("djscc-ir", L)
        if key in self._cache:
            return self._cache[key]
        given = self._given(self.args.djscc_ir, L)
        bottleneck, why = self.djscc_ir_bottleneck(L)
        if bottleneck is None:
            raise ValueError(why)
        kind = {"conv": "-conv", "vit": "-vit"}.get(bottleneck, "")
        folder = given if given is not None else self.out / "models" / f"djscc-ir{kind}{self._tag}-L{L}"
        if given is not None or (folder / "train_history.json").is_file():
            codec = load_image_jscc(folder, equalizer=self.args.equalizer)
            if codec.channel_uses != L:
                raise ValueError(f"--djscc-ir {folder} has L={codec.channel_uses}, expected {L} (use {{L}})")
        else:
            codec = self._build_djscc_ir(L, bottleneck)
            if not train:
                return codec
            imgs, _ = self.train_images()
            with torch.enable_grad():
                hist = train_image_jscc(codec, imgs, self.channel(11), self.snr_train_range, self.args.train_steps,
                                        batch_size=self.args.train_batch_size, seed=self.args.seed,
                                        device=self.device)
            self._save_atomic(codec, folder, hist)
        codec.to(self.device).eval().requires_grad_(False)
        self._cache[key] = codec
        return codec

    def _build_djscc_ir(self, L: int, bottleneck: str):
        """A fresh DJSCC-IR codec (seeded by ``--seed``): the ViT one (``bottleneck == "vit"``) or ADJSCC."""
        import torch

        from baselines.djscc import ImageJSCCCodec
        from baselines.djscc_vit import ViTJSCCCodec

        with torch.random.fork_rng(devices=[]):  # seeded init (--seed), global stream untouched
            torch.manual_seed(self.args.seed)
            if bottleneck == "vit":
                dim = 4 * max(4, -(-self.args.djscc_hidden // 4))
                return ViTJSCCCodec.build(image_size=self.image_shape[1], channel_uses=L, dim=dim, depth=2,
                                          heads=4, equalizer=self.args.equalizer)
            return ImageJSCCCodec.build(image_size=self.image_shape[1], channel_uses=L,
                                        hidden=self.args.djscc_hidden, num_down=self._num_down(),
                                        equalizer=self.args.equalizer, bottleneck=bottleneck)

    def djscc_ft(self, L: int, train: bool = True):
        """DJSCC-FT with ``L`` channel uses, a head over the seen classes (global ids)."""
        import torch

        from baselines.djscc_ft import DJSCCFT, train_djscc_ft

        key = ("djscc-ft", L)
        if key in self._cache:
            return self._cache[key]
        given = self._given(self.args.djscc_ft, L)
        folder = given if given is not None else self.out / "models" / f"djscc-ft{self._tag}-L{L}"
        if given is not None or (folder / "train_history.json").is_file():
            model = DJSCCFT.from_pretrained(str(folder), low_cpu_mem_usage=False)
            if model.channel_uses != L:
                raise ValueError(f"--djscc-ft {folder} has L={model.channel_uses}, expected {L} (use {{L}})")
        else:
            seen, _ = self.split()
            with torch.random.fork_rng(devices=[]):  # seeded init (--seed), global stream untouched
                torch.manual_seed(self.args.seed)
                model = DJSCCFT(image_size=self.image_shape[1], num_classes=len(seen), class_ids=list(seen),
                                feature_dim=self.token_dim, channel_uses=L, hidden=self.args.djscc_hidden,
                                num_down=self._num_down(), jscc_hidden=self.args.hidden_dim)
            if not train:
                return model
            imgs, labels = self.train_images()
            with torch.enable_grad():
                hist = train_djscc_ft(model, imgs, labels, self.channel(12), self.snr_train_range,
                                      self.args.train_steps, batch_size=self.args.train_batch_size,
                                      seed=self.args.seed, device=self.device)
            self._save_atomic(model, folder, hist)
        model.to(self.device).eval().requires_grad_(False)
        self._cache[key] = model
        return model

    def btir_codec(self):
        """BT-IR's source codec (``--btir-codec``); the learned one loaded from ``--btir-model`` or trained in the
        run into ``<out>/models/btir-codec`` (``--train-steps`` per quality level)."""
        import torch

        from baselines.bt_ir import CompressAICodec, PillowCodec
        from baselines.learned_codec import LearnedCodec, train_levels

        if "btir-codec" in self._cache:
            return self._cache["btir-codec"]
        name = self.args.btir_codec
        if name == "cheng2020-attn":
            codec = CompressAICodec(device=self.device)
        elif name != "learned":
            codec = PillowCodec(name)
        else:
            folder = Path(self.args.btir_model) if self.args.btir_model else self.out / "models" / "btir-codec"
            if self.args.btir_model or (folder / "codec.json").is_file():
                codec = LearnedCodec.from_pretrained(folder, device=self.device)
            else:
                with torch.enable_grad():
                    codec = train_levels(self.train_images()[0], steps=self.args.train_steps,
                                         channels=max(8, self.args.djscc_hidden), seed=self.args.seed,
                                         device=self.device)
                codec.save_pretrained(folder)
        self._cache["btir-codec"] = codec
        return codec

    def btir(self, L: int):
        from baselines.bt_ir import BTIR

        codec = self.btir_codec()
        capacity = "awgn" if self.args.channel == "awgn" else "rayleigh_ergodic"
        return BTIR(codec, channel_uses=L, capacity=capacity)

    def system_channel_uses(self, system: str, L: int) -> int:
        """The channel uses ``system`` spends per image when asked for ``L`` (CLIP-FT: always ``N/2``;
        the upper bounds: none, they have no channel)."""
        if system in ("upper-bound", "upper-bound-tapl"):
            return 0
        return math.ceil(self.token_dim / 2) if system == "clip-ft" else int(L)


def djscc_num_down(image_size: int) -> int:
    """Stride-2 stages of DJSCC-IR / DJSCC-FT for a square input: up to 4, as many as divide the side.

    Examples
    --------
    >>> djscc_num_down(336), djscc_num_down(40), djscc_num_down(30)
    (4, 3, 1)
    """
    H, k = int(image_size), 4
    while k > 0 and H % (2 ** k):
        k -= 1
    return max(k, 1) if H % 2 == 0 else 1


def snr_tag(snr: float) -> str:
    """How an SNR is written in a ``{snr}`` path template and in-run folder names: ``-5``, ``2.5``, ``0``.

    Examples
    --------
    >>> snr_tag(-5.0), snr_tag(2.5), snr_tag(0)
    ('-5', '2.5', '0')
    """
    return f"{float(snr):g}"


def check_noaf_template(opt: Optional[str]) -> None:
    """``ValueError`` unless ``--semclip-noaf-jscc`` (``opt``) is absent or holds ``{snr}``: the per-SNR ablation
    (``--ablation-per-snr``) loads one fixed-SNR no-AF JSCC per SNR.

    Examples
    --------
    >>> check_noaf_template("runs/noaf-L{L}-snr{snr}")     # one checkpoint per SNR: accepted
    >>> check_noaf_template("runs/noaf-L{L}")
    Traceback (most recent call last):
    ...
    ValueError: --semclip-noaf-jscc 'runs/noaf-L{L}' names one checkpoint, ...
    """
    if opt and "{snr}" not in opt:
        raise ValueError(f"--semclip-noaf-jscc {opt!r} names one checkpoint, but --ablation-per-snr needs one "
                         "no-AF JSCC per SNR: put {snr} in the path (e.g. runs/noaf-L{L}-snr{snr}) or pass "
                         "--no-ablation-per-snr")
