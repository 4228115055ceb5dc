"""`semcom reproduce`: every paper result is a config that runs end to end (tiny models and data), missing
inputs fail at once, and the configs hold the papers' settings."""
import csv
import json
import math

import pytest
import torch

import semantic  # noqa: F401  (torchvision shim first)
from experiments.commands import reproduce as R
from experiments.cli import main
from test_semclip_eval import DIGITS
from test_tapl import save_tiny_clip
from tiny_models import tiny_blip2_dir, tiny_image_dir, tiny_sd_dir, write_digit_folder  # noqa: F401

NAMES = ["semclip-fig3", "semclip-fig4", "semclip-table1", "semclip-table2", "semclip-table3", "vlf-msc-fig2",
         "vlf-msc-fig3", "vlf-msc-fig4"]


def _read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _steps(name, **kw):
    cfg = R.load_config(name)
    return cfg, R.plan(cfg, "OUT", data_root="DATA", **kw)["steps"]


def _opt(argv, option):
    """The value of ``option`` in ``argv`` (``--opt v`` or ``--opt=v``), or True for a flag, None if absent."""
    for i, a in enumerate(argv):
        if a == option:
            return argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("--") else True
        if a.startswith(option + "="):
            return a.split("=", 1)[1]
    return None


def test_every_paper_result_has_a_valid_config(capsys):
    assert R.list_configs() == NAMES
    assert main(["reproduce", "--list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == NAMES
    for name in NAMES:
        cfg, steps = _steps(name)
        assert cfg.name == name and cfg.result and cfg.outputs
        for st in steps:  # every planned command line parses with its own command's parser
            R._command_parser(st["command"]).parse_args(st["argv"][1:])
            assert _opt(st["argv"], "--seed") == "0"


def test_semclip_configs_hold_the_papers_training_settings():
    """B = 128, eq. 4 without temperature, eq. 5 both ways, JSCC 20k / TAPL 5k steps, and a JSCC whose size is
    the paper's (1.29M encoder / 1.35M decoder) within 3 %, counted on the model the config builds."""
    from semantic.jscc import JSCCCodec

    for name in NAMES[:5]:
        _, steps = _steps(name)
        st = steps[-1]
        a = st["argv"]
        assert _opt(a, "--snr-channel-uses") == "384"  # L = N/2 of ViT-L-14-336
        for tr in steps[:-1]:  # the image baselines: the same step budget and batch on the same (seen) data
            assert tr["argv"][:2] == ["semclip", "train-djscc"]
            assert (_opt(tr["argv"], "--steps"), _opt(tr["argv"], "--batch-size")) == ("20000", "128")
            assert _opt(tr["argv"], "--data") == _opt(a, "--train-data")
        assert (_opt(a, "--train-batch-size"), _opt(a, "--temperature"), _opt(a, "--tapl-loss")) == ("128", "1", "both")
        assert (_opt(a, "--train-steps"), _opt(a, "--tapl-steps")) == ("20000", "5000")
        assert _opt(a, "--ablation-per-snr") is True and _opt(a, "--clip-model") == "ViT-L-14-336"
        codec = JSCCCodec.build(768, 384, hidden_dim=int(_opt(a, "--hidden-dim")),
                                linear_skip=_opt(a, "--no-linear-skip") is None)
        for part, paper in ((codec.encoder, 1.29e6), (codec.decoder, 1.35e6)):
            assert abs(sum(p.numel() for p in part.parameters()) / paper - 1) < 0.03
    _, (st,) = _steps("semclip-table1")  # no image baseline in table I: no training step
    assert _opt(st["argv"], "--snr-db") == "-10,0,10" and _opt(st["argv"], "--table-snrs") == "-10,0,10"
    _, steps = _steps("semclip-fig4")
    st = steps[-1]
    uses = [int(v) for v in _opt(st["argv"], "--channel-uses").split(",")]
    assert 508 in uses and math.isclose(508 / (3 * 336 * 336), 0.0015, rel_tol=0.01)  # the paper's SemCLIP point
    extra = dict(e.split("=") for e in _opt(st["argv"], "--extra-channel-uses").split(","))
    assert math.isclose(int(extra["djscc-ir"]) / (3 * 336 * 336), 0.0833, rel_tol=0.01)  # the paper's DJSCC-IR
    assert math.isclose(int(extra["bt-ir"]) / (3 * 336 * 336), 0.139, rel_tol=0.01)  # and BT-IR points
    for name in NAMES[5:]:
        cfg, steps = _steps(name)
        for st in steps:
            if st["command"] in ("vlf-msc-eval", "vlf-msc"):
                assert _opt(st["argv"], "--equalizer") == "mmse" and _opt(st["argv"], "--snr-db") == "-5:10:2.5"
                if st["command"] == "vlf-msc-eval":
                    assert _opt(st["argv"], "--reference") == "blip2"


def test_configs_sharing_a_folder_agree_on_its_defining_settings():
    """Steps of several configs that write into one folder (the shared OUT/semclip-eval, the DJSCC trainers, the
    image decoder) must give that folder the same recorded settings, or the resume guard refuses the second
    config (the resume guard): train steps are the same command line; semclip-eval steps may differ only in what runs
    (studies, systems, SNRs, L values, --extra-channel-uses...), never in an option that defines rows or models."""
    import argparse
    from collections import defaultdict

    from experiments.commands import semclip_eval as SE
    from experiments.core.results import settings_of

    parser = argparse.ArgumentParser()
    SE.add_arguments(parser)
    by_folder = defaultdict(dict)
    for name in NAMES:
        for st in _steps(name)[1]:
            by_folder[_opt(st["argv"], "--out")][name] = st["argv"]
    shared = {out: runs for out, runs in by_folder.items() if len(runs) > 1}
    assert {"OUT/semclip-eval", "OUT/djscc-ir-L384", "OUT/train-image-decoder"} <= set(shared)
    for out, runs in shared.items():
        if out != "OUT/semclip-eval":
            assert len({tuple(a) for a in runs.values()}) == 1, (out, sorted(runs))
            continue
        settings = {}
        for name, argv in runs.items():
            args = parser.parse_args(argv[1:])
            settings[name] = settings_of(args, [k for k in vars(args) if k not in SE._NOT_SETTINGS],
                                         paths=SE._PATH_SETTINGS)
        first = settings[NAMES[0]]
        assert {k for k in first if first[k] is not None} >= {"djscc_ir", "djscc_ft", "temperature", "seed"}
        for name, s in settings.items():
            assert s == first, (name, {k: (first.get(k), v) for k, v in s.items() if first.get(k) != v})


def test_missing_inputs_fail_at_once_naming_each(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["reproduce", "semclip-table2", "--data", str(tmp_path / "nowhere"), "--out", str(out),
                 "--model", f"clip=local-dir:{tmp_path / 'no_clip'}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "6 missing input(s), nothing run" in err
    for key in ("imagenet-val", "imagenet-train", "oxford-pets", "food101", "caltech101", "'clip'"):
        assert key in err
    assert "--data-path oxford-pets=PATH" in err and "robots.ox.ac.uk" in err
    assert not out.exists()  # nothing ran
    assert main(["reproduce", "semclip-table9", "--out", str(out)]) == 2
    assert "semclip-table1" in capsys.readouterr().err
    assert main(["reproduce", "semclip-table1", "--out", str(out), "--set", "no-such-option=1"]) == 2
    assert "no step" in capsys.readouterr().err
    assert main(["reproduce", "semclip-table1", "--out", str(out), "--set", "semclip-eval:no-such-option=1"]) == 2
    assert "no step" in capsys.readouterr().err
    assert main(["reproduce", "semclip-table1", "--out", str(out), "--model", "blip2=x"]) == 2
    assert main(["reproduce", "semclip-table1", "--out", str(out), "--set", "train-steps"]) == 2
    assert "takes a value" in capsys.readouterr().err


def test_set_and_given_trained_model_skip_its_step(tmp_path):
    cfg = R.load_config("vlf-msc-fig4")
    p = R.plan(cfg, str(tmp_path), data_root="D", models={"image_decoder": "ck"},
               sets=["vlf-msc:steps=3", "device=cpu", "vlf-msc:no-text"])
    train, run = p["steps"]
    assert train["skipped"] and train["argv"] == []
    assert _opt(run["argv"], "--steps") == "3" and _opt(run["argv"], "--device") == "cpu"
    assert _opt(run["argv"], "--no-text") is True and _opt(run["argv"], "--image-decoder") == "ck"
    assert _opt(run["argv"], "--out") == str(tmp_path / "vlf-msc")
    # without the model, the decoder comes from the training step's latest checkpoint
    p = R.plan(cfg, str(tmp_path), data_root="D", sets=["train-image-decoder:steps=3"])
    assert _opt(p["steps"][0]["argv"], "--steps") == "3" and _opt(p["steps"][1]["argv"], "--steps") == "50"
    assert _opt(p["steps"][1]["argv"], "--image-decoder") == "{model:image_decoder}"


# ------------------------------------------------------------------------------------------------
# every config end to end with tiny models and data
# ------------------------------------------------------------------------------------------------
def _pets_food_caltech(root):
    from PIL import Image

    rng = torch.Generator().manual_seed(0)

    def img():
        return Image.fromarray((torch.rand(16, 16, 3, generator=rng) * 255).byte().numpy())

    pets = root / "pets"
    (pets / "images").mkdir(parents=True)
    (pets / "annotations").mkdir()
    names = ["Abyssinian_1", "Abyssinian_2", "Bengal_1", "Bengal_2"]
    for n in names:
        img().save(pets / "images" / f"{n}.jpg")
    (pets / "annotations" / "test.txt").write_text("".join(f"{n} {1 + i // 2} 1 1\n" for i, n in enumerate(names)))
    food = root / "food"
    for c in ("apple_pie", "sushi"):
        (food / "images" / c).mkdir(parents=True)
        for i in range(2):
            img().save(food / "images" / c / f"{i}.jpg")
    (food / "meta").mkdir()
    (food / "meta" / "classes.txt").write_text("apple_pie\nsushi\n")
    (food / "meta" / "test.txt").write_text("apple_pie/0\napple_pie/1\nsushi/0\nsushi/1\n")
    cal = root / "cal"
    for c in ("accordion", "anchor"):
        (cal / "101_ObjectCategories" / c).mkdir(parents=True)
        for i in range(2):
            img().save(cal / "101_ObjectCategories" / c / f"image_000{i}.jpg")
    return pets, food, cal


SEM_SETS = ["semclip-eval:device=cpu", "no-progress", "train-steps=2", "tapl-steps=2", "train-batch-size=8",
            "hidden-dim=16", "djscc-hidden=8", "semclip-eval:batch-size=16", "tapl-classes-per-step=3",
            "complexity-images=6", "semclip:device=cpu", "semclip:steps=2", "semclip:batch-size=8", "semclip:hidden=8",
            "semclip:jscc-hidden=16"]


@pytest.mark.slow  # ~12 s: 16 tiny models trained (2 steps each) and five studies
def test_semclip_configs_end_to_end_and_resume(tmp_path):
    clip = save_tiny_clip(tmp_path / "clip")
    digits = write_digit_folder(tmp_path / "digits", DIGITS)
    pets, food, cal = _pets_food_caltech(tmp_path)
    out = tmp_path / "paper"
    common = ["--out", str(out), "--model", f"clip=local-dir:{clip}", "--data-path", f"imagenet-val={digits}",
              "--data-path", f"imagenet-train={digits}"] + [f"--set={s}" for s in SEM_SETS]
    extra = {"semclip-table2": ["--data-path", f"oxford-pets={pets}", "--data-path", f"food101={food}",
                                "--data-path", f"caltech101={cal}"]}
    for name in NAMES[:5]:
        assert main(["reproduce", name] + common + extra.get(name, [])) == 0, name
        cfg = R.load_config(name)
        for o in cfg.outputs:
            assert (out / o).is_file() and (out / o).stat().st_size > 0, (name, o)
        rec = json.loads((out / f"reproduce-{name}.json").read_text())
        assert rec["steps"][-1]["argv"][0] == "semclip-eval"
    # DJSCC-IR / DJSCC-FT trained by their own steps, one per L, and loaded (not retrained) by semclip-eval
    for L in (48, 96, 192, 384, 508):
        for kind in ("ir", "ft"):
            assert (out / f"djscc-{kind}-L{L}" / "model" / "train_history.json").is_file()
    assert (out / "djscc-ir-L28224" / "model" / "train_history.json").is_file()
    assert not list((out / "semclip-eval" / "models").glob("djscc-*"))
    rows = _read(out / "semclip-eval" / "accuracy_vs_snr.csv")
    snrs = sorted({float(r["snr_db"]) for r in rows})
    assert snrs == [-10.0 + 2.5 * i for i in range(9)]  # fig. 3's SNRs; table I's are among them
    noaf = {float(r["snr_db"]) for r in rows if r["system"] == "semclip-noaf"}
    assert noaf == {-10.0, 0.0, 10.0}  # one fixed-SNR model per table-I SNR
    assert {r["system"] for r in rows} >= {"upper-bound", "semclip", "bt-ir"}
    t1 = _read(out / "semclip-eval" / "table_i.csv")
    assert [r["system"] for r in t1] == ["SemCLIP", "SemCLIP w/o TAPL", "SemCLIP w/o TAPL & AF"]
    bw = _read(out / "semclip-eval" / "accuracy_vs_bandwidth.csv")
    assert {int(r["channel_uses"]) for r in bw if r["system"] == "semclip"} == {48, 96, 192, 384, 508}
    # the extra points, DJSCC-IR's (tiny 32-px input: its dense layer is only 3.6M weights, auto keeps it)
    # and BT-IR's
    assert {int(r["channel_uses"]) for r in bw if r["system"] == "djscc-ir"} >= {28224}
    assert {int(r["channel_uses"]) for r in bw if r["system"] == "bt-ir"} >= {47078}
    cross = _read(out / "semclip-eval" / "cross_dataset.csv")
    assert {r["dataset"] for r in cross} == {"oxford_pets", "food101", "caltech101"}
    # rerun: every step resumes, nothing recomputed
    before = {p.name: p.read_bytes() for p in (out / "semclip-eval").glob("accuracy_*.csv")}
    assert main(["reproduce", "semclip-table1"] + common) == 0
    assert {p.name: p.read_bytes() for p in (out / "semclip-eval").glob("accuracy_*.csv")} == before


@pytest.mark.filterwarnings("ignore:LPIPS. no AlexNet weights")
def test_vlf_msc_configs_end_to_end(tiny_blip2_dir, tiny_sd_dir, tiny_image_dir, tmp_path):
    import open_clip

    from baselines.deepsc import DeepSC, DeepSCConfig
    from semantic.sentences import minilm_model_dir
    from test_vlf_msc_eval import CLIP_CFG

    torch.manual_seed(0)
    (tmp_path / "clip.json").write_text(json.dumps(CLIP_CFG))
    torch.save(open_clip.CLIP(**CLIP_CFG).state_dict(), tmp_path / "clip.pt")
    DeepSC.from_corpus([f"a photo of thing {i} ." for i in range(3)], DeepSCConfig(
        max_len=40, d_model=32, num_heads=2, num_layers=1, d_ff=64, dropout=0.0, symbols_per_token=4,
        channel_hidden=32, decoder_hidden=32)).save_pretrained(str(tmp_path / "deepsc"))
    out = tmp_path / "paper"
    common = ["--out", str(out), "--model", f"blip2={tiny_blip2_dir}", "--model", f"sd={tiny_sd_dir}",
              "--model", f"bertscore={minilm_model_dir()}", "--model", f"clip_score={tmp_path / 'clip.pt'}",
              "--data-path", f"openimages-train={tiny_image_dir}",
              "--data-path", f"openimages-train-captions={tiny_image_dir / 'captions.csv'}",
              "--data-path", f"openimages-val={tiny_image_dir}"]
    sets = ["device=cpu", "train-image-decoder:steps=2", "train-image-decoder:batch-size=2",
            "train-image-decoder:image-size=32", "vlf-msc-eval:steps=2", "vlf-msc-eval:image-size=32",
            "vlf-msc-eval:max-images=2", "vlf-msc-eval:batch-size=2", "vlf-msc-eval:bertscore-layers=2",
            "vlf-msc-eval:clip-model-config=" + str(tmp_path / "clip.json"), "vlf-msc-eval:allow-random-lpips",
            "max-new-tokens=4", "snr-db=0,10", "vlf-msc:steps=2", "vlf-msc:image-size=16", "vlf-msc:input-size=40",
            "vlf-msc:limit=2", "vlf-msc:batch-size=2"]
    common += [f"--set={s}" for s in sets]
    extra = {"vlf-msc-fig2": ["--model", f"deepsc={tmp_path / 'deepsc'}"]}
    common.append("--set=vlf-msc-eval:img2img-steps=2")
    for name in NAMES[5:]:
        assert main(["reproduce", name] + common + extra.get(name, [])) == 0, name
        for o in R.load_config(name).outputs:
            assert (out / o).is_file() and (out / o).stat().st_size > 0, (name, o)
    # the decoder is trained once (step 2), and every result used that checkpoint
    cks = sorted(p.name for p in (out / "train-image-decoder").glob("checkpoint-*"))
    assert cks[-1] == "checkpoint-0000002"
    for name in NAMES[5:]:
        rec = json.loads((out / f"reproduce-{name}.json").read_text())
        ev = rec["steps"][-1]["argv"]
        assert _opt(ev, "--image-decoder") == str(out / "train-image-decoder" / "checkpoint-0000002")
    text = _read(out / "eval-text" / "metrics.csv")
    assert {r["system"] for r in text} == {"vlf-msc", "ascii-hamming", "deepsc"}
    assert {(r["reference"], r["equalizer"]) for r in text if r["system"] == "vlf-msc"} == {("blip2", "mmse")}
    image = _read(out / "eval-image" / "metrics.csv")
    assert {r["system"] for r in image} == {"vlf-msc", "img2img-sc"} and all(r["psnr"] for r in image)
    assert {r["equalizer"] for r in _read(out / "vlf-msc" / "captions.csv")} == {"mmse"}
