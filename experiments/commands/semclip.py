"""``semcom semclip extract|train-jscc|train-tapl|train-djscc|train-codec|eval``: the SemCLIP pipeline from the
command line.

1. ``extract``: run the frozen CLIP image encoder once over an image folder and store the tokens
   (safetensors shards + labels + paths); rerunning reuses the cache.
2. ``train-jscc``: stage 1, the SNR-adaptive JSCC on the tokens of the *seen* classes (contrastive loss).
3. ``train-tapl``: stage 2, TAPL on the seen classes through the frozen JSCC.
4. ``train-djscc``: the image baselines DJSCC-IR (``--model ir``, MSE) and DJSCC-FT (``--model ft``, cross
   entropy) on *every* image of the seen classes, loaded per batch from disk, with SemCLIP's step budget
   and batch size by default; resumable (``OUT/train_state.pt``), the model in ``OUT/model``. DJSCC-IR is the
   transformer DeepJSCC the paper cites (``--arch vit``, :mod:`baselines.djscc_vit`) or the convolutional
   ADJSCC (``--arch adjscc``).
5. ``train-codec``: BT-IR's learned image codec (:mod:`baselines.learned_codec`), one model per quality level
   (``--lambdas``), on every seen-class image at the CLIP input size; resumable, ``OUT/codec.json`` at the end.
6. ``eval``: zero-shot classification on the *unseen* classes and text-to-image retrieval per SNR;
   writes ``zeroshot.csv`` (``system,channel,snr_db,channel_uses,bandwidth_ratio,top1,top5,retrieval_top1,retrieval_top5``,
   resumable: finished rows are skipped) and ``manifest.json``.

The seen/unseen split is a seeded class split (``--unseen-fraction 0.2``: 800/200 on ImageNet).
The bandwidth ratio is ``L / (C*H*W)`` with ``L`` complex channel uses and the CLIP input image size
(``3 x 336 x 336`` for ViT-L-14-336), via :func:`phy.utils.conventions.bandwidth_compression_ratio`.

Example
-------
::

    semcom semclip extract --data ~/imagenet/train --dataset imagenet --out runs/feats-train
    semcom semclip train-jscc --features runs/feats-train --out runs/jscc --channel-uses 384
    semcom semclip train-tapl --features runs/feats-train --jscc runs/jscc --out runs/tapl
    semcom semclip eval --features runs/feats-val --jscc runs/jscc --tapl runs/tapl \\
        --snr-db -10 -5 0 5 10 --out runs/eval

``train-jscc`` on several GPUs (data parallel, one process per GPU)::

    torchrun --standalone --nproc_per_node 4 -m experiments.cli semclip train-jscc \\
        --features runs/feats-train --out runs/jscc --channel-uses 384 --batch-size 256
    torchrun --standalone --nproc_per_node 4 "$(which semcom)" semclip train-jscc ...   # same thing

Each process uses ``cuda:LOCAL_RANK`` (``--device cpu`` or no CUDA: CPU with the gloo backend) and
takes ``1/nproc`` of every global batch (``--batch-size`` is the global batch, a multiple of
``nproc``); the received tokens are all-gathered so the contrastive loss is the one over the global
batch, and the channel noise is that of the single-process run, so the result does not depend on
``nproc`` beyond float rounding (see :func:`semantic.semclip.train_jscc`). Rank 0 alone prints and
writes the checkpoints and the final folder; rerunning the same command (any ``nproc``) resumes.
A plain ``semcom semclip train-jscc`` run is the single-process case and behaves as before.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from experiments.core.args import snr_list_arg

_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483)  # baselines.learned_codec.LAMBDAS (not imported here:
# the parser is built without torch)

__all__ = ["add_arguments", "main"]


def _common(p: argparse.ArgumentParser, features: bool = True) -> None:
    if features:
        p.add_argument("--features", required=True, help="feature cache folder written by `extract`")
    p.add_argument("--device", default=None, help="torch device: auto (default: cuda if available, else cpu), cpu, cuda, cuda:1 ...")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _clip_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clip-model", default="ViT-L-14-336",
                   help="open_clip model name, or local-dir:/path (open_clip_config.json + weights)")
    p.add_argument("--pretrained", default="openai", help="open_clip pretrained tag or a checkpoint file")


def _split_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--unseen-fraction", type=float, default=0.2, help="fraction of classes held out as unseen")
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--all-classes", action="store_true", help="no seen/unseen split (use every class)")


def _channel_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--channel", default="awgn", choices=["awgn", "rayleigh"])
    p.add_argument("--equalizer", default="mmse", choices=["mmse", "zf"], help="on fading channels")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``semcom semclip`` to ``parser`` (``semcom semclip --help`` lists them).

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> args = parser.parse_args(["train-jscc", "--features", "runs/feats", "--out", "runs/jscc"])
    >>> args.action
    'train-jscc'
    """
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    p = sub.add_parser("extract", help="extract CLIP image tokens once (cached shards)")
    p.add_argument("--data", required=True, help="dataset root folder")
    p.add_argument("--dataset", default="folder", choices=["folder", "imagenet", "oxford_pets", "food101",
                                                           "caltech101"])
    p.add_argument("--split", default=None, help="dataset split (e.g. train/test for food101, oxford_pets)")
    p.add_argument("--out", required=True, help="feature cache folder")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--shard-size", type=int, default=8192)
    p.add_argument("--num-workers", type=int, default=4)
    _clip_args(p)
    _common(p, features=False)
    from experiments.core.executors import add_executor_arguments

    add_executor_arguments(p)  # --executor ray: one Ray task per shard (GPU tasks when --device is cuda)

    p = sub.add_parser("train-jscc", help="stage 1: SNR-adaptive JSCC (contrastive loss)")
    p.add_argument("--out", required=True, help="checkpoint folder (resumable)")
    p.add_argument("--channel-uses", type=int, default=None, help="L complex channel uses (default N/2)")
    p.add_argument("--snr-min", type=float, default=-10.0, help="training SNR range low end [dB]")
    p.add_argument("--snr-max", type=float, default=10.0, help="training SNR range high end [dB]")
    p.add_argument("--snr-db", type=float, default=None, help="train at this one SNR (sets min = max)")
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--batch-size", type=int, default=256,
                   help="global batch of the contrastive loss (under torchrun: split over the processes)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--hidden-dim", type=int, default=1024)
    p.add_argument("--temperature", type=float, default=0.07,
                   help="contrastive-loss temperature (default 0.07, CLIP's; the paper's eq. 4 has none: 1)")
    p.add_argument("--no-af", action="store_true", help="no attention-feature modules (ablation)")
    p.add_argument("--linear-skip", action=argparse.BooleanOptionalAction, default=True,
                   help="linear input-to-output shortcut in encoder and decoder (default on; the paper has none)")
    p.add_argument("--checkpoint-every", type=int, default=500)
    _channel_args(p)
    _split_args(p)
    _common(p)

    p = sub.add_parser("train-tapl", help="stage 2: TAPL with the JSCC frozen")
    p.add_argument("--jscc", default=None, help="JSCC folder from train-jscc (omit: ideal link)")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--n-ctx", type=int, default=4)
    p.add_argument("--ctx-init", default="a photo of a")
    p.add_argument("--classes-per-step", type=int, default=100, help="0 = all seen classes")
    p.add_argument("--tapl-loss", default="i2t", choices=["i2t", "both"],
                   help="eq. 5: image-to-text cross entropy (default) or the mean of both directions (text-to-image "
                        "over the classes present in the batch)")
    p.add_argument("--snr-min", type=float, default=None)
    p.add_argument("--snr-max", type=float, default=None)
    p.add_argument("--checkpoint-every", type=int, default=500)
    _clip_args(p)
    _channel_args(p)
    _split_args(p)
    _common(p)

    _add_train_djscc(sub)
    _add_train_codec(sub)

    p = sub.add_parser("eval", help="zero-shot accuracy / retrieval on unseen classes -> zeroshot.csv")
    p.add_argument("--jscc", default=None, help="JSCC folder (omit: ideal link, the CLIP upper bound)")
    p.add_argument("--tapl", default=None, help="TAPL folder (omit: plain 'a photo of a {class}.' classifier)")
    p.add_argument("--out", required=True)
    p.add_argument("--snr-db", type=snr_list_arg, default=[-10.0, -5.0, 0.0, 5.0, 10.0], metavar="SNRS",
                   help="Es/N0 per complex channel use [dB]: start:stop:step (inclusive) or a comma list, as in "
                        "every command (default -10:10:5)")
    p.add_argument("--channel-uses", type=int, default=None, help="check against the JSCC checkpoint's L")
    p.add_argument("--system", default=None, help="row label (default: semclip / semclip-noaf / clip-zeroshot)")
    p.add_argument("--batch-size", type=int, default=64)
    _clip_args(p)
    _channel_args(p)
    _split_args(p)
    _common(p)


def _add_train_djscc(sub) -> None:
    """The ``train-djscc`` action's options (DJSCC-IR / DJSCC-FT on every seen-class image)."""
    p = sub.add_parser("train-djscc", help="DJSCC-IR or DJSCC-FT on every seen-class image (resumable)")
    p.add_argument("--model", required=True, choices=["ir", "ft"], help="ir: DJSCC-IR image codec (MSE); ft: "
                                                                        "DJSCC-FT (cross entropy on seen classes)")
    p.add_argument("--data", required=True, help="image-folder data set (its seen classes train the model)")
    p.add_argument("--layout", default="imagenet", help="layout of --data (folder, imagenet, ...)")
    p.add_argument("--out", required=True, help="run folder: train_state.pt while training, the model in OUT/model")
    p.add_argument("--channel-uses", type=int, required=True, help="L complex channel uses per image")
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--snr-min", type=float, default=-10.0)
    p.add_argument("--snr-max", type=float, default=10.0)
    p.add_argument("--hidden", type=int, default=64, help="convolution width")
    p.add_argument("--jscc-hidden", type=int, default=1024, help="DJSCC-FT: hidden width of its dense JSCC")
    p.add_argument("--arch", default="vit", choices=["vit", "adjscc"],
                   help="DJSCC-IR's architecture: vit (default; the transformer DeepJSCC the SemCLIP paper cites, "
                        "baselines.djscc_vit) or adjscc (the convolutional ADJSCC, baselines.djscc)")
    p.add_argument("--bottleneck", default="dense", choices=["dense", "conv"], help="DJSCC-IR adjscc's bottleneck")
    p.add_argument("--patch-size", type=int, default=None, help="DJSCC-IR vit: patch side in pixels (default: 16 "
                                                                 "for inputs of >= 128 px, else 8)")
    p.add_argument("--vit-dim", type=int, default=256, help="DJSCC-IR vit: token width")
    p.add_argument("--vit-depth", type=int, default=4, help="DJSCC-IR vit: transformer blocks per side")
    p.add_argument("--vit-heads", type=int, default=8, help="DJSCC-IR vit: attention heads")
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--num-workers", type=int, default=0, help="threads loading each batch's images")
    _clip_args(p)
    _channel_args(p)
    _split_args(p)
    _common(p, features=False)


def _add_train_codec(sub) -> None:
    """The ``train-codec`` action's options (BT-IR's learned codec, one model per quality level)."""
    p = sub.add_parser("train-codec", help="BT-IR's learned image codec, one model per quality level, on every "
                                           "seen-class image (resumable)")
    p.add_argument("--data", required=True, help="image-folder data set (its seen classes train the codec)")
    p.add_argument("--layout", default="imagenet", help="layout of --data (folder, imagenet, ...)")
    p.add_argument("--out", required=True, help="codec folder: OUT/q<k>/ per quality level, OUT/codec.json at the end")
    p.add_argument("--lambdas", default=",".join(f"{v:g}" for v in _LAMBDAS),
                   help="rate-distortion weights of the quality levels, low to high (default: CompressAI's "
                        "cheng2020-attn MSE points)")
    p.add_argument("--channels", type=int, default=128, help="width of the transforms and latents")
    p.add_argument("--mixtures", type=int, default=3, help="Gaussian components per latent element")
    p.add_argument("--steps", type=int, default=20000, help="steps per quality level")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--num-workers", type=int, default=0, help="threads loading each batch's images")
    _clip_args(p)
    _split_args(p)
    _common(p, features=False)


def _claim(args, settings: dict, results, record: str, started=None) -> None:
    """The resume guard (:func:`experiments.core.results.claim_result_settings`) with the data options."""
    from experiments.core.results import claim_result_settings, settings_of

    given = {**settings_of(args, ("all_classes", "unseen_fraction", "split_seed"), paths=("features",)), **settings}
    claim_result_settings(args.out, given, results, record=record, started=started)


def _device(name):
    from semantic.checkpoints import resolve_device

    return resolve_device(name)


def _load_split(args, which: str):
    from semantic.clip_tokens import load_features
    from semantic.datasets import split_classes

    fs = load_features(args.features)
    if args.all_classes:
        return fs
    seen, unseen = split_classes(len(fs.class_names), args.unseen_fraction, args.split_seed)
    return fs.subset_classes(seen if which == "seen" else unseen)


def _extract(args) -> int:
    from semantic.clip_tokens import CLIPImageEncoder, extract_features, load_open_clip
    from semantic.datasets import make_dataset

    device = _device(args.device)
    if getattr(args, "executor", "local") not in (None, "local"):  # one task per shard; same shards
        from experiments.commands.clip_extraction import clip_dataset, clip_image_encoder, extract_features_parallel
        from experiments.core.executors import RayExecutor

        spec = (args.clip_model, args.pretrained, str(device))
        with RayExecutor(num_cpus=args.num_cpus, address=args.address,
                         num_gpus_per_task=1 if str(device).startswith("cuda") else 0) as executor:
            fs = extract_features_parallel(executor, (clip_image_encoder, spec),
                                           (clip_dataset, (args.dataset, args.data, args.split) + spec[:2]),
                                           args.out, f"{args.clip_model}|{args.pretrained}",
                                           batch_size=args.batch_size, shard_size=args.shard_size,
                                           num_workers=args.num_workers)
        print(f"{len(fs)} tokens of dim {fs.token_dim} ({len(fs.class_names)} classes) in {args.out}")
        return 0
    model, preprocess, _ = load_open_clip(args.clip_model, args.pretrained, device=device)
    enc = CLIPImageEncoder(model, key=f"{args.clip_model}|{args.pretrained}")
    ds = make_dataset(args.dataset, args.data, transform=preprocess, split=args.split)
    fs = extract_features(enc, ds, args.out, batch_size=args.batch_size, shard_size=args.shard_size,
                          num_workers=args.num_workers, progress=False if args.no_progress else None)
    print(f"{len(fs)} tokens of dim {fs.token_dim} ({len(fs.class_names)} classes) in {args.out}")
    return 0


def _train_jscc(args) -> int:
    from semantic.distributed import cleanup, env_world_size, init_distributed
    from semantic.semclip import SemCLIPConfig, train_jscc

    fs = _load_split(args, "seen")
    lo, hi = (args.snr_db, args.snr_db) if args.snr_db is not None else (args.snr_min, args.snr_max)
    N = fs.token_dim
    L = N // 2 if args.channel_uses is None else args.channel_uses  # --channel-uses 0 is refused, not replaced
    cfg = SemCLIPConfig(token_dim=N, channel_uses=L, hidden_dim=args.hidden_dim, linear_skip=args.linear_skip,
                        use_af=not args.no_af, channel=args.channel, equalizer=args.equalizer,
                        snr_train_range=(lo, hi), temperature=args.temperature, jscc_batch_size=args.batch_size,
                        jscc_lr=args.lr, jscc_steps=args.steps, checkpoint_every=args.checkpoint_every,
                        unseen_fraction=args.unseen_fraction, split_seed=args.split_seed, seed=args.seed)
    from semantic.semclip import stage_settings

    _claim(args, stage_settings(cfg, "jscc"), ["checkpoint", "checkpoint.old", "encoder"], "train-jscc.settings.json")
    if env_world_size() > 1:  # under torchrun: one process per GPU (cuda:LOCAL_RANK), or gloo on CPU
        info = init_distributed(device=args.device)
        device = info.device
    else:
        info, device = None, _device(args.device)
    try:
        codec, hist = train_jscc(fs.features, cfg, out_dir=args.out, device=device,
                                 progress=False if args.no_progress else None, dist_info=info)
    finally:
        if info is not None:
            cleanup(info)
    if info is None or info.is_main:
        print(f"JSCC trained on {len(fs)} tokens ({len(fs.class_names)} classes), L={codec.channel_uses}, "
              f"final loss {hist[-1]:.4f} -> {args.out}" + (f" ({info.world_size} processes)" if info else ""))
    return 0


def _jscc_config(path):
    from semantic.semclip import SemCLIPConfig

    p = Path(path) / "semclip_config.json"
    return SemCLIPConfig.load(p) if p.is_file() else None


def _train_tapl(args) -> int:
    import dataclasses

    from semantic.clip_tokens import load_open_clip
    from semantic.jscc import JSCCCodec
    from semantic.semclip import SemCLIPConfig, train_tapl

    device = _device(args.device)
    fs = _load_split(args, "seen")
    codec = JSCCCodec.from_pretrained(args.jscc, equalizer=args.equalizer) if args.jscc else None
    base = _jscc_config(args.jscc) if args.jscc else None
    base = base or SemCLIPConfig(token_dim=fs.token_dim, channel_uses=max(1, fs.token_dim // 2))
    lo = args.snr_min if args.snr_min is not None else base.snr_train_range[0]
    hi = args.snr_max if args.snr_max is not None else base.snr_train_range[1]
    cfg = dataclasses.replace(base, clip_model=args.clip_model, pretrained=args.pretrained, channel=args.channel,
                              equalizer=args.equalizer, snr_train_range=(lo, hi), n_ctx=args.n_ctx,
                              ctx_init=args.ctx_init, tapl_batch_size=args.batch_size, tapl_lr=args.lr,
                              tapl_steps=args.steps, tapl_classes_per_step=args.classes_per_step or None,
                              tapl_loss=args.tapl_loss,
                              checkpoint_every=args.checkpoint_every, unseen_fraction=args.unseen_fraction,
                              split_seed=args.split_seed, seed=args.seed)
    from experiments.core.results import settings_of
    from semantic.semclip import stage_settings

    _claim(args, {**stage_settings(cfg, "tapl"), **settings_of(args, (), paths=("jscc",))},
           ["checkpoint", "checkpoint.old", "tapl"], "train-tapl.settings.json")
    model, _, tokenizer = load_open_clip(args.clip_model, args.pretrained, device=device)
    tapl, hist = train_tapl(fs.features, fs.labels, fs.class_names, codec, model, tokenizer, cfg, out_dir=args.out,
                            device=device, progress=False if args.no_progress else None)
    print(f"TAPL trained on {len(fs.class_names)} seen classes, final loss {hist[-1]:.4f} -> {args.out}")
    return 0


# the options of train-djscc that define the model it trains (not: --out, --device, --checkpoint-every and
# --num-workers, which leave the weights bit for bit the same)
_DJSCC_SETTINGS = ("model", "data", "layout", "channel_uses", "steps", "batch_size", "lr", "snr_min", "snr_max",
                   "hidden", "jscc_hidden", "bottleneck", "clip_model", "pretrained", "channel", "equalizer", "seed",
                   "all_classes", "unseen_fraction", "split_seed", "arch", "patch_size", "vit_dim", "vit_depth",
                   "vit_heads")
_CODEC_SETTINGS = ("data", "layout", "lambdas", "channels", "mixtures", "steps", "batch_size", "lr", "clip_model",
                   "pretrained", "seed", "all_classes", "unseen_fraction", "split_seed")


def _seen_images(args):
    """``(items, load_batch, image_shape, seen, num_classes, token_dim)`` of the seen-class images of
    ``--data`` at the CLIP input size (``load_batch(indices) -> (images [b, 3, H, W], seen-class labels [b])``,
    read from disk per batch)."""
    import torch

    from experiments.semclip_eval.context import _split_preprocess
    from semantic.clip_tokens import load_open_clip, model_image_shape
    from semantic.datasets import make_dataset, split_classes

    clip, preprocess, _ = load_open_clip(args.clip_model, args.pretrained, device="cpu")
    to_tensor, _ = _split_preprocess(preprocess)
    shape, token_dim = model_image_shape(clip), int(clip.visual.output_dim)
    del clip
    ds = make_dataset(args.layout, args.data, transform=to_tensor)
    G = len(ds.class_names)
    seen = list(range(G)) if args.all_classes else split_classes(G, args.unseen_fraction, args.split_seed)[0]
    seen_set = set(seen)
    items = [i for i, y in enumerate(ds.labels) if int(y) in seen_set]
    if not items:
        raise ValueError(f"--data {args.data}: no image of a seen class (expected class folders of the --layout "
                         f"{args.layout!r} layout)")
    lut = torch.full((G,), -1, dtype=torch.long)
    lut[torch.tensor(seen)] = torch.arange(len(seen))

    def load_batch(idx):
        from concurrent.futures import ThreadPoolExecutor

        pick = [items[int(i)] for i in idx]
        if args.num_workers > 0:
            with ThreadPoolExecutor(args.num_workers) as pool:
                got = list(pool.map(ds.__getitem__, pick))
        else:
            got = [ds[i] for i in pick]
        return torch.stack([g[0] for g in got]), lut[torch.tensor([int(g[1]) for g in got])]

    return items, load_batch, shape, seen, G, token_dim


def _train_djscc(args) -> int:
    """DJSCC-IR / DJSCC-FT trained on *every* image of the seen classes (loaded per batch from disk) with the
    same step budget as SemCLIP's JSCC: what ``semclip-eval --djscc-ir/--djscc-ft OUT/model`` loads."""
    import torch
    import torch.nn.functional as F

    from baselines.djscc import ImageJSCCCodec, train_resumable
    from baselines.djscc_ft import DJSCCFT
    from baselines.djscc_vit import ViTJSCCCodec
    from experiments.semclip_eval.context import djscc_num_down
    from phy.channel.registry import make_channel

    for name in ("channel_uses", "steps", "batch_size", "checkpoint_every", "hidden", "vit_dim", "vit_depth",
                 "vit_heads"):
        v = getattr(args, name)
        if v < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive int, got {v}")
    if args.patch_size is not None and args.patch_size < 1:
        raise ValueError(f"--patch-size must be a positive int, got {args.patch_size}")
    device = _device(args.device)
    items, load_batch, shape, seen, G, token_dim = _seen_images(args)
    nd = djscc_num_down(shape[1])
    with torch.random.fork_rng(devices=[]):  # seeded init, global stream untouched
        torch.manual_seed(args.seed)
        if args.model == "ir" and args.arch == "vit":
            model = ViTJSCCCodec.build(image_size=shape[1], channel_uses=args.channel_uses,
                                       patch_size=args.patch_size, dim=args.vit_dim, depth=args.vit_depth,
                                       heads=args.vit_heads, equalizer=args.equalizer)
        elif args.model == "ir":
            model = ImageJSCCCodec.build(image_size=shape[1], channel_uses=args.channel_uses, hidden=args.hidden,
                                         num_down=nd, equalizer=args.equalizer, bottleneck=args.bottleneck)
        else:
            model = DJSCCFT(image_size=shape[1], num_classes=len(seen), class_ids=list(seen),
                            feature_dim=token_dim, channel_uses=args.channel_uses,
                            hidden=args.hidden, num_down=nd, jscc_hidden=args.jscc_hidden)

    def loss_fn(m, x, y, snr):
        if args.model == "ir":
            return F.mse_loss(m(x, channel, snr).x_hat, x)
        return F.cross_entropy(m(x, channel, snr), y)

    channel = make_channel(args.channel, seed=args.seed + (11 if args.model == "ir" else 12))
    from experiments.core.results import settings_of

    # the resume guard: the record beside the run folder, and the same settings inside train_state.pt
    settings = settings_of(args, _DJSCC_SETTINGS, paths=("data",))
    _claim(args, settings, ["train_state.pt", "model"], "train-djscc.settings.json")
    hist = train_resumable(model, loss_fn, load_batch, len(items), channel, (args.snr_min, args.snr_max),
                           args.steps, args.out, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                           device=device, checkpoint_every=args.checkpoint_every,
                           settings=settings)
    kind = f"IR ({args.arch})" if args.model == "ir" else "FT"
    print(f"DJSCC-{kind} trained on {len(items)} images of {len(seen)} seen classes, L="
          f"{args.channel_uses}, {len(hist)} steps, final loss {hist[-1]['loss']:.4f} -> {Path(args.out) / 'model'}")
    return 0


def _train_codec(args) -> int:
    """BT-IR's learned codec (:mod:`baselines.learned_codec`): one model per ``--lambdas`` value, each trained
    resumably on every seen-class image at the CLIP input size, in ``OUT/q<k>``; ``OUT/codec.json`` lists them
    when all are done (what ``semclip-eval --btir-model OUT`` loads)."""
    import torch

    from baselines.djscc import train_resumable
    from baselines.learned_codec import GMMHyperpriorCodec, rd_loss
    from experiments.core.results import settings_of, write_json_atomic

    try:
        lambdas = [float(v) for v in str(args.lambdas).split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--lambdas must be comma-separated positive numbers, got {args.lambdas!r}") from None
    if not lambdas or any(not v > 0 for v in lambdas) or lambdas != sorted(set(lambdas)):
        raise ValueError(f"--lambdas must be distinct positive numbers, low to high, got {args.lambdas!r}")
    for name in ("channels", "mixtures", "steps", "batch_size", "checkpoint_every"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive int, got {getattr(args, name)}")
    device = _device(args.device)
    items, load_batch, shape, seen, _, _ = _seen_images(args)
    settings = settings_of(args, _CODEC_SETTINGS, paths=("data",))
    _claim(args, settings, [f"q{k}" for k in range(1, len(lambdas) + 1)] + ["codec.json"],
           "train-codec.settings.json")
    out = Path(args.out)
    for k, lmbda in enumerate(lambdas, 1):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(args.seed + k)
            model = GMMHyperpriorCodec(channels=args.channels, mixtures=args.mixtures, lmbda=lmbda)
        hist = train_resumable(model, lambda m, x, y, snr, lmbda=lmbda: rd_loss(m(x), x, lmbda), load_batch,
                               len(items), None, None, args.steps, out / f"q{k}", batch_size=args.batch_size,
                               lr=args.lr, seed=args.seed + k, device=device,
                               checkpoint_every=args.checkpoint_every, settings={**settings, "lmbda": lmbda})
        print(f"learned codec q{k} (lambda {lmbda:g}) trained on {len(items)} seen-class images of "
              f"{shape[1]} px, {len(hist)} steps, final loss {hist[-1]['loss']:.4f}", flush=True)
    write_json_atomic(out / "codec.json", {"qualities": {str(k): f"q{k}/model" for k in range(1, len(lambdas) + 1)},
                                           "lambdas": lambdas})
    print(f"BT-IR codec with {len(lambdas)} quality levels -> {out}")
    return 0


def _eval(args) -> int:
    from experiments.core.results import RunManifest, open_table
    from phy.channel.registry import make_channel
    from phy.utils.conventions import bandwidth_compression_ratio
    from semantic.clip_tokens import load_open_clip
    from semantic.jscc import JSCCCodec
    from semantic.semclip import SemCLIP, SemCLIPConfig, evaluate_zeroshot
    from semantic.tapl import TAPL

    device = _device(args.device)
    fs = _load_split(args, "unseen")
    codec = JSCCCodec.from_pretrained(args.jscc, equalizer=args.equalizer) if args.jscc else None
    if codec is not None and args.channel_uses is not None and args.channel_uses != codec.channel_uses:
        raise ValueError(f"--channel-uses {args.channel_uses} does not match the JSCC checkpoint "
                         f"{args.jscc!r} (L = {codec.channel_uses})")
    tapl = TAPL.from_pretrained(str(Path(args.tapl) / "tapl"), low_cpu_mem_usage=False) if args.tapl else None
    cfg = (_jscc_config(args.jscc) if args.jscc else None) or SemCLIPConfig(token_dim=fs.token_dim)
    if args.tapl and _jscc_config(args.tapl) is not None:
        t = _jscc_config(args.tapl)
        cfg.ctx_init, cfg.n_ctx = t.ctx_init, t.n_ctx
    model, _, tokenizer = load_open_clip(args.clip_model, args.pretrained, device=device)
    system = SemCLIP.from_clip(cfg, model, tokenizer, codec=codec, tapl=tapl)
    image_shape = fs.meta.get("image_shape") or list((3,) + tuple([getattr(model.visual, "image_size", 224)] * 2))
    if codec is None:
        default_name = "clip-zeroshot" if tapl is None else "tapl-ideal"
    else:
        default_name = ("semclip" if cfg.use_af else "semclip-noaf") + ("" if tapl is not None else "-notapl")
    name = args.system or default_name
    if codec is None:
        L = math.ceil(fs.token_dim / 2)  # the token sent uncoded, two reals per channel use
        snrs = [math.inf]
    else:
        L = codec.channel_uses
        snrs = list(args.snr_db)
    ratio = bandwidth_compression_ratio(L, tuple(image_shape))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = open_table(out / "zeroshot.csv", keys=["system", "channel", "snr_db", "channel_uses"],
                       values=["bandwidth_ratio", "top1", "top5", "retrieval_top1", "retrieval_top5"])
    channel_name = args.channel if codec is not None else "ideal"
    from experiments.core.results import settings_of

    # rows are keyed by (system, channel, SNR, L): each system's models and settings are recorded apart
    _claim(args, settings_of(args, ("clip_model", "pretrained", "equalizer", "seed", "batch_size"),
                             paths=("jscc", "tapl")),
           ["zeroshot.csv"], f"zeroshot.{name}.settings.json",
           started=any(r["system"] == name for r in table.rows()))
    done = table.finished_keys()
    from phy.sim.resultstore import format_value

    with RunManifest(out, args=args, seed=args.seed, command="semcom semclip eval",
                     extra={"n_images": len(fs), "n_classes": len(fs.class_names),
                            "image_shape": image_shape}) as man:
        for snr in snrs:
            key = tuple(format_value(v) for v in (name, channel_name, snr, L))
            if key in done:
                continue
            channel = make_channel(args.channel, seed=args.seed) if codec is not None else None
            r = evaluate_zeroshot(system, fs.features, fs.labels, fs.class_names, channel, snr, device=device,
                                  batch_size=args.batch_size)
            table.append({"system": name, "channel": channel_name, "snr_db": snr, "channel_uses": L,
                          "bandwidth_ratio": ratio, "top1": r["top1"], "top5": r["top5"],
                          "retrieval_top1": r["retrieval_top1"], "retrieval_top5": r["retrieval_top5"]})
            print(f"{name} {channel_name} snr={snr} dB L={L}: top1={r['top1']:.4f} top5={r['top5']:.4f} "
                  f"retrieval top1={r['retrieval_top1']:.4f} top5={r['retrieval_top5']:.4f}", flush=True)
        man.update(rows=len(snrs))
    return 0


def main(args: argparse.Namespace) -> int:
    """Run ``semcom semclip`` with the parsed ``args`` (the options of :func:`add_arguments`); returns
    the exit status (0 on success, 2 for bad input, reported as one line).

    Examples
    --------
    The ``extract`` action on a folder of 4 images with a tiny random CLIP written as a ``local-dir:``
    model (the real runs use ``ViT-L-14-336``/``openai`` and ImageNet; ``tests/test_semclip.py`` runs every
    action on tiny stand-ins):

    >>> from semantic.clip_tokens import save_open_clip_local_dir   # first: the torchvision shim
    >>> import os, tempfile, open_clip
    >>> from PIL import Image
    >>> from experiments.cli import main as semcom
    >>> root = tempfile.mkdtemp()
    >>> cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "patch_size": 16, "width": 32, "layers": 1,
    ...        "head_width": 16}, "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2,
    ...        "layers": 1}}
    >>> clip = save_open_clip_local_dir(open_clip.CLIP(**cfg), cfg, os.path.join(root, "clip"), {"size": 32})
    >>> for cls in ("cat", "dog"):
    ...     os.makedirs(os.path.join(root, "data", cls))
    ...     for i in range(2):
    ...         Image.new("RGB", (40, 40), (100 * i, 50, 0)).save(os.path.join(root, "data", cls, f"{i}.png"))
    >>> semcom(["semclip", "extract", "--data", os.path.join(root, "data"), "--clip-model", f"local-dir:{clip}",
    ...         "--pretrained", "none", "--out", os.path.join(root, "feats"), "--num-workers", "0",
    ...         "--no-progress", "--device", "cpu"])
    4 tokens of dim 32 (2 classes) in ...feats
    0
    """
    import semantic  # noqa: F401  (torchvision shim before open_clip)

    return {"extract": _extract, "train-jscc": _train_jscc, "train-tapl": _train_tapl, "train-djscc": _train_djscc,
            "train-codec": _train_codec, "eval": _eval}[args.action](args)
