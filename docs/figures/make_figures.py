"""Regenerate the figures of README.md and the documentation's landing page from real runs.

``python docs/figures/make_figures.py [WORKDIR]`` runs the three commands of the README's quick start --
``semcom ber``, ``semcom compare``, ``semcom plot`` -- into ``WORKDIR`` (default: a new temporary folder)
and copies the figure each one makes into ``docs/figures/``:

* ``ber.png``: ``semcom ber``'s BER figure (uncoded and 5G LDPC 16-QAM over AWGN, closed form dashed);
* ``compare.png``: ``semcom compare``'s NMSE figure for AWGN (every scheme beside the Gaussian OPTA);
* ``plot.png``: ``semcom plot``'s NMSE figure of five of the compared schemes, AWGN and Rayleigh in one figure.

The commands are printed before they run; each writes its CSV and ``manifest.json`` into ``WORKDIR``, so the
figures can be traced to the exact run that made them.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: the README's quick start, verbatim (``{out}`` is the work folder)
COMMANDS = [
    "semcom ber --modulation 16qam --code none,ldpc5g --k 512 --n 1024 --channel awgn --snr-type esno "
    "--snr-db 0:14:1 --out {out}/ber",
    "semcom compare --source pydoc-minilm --channel awgn,rayleigh --snr-db -5:15:5 "
    "--schemes opta,analog,analog-klt,transform-ideal,transform-ldpc5g-amc,quant-ldpc5g-16qam --out {out}/cmp",
    "semcom plot {out}/cmp --metric nmse --filter scheme=opta,analog,analog-klt,transform-ideal,transform-ldpc5g-amc "
    "--out {out}/nmse.png",
]
#: figure made by a command -> its name under docs/figures
FIGURES = {"ber/ber.png": "ber.png", "cmp/nmse_awgn.png": "compare.png", "nmse.png": "plot.png"}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else Path(tempfile.mkdtemp(prefix="semcom-figures-"))
    out.mkdir(parents=True, exist_ok=True)
    for command in COMMANDS:
        line = command.format(out=out)
        print("+", line, flush=True)
        args = line.split()
        subprocess.run([sys.executable, "-m", "experiments.cli", *args[1:]], check=True)
    for made, name in FIGURES.items():
        shutil.copyfile(out / made, HERE / name)
        print(f"{out / made} -> {HERE / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
