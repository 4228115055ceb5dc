"""Tiny, randomly initialised stand-ins for the VLF-MSC models, built offline from configs.

Every builder writes a checkpoint folder with the *same layout* as the real hub checkpoint, so the
package's ordinary loading code (``from_pretrained`` on a local folder, via
:func:`semantic.checkpoints.resolve_checkpoint`) is exercised by the tests:

* :func:`save_tiny_blip2` -> a ``Salesforce/blip2-opt-*``-like folder: ``Blip2ForConditionalGeneration``
  (ViT 32x32 px, 8x8 patches, 1-layer Q-Former with ``N = 8`` queries of ``d = 32``, 1-layer OPT) plus a
  ``Blip2Processor`` (``BlipImageProcessor`` + byte-level OPT tokenizer).
* :func:`save_tiny_sd` -> a ``stable-diffusion-v1-5``-like folder written by ``StableDiffusionPipeline``
  (``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/``, ``model_index.json``; no
  safety checker): 32x32 px images, a 2-block VAE (latent 4x16x16), a 2-block U-Net with cross-attention
  width 32, a 1-layer CLIP text encoder of width 32 with 77 positions.

Tokenizers (no downloads): byte-level BPE tokenizers *without merges*: every byte is a token (the
GPT-2 byte-to-unicode table), plus the model's special tokens. The OPT tokenizer is a
``GPT2Tokenizer`` with OPT's special tokens (``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3); the
CLIP tokenizer is a ``CLIPTokenizer`` whose vocabulary holds each byte alone and with the ``</w>``
end-of-word suffix. Real text round-trips through both; only the vocabulary is tiny.

Reuse from another test module (pytest puts ``tests/`` on ``sys.path``)::

    from tiny_models import save_tiny_sd, tiny_sd_dir      # builder + module-scoped fixture
    from tiny_models import save_tiny_blip2, tiny_blip2_dir, write_tiny_images

Constants :data:`TINY_IMAGE_SIZE`, :data:`TINY_NUM_QUERIES`, :data:`TINY_VLF_DIM` describe the shapes.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Sequence, Union

import semantic  # noqa: F401  (torchvision shim before transformers/diffusers)
import numpy as np
import pytest
import torch

__all__ = [
    "TINY_IMAGE_SIZE", "TINY_NUM_QUERIES", "TINY_VLF_DIM", "TINY_CLIP_WIDTH", "TINY_CLIP_POSITIONS",
    "byte_level_table", "tiny_opt_tokenizer", "tiny_clip_tokenizer",
    "build_tiny_blip2", "save_tiny_blip2", "build_tiny_sd_components", "save_tiny_sd",
    "write_tiny_images", "tiny_blip2_dir", "tiny_sd_dir", "tiny_image_dir",
]

TINY_IMAGE_SIZE = 32       # pixels, for both the BLIP-2 input and the SD output
TINY_NUM_QUERIES = 8       # N
TINY_VLF_DIM = 32          # d
TINY_CLIP_WIDTH = 32       # CLIP text hidden size = U-Net cross-attention width
TINY_CLIP_POSITIONS = 77   # CLIP max_position_embeddings (as SD 1.5; byte tokens: ~75 characters)

PathLike = Union[str, os.PathLike]


def byte_level_table() -> Dict[int, str]:
    """Byte -> printable unicode character (the byte-level BPE alphabet of GPT-2/CLIP/OPT)."""
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
    """A byte-level ``GPT2Tokenizer`` with OPT's special tokens (vocabulary of 260)."""
    from transformers import GPT2Tokenizer

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for ch in byte_level_table().values():
        vocab[ch] = len(vocab)
    tok = GPT2Tokenizer(vocab=vocab, merges=[], unk_token="<unk>", bos_token="</s>", eos_token="</s>",
                        pad_token="<pad>", add_bos_token=True, model_max_length=64)
    return tok


def tiny_clip_tokenizer():
    """A byte-level ``CLIPTokenizer`` (each byte with and without ``</w>``; vocabulary of 514)."""
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
    """(Blip2ForConditionalGeneration, Blip2Processor), randomly initialised from ``seed``."""
    from transformers import (Blip2Config, Blip2ForConditionalGeneration, Blip2Processor,
                              BlipImageProcessor, OPTConfig)

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
    torch.manual_seed(seed)
    model = Blip2ForConditionalGeneration(config).eval()
    # post_init zero-initialises the query tokens; give them values so that queries differ
    with torch.no_grad():
        model.query_tokens.normal_(0.0, 0.5)
    return model, processor


def save_tiny_blip2(path: PathLike, seed: int = 0) -> Path:
    """Write a tiny BLIP-2 checkpoint folder (model + processor) to ``path`` and return it."""
    path = Path(path)
    model, processor = build_tiny_blip2(seed)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


# ------------------------------------------------------------------------------------------------
# Stable Diffusion (U-Net, VAE, CLIP text encoder, tokenizer, scheduler)
# ------------------------------------------------------------------------------------------------
def build_tiny_sd_components(seed: int = 0) -> dict:
    """The components of a tiny SD 1.5-like pipeline, as a dict of pipeline keyword arguments."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tok = tiny_clip_tokenizer()
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

    ``StableDiffusionPipeline.from_pretrained(path, safety_checker=None)`` and the img2img pipeline
    load it as they would the real checkpoint.
    """
    from diffusers import StableDiffusionPipeline

    path = Path(path)
    pipe = StableDiffusionPipeline(**build_tiny_sd_components(seed), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(path)
    return path


# ------------------------------------------------------------------------------------------------
# Images
# ------------------------------------------------------------------------------------------------
def real_image(i: int, size: int):
    """A real photograph: the ``i``-th crop of scikit-learn's two sample photos, resized to ``size``."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images  # china.jpg, flower.jpg (427 x 640 RGB)
    photo = photos[i % len(photos)]
    step = i // len(photos)
    y0, x0 = (37 * step) % (photo.shape[0] - 200), (53 * step) % (photo.shape[1] - 200)
    return Image.fromarray(photo[y0:y0 + 200, x0:x0 + 200]).resize((size, size), Image.BILINEAR)


def write_tiny_images(path: PathLike, n: int = 3, size: int = 40, captions: Sequence[str] = None,
                      labels: Sequence[str] = None) -> Path:
    """Write ``n`` real RGB photos (``img0.png``...; :func:`real_image`) and a ``captions.csv`` (image,caption,label)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    captions = list(captions) if captions is not None else [f"a photo of thing {i}" for i in range(n)]
    labels = list(labels) if labels is not None else [f"thing {i}" for i in range(n)]
    rows: List[str] = ["image,caption,label"]
    for i in range(n):
        real_image(i, size).save(path / f"img{i}.png")
        rows.append(f"img{i}.png,{captions[i]},{labels[i]}")
    (path / "captions.csv").write_text("\n".join(rows) + "\n")
    return path


def write_digit_folder(root: PathLike, classes: Sequence[str], per_class: int = 5, size: int = 32) -> Path:
    """An ImageNet-style folder of real images: class ``j`` holds scikit-learn's handwritten digit ``j % 10``
    (8x8 scans), upsampled to ``size`` and saved as RGB PNGs."""
    from PIL import Image
    from sklearn.datasets import load_digits

    root = Path(root)
    d = load_digits()
    for c, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for j, i in enumerate(np.flatnonzero(d.target == c % 10)[:per_class]):
            arr = (d.images[i] / 16.0 * 255).astype(np.uint8)
            Image.fromarray(arr, mode="L").resize((size, size), Image.BILINEAR).convert("RGB").save(folder / f"{j}.png")
    return root


# ------------------------------------------------------------------------------------------------
# Fixtures (import them into a test module to use them there)
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_blip2_dir(tmp_path_factory) -> Path:
    return save_tiny_blip2(tmp_path_factory.mktemp("blip2") / "tiny-blip2")


@pytest.fixture(scope="module")
def tiny_sd_dir(tmp_path_factory) -> Path:
    return save_tiny_sd(tmp_path_factory.mktemp("sd") / "tiny-sd")


@pytest.fixture(scope="module")
def tiny_image_dir(tmp_path_factory) -> Path:
    return write_tiny_images(tmp_path_factory.mktemp("images"))
