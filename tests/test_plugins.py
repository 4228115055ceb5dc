"""Plug-ins: an out-of-tree package registers a channel, a learned scheme and a code through entry
points, and `semcom compare` / `semcom ber` use them; `--plugin FILE` does the same without installing."""
import csv
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import semantic  # noqa: F401  (CPU shim first)
from experiments.core.plugins import load_plugin, pop_plugin_args

ROOT = Path(__file__).resolve().parents[1]

CHANNELS_SRC = '''
import cmath
import torch
from phy.channel.base import Channel


class RotatedAWGN(Channel):
    """AWGN behind a fixed phase rotation h = exp(j pi / 4): |h| = 1, so after ZF it is AWGN."""

    name = "rotated"

    def fading(self, x, generator):
        return torch.full_like(x, cmath.exp(1j * cmath.pi / 4))
'''

SCHEMES_SRC = '''
import torch
from experiments.schemes import Plan, Received, Scheme
from phy.link.analog import AnalogLink


class RidgeScheme(Scheme):
    """A learned linear decoder (ridge regression through the noisy channel, fitted on training items)."""

    snr_dependent_plan = True

    def plan(self, ctx, snr_db, channel):
        return Plan(ctx.budget, True, dims_sent=min(ctx.dim, 2 * ctx.budget))

    def transmit(self, ctx, plan, channel, snr_db):
        link = AnalogLink(channel, equalizer="zf")
        k = plan.dims_sent
        r = link(ctx.train[:, :k], snr_db=snr_db).x_hat
        a = torch.cat([r, torch.ones(len(r), 1)], 1).double()
        w = torch.linalg.solve(a.T @ a + 1e-3 * torch.eye(a.shape[1], dtype=a.dtype), a.T @ ctx.train.double())
        y = link(ctx.test[:, :k], snr_db=snr_db).x_hat
        return Received((torch.cat([y, torch.ones(len(y), 1)], 1).double() @ w).float(), ctx.test_index)
'''

CODES_SRC = '''
import torch
from phy.fec.codes import Code


class Repetition3(Code):
    """Rate-1/3 repetition code; soft decoding adds the three logits."""

    name = "rep3"

    def __init__(self):
        super().__init__(1, 3)

    def _encode(self, bits):
        return bits.repeat_interleave(3, dim=-1)

    def _decode(self, llr):
        return (llr.reshape(*llr.shape[:-1], -1, 3).sum(-1) > 0).to(llr.dtype)
'''


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory):
    """A tiny out-of-tree distribution `mysemcom` (source + dist-info with entry points) on a path."""
    root = tmp_path_factory.mktemp("site")
    pkg = root / "mysemcom"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "channels.py").write_text(CHANNELS_SRC)
    (pkg / "schemes.py").write_text(SCHEMES_SRC)
    (pkg / "codes.py").write_text(CODES_SRC)
    info = root / "mysemcom-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mysemcom\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""\
        [semcom.channels]
        rotated = mysemcom.channels:RotatedAWGN
        [semcom.schemes]
        ridge = mysemcom.schemes:RidgeScheme
        [semcom.codes]
        rep3 = mysemcom.codes:Repetition3
        """))
    return root


def _semcom(args, plugin_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(plugin_path), str(ROOT)]))
    return subprocess.run([sys.executable, "-m", "experiments.cli"] + args, env=env, capture_output=True,
                          text=True, timeout=600)


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_entry_point_channel_and_scheme_in_compare(plugin_path, tmp_path):
    import numpy as np

    out = tmp_path / "cmp"
    feats = tmp_path / "iid.npy"      # i.i.d. N(0, 1), enough items for the learned decoder (65 x 64 weights)
    np.save(feats, np.random.default_rng(0).standard_normal((4000, 64)).astype(np.float32))
    r = _semcom(["compare", "--source", str(feats), "--channel", "rotated,awgn", "--schemes", "ridge,analog-mmse",
                 "--snr-db", "0,10", "--realizations", "2", "--no-progress", "--out", str(out)], plugin_path)
    assert r.returncode == 0, r.stderr
    rows = {(x["scheme"], x["channel"], float(x["snr_db"])): x for x in _rows(out / "compare.csv")}
    assert len(rows) == 8
    for snr in (0.0, 10.0):
        law = 1 / (1 + 10 ** (snr / 10))          # Goblick: i.i.d. source, 32 uses for d = 64
        for ch in ("rotated", "awgn"):
            for name in ("ridge", "analog-mmse"):
                row = rows[(name, ch, snr)]
                assert int(row["channel_uses"]) == 32 and row["status"] == "ok"
                assert float(row["nmse"]) == pytest.approx(law, rel=0.05), (name, ch, snr)
                assert float(row["nmse_ci_lo"]) <= float(row["nmse"]) <= float(row["nmse_ci_hi"])


def test_entry_point_code_and_channel_in_ber(plugin_path, tmp_path):
    """Repetition-3 + QPSK over the rotated channel: soft combining gives BER = Q(sqrt(3 Es/N0))."""
    out = tmp_path / "ber"
    r = _semcom(["ber", "--modulation", "qpsk", "--code", "rep3", "--channel", "rotated", "--snr-type", "esno",
                 "--snr-db", "0,3", "--k", "1", "--target-errors", "400", "--max-bits", "200000",
                 "--no-progress", "--out", str(out)], plugin_path)
    assert r.returncode == 0, r.stderr
    rows = _rows(out / "ber.csv")
    assert {x["scheme"] for x in rows} == {"rep3"} and {x["channel"] for x in rows} == {"rotated"}
    for x in rows:
        es = 10 ** (float(x["snr_db"]) / 10)
        law = 0.5 * math.erfc(math.sqrt(3 * es) / math.sqrt(2))
        lo, hi = float(x["ber_ci_low"]), float(x["ber_ci_high"])
        assert lo <= law <= hi, (x["snr_db"], lo, law, hi)
        assert int(x["bit_errors"]) >= 400


def test_plugin_file_option_and_bad_plugins(tmp_path, capsys):
    from experiments.cli import main
    from experiments.schemes import SCHEMES

    f = tmp_path / "extra.py"
    f.write_text(SCHEMES_SRC + "\nfrom experiments.schemes import register_scheme\n"
                 "register_scheme('ridge-file')(RidgeScheme)\n")
    try:
        rc = main(["compare", "--plugin", str(f), "--source", "gaussian", "--schemes", "ridge-file",
                   "--snr-db", "10", "--realizations", "1", "--no-progress", "--out", str(tmp_path / "o")])
        assert rc == 0
        row = _rows(tmp_path / "o" / "compare.csv")[0]
        assert row["scheme"] == "ridge-file" and float(row["nmse"]) < 0.2
    finally:
        SCHEMES.pop("ridge-file", None)
    assert main(["compare", "--plugin", "no_such_semcom_plugin", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "--plugin 'no_such_semcom_plugin' could not be loaded (ModuleNotFoundError" in err
    assert not (tmp_path / "x").exists()
    with pytest.raises(ValueError, match="no such file"):
        load_plugin(str(tmp_path / "missing.py"))
    with pytest.raises(ValueError, match="needs a module"):
        pop_plugin_args(["ber", "--plugin"])


def test_registries_refuse_bad_entries():
    from experiments.schemes import make_scheme, register_scheme
    from phy.fec.codes import register_code

    with pytest.raises(ValueError, match="lower-case"):
        register_scheme("Bad Name")
    with pytest.raises(TypeError, match="callable"):
        register_scheme("x-not-callable")(42)
    with pytest.raises(TypeError, match="Code subclass"):
        register_code("x-not-a-code")(dict)
    from experiments.schemes import SCHEMES

    SCHEMES["x-returns-int"] = lambda: 3
    try:
        with pytest.raises(TypeError, match="not a experiments.schemes.Scheme"):
            make_scheme("x-returns-int")
    finally:
        del SCHEMES["x-returns-int"]
