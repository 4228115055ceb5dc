"""`semcom reproduce`: every paper result is a config that runs end to end (`--smoke`: tiny models and generated
data), missing inputs fail at once, the configs hold the papers' settings and their notes the values they run."""
import csv
import json
import math

import pytest

import semantic  # noqa: F401  (torchvision shim first)
from experiments.commands import reproduce as R
from experiments.cli import main

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
    listed = {ln.split()[0]: ln for ln in lines}
    # the VLF-MSC paper's Fig. 2 is image transmission, Fig. 3 text transmission
    assert "Fig. 2: image transmission" in listed["vlf-msc-fig2"] and "Img2Img-SC" in listed["vlf-msc-fig2"]
    assert "Fig. 3: text transmission" in listed["vlf-msc-fig3"] and "DeepSC" in listed["vlf-msc-fig3"]
    for name in NAMES:
        cfg, steps = _steps(name)
        assert cfg.name == name and cfg.result and cfg.outputs and cfg.smoke
        for st in steps:  # every planned command line parses with its own command's parser
            R._command_parser(st["command"]).parse_args(st["argv"][1:])
            assert _opt(st["argv"], "--seed") in ("0", None)
    assert {_steps("vlf-msc-fig2")[1][-1]["argv"][k] for k in (0,)} == {"vlf-msc-eval"}
    assert _opt(_steps("vlf-msc-fig2")[1][-1]["argv"], "--systems") == "vlf-msc,img2img-sc"
    assert _opt(_steps("vlf-msc-fig3")[1][-1]["argv"], "--systems") == "vlf-msc,ascii-hamming,deepsc"


def test_semclip_configs_hold_the_papers_training_settings():
    """B = 128, eq. 4 without temperature, eq. 5 both ways, JSCC 20k / TAPL 5k steps, and a JSCC whose size is
    the paper's (1.29M encoder / 1.35M decoder) within 3 %, counted on the model the config builds; Table I's
    nine SNRs with every ablation row; Fig. 4's three quoted ratios for every system that runs there; the
    baselines the paper cites (transformer DJSCC-IR, learned BT-IR codec)."""
    from semantic.jscc import JSCCCodec

    for name in NAMES[:5]:
        _, steps = _steps(name)
        st = steps[-1]
        a = st["argv"]
        assert _opt(a, "--snr-channel-uses") == "384"  # L = N/2 of ViT-L-14-336
        for tr in steps[:-1]:  # the image baselines: the same (seen) data, a stated budget
            assert tr["argv"][:2] in (["semclip", "train-djscc"], ["semclip", "train-codec"])
            assert _opt(tr["argv"], "--data") == _opt(a, "--train-data") and _opt(tr["argv"], "--steps") == "20000"
            if tr["argv"][1] == "train-djscc":
                assert _opt(tr["argv"], "--batch-size") == "128"
                if _opt(tr["argv"], "--model") == "ir":
                    assert _opt(tr["argv"], "--arch") == "vit"
        assert (_opt(a, "--train-batch-size"), _opt(a, "--temperature"), _opt(a, "--tapl-loss")) == ("128", "1", "both")
        assert (_opt(a, "--train-steps"), _opt(a, "--tapl-steps")) == ("20000", "5000")
        assert _opt(a, "--ablation-per-snr") is True and _opt(a, "--clip-model") == "ViT-L-14-336"
        assert _opt(a, "--btir-codec") == "learned" and _opt(a, "--btir-model") == "OUT/btir-codec"
        codec = JSCCCodec.build(768, 384, hidden_dim=int(_opt(a, "--hidden-dim")),
                                linear_skip=_opt(a, "--no-linear-skip") is None)
        for part, paper in ((codec.encoder, 1.29e6), (codec.decoder, 1.35e6)):
            assert abs(sum(p.numel() for p in part.parameters()) / paper - 1) < 0.03
    nine = "-10:10:2.5"
    for name in ("semclip-table1", "semclip-fig3"):
        st = _steps(name)[1][-1]["argv"]
        assert _opt(st, "--snr-db") == nine and _opt(st, "--table-snrs") == nine  # every ablation row at all nine
        assert {"semclip", "semclip-notapl", "semclip-noaf"} <= set(_opt(st, "--systems").split(","))
    assert _steps("semclip-table1")[1][0]["name"] == "semclip-eval"  # no image baseline in table I: no training
    _, steps = _steps("semclip-fig4")
    st = steps[-1]
    uses = [int(v) for v in _opt(st["argv"], "--channel-uses").split(",")]
    for ratio in (0.0015, 0.0833, 0.139):  # the paper's three quoted points, for every system
        assert any(math.isclose(L / (3 * 336 * 336), ratio, rel_tol=0.01) for L in uses), ratio
    assert _opt(st["argv"], "--extra-channel-uses") is None
    trained = {s["name"] for s in steps[:-1]}
    assert {f"djscc-{k}-L{L}" for k in ("ir", "ft") for L in uses} | {"btir-codec"} == trained
    assert set(_opt(st["argv"], "--bandwidth-systems").split(",")) == {"semclip", "clip-ft", "djscc-ft", "djscc-ir",
                                                                        "bt-ir"}
    # table II: the paper's rows at 0 dB (the paper's SNR)
    a = _steps("semclip-table2")[1][-1]["argv"]
    assert _opt(a, "--cross-snrs") == "0" and _opt(a, "--systems").split(",") == [
        "upper-bound", "semclip", "semclip-notapl", "semclip-noaf", "clip-ft"]
    for name in NAMES[5:]:
        cfg, steps = _steps(name)
        for st in steps:
            if st["command"] in ("vlf-msc-eval", "vlf-msc", "train-text-projection", "train-deepsc",
                                 "train-image-decoder"):  # the paper's AWGN receiver: no equaliser
                assert _opt(st["argv"], "--equalizer") == "identity" and _opt(st["argv"], "--channel") == "awgn"
            if st["command"] == "vlf-msc-eval":
                assert _opt(st["argv"], "--snr-db") == "-5:10:2.5" and _opt(st["argv"], "--reference") == "blip2"
                assert _opt(st["argv"], "--text-projection") == "{model:text_projection}"
            if st["command"] == "vlf-msc":
                assert _opt(st["argv"], "--snr-db") == "0,2.5,5,10"  # the appendix figure's columns
            if st["command"] in ("train-text-projection", "train-deepsc"):  # trained on the BLIP-2 captions of
                data = _opt(st["argv"], "--captions") or _opt(st["argv"], "--corpus")  # the training split
                assert data == "OUT/train-captions/captions.csv"
        caps = [st for st in steps if st["command"] == "blip2-captions"]
        assert [_opt(c["argv"], "--images") for c in caps] == ["DATA/open-images/train"]
    a = _steps("vlf-msc-fig3")[1][-1]["argv"]
    assert _opt(a, "--deepsc-equalizer") == "identity" and _opt(a, "--deepsc-checkpoint") == "{model:deepsc}"


_REPRODUCE_OPTIONS = ("--set", "--model", "--data-path", "--data", "--out", "--smoke", "--list", "--dry-run")


def note_problems(cfg) -> list:
    """Every ``--option [VALUE]`` a rendered note names that no step of ``cfg`` carries with that value."""
    import re

    problems = []
    steps = [(st["command"], st["args"]) for st in cfg.steps]
    for note in R.render_notes(cfg):
        for m in re.finditer(r"(--[a-z][a-z0-9-]*)(?:[ =]([A-Za-z0-9_.:+{-][^\s,;)`]*))?", note):
            opt, value = m.group(1), m.group(2)
            if opt in _REPRODUCE_OPTIONS:
                continue
            carried = [(c, a) for c, a in steps if any(x == opt or x.startswith(opt + "=") for x in a)]
            if not carried:
                problems.append(f"{opt}: no step carries it")
                continue
            value = (value or "").rstrip(".")
            takes = [R._takes_value(c, opt, a) for c, a in carried]
            if not any(takes) or not value or value.startswith("-") and not value[1:2].isdigit():
                continue
            values = {R.step_option(cfg, st["name"], opt) for st in cfg.steps} - {None}
            if value not in values:
                problems.append(f"{opt} {value}: the config uses {sorted(values)}")
    return problems


def test_notes_name_only_values_the_config_uses():
    """A config's notes are checked against the settings it runs: a value a note quotes is a {STEP:--option}
    placeholder filled in from the steps, and any --option VALUE written out must be one a step carries."""
    for name in NAMES:
        cfg = R.load_config(name)
        assert note_problems(cfg) == [], name
        text = " ".join(R.render_notes(cfg))
        assert "{" not in text.replace("{class}", ""), name  # every placeholder filled in
        assert "package's choice" in text, name  # the settings not in the paper are named as the package's
    raw = json.loads((R.CONFIG_DIR / "semclip-table1.json").read_text())
    bad = dict(raw, notes=raw["notes"] + ["TAPL runs --tapl-steps 4000 steps."])
    assert note_problems(R.ReproConfig.from_dict(bad)) == ["--tapl-steps 4000: the config uses ['5000']"]
    bad = dict(raw, notes=["budget {semclip-eval:--no-such-option}"])
    with pytest.raises(ValueError, match="--no-such-option"):
        R.ReproConfig.from_dict(bad)
    bad = dict(raw, notes=["the flag {semclip-eval:--no-linear-skip}"])
    with pytest.raises(ValueError, match="flag"):
        R.ReproConfig.from_dict(bad)


def test_configs_sharing_a_folder_agree_on_its_defining_settings():
    """Steps of several configs that write into one folder (the shared OUT/semclip-eval, the DJSCC trainers, the
    image decoder) must give that folder the same recorded settings, or the resume guard refuses the second
    config: train steps are the same command line; semclip-eval steps may differ only in what runs
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
    train, caps, proj, run = p["steps"]
    assert train["skipped"] and train["argv"] == [] and not caps["skipped"] and not proj["skipped"]
    assert _opt(run["argv"], "--steps") == "3" and _opt(run["argv"], "--device") == "cpu"
    assert _opt(run["argv"], "--no-text") is True and _opt(run["argv"], "--image-decoder") == "ck"
    assert _opt(run["argv"], "--out") == str(tmp_path / "vlf-msc")
    # without the model, the decoder comes from the training step's latest checkpoint
    p = R.plan(cfg, str(tmp_path), data_root="D", sets=["train-image-decoder:steps=3"])
    assert _opt(p["steps"][0]["argv"], "--steps") == "3" and _opt(p["steps"][-1]["argv"], "--steps") == "50"
    assert _opt(p["steps"][-1]["argv"], "--image-decoder") == "{model:image_decoder}"
    # a trained model kept in a folder of its step ("path"): DeepSC in OUT/train-deepsc/model
    cfg = R.load_config("vlf-msc-fig3")
    assert cfg.models["deepsc"] == dict(cfg.models["deepsc"], kind="trained", step="train-deepsc", path="model")
    p = R.plan(cfg, str(tmp_path), data_root="D", models={"deepsc": "given"})
    assert [s["name"] for s in p["steps"] if s["skipped"]] == ["train-deepsc"]
    assert _opt(p["steps"][-1]["argv"], "--deepsc-checkpoint") == "given"


# ------------------------------------------------------------------------------------------------
# every config end to end: `semcom reproduce NAME --smoke` (tiny models, generated data)
# ------------------------------------------------------------------------------------------------
# the default run keeps one result of each paper; the others are slow (about a minute each on two busy cores)
FAST = ("semclip-table1", "vlf-msc-fig3")


def _smoke(name, out):
    """``semcom reproduce NAME --smoke`` into ``out``; returns the CPU seconds it took (this process)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF)
    assert main(["reproduce", name, "--smoke", "--out", str(out)]) == 0, name
    after = resource.getrusage(resource.RUSAGE_SELF)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _check_semclip(name, out):
    """Non-degenerate: at least 10 unseen classes, accuracies in [0, 1], the result's own checks."""
    ev = out / "semclip-eval"
    _, unseen = __import__("semantic.datasets").datasets.split_classes(50, 0.2, 0)
    assert len(unseen) >= 10
    for csv_name in ("accuracy_vs_snr.csv", "accuracy_vs_bandwidth.csv", "cross_dataset.csv"):
        for r in _read(ev / csv_name) if (ev / csv_name).is_file() else []:
            if r.get("system") != "absent" and r["top1"] not in ("", "nan"):
                assert 0.0 <= float(r["top1"]) <= 1.0
    if (ev / "accuracy_vs_snr.meta.json").is_file():
        assert len(json.loads((ev / "accuracy_vs_snr.meta.json").read_text())["classes"]) >= 10
    if name in ("semclip-table1", "semclip-fig3"):
        rows = _read(ev / "accuracy_vs_snr.csv")
        nine = [-10.0 + 2.5 * i for i in range(9)]
        for system in ("semclip", "semclip-notapl", "semclip-noaf"):  # every ablation row at all nine SNRs
            assert sorted(float(r["snr_db"]) for r in rows if r["system"] == system) == nine, system
        t1 = _read(ev / "table_i.csv")
        ablation = ["SemCLIP", "SemCLIP w/o TAPL", "SemCLIP w/o TAPL & AF"]
        assert [r["system"] for r in t1 if r["system"] in ablation] == ablation
        if name == "semclip-table1":
            assert [r["system"] for r in t1] == ablation
        assert list(t1[0])[1:10] == [f"top1@{s:g}dB" for s in nine]
    if name == "semclip-fig3":
        rows = _read(ev / "accuracy_vs_snr.csv")
        assert {r["system"] for r in rows} == {"upper-bound", "semclip", "semclip-notapl", "semclip-noaf", "clip-ft",
                                               "djscc-ft", "djscc-ir", "bt-ir"}
        ub = [r for r in rows if r["system"] == "upper-bound"]
        assert all("CLIP's zero-shot prompts" in r["note"] for r in ub)
        assert not list((ev / "models").glob("djscc-*")) and not (ev / "models" / "btir-codec").exists()
    if name == "semclip-fig4":
        bw = _read(ev / "accuracy_vs_bandwidth.csv")
        Ls = {48, 96, 192, 384, 508, 28224, 47078}
        for system in ("semclip", "djscc-ft", "djscc-ir", "bt-ir"):
            got = {int(r["channel_uses"]) for r in bw if r["system"] == system and r["top1"] not in ("", "nan")}
            assert got == Ls, system
        for L in Ls:  # DJSCC-IR / DJSCC-FT trained by their own steps, one per L, loaded by semclip-eval
            for kind in ("ir", "ft"):
                assert (out / f"djscc-{kind}-L{L}" / "model" / "train_history.json").is_file()
        assert (out / "btir-codec" / "codec.json").is_file()
        cfg = json.loads((out / "djscc-ir-L384" / "model" / "encoder" / "config.json").read_text())
        assert cfg["_class_name"] == "ViTJSCCEncoder"
    if name == "semclip-table2":
        cross = _read(ev / "cross_dataset.csv")
        assert {r["dataset"] for r in cross} == {"oxford_pets", "food101", "caltech101"}
        assert {r["system"] for r in cross} == {"upper-bound", "semclip", "semclip-notapl", "semclip-noaf", "clip-ft"}
    if name == "semclip-table3":
        modules = {r["module"] for r in _read(ev / "complexity.csv")}
        assert {"DJSCC-IR encoder", "BT-IR codec (learned-gmm)", "SemCLIP JSCC encoder"} <= modules


def _check_vlf_msc(name, out):
    """Non-degenerate: every caption written is non-empty (BLEU and BERTScore are defined), metrics in range."""
    if name == "vlf-msc-fig4":
        rows = _read(out / "vlf-msc" / "captions.csv")
        assert rows and all(r["caption"].strip() for r in rows)
        assert {float(r["snr_db"]) for r in rows} == {0.0, 10.0} and {r["equalizer"] for r in rows} == {"identity"}
        return
    ev = out / ("eval-image" if name == "vlf-msc-fig2" else "eval-text")
    items = _read(ev / "items.csv")
    refs = _read(ev / "baseline_captions.csv")
    assert refs and all(r["caption"].strip() for r in refs)
    for r in items:
        if r["system"] in ("vlf-msc", "deepsc"):
            assert r["caption"].strip(), r
        if r["system"] in ("vlf-msc", "ascii-hamming", "deepsc"):
            assert 0.0 <= float(r["bertscore_f1"]) <= 1.0 and r["reference"].strip()
    metrics = _read(ev / "metrics.csv")
    vlf = [r for r in metrics if r["system"] == "vlf-msc"]
    assert vlf and {(r["reference"], r["equalizer"]) for r in vlf} == {("blip2", "identity")}
    manifest = json.loads((ev / "manifest.json").read_text())
    assert manifest["text_projection_reference"] == manifest["reference"] == "blip2"  # W_proj towards the reference
    state = json.loads(next((out / "train-text-projection").glob("checkpoint-*/trainer_state.json")).read_text())
    assert state["extra"]["reference"] == "blip2"
    if name == "vlf-msc-fig3":
        assert {r["system"] for r in metrics} == {"vlf-msc", "ascii-hamming", "deepsc"}
        assert {r["equalizer"] for r in metrics if r["system"] == "deepsc"} == {"identity"}
        # DeepSC trained on the training images' captions only: its vocabulary holds no word of another source
        train = json.loads((out / "train-deepsc" / "train.json").read_text())
        assert train["corpus"] == str((out / "train-captions" / "captions.csv").resolve())
        vocab = json.loads((out / "train-deepsc" / "model" / "config.json").read_text())["vocab"]
        from baselines.deepsc import build_vocab, preprocess_sentence

        corpus = [preprocess_sentence(r["caption"]) for r in _read(out / "train-captions" / "captions.csv")]
        assert set(vocab) == set(build_vocab(corpus))
    else:
        image = _read(ev / "metrics.csv")
        assert {r["system"] for r in image} == {"vlf-msc", "img2img-sc"} and all(r["psnr"] for r in image)


@pytest.mark.filterwarnings("ignore:LPIPS. no AlexNet weights")
@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n in FAST else pytest.mark.slow) for n in NAMES])
def test_smoke_runs_every_config_end_to_end(name, tmp_path):
    """`semcom reproduce NAME --smoke` exits 0 on tiny models and generated data within 2 minutes of CPU, with
    outputs that mean something (>= 10 unseen classes, non-empty captions), and a rerun recomputes nothing."""
    out = tmp_path / "paper"
    cpu = _smoke(name, out)
    assert cpu < 120, f"{name}: {cpu:.0f} s of CPU"
    for o in R.load_config(name).outputs:
        assert (out / o).is_file() and (out / o).stat().st_size > 0, (name, o)
    rec = json.loads((out / f"reproduce-{name}.json").read_text())
    assert rec["smoke"] is True and rec["notes"] == R.render_notes(R.load_config(name))
    (_check_semclip if name.startswith("semclip") else _check_vlf_msc)(name, out)
    if name in FAST:  # rerun: every step resumes, no row recomputed
        tables = [p for p in out.rglob("*.csv") if "smoke-inputs" not in p.parts]
        before = {p: p.read_bytes() for p in tables}
        assert main(["reproduce", name, "--smoke", "--out", str(out)]) == 0
        assert {p: p.read_bytes() for p in tables} == before


def test_smoke_dry_run_and_refusals(tmp_path, capsys):
    out = tmp_path / "dry"
    assert main(["reproduce", "semclip-table1", "--smoke", "--dry-run", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "--train-steps 2 " in text and str(out / "smoke-inputs" / "data" / "imagenet-val") in text
    assert "# note: From the paper" in text and not (out / "smoke-inputs").exists()
    raw = json.loads((R.CONFIG_DIR / "semclip-table1.json").read_text())
    for smoke, match in (({"data": {"imagenet-val": "nope"}}, "unknown recipe 'nope'"),
                         ({"models": {"blip2": "tiny-blip2"}}, "not an input"), ({"set": "x"}, "list of strings")):
        with pytest.raises(ValueError, match=match):
            R.ReproConfig.from_dict(dict(raw, smoke=smoke))
    no_smoke = tmp_path / "plain.json"
    no_smoke.write_text(json.dumps({k: v for k, v in raw.items() if k != "smoke"}))
    assert main(["reproduce", str(no_smoke), "--smoke", "--out", str(tmp_path / "x")]) == 2
    assert "has no smoke section" in capsys.readouterr().err
