"""The settings that define a VLF-MSC result are recorded with it, so a resume with another value is refused.

``semcom vlf-msc`` did not record ``--images`` (a rerun into the same folder with another image folder
resumed and mixed the two folders' captions), and ``semcom vlf-msc-eval`` did not record ``--dtype``
(float16 and float32 metrics mixed in one ``metrics.csv``). Both go through
:func:`experiments.core.results.claim_result_settings`; these tests call the commands' own settings
lists through it, without models.
"""
import argparse
import json
import os

import pytest

from experiments.commands import vlf_msc, vlf_msc_eval
from experiments.core.results import SettingsMismatchError, claim_result_settings, open_table, settings_of


def _args(module, argv):
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return parser.parse_args(argv)


def _vlf_msc_settings(argv):
    return settings_of(_args(vlf_msc, argv), vlf_msc.RESULT_SETTINGS, paths=vlf_msc._PATH_SETTINGS)


def test_vlf_msc_records_the_image_folder_as_an_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = _vlf_msc_settings(["--images", "data/val", "--out", "runs/vlf"])
    assert settings["images"] == os.path.join(str(tmp_path), "data", "val")
    # the same folder named from another working directory is the same setting
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert _vlf_msc_settings(["--images", "../data/val", "--out", "x"])["images"] == settings["images"]


def test_vlf_msc_refuses_to_resume_with_another_image_folder(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    first = _vlf_msc_settings(["--images", str(tmp_path / "a"), "--out", str(out)])
    claim_result_settings(out, first, ["captions.csv", "images"])
    open_table(out / "captions.csv", ["image", "snr_db"], ["caption"]).append(
        {"image": "a/1.png", "snr_db": 0.0, "caption": "a dog"})
    # the same command resumes
    claim_result_settings(out, _vlf_msc_settings(["--images", str(tmp_path / "a"), "--out", str(out)]),
                          ["captions.csv", "images"])
    with pytest.raises(SettingsMismatchError, match="images"):
        claim_result_settings(out, _vlf_msc_settings(["--images", str(tmp_path / "b"), "--out", str(out)]),
                              ["captions.csv", "images"])
    assert json.loads((out / "captions.settings.json").read_text())["images"] == str(tmp_path / "a")


def test_vlf_msc_eval_records_the_dtype_and_refuses_another(tmp_path):
    out = tmp_path / "eval"
    out.mkdir()
    base = ["--images", str(tmp_path / "imgs"), "--out", str(out)]
    assert vlf_msc_eval._check_settings(out, _args(vlf_msc_eval, base + ["--dtype", "float16"])) is None
    assert json.loads((out / "settings.json").read_text())["dtype"] == "float16"
    open_table(out / "metrics.csv", ["system", "channel", "snr_db"], ["bleu1"]).append(
        {"system": "vlf-msc", "channel": "awgn", "snr_db": 0.0, "bleu1": 0.3})
    assert vlf_msc_eval._check_settings(out, _args(vlf_msc_eval, base + ["--dtype", "float16"])) is None
    err = vlf_msc_eval._check_settings(out, _args(vlf_msc_eval, base + ["--dtype", "float32"]))
    assert err is not None and "dtype: 'float16' -> 'float32'" in err


def test_identity_receiver_hands_the_decoder_y_on_awgn_and_is_refused_with_fading(tmp_path, capsys):
    """The VLF-MSC paper's AWGN receiver has no equaliser: --equalizer identity gives the decoder y = x + n as
    received (MMSE would scale it by 1 / (1 + N0)); on a fading channel it is refused at once."""
    import torch

    from experiments.cli import main
    from phy.channel.flat import AWGN
    from phy.link.analog import AnalogLink
    from semantic.vlf_msc import VLFMSCConfig, link_equalizer

    x = torch.randn(500, 64)
    got = {}
    for receiver in ("identity", "mmse"):
        link = AnalogLink(AWGN(seed=0), equalizer=link_equalizer(receiver, "awgn"))
        got[receiver] = link(x, snr_db=0.0).x_hat
    torch.testing.assert_close(got["mmse"], got["identity"] / 2)  # 1 / (1 + N0) = 1/2 at 0 dB, same noise
    gain = float((got["identity"] * x).sum() / (x * x).sum())
    assert abs(gain - 1) < 0.01  # unbiased: the decoder sees x + n
    assert VLFMSCConfig(equalizer="identity").equalizer == "identity"
    with pytest.raises(ValueError, match="AWGN only"):
        VLFMSCConfig(equalizer="identity", channel="rayleigh")
    with pytest.raises(ValueError, match="AWGN only"):
        link_equalizer("identity", "rayleigh(block_length=4)")
    from semantic.tiny import write_caption_images

    images = write_caption_images(tmp_path / "images", n=1)
    assert main(["vlf-msc", "--images", str(images), "--out", str(tmp_path / "out"), "--channel", "rayleigh",
                 "--equalizer", "identity"]) == 2
    assert "AWGN only" in capsys.readouterr().err and not (tmp_path / "out").exists()
