"""The ``semcom`` command line.

Each subcommand lives in its own module that defines ``add_arguments(parser)`` and
``main(args) -> int``; this file only lists them, so ``semcom --help`` stays fast (the modules
import heavy libraries inside ``main``).

Example
-------
``semcom --help``, ``semcom ber --help``, ``semcom run``.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from phy import __version__

__all__ = ["SUBCOMMANDS", "build_parser", "main"]

# name -> (module, one-line help). Modules are imported when the parser is built.
SUBCOMMANDS = {
    "channel": ("experiments.channel_check", "measure a channel's SNR and fading statistics"),
    "ber": ("experiments.ber", "BER/BLER Monte Carlo of the digital chain"),
    "compare": ("experiments.compare", "analog vs digital at matched channel uses"),
    "run": ("experiments.run", "the main job: BER curves + matched-bandwidth comparison"),
    "vlf-msc": ("experiments.vlf_msc", "VLF-MSC: captions and images per SNR"),
    "train-image-decoder": ("experiments.train_image_decoder", "VLF-MSC: train the VLF -> SD image decoder"),
    "train-text-projection": ("experiments.train_text_projection", "VLF-MSC: fine-tune the text soft prompt W_proj"),
    "vlf-msc-eval": ("experiments.vlf_msc_eval", "VLF-MSC vs its baselines, metrics vs SNR"),
    "semclip": ("experiments.semclip", "SemCLIP: extract | train-jscc | train-tapl | eval"),
    "semclip-eval": ("experiments.semclip_eval", "SemCLIP vs its baselines (accuracy vs SNR/bandwidth)"),
    "reproduce": ("experiments.reproduce", "one figure or table of the VLF-MSC / SemCLIP papers, end to end"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="semcom",
        description="Semantic communication research kit: one channel core for analog semantic and "
                    "digital separation links. SNR is Es/N0 per complex channel use.",
    )
    parser.add_argument("--version", action="version", version=f"semcom {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:  # a subcommand whose module is not installed/built
            if exc.name != module:
                raise
            continue
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod.add_arguments(p)
        p.set_defaults(_main=mod.main)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_main", None):
        parser.print_help()
        return 0
    return int(args._main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
