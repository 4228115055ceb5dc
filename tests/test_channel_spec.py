"""Channel specs: the grammar, the canonical key, the measured statistics of parsed
specs, the messages for bad specs, and the spec as the CSV key of ``semcom ber`` / ``semcom compare``."""
import csv
import math

import pytest
import torch

from phy.channel.spec import parse_spec, split_channel_list
from phy.channel.flat import Rayleigh, Rician
from phy.channel.registry import canonical_channel_list, canonical_channel_spec, make_channel, parse_channel_spec
from phy.channel.tdl import SionnaTDL


def test_parse_the_issue_examples():
    assert parse_channel_spec("rayleigh(block_length=64)") == (
        "rayleigh", {"block_length": 64, "corr_rx": 0.0, "corr_tx": 0.0, "num_rx": 1, "num_tx": 1})
    name, kw = parse_channel_spec("rician(k_db=10)")
    assert name == "rician" and kw["k_db"] == 10.0 and kw["block_length"] == 1 and kw["los_phase"] == 0.0
    name, kw = parse_channel_spec("tdl(model=C,delay_spread=100e-9,speed=30)")
    assert name == "tdl" and kw == {"model": "C", "delay_spread": 1e-7, "speed": 30.0, "carrier_frequency": 3.5e9,
                                    "fft_size": 64, "subcarrier_spacing": 30e3}
    assert parse_channel_spec("awgn") == parse_channel_spec("awgn()") == ("awgn", {})
    # the compare CLI lower-cases its --channel text: choices match case-insensitively
    assert parse_channel_spec("tdl(model=c)")[1]["model"] == "C"


def test_built_channels_carry_the_spec_values():
    ch = make_channel("rician(k_db=10,block_length=4,los_phase=0.5)", seed=1)
    assert isinstance(ch, Rician) and ch.k_factor == pytest.approx(10.0) and ch.block_length == 4
    assert ch.los_phase == 0.5 and ch.seed == 1
    tdl = make_channel("tdl(model=C,delay_spread=100e-9,speed=30)", seed=0)
    assert isinstance(tdl, SionnaTDL) and tdl.model == "C" and tdl.delay_spread == 1e-7
    assert tdl.min_speed == tdl.max_speed == 30.0  # a fixed speed, not uniform in [0, 30]
    assert isinstance(make_channel("RAYLEIGH"), Rayleigh)


def test_rayleigh_block_spec_measures_unit_power_and_constant_blocks():
    ch = make_channel("rayleigh(block_length=64)", seed=3)
    x = torch.ones(400, 64 * 16, dtype=torch.complex64)
    h = ch(x, 0.1).h
    blocks = h.reshape(400, 16, 64)
    assert torch.equal(blocks, blocks[..., :1].expand_as(blocks))  # constant over each coherence block
    g = blocks[..., 0].abs().pow(2).double()                       # 6400 independent Exp(1) gains
    assert abs(g.mean().item() - 1.0) < 5 / math.sqrt(g.numel())   # E|h|^2 = 1 (std of Exp(1) is 1)
    # distinct blocks are independent draws: the lag-1 block correlation is ~0
    c = (blocks[:, 1:, 0] * blocks[:, :-1, 0].conj()).mean().abs().item()
    assert c < 5 / math.sqrt(400 * 15)


@pytest.mark.parametrize("k_db", [0.0, 10.0])
def test_rician_k_db_spec_measures_k_from_the_draws(k_db):
    m = 400_000
    h = make_channel(f"rician(k_db={k_db})", seed=7)(torch.ones(m, dtype=torch.complex64), 0.01).h.to(torch.complex128)
    k = 10 ** (k_db / 10)
    mean = h.mean()
    scatter = (h - mean).abs().pow(2).mean().item()
    assert h.abs().pow(2).mean().item() == pytest.approx(1.0, abs=5 * math.sqrt((2 * k + 1) / (k + 1) ** 2 / m))
    assert abs(mean.real.item() - math.sqrt(k / (k + 1))) < 5 * math.sqrt(0.5 / (k + 1) / m)
    k_hat = mean.abs().item() ** 2 / scatter
    assert 10 * math.log10(k_hat) == pytest.approx(k_db, abs=0.05)


def test_tdl_spec_unit_power_and_the_speed_sets_the_doppler():
    """``speed`` is a fixed terminal speed that reaches Sionna's TDL: at speed 0 one subcarrier's channel
    never changes over the OFDM symbols; it decorrelates at 30 m/s and faster at 60 m/s."""
    fft, nsym = 8, 15
    x = torch.ones(600, nsym * fft, dtype=torch.complex64)
    corr = {}
    for speed in (0, 30, 60):
        ch = make_channel(f"tdl(model=C,delay_spread=100e-9,speed={speed},fft_size={fft})", seed=2)
        h = ch(x, 0.1).h.reshape(600, nsym, fft).to(torch.complex128)
        assert h.abs().pow(2).mean().item() == pytest.approx(1.0, abs=1e-3)  # normalize=True: E|h|^2 = 1
        corr[speed] = ((h[:, -1] * h[:, 0].conj()).mean() / h[:, 0].abs().pow(2).mean()).abs().item()
    assert corr[0] == pytest.approx(1.0, abs=1e-6)
    assert corr[60] < corr[30] - 0.1 and corr[30] < 0.9


@pytest.mark.parametrize("spec, words", [
    ("rician(k=10)", ["unknown key 'k'", "k_db (number >= -100.0 and <= 100.0 [dB], default 4.77",
                      "block_length (int >= 1 and <= 1048576, default 1)", "num_tx (int >= 1 and <= 64, default 1)"]),
    ("rayleigh(block_length=0)", ["bad value '0' for block_length (int >= 1 and <= 1048576, default 1)", "rayleigh takes:"]),
    ("rayleigh(block_length=2.5)", ["bad value '2.5' for block_length"]),
    ("rician(k_db=ten)", ["bad value 'ten' for k_db"]),
    ("rician(k_db=nan)", ["bad value 'nan' for k_db"]),
    ("rayleigh(corr_rx=1)", ["bad value '1' for corr_rx (number >= 0.0 and < 1.0, default 0.0)"]),
    ("rayleigh(num_tx=65)", ["bad value '65' for num_tx"]),
    ("tdl(model=Z)", ["bad value 'Z' for model (one of A|B|C|D|E|A30|B100|C300, also written tdl-A|", ", default A)"]),
    ("tdl(delay_spread=0)", ["delay_spread (number > 0.0 and <= 0.001 [s], default 3e-07)"]),
    ("awgn(num_rx=2)", ["unknown key 'num_rx'", "awgn takes: no parameters"]),
    ("raleigh(block_length=4)", ["unknown channel 'raleigh'", "'rayleigh'"]),
    ("rayleigh(block_length)", ["'block_length' is not key=value"]),
    ("rayleigh(block_length=4", ["one pair of parentheses"]),
    ("rayleigh(block_length=4,block_length=8)", ["sets 'block_length' twice"]),
    ("rayleigh(block_length=4)x", ["one pair of parentheses"]),
])
def test_bad_specs_name_the_valid_keys_and_ranges(spec, words):
    with pytest.raises(ValueError) as err:
        canonical_channel_spec(spec)
    for w in words:
        assert w in str(err.value), (w, str(err.value))
    with pytest.raises(ValueError):
        make_channel(spec)


def test_spec_and_keyword_arguments_must_not_clash():
    with pytest.raises(ValueError, match=r"both set \['block_length'\]"):
        make_channel("rayleigh(block_length=4)", block_length=8)
    assert make_channel("rayleigh(block_length=4)", seed=9, backend="torch").backend == "torch"


def test_canonical_spec_fills_defaults_sorts_and_separates_parameters():
    a = canonical_channel_spec("rician(k_db=10)")
    assert a == "rician(block_length=1,corr_rx=0.0,corr_tx=0.0,k_db=10.0,los_phase=0.0,num_rx=1,num_tx=1)"
    # same parameters, other spelling: same key
    assert canonical_channel_spec(" RICIAN( block_length = 1 , k_db=1e1 ) ") == a
    # defaults written out equal the bare name's canonical form
    assert canonical_channel_spec("rayleigh") == canonical_channel_spec("rayleigh(block_length=1,num_tx=1)")
    # different parameters: different keys
    keys = {canonical_channel_spec(s) for s in ("rician(k_db=10)", "rician(k_db=3)", "rician", "rayleigh",
                                                  "rayleigh(block_length=64)", "rayleigh(num_tx=2,num_rx=2)")}
    assert len(keys) == 6
    with pytest.raises(ValueError, match="twice"):
        canonical_channel_list("rician(k_db=10),rician(k_db=1e1)")


def test_split_channel_list_keeps_commas_inside_parentheses():
    assert split_channel_list("awgn,rayleigh(num_tx=2,num_rx=2), rician(k_db=10)") == [
        "awgn", "rayleigh(num_tx=2,num_rx=2)", "rician(k_db=10)"]
    # a list split naively at every comma (as `semcom compare` does) is put back together
    assert split_channel_list(["awgn", "rayleigh(num_tx=2", "num_rx=2)"]) == ["awgn", "rayleigh(num_tx=2,num_rx=2)"]
    for bad in ("rayleigh(num_tx=2", "awgn)", "a(b(c))"):
        with pytest.raises(ValueError):
            canonical_channel_list(bad)
    assert parse_spec("tdl(delay_spread=1e-7)") == ("tdl", {"delay_spread": "1e-7"})


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_ber_cli_csv_keys_are_canonical_specs_and_never_shared(tmp_path, capsys):
    from experiments.cli import main

    out = tmp_path / "ber"
    base = ["ber", "--code", "none", "--modulation", "qpsk", "--k", "64", "--n", "128", "--snr-type", "esno",
            "--snr-db", "5", "--target-errors", "20", "--max-bits", "2000", "--seed", "0", "--no-progress",
            "--out", str(out)]
    specs = "rician(k_db=10,block_length=4),rician(k_db=0,block_length=4),rayleigh(num_tx=2,num_rx=2)"
    assert main(base + ["--channel", specs]) == 0, capsys.readouterr().err
    rows = _rows(out / "ber.csv")
    keys = [r["channel"] for r in rows]
    assert keys == [canonical_channel_spec(s) for s in split_channel_list(specs)] and len(set(keys)) == 3
    # Rician K = 10 dB has fewer errors than K = 0 dB at the same Es/N0 (a real parameter, not a label)
    assert float(rows[0]["ber"]) < float(rows[1]["ber"])
    # a rerun with one more spec resumes the three points and adds only the new one
    assert main(base + ["--channel", specs + ",rician(k_db=20,block_length=4)"]) == 0
    rows2 = _rows(out / "ber.csv")
    assert len(rows2) == 4 and rows2[:3] == rows
    assert main(base + ["--channel", "rician(q=1)"]) == 2
    assert "unknown key 'q'" in capsys.readouterr().err


def test_compare_config_canonicalises_channel_specs():
    from experiments.comparison import CompareConfig

    cfg = CompareConfig(schemes=["analog-zf"], channels=["awgn", "rician(k_db=10", "block_length=4)"]).validate(16)
    assert cfg.channels == ["awgn", canonical_channel_spec("rician(k_db=10,block_length=4)")]
    with pytest.raises(ValueError, match="unknown key 'k'"):
        CompareConfig(schemes=["analog-zf"], channels=["rician(k=10)"]).validate(16)
    with pytest.raises(ValueError, match="no channel given"):
        CompareConfig(schemes=["analog-zf"], channels=[]).validate(16)


def test_channel_cli_measures_a_spec(capsys):
    import re

    from experiments.cli import main

    rc = main(["channel", "--channel", "rician(k_db=10,block_length=8)", "--snr-db", "5", "--symbols", "2e5",
               "--seed", "0", "--tolerance-db", "0.1"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "channel: rician(block_length=8,corr_rx=0.0,corr_tx=0.0,k_db=10.0,los_phase=0.0,num_rx=1,num_tx=1)" in text
    k_db = float(re.search(r"measured K factor: (-?[0-9.]+) dB", text).group(1))
    assert k_db == pytest.approx(10.0, abs=0.3)  # 25000 independent blocks
    assert "inside a coherence block of 8: 0 " in text
