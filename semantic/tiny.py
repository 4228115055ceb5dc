"""Tiny stand-ins for the papers' models and generated image data, built offline from configs.

What ``semcom reproduce NAME --smoke`` runs every result on (and what the tests build their models with):
every builder writes a folder with the *same layout* as the real checkpoint or data set, so the package's
ordinary loading code reads it (``from_pretrained`` on a local folder, ``load_open_clip("local-dir:...")``,
the data-set layouts of :mod:`semantic.datasets`). Nothing is downloaded.

Models
    :func:`save_tiny_blip2` -> a ``Salesforce/blip2-opt-*``-like folder: ``Blip2ForConditionalGeneration``
    (ViT 32x32 px, 8x8 patches, 1-layer Q-Former with ``N = 8`` queries of ``d = 32``, 1-layer OPT) plus a
    ``Blip2Processor`` (``BlipImageProcessor`` + byte-level OPT tokenizer); with ``captions`` its OPT and
    language projection are first fitted for a few steps (:func:`teach_captions`) so that greedy decoding
    writes words, not random bytes.
    :func:`save_tiny_sd` -> a ``stable-diffusion-v1-5``-like folder (``unet/``, ``vae/``, ``text_encoder/``,
    ``tokenizer/``, ``scheduler/``; no safety checker): 32x32 px images, latent 4x16x16.
    :func:`save_tiny_open_clip` -> an open_clip ``local-dir:`` folder (:data:`TINY_OPEN_CLIP_CFG`);
    :func:`save_tiny_clip_score` -> the weights file and JSON config of the tiny CLIP-score model.

Tokenizers
    Byte-level BPE tokenizers *without merges*: every byte is a token (the GPT-2 byte-to-unicode table), plus
    the model's special tokens. Real text round-trips through both; only the vocabulary is tiny.

Data
    Generated images of coloured shapes (:func:`draw_shape`; :data:`COLOURS` x :data:`SHAPES` = 50 classes):
    :func:`write_class_folders` (ImageNet layout, one folder per class), :func:`write_caption_images` (a
    folder of images and their ``captions.csv``), :func:`write_cross_datasets` (the Oxford-IIIT Pets,
    Food-101 and Caltech-101 layouts).

Example
-------
>>> import tempfile
>>> from pathlib import Path
>>> root = Path(tempfile.mkdtemp())
>>> names = write_class_folders(root / "classes", num_classes=12, per_class=2)
>>> len(names), names[:2], len(list((root / "classes" / names[0]).iterdir()))
(12, ['blue circle', 'blue square'], 2)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

__all__ = [
    "TINY_IMAGE_SIZE", "TINY_NUM_QUERIES", "TINY_VLF_DIM", "TINY_CLIP_WIDTH", "TINY_CLIP_POSITIONS",
    "TINY_OPEN_CLIP_CFG", "TINY_CLIP_SCORE_CFG", "COLOURS", "SHAPES",
    "byte_level_table", "tiny_opt_tokenizer", "tiny_clip_tokenizer", "build_tiny_blip2", "teach_captions",
    "save_tiny_blip2", "build_tiny_sd_components", "save_tiny_sd", "save_tiny_open_clip", "save_tiny_clip_score",
    "class_names", "draw_shape", "write_class_folders", "write_caption_images", "write_cross_datasets",
]

#: Pixels of the tiny BLIP-2 input and of the tiny SD output.
TINY_IMAGE_SIZE = 32
#: ``N``, the tiny Q-Former's queries.
TINY_NUM_QUERIES = 8
#: ``d``, the tiny Q-Former's width (the VLF is ``[N, d]``).
TINY_VLF_DIM = 32
#: Width of the tiny SD text encoder (= the U-Net's cross-attention width).
TINY_CLIP_WIDTH = 32
#: Positions of the tiny SD text encoder (as SD 1.5; byte tokens: about 75 characters).
TINY_CLIP_POSITIONS = 77
#: open_clip config of the tiny SemCLIP CLIP: 32 px input, 32-d tokens, the real BPE tokenizer.
TINY_OPEN_CLIP_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "patch_size": 16, "width": 32, "layers": 1, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
#: open_clip config of the tiny CLIP-score model of VLF-MSC's image metrics.
TINY_CLIP_SCORE_CFG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
#: Colours of the generated shapes (name -> RGB).
COLOURS = {"red": (220, 30, 30), "green": (30, 170, 40), "blue": (30, 60, 220), "yellow": (235, 210, 20),
           "purple": (140, 40, 170), "orange": (245, 130, 20), "black": (15, 15, 15), "white": (245, 245, 245),
           "brown": (120, 70, 20), "pink": (245, 130, 190)}
#: Shapes of the generated images.
SHAPES = ("circle", "square", "triangle", "cross", "ring")

PathLike = Union[str, os.PathLike]


# ------------------------------------------------------------------------------------------------
# tokenizers
# ------------------------------------------------------------------------------------------------
def byte_level_table() -> Dict[int, str]:
    """Byte -> printable unicode character (the byte-level BPE alphabet of GPT-2/CLIP/OPT).

    Examples
    --------
    >>> table = byte_level_table()
    >>> len(table), table[ord("a")], table[ord(" ")]
    (256, 'a', 'Ġ')
    """
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def tiny_opt_tokenizer():
    """A byte-level ``GPT2Tokenizer`` with OPT's special tokens (vocabulary of 260).

    Examples
    --------
    >>> tok = tiny_opt_tokenizer()
    >>> tok.decode(tok("a cat")["input_ids"], skip_special_tokens=True), len(tok)
    ('a cat', 260)
    """
    from transformers import GPT2Tokenizer

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for ch in byte_level_table().values():
        vocab[ch] = len(vocab)
    return GPT2Tokenizer(vocab=vocab, merges=[], unk_token="<unk>", bos_token="</s>", eos_token="</s>",
                         pad_token="<pad>", add_bos_token=True, model_max_length=64)


def tiny_clip_tokenizer():
    """A byte-level ``CLIPTokenizer`` (each byte with and without ``</w>``; vocabulary of 514).

    Examples
    --------
    >>> tok = tiny_clip_tokenizer()
    >>> len(tok), tok.decode(tok("a cat")["input_ids"], skip_special_tokens=True)
    (514, 'a cat')
    """
    from transformers import CLIPTokenizer

    vocab: Dict[str, int] = {}
    chars = list(byte_level_table().values())
    for ch in chars:
        vocab[ch] = len(vocab)
    for ch in chars:
        vocab[ch + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=TINY_CLIP_POSITIONS)


# ------------------------------------------------------------------------------------------------
# BLIP-2 (vision encoder + Q-Former + OPT)
# ------------------------------------------------------------------------------------------------
def build_tiny_blip2(seed: int = 0):
    """``(Blip2ForConditionalGeneration, Blip2Processor)``, randomly initialised from ``seed``.

    Examples
    --------
    >>> model, processor = build_tiny_blip2()
    >>> model.config.num_query_tokens, model.config.qformer_config.hidden_size
    (8, 32)
    """
    from transformers import Blip2Config, Blip2ForConditionalGeneration, Blip2Processor, BlipImageProcessor, OPTConfig

    tok = tiny_opt_tokenizer()
    processor = Blip2Processor(
        image_processor=BlipImageProcessor(size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE}),
        tokenizer=tok, num_query_tokens=TINY_NUM_QUERIES)
    tok = processor.tokenizer  # now holds the <image> token too
    text_config = OPTConfig(vocab_size=len(tok), hidden_size=48, num_hidden_layers=1, ffn_dim=64,
                            num_attention_heads=4, max_position_embeddings=96, word_embed_proj_dim=48,
                            bos_token_id=2, eos_token_id=2, pad_token_id=1)
    config = Blip2Config(
        vision_config=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=1, num_attention_heads=4,
                           image_size=TINY_IMAGE_SIZE, patch_size=8, initializer_range=0.02),
        qformer_config=dict(hidden_size=TINY_VLF_DIM, num_hidden_layers=1, num_attention_heads=4,
                            intermediate_size=48, encoder_hidden_size=32, vocab_size=64,
                            max_position_embeddings=32, initializer_range=0.02),
        text_config=text_config.to_dict(),
        num_query_tokens=TINY_NUM_QUERIES,
        image_token_index=tok.convert_tokens_to_ids("<image>"),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Blip2ForConditionalGeneration(config).eval()
        # post_init zero-initialises the query tokens; give them values so that queries differ
        with torch.no_grad():
            model.query_tokens.normal_(0.0, 0.5)
    return model, processor


def teach_captions(model, processor, images: torch.Tensor, captions: Sequence[str], steps: int = 200,
                   batch_size: int = 8, lr: float = 3e-3, seed: int = 0) -> List[float]:
    """Fit the OPT and the language projection of a tiny BLIP-2 so that greedy decoding writes captions.

    The frozen vision encoder and the Q-Former (trained too, so that the VLF tells images apart) give each
    image its VLF; the loss is the language-model loss of its caption given BLIP-2's soft prompt (all ``N`` queries through ``language_projection``), plus the same
    loss given VLF-MSC's pooled soft prompt (the projection of the mean query) and given a random soft prompt
    of the VLF's scale, so that any conditioning (a noisy VLF, an untrained ``W_proj``) decodes to words. For smoke runs and tests only: a handful of captions, a few seconds.

    Parameters
    ----------
    images : Tensor ``[n, 3, H, W]`` in ``[0, 1]``
    captions : list of ``n`` str
    steps, batch_size, lr, seed : the Adam run (batches drawn with a ``seed``-ed generator)

    Returns
    -------
    losses : list of float, one per step

    Examples
    --------
    >>> model, processor = build_tiny_blip2()
    >>> losses = teach_captions(model, processor, torch.rand(4, 3, 32, 32), ["a red circle"] * 4, steps=3)
    >>> len(losses)
    3
    """
    from .text_decoder import OPTTextDecoder
    from .vlf import VLFEncoder

    if images.dim() != 4 or images.shape[0] != len(captions):
        raise ValueError(f"images must be [n, 3, H, W] with one caption each, got {tuple(images.shape)} and "
                         f"{len(captions)} captions")
    enc = VLFEncoder.from_blip2(model, processor)
    with torch.no_grad():
        pixels = enc.preprocess(images)
        image_embeds = enc.vision_model(pixel_values=pixels, return_dict=True).last_hidden_state
    lm, proj = model.language_model, model.language_projection
    decoders = []
    for mode in ("blip2", "pooled"):  # BLIP-2's own captioning and VLF-MSC's one pooled soft prompt
        decoders.append(OPTTextDecoder.from_blip2(model, processor.tokenizer, mode=mode))
        decoders[-1].projection.linear = proj  # share BLIP-2's own projection (saved with the model)
    decoder = decoders[0]
    params = list(lm.parameters()) + list(proj.parameters()) + list(model.qformer.parameters()) + [model.query_tokens]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    model.train()
    for _ in range(int(steps)):
        idx = torch.randint(0, images.shape[0], (min(batch_size, images.shape[0]),), generator=gen)
        caps = [captions[int(i)] for i in idx]
        emb = image_embeds[idx]
        mask = torch.ones(emb.shape[:-1], dtype=torch.long)
        vlf = model.qformer(query_embeds=model.query_tokens.expand(emb.shape[0], -1, -1), encoder_hidden_states=emb,
                            encoder_attention_mask=mask, return_dict=True).last_hidden_state
        noisy = torch.randn(vlf.shape, generator=gen) * float(vlf.detach().std())
        loss = (decoder.caption_loss(vlf, caps) + decoder.caption_loss(noisy, caps)
                + decoders[1].caption_loss(vlf, caps))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval().requires_grad_(False)
    return losses


def save_tiny_blip2(path: PathLike, seed: int = 0, images: Optional[torch.Tensor] = None,
                    captions: Optional[Sequence[str]] = None, caption_steps: int = 200) -> Path:
    """Write a tiny BLIP-2 checkpoint folder (model + processor) to ``path`` and return it.

    With ``images`` ``[n, 3, H, W]`` and ``captions`` the model is first taught those captions
    (:func:`teach_captions`, ``caption_steps`` steps).

    Examples
    --------
    >>> import tempfile
    >>> path = save_tiny_blip2(tempfile.mkdtemp())
    >>> (path / "config.json").is_file(), (path / "tokenizer_config.json").is_file()
    (True, True)
    """
    path = Path(path)
    model, processor = build_tiny_blip2(seed)
    if captions is not None:
        if images is None:
            raise ValueError("captions need their images (images=[n, 3, H, W])")
        teach_captions(model, processor, images, captions, steps=caption_steps, seed=seed)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


# ------------------------------------------------------------------------------------------------
# Stable Diffusion (U-Net, VAE, CLIP text encoder, tokenizer, scheduler)
# ------------------------------------------------------------------------------------------------
def build_tiny_sd_components(seed: int = 0) -> dict:
    """The components of a tiny SD 1.5-like pipeline, as a dict of pipeline keyword arguments.

    Examples
    --------
    >>> parts = build_tiny_sd_components()
    >>> sorted(parts), parts["unet"].config.cross_attention_dim
    (['scheduler', 'text_encoder', 'tokenizer', 'unet', 'vae'], 32)
    """
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tok = tiny_clip_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
                            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
                            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
                            block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4,
                            sample_size=TINY_IMAGE_SIZE)
        latent = TINY_IMAGE_SIZE // 2
        unet = UNet2DConditionModel(sample_size=latent, in_channels=4, out_channels=4,
                                    block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=4,
                                    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                                    cross_attention_dim=TINY_CLIP_WIDTH, attention_head_dim=4)
        text_encoder = CLIPTextModel(CLIPTextConfig(
            vocab_size=len(tok), hidden_size=TINY_CLIP_WIDTH, intermediate_size=48, num_hidden_layers=1,
            num_attention_heads=4, max_position_embeddings=TINY_CLIP_POSITIONS, projection_dim=TINY_CLIP_WIDTH,
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)).eval()
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1,
                              num_train_timesteps=1000)
    return dict(vae=vae, text_encoder=text_encoder, tokenizer=tok, unet=unet, scheduler=scheduler)


def save_tiny_sd(path: PathLike, seed: int = 0) -> Path:
    """Write a tiny SD 1.5-layout folder (``StableDiffusionPipeline.save_pretrained``) and return it.

    ``StableDiffusionPipeline.from_pretrained(path, safety_checker=None)`` and the img2img pipeline load it
    as they would the real checkpoint.

    Examples
    --------
    >>> import tempfile
    >>> path = save_tiny_sd(tempfile.mkdtemp())
    >>> sorted(p.name for p in path.iterdir() if p.is_dir())
    ['scheduler', 'text_encoder', 'tokenizer', 'unet', 'vae']
    """
    from diffusers import StableDiffusionPipeline

    path = Path(path)
    pipe = StableDiffusionPipeline(**build_tiny_sd_components(seed), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(path)
    return path


# ------------------------------------------------------------------------------------------------
# open_clip models
# ------------------------------------------------------------------------------------------------
def save_tiny_open_clip(path: PathLike, seed: int = 0) -> Path:
    """A random tiny open_clip CLIP (:data:`TINY_OPEN_CLIP_CFG`) saved as a ``local-dir:`` folder.

    Examples
    --------
    >>> import tempfile
    >>> from semantic.clip_tokens import load_open_clip
    >>> path = save_tiny_open_clip(tempfile.mkdtemp())
    >>> model, preprocess, tokenizer = load_open_clip(f"local-dir:{path}")
    >>> model.visual.output_dim
    32
    """
    import open_clip

    from .clip_tokens import save_open_clip_local_dir

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.CLIP(**TINY_OPEN_CLIP_CFG)
    return save_open_clip_local_dir(model, TINY_OPEN_CLIP_CFG, path, {"size": TINY_OPEN_CLIP_CFG["vision_cfg"]
                                                                      ["image_size"]})


def save_tiny_clip_score(folder: PathLike, seed: int = 0) -> Tuple[Path, Path]:
    """``(weights file, config JSON)`` of a random tiny CLIP-score model (:data:`TINY_CLIP_SCORE_CFG`), what
    ``semcom vlf-msc-eval --clip-pretrained FILE --clip-model-config JSON`` loads.

    Examples
    --------
    >>> import tempfile
    >>> weights, cfg = save_tiny_clip_score(tempfile.mkdtemp())
    >>> weights.name, cfg.name
    ('clip_score.pt', 'clip_score.json')
    """
    import json

    import open_clip

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.CLIP(**TINY_CLIP_SCORE_CFG)
    (folder / "clip_score.json").write_text(json.dumps(TINY_CLIP_SCORE_CFG))
    torch.save(model.state_dict(), folder / "clip_score.pt")
    return folder / "clip_score.pt", folder / "clip_score.json"


# ------------------------------------------------------------------------------------------------
# generated images
# ------------------------------------------------------------------------------------------------
def class_names(num_classes: int = 50) -> List[str]:
    """``"<colour> <shape>"`` names of the first ``num_classes`` generated classes (at most 50).

    Examples
    --------
    >>> class_names(3)
    ['red circle', 'red square', 'red triangle']
    """
    names = [f"{c} {s}" for c in COLOURS for s in SHAPES]
    if not 1 <= int(num_classes) <= len(names):
        raise ValueError(f"num_classes must be in 1..{len(names)}, got {num_classes!r}")
    return names[:int(num_classes)]


def draw_shape(colour: str, shape: str, size: int = 32, rng: Optional[np.random.Generator] = None) -> "object":
    """A ``size`` x ``size`` RGB PIL image: a ``colour`` ``shape`` at a random place and scale on a random
    light background with a little pixel noise.

    Examples
    --------
    >>> img = draw_shape("red", "circle", 32, np.random.default_rng(0))
    >>> img.size, img.mode
    ((32, 32), 'RGB')
    """
    from PIL import Image

    if colour not in COLOURS or shape not in SHAPES:
        raise ValueError(f"colour must be one of {list(COLOURS)} and shape one of {list(SHAPES)}, got "
                         f"{colour!r}, {shape!r}")
    rng = rng if rng is not None else np.random.default_rng(0)
    n = int(size)
    bg = rng.uniform(150, 235, 3) * (0.6 if colour == "white" else 1.0)
    img = np.ones((n, n, 3)) * bg
    r = rng.uniform(0.22, 0.36) * n
    cy, cx = rng.uniform(r + 1, n - r - 1, 2)
    yy, xx = np.mgrid[0:n, 0:n].astype(float)
    dy, dx = yy - cy, xx - cx
    if shape == "circle":
        mask = dy ** 2 + dx ** 2 <= r ** 2
    elif shape == "square":
        mask = (np.abs(dy) <= 0.8 * r) & (np.abs(dx) <= 0.8 * r)
    elif shape == "triangle":
        mask = (dy <= 0.8 * r) & (dy >= -r + 2 * np.abs(dx))
    elif shape == "cross":
        mask = ((np.abs(dy) <= 0.3 * r) | (np.abs(dx) <= 0.3 * r)) & (np.abs(dy) <= r) & (np.abs(dx) <= r)
    else:  # ring
        d2 = dy ** 2 + dx ** 2
        mask = (d2 <= r ** 2) & (d2 >= (0.55 * r) ** 2)
    img[mask] = COLOURS[colour]
    img += rng.normal(0, 6, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), mode="RGB")


def write_class_folders(root: PathLike, num_classes: int = 50, per_class: int = 4, size: int = 32,
                        seed: int = 0) -> List[str]:
    """An ImageNet-style folder: one sub-folder per class (named ``"<colour> <shape>"``), ``per_class`` PNGs
    each; returns the class names (sorted, as the folder layout orders them).

    Examples
    --------
    >>> import tempfile
    >>> write_class_folders(tempfile.mkdtemp(), num_classes=2, per_class=1)
    ['red circle', 'red square']
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    names = class_names(num_classes)
    for name in names:
        colour, shape = name.split(" ")
        (root / name).mkdir(parents=True, exist_ok=True)
        for j in range(int(per_class)):
            draw_shape(colour, shape, size, rng).save(root / name / f"{j}.png")
    return sorted(names)


def write_caption_images(root: PathLike, n: int = 8, size: int = 32, seed: int = 0) -> Path:
    """``n`` generated images ``img<i>.png`` and their ``captions.csv`` (``image,caption,label``: ``"a
    <colour> <shape>"``, ``"<shape>"``) in ``root``; returns ``root``.

    Examples
    --------
    >>> import tempfile
    >>> root = write_caption_images(tempfile.mkdtemp(), n=2)
    >>> (root / "captions.csv").read_text().splitlines()
    ['image,caption,label', 'img0.png,a red circle,circle', 'img1.png,a green square,square']
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    colours = list(COLOURS)
    rows = ["image,caption,label"]
    for i in range(int(n)):
        colour, shape = colours[i % len(colours)], SHAPES[i % len(SHAPES)]
        draw_shape(colour, shape, size, rng).save(root / f"img{i}.png")
        rows.append(f"img{i}.png,a {colour} {shape},{shape}")
    (root / "captions.csv").write_text("\n".join(rows) + "\n")
    return root


def write_cross_datasets(root: PathLike, size: int = 32, seed: int = 0) -> Dict[str, Path]:
    """Small generated data sets in the Oxford-IIIT Pets, Food-101 and Caltech-101 layouts of
    :mod:`semantic.datasets` (two classes, two test images each); returns ``{name: folder}``.

    Examples
    --------
    >>> import tempfile
    >>> from semantic.datasets import DATASETS
    >>> paths = write_cross_datasets(tempfile.mkdtemp())
    >>> [len(DATASETS[name](str(p))) for name, p in sorted(paths.items())]
    [4, 4, 4]
    """
    root = Path(root)
    rng = np.random.default_rng(seed)

    def img(i: int):
        return draw_shape(list(COLOURS)[i % len(COLOURS)], SHAPES[i % len(SHAPES)], size, rng)

    pets = root / "oxford_pets"
    (pets / "images").mkdir(parents=True, exist_ok=True)
    (pets / "annotations").mkdir(exist_ok=True)
    names = ["Abyssinian_1", "Abyssinian_2", "Bengal_1", "Bengal_2"]
    for i, n in enumerate(names):
        img(i).save(pets / "images" / f"{n}.jpg")
    (pets / "annotations" / "test.txt").write_text("".join(f"{n} {1 + i // 2} 1 1\n" for i, n in enumerate(names)))
    food = root / "food101"
    for c, cls in enumerate(("apple_pie", "sushi")):
        (food / "images" / cls).mkdir(parents=True, exist_ok=True)
        for i in range(2):
            img(2 * c + i).save(food / "images" / cls / f"{i}.jpg")
    (food / "meta").mkdir(exist_ok=True)
    (food / "meta" / "classes.txt").write_text("apple_pie\nsushi\n")
    (food / "meta" / "test.txt").write_text("apple_pie/0\napple_pie/1\nsushi/0\nsushi/1\n")
    cal = root / "caltech101"
    for c, cls in enumerate(("accordion", "anchor")):
        (cal / "101_ObjectCategories" / cls).mkdir(parents=True, exist_ok=True)
        for i in range(2):
            img(2 * c + i).save(cal / "101_ObjectCategories" / cls / f"image_000{i}.jpg")
    return {"oxford_pets": pets, "food101": food, "caltech101": cal}
