"""The systems ``semcom vlf-msc-eval`` compares (what each transmits, its legend label, its receiver's
equaliser) and the names of the text and image metrics."""
from __future__ import annotations

__all__ = ["SYSTEMS", "MODALITY", "LABELS", "TEXT_METRICS", "IMAGE_METRICS", "METRICS"]

#: The systems ``--systems`` may name.
SYSTEMS = ("vlf-msc", "ascii-hamming", "deepsc", "img2img-sc", "img2img-sc-bsc")
#: What each system transmits: text, image, or both.
MODALITY = {"vlf-msc": "text+image", "ascii-hamming": "text", "deepsc": "text", "img2img-sc": "image",
            "img2img-sc-bsc": "image"}
#: The legend label of each system.
LABELS = {"vlf-msc": "VLF-MSC", "ascii-hamming": "ASCII + Hamming(7,4) + 16-QAM", "deepsc": "DeepSC",
          "img2img-sc": "Img2Img-SC (bit-true)", "img2img-sc-bsc": "Img2Img-SC (BSC shortcut)"}
#: The text metrics (vs the reference caption).
TEXT_METRICS = ("bleu1", "bleu4", "bertscore_f1")
#: The image metrics (vs the input image; the CLIP score vs the reference caption).
IMAGE_METRICS = ("lpips", "clip_score", "psnr", "ssim", "ms_ssim")
#: Every metric column: the text metrics, then the image metrics.
METRICS = TEXT_METRICS + IMAGE_METRICS


def _equalizer_of(system: str, args) -> str:
    """The receiver equaliser of ``system`` (recorded in ``metrics.csv``): VLF-MSC's ``--equalizer``,
    DeepSC's ``--deepsc-equalizer``, ZF for the digital baselines (the demapper's unbiased estimate)."""
    return {"vlf-msc": args.equalizer, "deepsc": args.deepsc_equalizer}.get(system, "zf")
