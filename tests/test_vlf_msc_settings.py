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
