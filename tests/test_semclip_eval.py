"""`semcom semclip-eval`: every study runs end to end on a tiny open_clip and real (digits) images."""
import csv
import json
import math

import semantic  # noqa: F401  (torchvision shim before open_clip)
import numpy as np
import pytest
import torch

import experiments.commands.semclip_eval as se
from experiments.semclip_eval import studies
from experiments.semclip_eval.context import Context, EvalSet
from experiments.semclip_eval.systems import SYSTEM_LABELS, SYSTEMS, chance_metrics, evaluate_point
from experiments.cli import main
from test_tapl import save_tiny_clip
from tiny_models import write_digit_folder

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
L_SNR, LS = 8, (4, 8)  # channel uses of the SNR study and of the bandwidth study
SNRS = "-5,5"



@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("semclip_eval")
    return save_tiny_clip(base / "clip"), write_digit_folder(base / "digits", DIGITS)


def _args(clip, data, out, *extra):
    return ["semclip-eval", "--data", str(data), "--out", str(out), "--clip-model", f"local-dir:{clip}",
            "--device", "cpu", "--no-progress", f"--snr-db={SNRS}", "--table-snrs=-5,5",
            "--snr-channel-uses", str(L_SNR), "--channel-uses", ",".join(map(str, LS)), "--train-steps", "2",
            "--train-batch-size", "8", "--hidden-dim", "16", "--djscc-hidden", "8", "--batch-size", "16",
            "--tapl-classes-per-step", "3", "--complexity-images", "6", *extra]


def _read(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


class SymbolCounter:
    """Independent count: every channel the experiment makes is wrapped and what its forward carried is
    recorded per evaluation point (system, SNR, data set)."""

    def __init__(self, monkeypatch):
        self.points = []  # (data set, system, snr, claimed channel uses, symbol widths carried)
        self._widths = None
        orig_channel, orig_eval = Context.channel, evaluate_point

        def channel(ctx, offset=0):
            ch = orig_channel(ctx, offset)
            fwd = ch.forward

            def spy(x, no):
                if self._widths is not None:
                    self._widths.append(int(x.shape[-1]))
                return fwd(x, no)

            ch.forward = spy
            return ch

        def evaluate(ctx, system, es, snr, L):
            # build (and train) the models first so only the evaluation's transmissions are counted
            if system.startswith("semclip"):
                ctx.jscc(L, use_af=system != "semclip-noaf")
                if system == "semclip":
                    ctx.tapl(L)
            elif system == "djscc-ir":
                ctx.djscc_ir(L)
            elif system == "djscc-ft":
                ctx.djscc_ft(L)
            self._widths = []
            r = orig_eval(ctx, system, es, snr, L)
            self.points.append((es.name, system, snr, r["channel_uses"], self._widths))
            self._widths = None
            return r

        monkeypatch.setattr(Context, "channel", channel)
        monkeypatch.setattr(studies, "evaluate_point", evaluate)


def test_parsers_and_chance():
    assert se.parse_int_list("48,96,192,384") == [48, 96, 192, 384]
    with pytest.raises(ValueError, match="channel-uses"):
        se.parse_int_list("4,4")
    with pytest.raises(ValueError, match="NAME=PATH"):
        se.parse_datasets("pets")
    assert se.parse_datasets("a=/x, b=/y") == [("a", "/x"), ("b", "/y")]
    c = chance_metrics(torch.tensor([0, 0, 0, 1]), 2)
    assert c["top1"] == 0.5 and c["top5"] == 1.0 and c["retrieval_top1"] == pytest.approx((0.75 + 0.25) / 2)


def test_every_study_end_to_end_budgets_and_resume(setup, tmp_path, monkeypatch):
    clip, data = setup
    out = tmp_path / "run"
    counter = SymbolCounter(monkeypatch)
    missing = tmp_path / "no_such_dataset"
    assert main(_args(clip, data, out, "--datasets", f"oxford_pets={missing},digits={data}",
                      "--cross-snrs", "0")) == 0
    by = _check_snr_rows_and_budgets(out, counter)
    _check_figures_and_table_i(out, by)
    _check_bandwidth_rows(out)
    _check_cross_dataset_rows(out)
    _check_complexity_rows(out)
    _check_rerun_recomputes_nothing(clip, data, out, missing, monkeypatch)
    _check_other_settings_are_refused(clip, data, out, monkeypatch)
    _check_checkpoints_passed_back_in(clip, data, out, tmp_path, by, monkeypatch)


def _check_snr_rows_and_budgets(out, counter):
    """Accuracy vs SNR: every (system, SNR) row, with the budget each system actually spends; the rows by
    (system, SNR)."""
    rows = _read(out / "accuracy_vs_snr.csv")
    assert list(rows[0]) == ["system", "channel", "snr_db", "channel_uses", "bandwidth_ratio", "top1", "top5",
                             "retrieval_top1", "psnr", "ssim", "ms_ssim", "note"]
    assert sorted((r["system"], float(r["snr_db"])) for r in rows) == sorted(
        (s, snr) for s in SYSTEMS for snr in (-5.0, 5.0))
    N = 32  # tiny CLIP token
    for r in rows:
        L = {"clip-ft": N // 2, "upper-bound": 0, "upper-bound-tapl": 0}.get(r["system"], L_SNR)
        assert int(r["channel_uses"]) == L
        assert float(r["bandwidth_ratio"]) == pytest.approx(L / (3 * 32 * 32))
        for m in ("top1", "top5"):
            assert 0.0 <= float(r[m]) <= 1.0
    by = {(r["system"], float(r["snr_db"])): r for r in rows}
    # DJSCC-FT's head has only seen classes: it can never name an unseen one
    assert float(by["djscc-ft", 5.0]["top1"]) == 0.0 and float(by["djscc-ft", 5.0]["top5"]) == 0.0
    assert "seen classes only" in by["djscc-ft", 5.0]["note"]
    assert math.isnan(float(by["djscc-ft", 5.0]["retrieval_top1"]))
    # BT-IR: L_SNR uses carry floor(8 log2(1 + snr)) bits, far below any image code: nothing delivered -> chance
    G = 2  # unseen classes (20 % of 10)
    for snr in (-5.0, 5.0):
        r = by["bt-ir", snr]
        assert float(r["top1"]) == pytest.approx(1 / G) and float(r["top5"]) == pytest.approx(1.0)
        assert "10/10 images not delivered (chance)" in r["note"]
        budget = math.floor(L_SNR * math.log2(1 + 10 ** (snr / 10)))
        assert f"budget {budget} bits" in r["note"]
    # every evaluation point: the symbols its channel carried (independent count) are exactly its budget
    bw = _read(out / "accuracy_vs_bandwidth.csv")
    cross_rows = _read(out / "cross_dataset.csv")
    assert len(counter.points) == len(rows) + len(bw) + len(cross_rows) - 1  # minus the absent data set's row
    for name, system, snr, used, widths in counter.points:
        if system in ("bt-ir", "upper-bound", "upper-bound-tapl"):  # ideal code / link: no channel symbols
            assert widths == []
        else:
            assert widths and set(widths) == {used}, (name, system, snr, widths)
    for r in rows + bw:
        if r["system"] in ("upper-bound", "upper-bound-tapl"):
            continue
        claimed = [u for n, s, snr, u, _ in counter.points
                   if n == "unseen" and s == r["system"] and snr == float(r["snr_db"]) and u == int(r["channel_uses"])]
        assert claimed, r
    return by


def _check_figures_and_table_i(out, by):
    for name in ("fig3_top1_vs_snr.png", "fig3_retrieval_vs_snr.png", "fig4_top1_vs_bandwidth.png"):
        assert (out / name).stat().st_size > 1000
    t1 = _read(out / "table_i.csv")
    assert [r["system"] for r in t1] == [SYSTEM_LABELS[s] for s in SYSTEMS]
    assert float(t1[0]["top1@5dB"]) == pytest.approx(100 * float(by["semclip", 5.0]["top1"]), abs=0.01)


def _check_bandwidth_rows(out):
    """Accuracy vs bandwidth: one row per (system, L), ratio from the actual channel uses."""
    bw = _read(out / "accuracy_vs_bandwidth.csv")
    N = 32  # tiny CLIP token
    keys = sorted((r["system"], int(r["channel_uses"])) for r in bw)
    expect = sorted([(s, L) for s in ("semclip", "djscc-ft", "djscc-ir", "bt-ir") for L in LS] + [("clip-ft", N // 2)])
    assert keys == expect
    for r in bw:
        assert float(r["snr_db"]) == 0.0
        assert float(r["bandwidth_ratio"]) == pytest.approx(int(r["channel_uses"]) / (3 * 32 * 32))


def _check_cross_dataset_rows(out):
    """Cross-dataset: the absent set is noted, the present one evaluated on all its classes."""
    cross = _read(out / "cross_dataset.csv")
    absent = [r for r in cross if r["dataset"] == "oxford_pets"]
    assert len(absent) == 1 and "not found" in absent[0]["note"]
    assert sorted(r["system"] for r in cross if r["dataset"] == "digits") == sorted(SYSTEMS)
    assert (out / "table_ii.md").is_file()


def _check_complexity_rows(out):
    """Complexity: every module, positive parameter counts where the module has weights."""
    comp = _read(out / "complexity.csv")
    modules = [r["module"] for r in comp]
    for m in ("CLIP image encoder", "SemCLIP JSCC encoder", "SemCLIP JSCC decoder", "TAPL meta-net + context",
              "TAPL + CLIP text encoder", "DJSCC-IR encoder", "DJSCC-IR decoder", "DJSCC-FT (CNN + JSCC + head)",
              "BT-IR codec (learned-gmm)"):
        assert m in modules
    import open_clip

    tiny = open_clip.CLIP(**__import__("test_tapl").TINY_CLIP_CFG)
    comp_by = {r["module"]: r for r in comp}
    assert int(comp_by["CLIP image encoder"]["params"]) == sum(p.numel() for p in tiny.visual.parameters())
    assert all(float(r["time_s"]) > 0 and int(r["images"]) == 6 for r in comp)


def _check_rerun_recomputes_nothing(clip, data, out, missing, monkeypatch):
    """A rerun recomputes nothing: no evaluation, no training, identical files."""
    snapshot = {p.name: p.read_bytes() for p in out.glob("*.csv")}
    calls = []
    monkeypatch.setattr(studies, "evaluate_point", lambda *a, **k: calls.append(a) or {})
    import semantic.semclip as ss

    monkeypatch.setattr(ss, "train_jscc", lambda *a, **k: pytest.fail("retrained"))
    monkeypatch.setattr(ss, "train_tapl", lambda *a, **k: pytest.fail("retrained"))
    assert main(_args(clip, data, out, "--datasets", f"oxford_pets={missing},digits={data}",
                      "--cross-snrs", "0", "--studies", "snr,bandwidth,cross")) == 0
    assert calls == []
    for name, content in snapshot.items():
        if name != "complexity.csv":
            assert (out / name).read_bytes() == content, name


def _check_other_settings_are_refused(clip, data, out, monkeypatch):
    """A rerun under another setting that defines the rows or the trained models is refused (exit 2)."""
    import semantic.semclip as ss

    monkeypatch.undo()
    before = {name: (out / name).read_bytes() for name in ("accuracy_vs_snr.csv", "semclip-eval.settings.json")}
    for opt, value in (("--seed", "1"), ("--train-steps", "3"), ("--equalizer", "zf")):
        assert main(_args(clip, data, out, "--studies", "snr", opt, value)) == 2
    assert {name: (out / name).read_bytes() for name in before} == before
    monkeypatch.setattr(ss, "train_jscc", lambda *a, **k: pytest.fail("retrained"))
    monkeypatch.setattr(ss, "train_tapl", lambda *a, **k: pytest.fail("retrained"))


def _check_checkpoints_passed_back_in(clip, data, out, tmp_path, by, monkeypatch):
    """Trained checkpoints passed back in ({L} template) are loaded, not retrained, and give the same rows."""
    import semantic.semclip as ss

    monkeypatch.undo()
    monkeypatch.setattr(ss, "train_jscc", lambda *a, **k: pytest.fail("retrained"))
    monkeypatch.setattr(ss, "train_tapl", lambda *a, **k: pytest.fail("retrained"))
    out2 = tmp_path / "loaded"
    models = out / "models"
    assert main(_args(clip, data, out2, "--studies", "snr", "--systems", "semclip,semclip-notapl,semclip-noaf",
                      "--semclip-jscc", str(models / "semclip-jscc-L{L}"),
                      "--semclip-noaf-jscc", str(models / "semclip-noaf-jscc-L{L}-snr{snr}"),
                      "--tapl", str(models / "semclip-tapl-L{L}"))) == 0
    again = {(r["system"], float(r["snr_db"])): r for r in _read(out2 / "accuracy_vs_snr.csv")}
    assert len(again) == 6
    # the upper bounds: the clean token with CLIP's own zero-shot prompts (the paper's) and through TAPL as
    # trained, the same at every SNR, no channel
    ub = [by["upper-bound", snr] for snr in (-5.0, 5.0)]
    ubt = [by["upper-bound-tapl", snr] for snr in (-5.0, 5.0)]
    assert ub[0]["top1"] == ub[1]["top1"] and "no channel" in ub[0]["note"]
    assert ubt[0]["top1"] == ubt[1]["top1"] and "TAPL" in ubt[0]["note"]
    # independent computation: open_clip's encode_image on the unseen images, open_clip's own zero-shot
    # classifier and the saved TAPL's prompts
    import open_clip

    from semantic.clip_tokens import load_open_clip
    from semantic.tapl import TAPL, CLIPTextTower, TaskPerformer

    model, _, tokenizer = load_open_clip(f"local-dir:{clip}")
    tapl = TAPL.from_pretrained(str(models / f"semclip-tapl-L{L_SNR}" / "tapl"), low_cpu_mem_usage=False).eval()
    perf = TaskPerformer(tapl, CLIPTextTower(model), tokenizer, float(model.logit_scale.exp()))
    imgs, labels, unseen = _unseen_images(data)
    names = [DIGITS[c] for c in unseen]
    with torch.no_grad():
        tokens = model.encode_image(imgs).float()
        logits = perf(tokens, names)
        text = torch.nn.functional.normalize(model.encode_text(tokenizer([f"a photo of a {c}." for c in names])), dim=-1)
        plain = torch.nn.functional.normalize(tokens, dim=-1) @ text.T
    assert float(ubt[0]["top1"]) == pytest.approx(float((logits.argmax(1) == labels).float().mean()))
    assert float(ub[0]["top1"]) == pytest.approx(float((plain.argmax(1) == labels).float().mean()))
    # table I: the per-SNR ablation, one fixed-SNR no-AF model per SNR
    for snr in (-5.0, 5.0):
        assert f"trained at a fixed {snr:g} dB" in by["semclip-noaf", snr]["note"]
        assert (models / f"semclip-noaf-jscc-L{L_SNR}-snr{snr:g}" / "train_history.json").is_file()
    for k, r in again.items():
        for m in ("top1", "top5", "retrieval_top1"):
            assert float(r[m]) == pytest.approx(float(by[k][m])), (k, m)


def test_btir_delivers_with_a_large_budget(setup, tmp_path):
    clip, data = setup
    out = tmp_path / "bt"
    assert main(_args(clip, data, out, "--studies", "bandwidth", "--bandwidth-systems", "bt-ir",
                      "--channel-uses", "8,20000")) == 0
    rows = {int(r["channel_uses"]): r for r in _read(out / "accuracy_vs_bandwidth.csv")}
    assert set(rows) == {8, 20000}
    assert "10/10 images not delivered (chance)" in rows[8]["note"]
    big = rows[20000]
    assert "0/10 images not delivered" in big["note"]
    payload = int(big["note"].split("max payload ")[1].split(" bits")[0])
    assert 0 < payload <= math.floor(20000 * math.log2(2.0))  # fits the capacity budget at 0 dB


def _unseen_images(data):
    """The unseen-class images (CLIP preprocess), their labels in the unseen class list, and that list."""
    from PIL import Image

    from semantic.clip_tokens import load_open_clip
    from semantic.datasets import split_classes

    _, preprocess, _ = load_open_clip(f"local-dir:{data.parent / 'clip'}")
    _, unseen = split_classes(10, 0.2, 0)
    imgs, labels = [], []
    for j, c in enumerate(unseen):
        for f in sorted((data / DIGITS[c]).iterdir()):
            imgs.append(preprocess(Image.open(f).convert("RGB")))
            labels.append(j)
    return torch.stack(imgs), torch.tensor(labels), unseen


def _refused(argv, capsys):
    """The CLI's answer to bad input: exit status 2 and one line ``semcom semclip-eval: error: ...``."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("semcom semclip-eval: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_ablation_per_snr_loads_one_checkpoint_per_snr(setup, tmp_path, monkeypatch, capsys):
    """Table I's 'w/o TAPL and AF': with {snr} in --semclip-noaf-jscc each SNR loads its own fixed-SNR model
    (different weights, different rows); a path without {snr} is refused, and so is mixing the protocols."""
    from semantic.jscc import JSCCCodec

    clip, data = setup
    ck = tmp_path / "noaf"
    codecs = {}
    for i, snr in enumerate(("-5", "5")):
        torch.manual_seed(10 + i)
        codecs[snr] = JSCCCodec.build(token_dim=32, channel_uses=L_SNR, hidden_dim=16, use_af=False)
        codecs[snr].save_pretrained(ck / f"noaf-snr{snr}")
    loaded = []
    orig = JSCCCodec.from_pretrained.__func__

    def spy(cls, path, *a, **k):
        loaded.append(str(path))
        return orig(cls, path, *a, **k)

    monkeypatch.setattr(JSCCCodec, "from_pretrained", classmethod(spy))
    out = tmp_path / "abl"
    argv = _args(clip, data, out, "--studies", "snr", "--systems", "semclip-noaf",
                 "--semclip-noaf-jscc", str(ck / "noaf-snr{snr}"))
    assert main(argv) == 0
    assert loaded == [str(ck / "noaf-snr-5"), str(ck / "noaf-snr5")]
    rows = {float(r["snr_db"]): r for r in _read(out / "accuracy_vs_snr.csv")}
    assert set(rows) == {-5.0, 5.0} and all("per-SNR ablation" in r["note"] for r in rows.values())
    err = _refused(_args(clip, data, tmp_path / "abl2", "--studies", "snr", "--systems", "semclip-noaf",
                         "--semclip-noaf-jscc", str(ck / "noaf-snr5")), capsys)
    assert "--semclip-noaf-jscc" in err and "{snr}" in err and not (tmp_path / "abl2").exists()  # checked first
    # the old protocol (one model over the range) into the same folder: refused, the option named
    err = _refused(_args(clip, data, out, "--studies", "snr", "--systems", "semclip-noaf", "--no-ablation-per-snr",
                         "--semclip-noaf-jscc", str(ck / "noaf-snr5")), capsys)
    assert "ablation_per_snr: True -> False" in err
    assert {float(r["snr_db"]) for r in _read(out / "accuracy_vs_snr.csv")} == {-5.0, 5.0}  # nothing added


def test_clip_ft_at_high_snr_is_plain_clip_zero_shot(setup, tmp_path):
    """Independent computation: open_clip's own encode_image / encode_text on the unseen-class images."""
    import torch.nn.functional as F

    from semantic.clip_tokens import load_open_clip

    clip, data = setup
    out = tmp_path / "ft"
    assert main(_args(clip, data, out, "--studies", "snr", "--systems", "clip-ft", "--snr-db=60")) == 0
    (row,) = _read(out / "accuracy_vs_snr.csv")
    model, _, tokenizer = load_open_clip(f"local-dir:{clip}")
    imgs, labels, unseen = _unseen_images(data)
    with torch.no_grad():
        img = F.normalize(model.encode_image(imgs), dim=-1)
        txt = F.normalize(model.encode_text(tokenizer([f"a photo of a {DIGITS[c]}." for c in unseen])), dim=-1)
    pred = (img @ txt.T).argmax(1)
    assert float(row["top1"]) == pytest.approx(float((pred == labels).float().mean()))
    assert int(row["channel_uses"]) == 16


def test_default_clip_fails_clearly_offline(setup, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_hf"))
    monkeypatch.delenv("SEMCOM_ALLOW_DOWNLOAD", raising=False)
    _, data = setup
    assert main(["semclip-eval", "--data", str(data), "--out", str(tmp_path / "o"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("semcom semclip-eval: error:") and "ViT-L-14-336" in err and err.count("\n") == 1


def test_bad_arguments(setup, tmp_path, capsys):
    clip, data = setup
    for opt, value in (("--systems", "semclip,nope"), ("--studies", "speed"), ("--snr-channel-uses", "0")):
        assert main(_args(clip, data, tmp_path / "x", opt, value)) == 2
        err = capsys.readouterr().err
        assert opt in err and err.count("\n") == 1 and "Traceback" not in err


def test_untrained_image_baselines_are_seeded(setup, tmp_path):
    """DJSCC-IR / DJSCC-FT start from weights fixed by --seed, whatever the global RNG state."""
    import argparse

    clip, data = setup
    parser = argparse.ArgumentParser()
    se.add_arguments(parser)
    args = parser.parse_args(_args(clip, data, tmp_path / "seeded")[1:])
    states = []
    for junk in (1, 2):
        torch.manual_seed(junk)
        ctx = Context(args)
        states.append([m.state_dict() for m in (ctx.djscc_ir(L_SNR, train=False), ctx.djscc_ft(L_SNR, train=False))])
    for a, b in zip(*states):
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_paper_loss_and_size_options_reach_in_run_training(setup, tmp_path):
    """--temperature, --tapl-loss, --hidden-dim/--no-linear-skip and the per-SNR range reach the training config."""
    import argparse

    clip, data = setup
    parser = argparse.ArgumentParser()
    se.add_arguments(parser)
    args = parser.parse_args(_args(clip, data, tmp_path / "cfg", "--temperature", "1", "--tapl-loss", "both",
                                   "--no-linear-skip", "--train-batch-size", "12", "--tapl-steps", "3")[1:])
    ctx = Context(args)
    cfg = ctx._semclip_config(8, use_af=False, train_snr=-2.5)
    assert (cfg.temperature, cfg.tapl_loss, cfg.linear_skip, cfg.hidden_dim) == (1.0, "both", False, 16)
    assert cfg.snr_train_range == (-2.5, -2.5) and cfg.jscc_batch_size == 12 and not cfg.use_af
    assert (cfg.jscc_steps, cfg.tapl_steps) == (2, 3)
    assert ctx._semclip_config(8, use_af=True).snr_train_range == (-10.0, 10.0)
    default = Context(parser.parse_args(_args(clip, data, tmp_path / "cfg2")[1:]))._semclip_config(8, True)
    assert (default.temperature, default.tapl_loss, default.linear_skip) == (0.07, "i2t", True)


def test_image_systems_report_psnr_ssim_of_their_reconstructions(setup, tmp_path):
    """DJSCC-IR's PSNR/SSIM are those of its reconstructions vs the inputs (recomputed here by hand for PSNR);
    systems that output no image leave them NaN; MS-SSIM needs >= 161 px (32-px images here: NaN, noted)."""
    import argparse

    clip, data = setup
    parser = argparse.ArgumentParser()
    se.add_arguments(parser)
    ctx = Context(parser.parse_args(_args(clip, data, tmp_path / "q")[1:]))
    es = ctx.eval_set()
    r = evaluate_point(ctx, "djscc-ir", es, 5.0, L_SNR)
    codec, ch, psnr = ctx.djscc_ir(L_SNR), ctx.channel(), []
    with torch.no_grad():
        for imgs, _, _ in es.image_batches(ctx.args.batch_size):
            x = codec(imgs, ch, 5.0).x_hat.float().clamp(0, 1)
            psnr += (10 * torch.log10(1 / ((x - imgs) ** 2).mean(dim=(1, 2, 3)))).tolist()
    assert r["psnr"] == pytest.approx(sum(psnr) / len(psnr), rel=1e-5)
    assert 0 < r["ssim"] < 1 and math.isnan(r["ms_ssim"]) and "MS-SSIM not computed" in r["note"]
    clean = evaluate_point(ctx, "clip-ft", es, 5.0, L_SNR)
    assert "psnr" not in clean
    out = tmp_path / "bt"
    assert main(_args(clip, data, out, "--studies", "bandwidth", "--bandwidth-systems", "bt-ir,clip-ft",
                      "--channel-uses", "8,20000", "--btir-codec", "jpeg")) == 0  # JPEG: a known PSNR at 20k uses
    rows = {(r["system"], int(r["channel_uses"])): r for r in _read(out / "accuracy_vs_bandwidth.csv")}
    assert math.isnan(float(rows["bt-ir", 8]["psnr"]))  # nothing delivered: no image to score
    assert float(rows["bt-ir", 20000]["psnr"]) > 20 and "over the 10 delivered images" in rows["bt-ir", 20000]["note"]
    assert math.isnan(float(rows["clip-ft", 16]["psnr"]))


def test_djscc_ir_bottleneck_follows_the_budget_and_unreachable_points_are_recorded(setup, tmp_path, capsys):
    """Fig. 4 at large L: auto keeps the dense bottleneck while it is small, switches to the convolutional one
    above --djscc-dense-limit, and a point neither can carry gets a row with the reason (not a silent skip)."""
    from baselines.djscc import ImageJSCCCodec

    clip, data = setup
    out = tmp_path / "bw"
    # 32-px CLIP input, 4 stride-2 stages: a 2x2 map; dense weights 16 * 4 * 2L = 128 L
    assert main(_args(clip, data, out, "--studies", "bandwidth", "--bandwidth-systems", "djscc-ir",
                      "--channel-uses", "4,8", "--extra-channel-uses", "djscc-ir=9+10", "--djscc-dense-limit",
                      "1000", "--djscc-ir-arch", "adjscc")) == 0
    rows = {int(r["channel_uses"]): r for r in _read(out / "accuracy_vs_bandwidth.csv")}
    assert set(rows) == {4, 8, 9, 10}
    assert rows[4]["note"] == "" or "convolutional" not in rows[4]["note"]
    for L in (8, 10):
        assert "convolutional bottleneck" in rows[L]["note"] and 0 <= float(rows[L]["top1"]) <= 1
        codec = ImageJSCCCodec.from_pretrained(out / "models" / f"djscc-ir-conv-L{L}")
        assert codec.encoder.config.bottleneck == "conv" and codec.channel_uses == L
    assert ImageJSCCCodec.from_pretrained(out / "models" / "djscc-ir-L4").encoder.config.bottleneck == "dense"
    assert math.isnan(float(rows[9]["top1"])) and "not run at L=9" in rows[9]["note"]
    assert float(rows[9]["bandwidth_ratio"]) == pytest.approx(9 / (3 * 32 * 32))
    err = _refused(_args(clip, data, tmp_path / "x", "--studies", "bandwidth", "--extra-channel-uses", "nope=5"),
                   capsys)
    assert "--extra-channel-uses" in err and "'nope=5'" in err


def _train_djscc_argv(clip, data, out, model, L, *extra):
    return ["semclip", "train-djscc", "--model", model, "--data", str(data), "--layout", "imagenet", "--out", str(out),
            "--clip-model", f"local-dir:{clip}", "--channel-uses", str(L), "--steps", "4", "--batch-size", "6",
            "--hidden", "8", "--jscc-hidden", "16", "--checkpoint-every", "2", "--device", "cpu", *extra]


def test_train_djscc_uses_every_seen_image_resumes_exactly_and_feeds_semclip_eval(setup, tmp_path, monkeypatch):
    """The standalone DJSCC trainers stream every seen-class image from disk (no 2000-image cap),
    resume bit for bit, and semclip-eval loads their models instead of training its own."""
    from safetensors.torch import load_file

    from baselines import djscc
    from semantic.datasets import make_dataset, split_classes

    clip, data = setup
    for model in ("ir", "ft"):
        full, part = tmp_path / f"{model}-full", tmp_path / f"{model}-part"
        assert main(_train_djscc_argv(clip, data, full, model, L_SNR)) == 0
        # interrupted after step 2 (a checkpoint), then the same command again: the same weights
        orig = djscc.train_resumable
        monkeypatch.setattr(djscc, "train_resumable", lambda *a, **k: orig(*a, **dict(k, stop_at=2)))
        assert main(_train_djscc_argv(clip, data, part, model, L_SNR)) == 0
        monkeypatch.setattr(djscc, "train_resumable", orig)
        assert not (part / "model").exists()
        assert main(_train_djscc_argv(clip, data, part, model, L_SNR)) == 0
        a, b = (load_file(str(next((d / "model").rglob("*.safetensors")))) for d in (full, part))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        hist = json.loads((full / "model" / "train_history.json").read_text())
        assert [h["step"] for h in hist] == [1, 2, 3, 4]
        # the settings travel with the run (train-djscc.settings.json, and inside train_state.pt): another
        # learning rate or hidden width into the same folder is refused, the finished model left as it was
        weights = {p: p.read_bytes() for p in (full / "model").rglob("*") if p.is_file()}
        for opt, value in (("--lr", "0.01"), ("--hidden", "4")):
            assert main(_train_djscc_argv(clip, data, full, model, L_SNR, opt, value)) == 2
        assert weights == {p: p.read_bytes() for p in (full / "model").rglob("*") if p.is_file()}
        assert json.loads((full / "train-djscc.settings.json").read_text())["lr"] == 1e-3
    # every seen image is a training item: the batches draw indices over all of them
    ds = make_dataset("imagenet", data)
    seen, _ = split_classes(len(ds.class_names), 0.2, 0)
    n_seen = sum(int(y) in set(seen) for y in ds.labels)
    drawn = []
    orig_resumable = djscc.train_resumable

    def spy(model, loss_fn, load_batch, num_items, *a, **k):
        drawn.append(num_items)
        return orig_resumable(model, loss_fn, load_batch, num_items, *a, **k)

    monkeypatch.setattr(djscc, "train_resumable", spy)
    assert main(_train_djscc_argv(clip, data, tmp_path / "count", "ft", L_SNR)) == 0
    assert drawn == [n_seen] and n_seen == 8 * 5
    # semclip-eval loads them (no in-run training)
    monkeypatch.setattr(djscc, "train_image_jscc", lambda *a, **k: pytest.fail("DJSCC-IR retrained"))
    import baselines.djscc_ft as dft

    monkeypatch.setattr(dft, "train_djscc_ft", lambda *a, **k: pytest.fail("DJSCC-FT retrained"))
    out = tmp_path / "eval"
    assert main(_args(clip, data, out, "--studies", "snr", "--systems", "djscc-ir,djscc-ft",
                      "--djscc-ir", str(tmp_path / "ir-full" / "model"),
                      "--djscc-ft", str(tmp_path / "ft-full" / "model"))) == 0
    assert {r["system"] for r in _read(out / "accuracy_vs_snr.csv")} == {"djscc-ir", "djscc-ft"}


def test_upper_bound_beats_every_system(setup, tmp_path):
    """On tokens the (trained) TAPL classifier gets right when clean -- each unseen image's token is its class's
    zero-shot text embedding plus a little noise -- the ideal link scores 1.0, and every system that goes through
    the channel scores less at -20 dB (the image systems see the real images: no better than CLIP on them)."""
    import argparse

    clip, data = setup
    parser = argparse.ArgumentParser()
    se.add_arguments(parser)
    ctx = Context(parser.parse_args(_args(clip, data, tmp_path / "ub", "--unseen-fraction", "0.5")[1:]))
    es = ctx.eval_set()
    g = torch.Generator().manual_seed(0)
    w = ctx.zeroshot_weights(es.class_names).float().cpu()
    tokens = w[es.labels] + 0.01 * torch.randn(len(es), w.shape[1], generator=g)
    es = EvalSet(es.name, tokens, es.labels, es.class_names, es.dataset, es.indices, es.global_labels)
    G = len(es.class_names)
    assert G == 5
    ub = evaluate_point(ctx, "upper-bound", es, -20.0, L_SNR)
    assert ub["top1"] == 1.0 and ub["channel_uses"] == 0
    for system in SYSTEMS[2:]:  # every system with a channel
        r = evaluate_point(ctx, system, es, -20.0, L_SNR)
        assert r["top1"] < ub["top1"], system


def test_resume_refuses_another_value_of_each_paper_option(setup, tmp_path, capsys):
    """The options that define SemCLIP's rows and models are recorded settings of the resume guard:
    after a run, a rerun into the same folder with another value of any of them is refused (exit 2, one line
    naming the setting and both values) and adds no row; the same options resume with nothing new."""
    clip, data = setup
    out = tmp_path / "guard"
    base = _args(clip, data, out, "--studies", "snr", "--systems", "clip-ft")
    assert main(base) == 0
    before = (out / "accuracy_vs_snr.csv").read_bytes()
    for opt, value, change in (("--temperature", "1", "temperature: 0.07 -> 1.0"),
                               ("--tapl-loss", "both", "tapl_loss: 'i2t' -> 'both'"),
                               ("--no-ablation-per-snr", None, "ablation_per_snr: True -> False"),
                               ("--djscc-bottleneck", "conv", "djscc_bottleneck: 'auto' -> 'conv'"),
                               ("--djscc-dense-limit", "5", "djscc_dense_limit: "),
                               ("--hidden-dim", "8", "hidden_dim: 16 -> 8"),
                               ("--no-linear-skip", None, "linear_skip: True -> False"),
                               ("--tapl-steps", "3", "tapl_steps: None -> 3"),
                               ("--snr-train-range=-2,2", None, "snr_train_range: ")):
        err = _refused(base + [opt] + ([value] if value is not None else []), capsys)
        assert change in err and "resuming would mix them" in err, (opt, err)
    assert (out / "accuracy_vs_snr.csv").read_bytes() == before
    assert main(base) == 0 and (out / "accuracy_vs_snr.csv").read_bytes() == before
