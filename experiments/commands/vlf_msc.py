"""``semcom vlf-msc``: VLF-MSC captions and images per SNR, from a folder of images.

Example
-------
``semcom vlf-msc --images data/val --captions data/val/captions.csv --channel rayleigh --snr-db=-5:10:2.5
--blip2-checkpoint Salesforce/blip2-opt-6.7b --sd-checkpoint stable-diffusion-v1-5/stable-diffusion-v1-5
--image-decoder runs/imgdec/checkpoint-0010000 --out runs/vlf_msc``

Writes, in ``--out``:

* ``captions.csv``: one row per (image, SNR): ``image, snr_db, name, channel, caption, reference,
  label, image_file, n_ch`` (``image_file`` relative to ``--out``). Rows are written as they finish; a
  rerun resumes and skips finished (image, SNR) pairs. Each image gets its own channel seed (from
  ``--seed``, the channel, the SNR value and the image file's SHA-1) and its own diffusion latents
  (from ``--seed`` and the SHA-1), so a row does not depend on ``--batch-size`` or on the SNR list:
  a resumed run with other values still reproduces the rows of an uninterrupted one.
* ``images/snr_<snr>dB/<name>.png``: the generated images (``--no-images`` to skip the diffusion).
* ``grid.png``: a qualitative grid, one row per input image (first ``--grid-rows``), first column the
  input, then one column per SNR; each cell is the generated image with its caption underneath.
* ``manifest.json``: arguments, the channel-use ledger (``n_ch``, BCR for the 256x256 input),
  versions, timing.

SNR points: ``--snr-db start:stop:step`` (inclusive stop) or a comma list (the parser of
:mod:`experiments.commands.ber`); write negative starts as ``--snr-db=-5:10:2.5``. SNR is Es/N0 per complex
channel use. The BLIP-2 encoder runs once per image for all SNR points; VLFs are cached on disk in
``--vlf-cache`` (default ``OUT/vlf_cache``), keyed by checkpoint and the image file's SHA-1.

Missing weights fail at once with a message naming the checkpoint and how to provide it; pass local
folders with ``--blip2-checkpoint``/``--sd-checkpoint``/``--image-decoder``/``--text-projection``.
"""
from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path
from typing import Dict, List, Optional, Sequence

__all__ = ["add_arguments", "main", "build_config", "write_grid", "snr_dirname", "transmit_per_item", "item_latents"]

_COLUMNS_KEYS = ("image", "snr_db")
_COLUMNS_VALUES = ("name", "channel", "equalizer", "caption", "reference", "label", "image_file", "n_ch")


def transmit_per_item(system, vlf, snr_db: float, seeds: Sequence[int]):
    """Received VLFs ``[B, N, d]``: example ``i`` sent with the channel restarted from ``seeds[i]``.

    Per-example seeds make a row independent of how the examples are batched.

    Examples
    --------
    Any object with VLF-MSC's ``transmit(vlf, snr_db=, seed=)`` works; here an analog link over AWGN:

    >>> import torch
    >>> from phy.channel.flat import AWGN
    >>> from phy.link.analog import AnalogLink
    >>> class System:
    ...     link = AnalogLink(AWGN(seed=0))
    ...     def transmit(self, vlf, snr_db, seed):
    ...         self.link.channel.reset(seed)
    ...         return self.link(vlf, snr_db=snr_db).x_hat
    >>> vlf = torch.randn(3, 4, 8)
    >>> rx = transmit_per_item(System(), vlf, snr_db=0.0, seeds=[7, 8, 9])
    >>> rx.shape, torch.equal(rx[1:2], transmit_per_item(System(), vlf[1:2], 0.0, seeds=[8]))   # batch-independent
    (torch.Size([3, 4, 8]), True)
    """
    import torch

    if len(seeds) != vlf.shape[0]:
        raise ValueError(f"seeds must give one seed per example: {vlf.shape[0]} examples, {len(seeds)} seeds")
    return torch.cat([system.transmit(vlf[i:i + 1], snr_db=snr_db, seed=int(s)) for i, s in enumerate(seeds)])


def item_latents(decoder, seeds: Sequence[int], height: Optional[int] = None, width: Optional[int] = None):
    """Initial diffusion latents ``[B, C, h, w]`` for ``decoder.generate``: example ``i`` from a generator
    seeded with ``seeds[i]`` (so an image depends on its own seed only, not on its batch).

    Examples
    --------
    ``decoder`` needs ``height``, ``width``, ``vae_scale_factor``, ``device`` and ``unet.config.in_channels``
    (as :class:`semantic.image_decoder.VLFImageDecoder` has):

    >>> import types, torch
    >>> decoder = types.SimpleNamespace(height=256, width=256, vae_scale_factor=8, device=torch.device("cpu"),
    ...                                 unet=types.SimpleNamespace(config=types.SimpleNamespace(in_channels=4)))
    >>> z = item_latents(decoder, seeds=[1, 2])
    >>> z.shape, torch.equal(z[1], item_latents(decoder, seeds=[2])[0])
    (torch.Size([2, 4, 32, 32]), True)
    """
    import torch

    h, w = int(height or decoder.height), int(width or decoder.width)
    shape = (decoder.unet.config.in_channels, h // decoder.vae_scale_factor, w // decoder.vae_scale_factor)
    dev = decoder.device
    return torch.stack([torch.randn(shape, generator=torch.Generator(device=dev).manual_seed(int(s)), device=dev,
                                    dtype=torch.float32) for s in seeds])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``semcom vlf-msc`` to ``parser`` (``semcom vlf-msc --help`` lists them).

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> args = parser.parse_args(["--images", "data/val", "--out", "runs/vlf"])
    >>> (args.images, args.input_size)
    ('data/val', 256)
    """
    g = parser.add_argument_group("data")
    g.add_argument("--images", required=True, help="folder of input images")
    g.add_argument("--captions", default=None,
                   help="CSV with columns image[,caption][,label] (see semantic.images); optional")
    g.add_argument("--limit", type=int, default=None, help="use only the first N images")
    g.add_argument("--input-size", type=int, default=256, help="input resize/centre-crop side (default 256)")
    g = parser.add_argument_group("channel")
    g.add_argument("--channel", default="awgn", choices=("awgn", "rayleigh", "rician"),
                   help="channel model (default awgn); Rayleigh is per-symbol, equalised by --equalizer")
    g.add_argument("--snr-db", default="-5:10:2.5",
                   help="Es/N0 points in dB: start:stop:step (inclusive) or a comma list (default -5:10:2.5)")
    g.add_argument("--equalizer", default="mmse", choices=("zf", "mmse", "identity"),
                   help="receiver of the analog VLF (default mmse; zf divides by h and blows up deep fades on "
                        "Rayleigh; identity: no equaliser, the paper's AWGN receiver, AWGN only)")
    g.add_argument("--seed", type=int, default=0, help="channel and diffusion seed (default 0)")
    g = parser.add_argument_group("models")
    g.add_argument("--blip2-checkpoint", "--checkpoint", dest="blip2_checkpoint",
                   default="Salesforce/blip2-opt-6.7b",
                   help="BLIP-2 hub id or folder (default Salesforce/blip2-opt-6.7b; or Salesforce/blip2-opt-2.7b)")
    g.add_argument("--sd-checkpoint", default="stable-diffusion-v1-5/stable-diffusion-v1-5",
                   help="Stable Diffusion 1.5 hub id or folder")
    g.add_argument("--image-decoder", default=None,
                   help="trained image-decoder folder (projection/ [+ unet/]) from `semcom train-image-decoder`")
    g.add_argument("--text-projection", default=None, help="fine-tuned W_proj folder from `semcom train-text-projection` (default: BLIP-2's)")
    g.add_argument("--text-mode", default="pooled", choices=("pooled", "blip2"),
                   help="pooled: one soft prompt (paper); blip2: all N projected queries")
    g.add_argument("--device", default=None, help="torch device: auto (default: cuda if available, else cpu), cpu, cuda, cuda:1 ...")
    g.add_argument("--dtype", default="auto", help="auto (fp16 on CUDA, fp32 on CPU) | float32 | float16 | bfloat16")
    g.add_argument("--device-map", default=None, help="transformers device_map for BLIP-2 (needs accelerate)")
    g.add_argument("--allow-download", action="store_true", help="download missing checkpoints (online machines)")
    g = parser.add_argument_group("decoding")
    g.add_argument("--steps", type=int, default=50, help="DDIM steps (default 50)")
    g.add_argument("--guidance-scale", type=float, default=1.0, help="classifier-free guidance (default 1 = off)")
    g.add_argument("--image-size", type=int, default=256, help="generated image side (default 256)")
    g.add_argument("--max-new-tokens", type=int, default=30)
    g.add_argument("--num-beams", type=int, default=1, help="1 = greedy (default)")
    g.add_argument("--no-text", action="store_true", help="skip the text decoder")
    g.add_argument("--no-images", action="store_true", help="skip the image decoder")
    g = parser.add_argument_group("output")
    g.add_argument("--out", required=True, help="output folder")
    g.add_argument("--batch-size", type=int, default=4)
    g.add_argument("--vlf-cache", default=None, help="VLF cache folder (default OUT/vlf_cache; 'none' to disable)")
    g.add_argument("--grid-rows", type=int, default=6, help="input images shown in grid.png (default 6)")


# the options that define a row of captions.csv / an image (row keys, SNR list, batch size, cache, device
# placement and the grid are not among them): recorded beside captions.csv and checked on resume
RESULT_SETTINGS = ("images", "captions", "input_size", "channel", "equalizer", "seed", "blip2_checkpoint", "sd_checkpoint",
                   "image_decoder", "text_projection", "text_mode", "dtype", "steps", "guidance_scale", "image_size",
                   "max_new_tokens", "num_beams", "no_text", "no_images")
_PATH_SETTINGS = ("images", "captions", "image_decoder", "text_projection")


def build_config(args: argparse.Namespace):
    """``VLFMSCConfig`` from parsed arguments.

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser(); add_arguments(parser)
    >>> cfg = build_config(parser.parse_args(["--images", "data/val", "--out", "runs/vlf", "--channel", "rayleigh"]))
    >>> cfg.channel, cfg.vlf_cache_dir
    ('rayleigh', 'runs/vlf/vlf_cache')
    """
    from semantic.vlf_msc import VLFMSCConfig

    cache = args.vlf_cache if args.vlf_cache is not None else os.path.join(args.out, "vlf_cache")
    if isinstance(cache, str) and cache.lower() == "none":
        cache = None
    return VLFMSCConfig(
        blip2_checkpoint=args.blip2_checkpoint, sd_checkpoint=args.sd_checkpoint,
        image_decoder=args.image_decoder, text_projection=args.text_projection, text_mode=args.text_mode,
        channel=args.channel, equalizer=args.equalizer, channel_seed=args.seed, device=args.device,
        dtype=args.dtype, device_map=args.device_map, decode_text=not args.no_text,
        decode_images=not args.no_images, num_inference_steps=args.steps, guidance_scale=args.guidance_scale,
        image_size=args.image_size, seed=args.seed, max_new_tokens=args.max_new_tokens, num_beams=args.num_beams,
        vlf_cache_dir=cache, allow_download=True if args.allow_download else None)


def snr_dirname(snr_db: float) -> str:
    """``snr_-5.0dB``, ``snr_2.5dB``: folder name of one SNR point.

    Examples
    --------
    >>> snr_dirname(-5.0), snr_dirname(2.5), snr_dirname(10)
    ('snr_-5dB', 'snr_2.5dB', 'snr_10dB')
    """
    return f"snr_{float(snr_db):g}dB"


def _fmt_snr(snr: float) -> str:
    from experiments.core.results import format_value

    return format_value(float(snr))


def _label(text: str) -> str:
    """A caption as a grid label: wrapped to 3 lines of 28 characters, ``$`` escaped (a received
    caption is arbitrary text, never matplotlib math)."""
    return "\n".join(textwrap.wrap(text, 28)[:3]).replace("$", r"\$")


def write_grid(rows: Sequence[dict], snrs: Sequence[float], out_dir: str, path: str, max_rows: int = 6,
               input_size: int = 256) -> Optional[str]:
    """The qualitative grid PNG: rows = inputs, columns = input + SNR points, cells = image + caption.

    ``rows`` are ``captions.csv`` rows (dicts of strings); generated images are read from
    ``image_file`` (relative to ``out_dir``); a missing image leaves the cell with its caption only.

    Examples
    --------
    >>> import os, tempfile
    >>> from PIL import Image
    >>> out = tempfile.mkdtemp()
    >>> Image.new("RGB", (32, 32), (0, 128, 255)).save(os.path.join(out, "in.png"))
    >>> rows = [{"image": os.path.join(out, "in.png"), "snr_db": "0.0", "caption": "a blue square",
    ...          "image_file": "missing.png"}]
    >>> path = write_grid(rows, [0.0], out, os.path.join(out, "grid.png"), input_size=32)
    >>> os.path.isfile(path), write_grid([], [0.0], out, os.path.join(out, "empty.png"))
    (True, None)
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from semantic.images import load_image

    by_key: Dict[tuple, dict] = {}
    order: List[str] = []
    for r in rows:
        by_key[(r["image"], r["snr_db"])] = r
        if r["image"] not in order:
            order.append(r["image"])
    order = order[:max_rows]
    if not order:
        return None
    ncol = len(snrs) + 1
    fig, axes = plt.subplots(len(order), ncol, figsize=(2.3 * ncol, 2.9 * len(order)), squeeze=False)
    for i, img in enumerate(order):
        ax = axes[i][0]
        try:
            ax.imshow(load_image(img, input_size).permute(1, 2, 0).numpy())
        except (OSError, FileNotFoundError):
            pass
        ref = next((by_key[k].get("reference") for k in by_key if k[0] == img), "") or ""
        ax.set_title("input" if i == 0 else "", fontsize=8)
        ax.set_xlabel(_label(ref), fontsize=6)
        for j, snr in enumerate(snrs, start=1):
            ax = axes[i][j]
            r = by_key.get((img, _fmt_snr(snr)))
            if i == 0:
                ax.set_title(f"{snr:g} dB", fontsize=8)
            if r is None:
                continue
            f = r.get("image_file")
            if f and os.path.isfile(os.path.join(out_dir, f)):
                with Image.open(os.path.join(out_dir, f)) as im:
                    ax.imshow(im.convert("RGB"))
            ax.set_xlabel(_label(r.get("caption") or ""), fontsize=6)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(args: argparse.Namespace) -> int:
    """Run ``semcom vlf-msc`` with the parsed ``args`` (the options of :func:`add_arguments`); returns
    the exit status (0 on success, 2 for bad input, reported as one line).

    Examples
    --------
    Not run by the test-suite: it needs the BLIP-2 and Stable Diffusion weights; ``tests/test_vlf_msc.py`` runs it on tiny random stand-ins.

    >>> from experiments.cli import main as semcom
    >>> semcom(["vlf-msc"] + ["--images", "data/val", "--out", "runs/vlf"])                                # doctest: +SKIP
    0
    """
    import semantic  # noqa: F401  (torchvision shim first)
    import torch

    from experiments.core.args import parse_snr_list
    from experiments.core.results import RunManifest, open_table
    from semantic.images import ImageCaptionDataset, collate_images, file_sha1
    from semantic.checkpoints import CheckpointNotFoundError
    from phy.sim.points import point_seed
    from semantic.vlf_msc import VLFMSC

    try:
        snrs = parse_snr_list(args.snr_db)
    except ValueError as exc:
        print(f"semcom vlf-msc: {exc}", file=sys.stderr)
        return 2
    if args.batch_size <= 0:
        print("semcom vlf-msc: --batch-size must be positive", file=sys.stderr)
        return 2
    try:
        ds = ImageCaptionDataset(args.images, args.captions, size=args.input_size, limit=args.limit, unique=True)
        cfg = build_config(args)
        system = VLFMSC.from_config(cfg)
    except (CheckpointNotFoundError, FileNotFoundError, ValueError) as exc:
        print(f"semcom vlf-msc: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ledger = system.ledger((3, args.input_size, args.input_size))
    print(f"VLF-MSC: {len(ds)} images x {len(snrs)} SNR points over {args.channel}; VLF {ledger['vlf_shape']}, "
          f"n_ch = {ledger['n_ch']} complex uses, BCR = {ledger['bcr']:.4f} (complex convention)")
    try:
        from experiments.core.results import claim_result_settings, settings_of

        claim_result_settings(out, settings_of(args, RESULT_SETTINGS, paths=_PATH_SETTINGS), ["captions.csv", "images"])
    except ValueError as exc:
        print(f"semcom vlf-msc: error: {exc}", file=sys.stderr)
        return 2
    try:  # a folder written before the equalizer column existed has another header: refused, named
        table = open_table(out / "captions.csv", _COLUMNS_KEYS, _COLUMNS_VALUES)
    except ValueError as exc:
        print(f"semcom vlf-msc: {exc}", file=sys.stderr)
        return 2
    done = table.finished_keys()
    for col, now in (("channel", args.channel), ("equalizer", args.equalizer)):
        other = sorted({r[col] for r in table.rows()} - {now})
        if other:  # rows are keyed by (image, SNR): never count another channel's rows as finished
            print(f"semcom vlf-msc: {str(out)!r} holds results for {col} {other}, not {now!r}; "
                  "use a new --out or delete it", file=sys.stderr)
            return 2
    with RunManifest(out, args=vars(args), seed=args.seed, command="semcom vlf-msc",
                     extra={"ledger": ledger, "snr_db": snrs}) as manifest:
        batches = [list(range(i, min(i + args.batch_size, len(ds)))) for i in range(0, len(ds), args.batch_size)]
        vlfs: Dict[int, torch.Tensor] = {}
        keys: Dict[int, List[str]] = {}
        written = 0
        for snr in snrs:
            sdir = out / "images" / snr_dirname(snr)
            for bi, idx in enumerate(batches):
                items = [ds.items[i] for i in idx]
                if all((it["path"], _fmt_snr(snr)) in done for it in items):
                    continue
                if bi not in vlfs:  # encode once per batch, whatever the SNR (and cached on disk)
                    batch = collate_images([ds[i] for i in idx])
                    keys[bi] = [file_sha1(p) for p in batch["path"]]
                    vlfs[bi] = system.encode(batch["image"], keys=keys[bi])
                # noise and diffusion latents per image: a row depends on (seed, image, SNR) only, not on
                # the batch size or the SNR list, so a resumed run reproduces the rows of an uninterrupted one
                received = transmit_per_item(system, vlfs[bi], snr, [
                    point_seed(args.seed, "vlf-msc", "channel", args.channel, snr, key) for key in keys[bi]])
                caps = system.decode_text(received) if system.text_decoder is not None else [""] * len(idx)
                imgs = None
                if system.image_decoder is not None:
                    imgs = system.decode_image(received, latents=item_latents(
                        system.image_decoder, [point_seed(args.seed, "vlf-msc", "diffusion", key) for key in keys[bi]]))
                    sdir.mkdir(parents=True, exist_ok=True)
                for k, (i, it) in enumerate(zip(idx, items)):
                    if (it["path"], _fmt_snr(snr)) in done:  # finished before an interruption
                        continue
                    name = ds.name(i)
                    rel = ""
                    if imgs is not None:
                        from PIL import Image

                        rel = os.path.join("images", snr_dirname(snr), f"{name}.png")
                        arr = (imgs[k].permute(1, 2, 0).cpu().numpy() * 255).round().astype("uint8")
                        Image.fromarray(arr).save(out / rel)
                    table.append({"image": it["path"], "snr_db": snr, "name": name, "channel": args.channel,
                                  "equalizer": args.equalizer,
                                  "caption": caps[k], "reference": it["caption"] or "", "label": it["label"] or "",
                                  "image_file": rel, "n_ch": ledger["n_ch"]})
                    written += 1
            print(f"  {snr:g} dB done")
        grid = write_grid(table.rows(), snrs, str(out), str(out / "grid.png"), args.grid_rows, args.input_size)
        manifest.update(rows_written=written, rows_resumed=len(done), grid=grid)
    print(f"wrote {out / 'captions.csv'} ({written} new rows)" + (f" and {grid}" if grid else ""))
    return 0


if __name__ == "__main__":  # pragma: no cover
    p = argparse.ArgumentParser(prog="semcom vlf-msc")
    add_arguments(p)
    sys.exit(main(p.parse_args()))
