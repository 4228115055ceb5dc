"""Analog vs digital comparison: channel-use ledger, NMSE law, retrieval, quantiser error, resume, CLI."""
import math
import os

import pytest
import torch

import semantic  # noqa: F401  (CPU shim first)
from experiments.commands.compare import execute
from experiments.comparison import COLUMNS, CompareConfig, feature_metrics, run_comparison
from experiments.core.sources import load_source
from experiments.schemes import SchemeContext, make_scheme, split_indices
from phy.channel.registry import canonical_channel_spec, make_channel

RAY = canonical_channel_spec("rayleigh")  # the CSV key of the bare name: every parameter, defaults filled in

N_ITEMS = 256


@pytest.fixture(scope="module")
def minilm():
    """First 256 pydoc sentences with their MiniLM features (cached on disk)."""
    return load_source("pydoc-minilm", max_items=N_ITEMS)


def _ctx(source, budget, matched=True, bits=None, channel="awgn"):
    ctx = SchemeContext(source, budget, matched, "zf", torch.device("cpu"), bits, 8, 0.5, 0.1, None)
    ctx.channel = make_channel(channel, seed=0)
    return ctx


def _rows(source, **kw):
    return {(r["scheme"], r["channel"], r["snr_db"]): r
            for r in run_comparison(source, CompareConfig(**kw), progress=False)}


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------
def test_feature_metrics_limits():
    f = torch.randn(50, 16)
    m = feature_metrics(f, f, f)
    assert m == {"nmse": 0.0, "cosine": pytest.approx(1.0), "retrieval_top1": 1.0}
    # a constant estimate (e.g. the source mean after an outage) retrieves exactly one item: chance
    const = f.mean(0).expand_as(f)
    assert feature_metrics(f, const, f)["retrieval_top1"] == 1 / 50
    assert feature_metrics(f, -f, f)["cosine"] == pytest.approx(-1.0)
    assert feature_metrics(f, 2 * f, f)["nmse"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        feature_metrics(f, f[:, :3], f)


# --------------------------------------------------------------------------------------------
# Channel-use ledger: independent counts
# --------------------------------------------------------------------------------------------
def _ceil(a, b):
    return -(-a // b)


def _expected_uses(name, d, budget):
    """Independent count of complex channel uses per example (matched mode) and (bits, dims)."""
    if name.startswith("analog"):
        dims = min(d, 2 * budget)
        return _ceil(dims, 2), None, dims
    if name == "quant-ideal":
        return None
    _, code, mod = name.split("-")
    m = {"qpsk": 2, "16qam": 4}[mod]
    if code == "hamming74":
        cap = 4 * (budget * m // 7)
    elif code == "none":
        cap = budget * m
    else:
        cap = int(budget * m * 0.5)
    b = max(1, min(8, cap // d))
    dims = min(d, cap // b)
    while dims > 0:
        k = b * dims
        if code == "hamming74":
            uses = _ceil(7 * _ceil(k, 4), m)
        elif code == "none":
            uses = _ceil(k, m)
        else:
            k = max(k, 12)
            n = m * math.ceil(k / (0.5 * m))
            uses = n // m
        if uses <= budget:
            return uses, b, dims
        dims -= 1
    return 0, b, 0


def _text_uses(chars, m=4):
    return _ceil(7 * _ceil(7 * chars, 4), m)


@pytest.mark.parametrize("budget", [192, 100, 37])
def test_matched_channel_uses_equal_independent_count(minilm, budget):
    d = minilm.dim
    ctx = _ctx(minilm, budget)
    names = ["analog", "quant-hamming74-qpsk", "quant-hamming74-16qam", "quant-ldpc5g-qpsk",
             "quant-ldpc5g-16qam", "quant-none-qpsk"]
    for name in names:
        plan = make_scheme(name).plan(ctx, 0.0, ctx.channel)
        uses, b, dims = _expected_uses(name, d, budget)
        assert plan.channel_uses == uses, name
        assert plan.channel_uses <= budget
        assert plan.dims_sent == dims and (b is None or plan.bits_per_element == b), name
        assert plan.fits == (dims == d)
    # text: longest prefix whose ASCII + Hamming(7,4) + 16-QAM frame fits
    text = make_scheme("ascii-hamming74-16qam")
    plan = text.plan(ctx, 0.0, ctx.channel)
    cmax = max(c for c in range(0, 400) if _text_uses(c) <= budget)
    sent = [min(len(minilm.items[i]), cmax) for i in ctx.test_index.tolist()]   # the held-out items
    assert plan.extra["max_chars"] == cmax
    assert plan.channel_uses == max(_text_uses(c) for c in sent) <= budget
    assert plan.channel_uses_mean == pytest.approx(sum(_text_uses(c) for c in sent) / len(sent))
    # ideal code: the whole budget
    assert make_scheme("quant-ideal").plan(ctx, 10.0, ctx.channel).channel_uses == budget


def test_d384_budget192_examples_from_the_spec(minilm):
    ctx = _ctx(minilm, 192)
    p = make_scheme("quant-ldpc5g-16qam").plan(ctx, 0.0, ctx.channel)
    assert (p.bits_per_element, p.dims_sent, p.info_bits, p.channel_uses) == (1, 384, 384, 192)
    p = make_scheme("quant-hamming74-16qam").plan(ctx, 0.0, ctx.channel)
    assert (p.bits_per_element, p.dims_sent, p.channel_uses) == (1, 384, 7 * 96 // 4)  # 96 blocks -> 168 uses
    p = make_scheme("ascii-hamming74-16qam").plan(ctx, 0.0, ctx.channel)
    assert p.extra["max_chars"] == 62 and p.channel_uses == 191


def test_unmatched_reports_full_size(minilm):
    d = minilm.dim
    ctx = _ctx(minilm, 192, matched=False, bits=4)
    assert make_scheme("analog").plan(ctx, 0.0, ctx.channel).channel_uses == d // 2
    p = make_scheme("quant-hamming74-qpsk").plan(ctx, 0.0, ctx.channel)
    assert p.channel_uses == _ceil(7 * _ceil(4 * d, 4), 2) and p.dims_sent == d
    p = make_scheme("ascii-hamming74-16qam").plan(ctx, 0.0, ctx.channel)
    assert p.channel_uses == max(_text_uses(len(minilm.items[i])) for i in ctx.test_index.tolist()) > 192
    assert p.fits


def test_links_spend_what_the_plan_says(minilm):
    """run_comparison checks each link's own ledger against the plan; the CSV reports it."""
    src = minilm.subset(16)
    rows = _rows(src, schemes=["analog-zf", "quant-hamming74-qpsk", "quant-ldpc5g-16qam", "quant-ideal"],
                 channels=["awgn", "rayleigh"], snr_db=[5.0], budget=150)
    for (name, ch, snr), r in rows.items():
        exp = 150 if name == "quant-ideal" else _expected_uses(name, src.dim, 150)[0]
        assert r["channel_uses"] == exp <= 150, (name, ch)
        assert r["budget"] == 150 and r["matched"] is True


# --------------------------------------------------------------------------------------------
# Analog: NMSE law, retrieval vs SNR
# --------------------------------------------------------------------------------------------
def test_analog_nmse_follows_the_n0_law(minilm):
    from scipy.special import exp1

    snrs = [0.0, 10.0, 20.0, 40.0]
    rows = _rows(minilm, schemes=["analog-zf", "analog-mmse"], channels=["awgn", "rayleigh"], snr_db=snrs)
    for s in snrs:
        no = 10 ** (-s / 10)
        # per-example normalisation to unit symbol energy: ZF error per real = N0/2 * ||f||^2/(d/2)
        assert rows[("analog-zf", "awgn", s)]["nmse"] == pytest.approx(no, rel=0.03)
        assert rows[("analog-mmse", "awgn", s)]["nmse"] == pytest.approx(no / (1 + no), rel=0.03)
        # MMSE over Rayleigh: E[N0 / (|h|^2 + N0)] = N0 e^N0 E1(N0). At high SNR this mean is
        # dominated by rare deep fades: its Monte Carlo std over M symbols is sqrt(Var / M) with
        # E[(N0 / (|h|^2 + N0))^2] = N0 - N0^2 e^N0 E1(N0) (about 5 % of the mean at 40 dB here).
        row = rows[("analog-mmse", RAY, s)]
        mean = no * math.exp(no) * exp1(no)
        std = math.sqrt((no - no * mean - mean ** 2) / (N_ITEMS * row["channel_uses"]))
        assert row["nmse"] == pytest.approx(mean, rel=max(0.05, 5 * std / mean))
    assert rows[("analog-zf", "awgn", 40.0)]["nmse"] < 2e-4


def test_analog_nmse_odd_dimension():
    src = load_source("gaussian", n_items=4000, dim=7)
    rows = _rows(src, schemes=["analog-zf"], channels=["awgn"], snr_db=[3.0])
    no = 10 ** (-0.3)
    # 7 reals -> 4 complex uses (one zero pad that takes its share of the power)
    assert rows[("analog-zf", "awgn", 3.0)]["nmse"] == pytest.approx(no * 7 / 8, rel=0.03)
    assert rows[("analog-zf", "awgn", 3.0)]["channel_uses"] == 4


def test_analog_retrieval_vs_snr_matches_an_independent_simulation(minilm):
    snrs = [-30.0, -20.0, -15.0, -10.0, 0.0, 30.0]
    rows = _rows(minilm, schemes=["analog-zf"], channels=["awgn"], snr_db=snrs)
    f = minilm.features.double()
    g = torch.Generator().manual_seed(1234)
    n = f.shape[0]
    r = [rows[("analog-zf", "awgn", s)]["retrieval_top1"] for s in snrs]
    for s, got in zip(snrs, r):
        no = 10 ** (-s / 10)
        sigma = (no * f.square().sum(1, keepdim=True) / f.shape[1]).sqrt()  # per-real noise std
        ref = feature_metrics(f, f + sigma * torch.randn(f.shape, generator=g, dtype=torch.float64), f)
        p = (got + ref["retrieval_top1"]) / 2
        tol = 4 * math.sqrt(2 * p * (1 - p) / n) + 2 / n
        assert abs(got - ref["retrieval_top1"]) <= tol, (s, got, ref)
    assert r[-1] >= 0.99
    chance = 1 / n
    assert rows[("analog-zf", "awgn", -30.0)]["chance"] == pytest.approx(chance)
    assert r[0] < 0.05 < 0.9 < r[3]  # toward chance at -30 dB, high at -10 dB
    for lo, hi in zip(r, r[1:]):  # non-decreasing in SNR within Monte Carlo noise
        assert hi >= lo - 3 * math.sqrt(max(lo * (1 - lo), 1 / n) / n)


# --------------------------------------------------------------------------------------------
# Digital chain at high SNR = the quantiser alone
# --------------------------------------------------------------------------------------------
def test_digital_chain_reproduces_quantizer_error_at_high_snr(minilm):
    from phy.source.quantization import UniformQuantizer

    names = ["quant-ldpc5g-16qam", "quant-hamming74-qpsk", "quant-ideal", "quant-none-16qam"]
    rows = _rows(minilm, schemes=names, channels=["awgn"], snr_db=[40.0])
    train, test = split_indices(minilm.n_items, 0.8, 0)   # fitted on train, scored on the held-out items
    f = minilm.features[test]
    mean = minilm.features[train].mean(0)
    for name in names:
        r = rows[(name, "awgn", 40.0)]
        b, dims = r["bits_per_element"], r["dims_sent"]
        q = UniformQuantizer(b, clip=(r["quant_lo"], r["quant_hi"]))
        f_hat = mean.expand_as(f).clone()
        f_hat[:, :dims] = q(f[:, :dims])
        ref = feature_metrics(f, f_hat, minilm.features, test)
        assert r["ber"] == 0.0, name
        assert r["nmse"] == pytest.approx(ref["nmse"], rel=1e-5), name
        assert r["cosine"] == pytest.approx(ref["cosine"], rel=1e-5), name
        assert r["retrieval_top1"] == ref["retrieval_top1"], name
    # 40 dB AWGN: capacity floor(192 log2(1 + 1e4)) = 2551 bits -> 6 bits per element, all 384 sent
    ideal = rows[("quant-ideal", "awgn", 40.0)]
    assert ideal["bits_per_element"] == 2551 // 384 and ideal["dims_sent"] == 384 and ideal["outage_rate"] == 0


def test_ideal_code_capacity_and_outage(minilm):
    rows = _rows(minilm, schemes=["quant-ideal"], channels=["awgn", "rayleigh"], snr_db=[0.0, 5.0])
    aw = rows[("quant-ideal", "awgn", 0.0)]
    assert aw["info_bits"] == 192 and aw["dims_sent"] == 192 and aw["outage_rate"] == 0.0  # C = 1 bit/use
    aw5 = rows[("quant-ideal", "awgn", 5.0)]
    assert aw5["info_bits"] <= math.floor(192 * math.log2(1 + 10 ** 0.5))
    fixed = _rows(minilm, schemes=["quant-ideal"], channels=["rayleigh"], snr_db=[0.0, 5.0], ideal_outage=0.1)
    from phy.theory.capacity import rayleigh_ergodic_capacity

    for s in (0.0, 5.0):
        ray, ray10 = rows[("quant-ideal", RAY, s)], fixed[("quant-ideal", RAY, s)]
        # over i.i.d. Rayleigh uses the payload stays below the ergodic capacity: designed for the least expected
        # distortion (little outage), or for a fixed 10 % outage (--ideal-outage 0.1)
        assert ray["info_bits"] < 192 * rayleigh_ergodic_capacity(s) and ray["codeword_span"] == 3
        assert ray["outage_rate"] < 0.05
        assert ray10["info_bits"] < 192 * rayleigh_ergodic_capacity(s)
        assert abs(ray10["outage_rate"] - 0.1) < 0.07


# --------------------------------------------------------------------------------------------
# Text scheme
# --------------------------------------------------------------------------------------------
def test_text_scheme_error_free_at_high_snr(minilm):
    import sacrebleu

    src = minilm.subset(60)
    rows = _rows(src, schemes=["ascii-hamming74-16qam"], channels=["awgn"], snr_db=[40.0])
    r = rows[("ascii-hamming74-16qam", "awgn", 40.0)]
    _, test = split_indices(60, 0.8, 0)
    items = [src.items[i] for i in test.tolist()]
    cut = [s[:62] for s in items]
    emb = src.encoder(cut)
    cos = torch.nn.functional.cosine_similarity(emb, src.features[test]).mean().item()
    assert r["ber"] == 0.0 and r["ber_ci_lo"] == 0.0 and 0.0 < r["ber_ci_hi"] < 1e-3
    assert r["semantic_similarity"] == pytest.approx(cos, abs=1e-4) and r["cosine"] == r["semantic_similarity"]
    assert r["bleu"] == pytest.approx(sacrebleu.corpus_bleu(cut, [items]).score, abs=1e-6)
    assert r["bleu_ci_lo"] <= r["bleu"] <= r["bleu_ci_hi"]
    assert r["chars_sent"] == pytest.approx(sum(len(c) for c in cut) / 12)
    assert r["n_examples"] == 12 and r["n_train"] == 48


def test_text_scheme_skipped_for_sources_without_text():
    src = load_source("gaussian", n_items=16, dim=8)
    rows = run_comparison(src, CompareConfig(schemes=["analog", "ascii-hamming74-16qam"], snr_db=[0.0]),
                          progress=False)
    assert [r["scheme"] for r in rows] == ["analog", "ascii-hamming74-16qam"]
    assert rows[1]["status"] == "skipped: source has no sentences + encoder"


# --------------------------------------------------------------------------------------------
# Reproducibility, resume, CLI, bad inputs
# --------------------------------------------------------------------------------------------
def test_same_seed_same_csv_and_resume(tmp_path):
    src = load_source("gaussian", n_items=64, dim=32)
    kw = dict(schemes=["analog-zf", "quant-hamming74-qpsk", "quant-ideal"], channels=["awgn", "rayleigh"],
              seed=5)
    execute(src, CompareConfig(snr_db=[0.0, 10.0], **kw), str(tmp_path / "a"), progress=False)
    execute(src, CompareConfig(snr_db=[0.0, 10.0], **kw), str(tmp_path / "b"), progress=False)
    a = (tmp_path / "a" / "compare.csv").read_bytes()
    assert a == (tmp_path / "b" / "compare.csv").read_bytes()
    # "interrupted" run: one SNR point first, then the full list resumes and skips it
    execute(src, CompareConfig(snr_db=[10.0], **kw), str(tmp_path / "c"), progress=False)
    rows, _ = execute(src, CompareConfig(snr_db=[0.0, 10.0], **kw), str(tmp_path / "c"), progress=False)
    assert len(rows) == 12
    c = (tmp_path / "c" / "compare.csv").read_bytes()
    assert sorted(a.splitlines()) == sorted(c.splitlines())
    # other settings in the same directory are refused
    with pytest.raises(ValueError, match="other settings"):
        execute(src, CompareConfig(snr_db=[0.0], budget=7, **kw), str(tmp_path / "c"), progress=False)
    # another seed gives other noise
    other = run_comparison(src, CompareConfig(snr_db=[0.0], **dict(kw, seed=6)), progress=False)[0]
    first = next(r for r in csv_rows(tmp_path / "a") if r["scheme"] == other["scheme"]
                 and r["channel"] == other["channel"] and r["snr_db"] == "0.0")
    assert other["nmse"] != float(first["nmse"])


def csv_rows(path):
    from experiments.core.results import read_rows

    return read_rows(os.path.join(path, "compare.csv"))


def test_cli_writes_csv_plots_manifest(tmp_path):
    from experiments.cli import main

    out = tmp_path / "cmp"
    rc = main(["compare", "--source", "gaussian", "--max-items", "40", "--channel", "awgn,rayleigh",
               "--equalizer", "zf", "--snr-db=-10,10", "--schemes", "analog,quant-ldpc5g-16qam", "--out", str(out),
               "--no-progress"])
    assert rc == 0
    rows = csv_rows(out)
    assert len(rows) == 8
    for col in ("scheme", "channel", "snr_db", "channel_uses", "nmse", "cosine", "retrieval_top1", "fits", "note",
                "bits_per_element", "truncated_dims"):
        assert col in rows[0]
    assert list(rows[0]) == COLUMNS
    for f in ("retrieval_awgn.png", "cosine_awgn.png", "retrieval_rayleigh.png", "cosine_rayleigh.png",
              "manifest.json"):
        assert (out / f).stat().st_size > 0, f
    import json

    man = json.load(open(out / "manifest.json"))
    assert man["status"] == "finished" and man["result_settings"]["budget"] == 32
    # --no-match: full-size uses, matched false
    rc = main(["compare", "--source", "gaussian", "--max-items", "40", "--snr-db", "10", "--no-match", "--bits", "2",
               "--schemes", "quant-hamming74-qpsk", "--out", str(tmp_path / "nm"), "--no-progress"])
    assert rc == 0
    r = csv_rows(tmp_path / "nm")[0]
    assert r["matched"] == "false" and int(r["channel_uses"]) == _ceil(7 * _ceil(2 * 64, 4), 2)


def test_bad_inputs(tmp_path, capsys):
    from experiments.cli import main

    src = load_source("gaussian", n_items=8, dim=4)
    for bad in (dict(budget=0), dict(budget=-3), dict(budget=2.5), dict(equalizer="lms"), dict(channels=["mars"]),
                dict(schemes=["analog", "analog"]), dict(ldpc_rate=0.99), dict(snr_db=[]),
                dict(snr_db=[float("nan")])):
        with pytest.raises(ValueError):
            CompareConfig(**bad).validate(src.dim)
    with pytest.raises(ValueError, match="unknown scheme"):
        make_scheme("quant-turbo")
    with pytest.raises(ValueError, match="unknown code"):
        make_scheme("quant-turbo-qpsk")
    with pytest.raises(ValueError, match="modulation"):
        make_scheme("quant-ldpc5g-8psk")
    assert main(["compare", "--source", "no-such-source", "--out", str(tmp_path / "x")]) == 2
    assert "unknown source 'no-such-source'" in capsys.readouterr().err
    assert main(["compare", "--source", str(tmp_path / "missing.npy"), "--out", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["compare", "--budget", "0", "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit):
        main(["compare", "--budget", "many", "--out", str(tmp_path / "x")])
    assert main(["compare", "--source", "gaussian", "--schemes", "analog,warp", "--out", str(tmp_path / "x")]) == 2


def test_one_channel_object_per_kind_shared_by_every_scheme(monkeypatch):
    import phy.channel.registry

    made = []
    real = phy.channel.registry.make_channel

    def spy(name, **kw):
        ch = real(name, **kw)
        calls, depth = [], [0]

        def counted(method):  # count each transmission once (forward_equalized may call forward)
            def wrapper(x, *args, **kw):
                if depth[0] == 0:
                    calls.append(x.shape[-1])
                depth[0] += 1
                try:
                    return method(x, *args, **kw)
                finally:
                    depth[0] -= 1
            return wrapper

        ch.forward = counted(ch.forward)
        ch.forward_equalized = counted(ch.forward_equalized)
        made.append((name, ch, calls))
        return ch

    monkeypatch.setattr(phy.channel.registry, "make_channel", spy)
    src = load_source("gaussian", n_items=16, dim=16)
    run_comparison(src, CompareConfig(schemes=["analog-zf", "quant-hamming74-qpsk", "quant-ldpc5g-16qam",
                                               "quant-ideal"], channels=["awgn", "rayleigh"], snr_db=[0.0, 9.0],
                                      realizations=1), progress=False)
    assert [m[0] for m in made] == ["awgn", RAY]
    for name, _, calls in made:
        # per SNR: analog 8 uses, Hamming QPSK 7 (8 bits -> 2 blocks -> 14 code bits), LDPC 16-QAM 8,
        # ideal: codewords of ceil(512 / 8) = 64 examples: its design draws of 512 uses (AWGN: one exact value;
        # fading: 20000 draws in chunks of 4e6 // 512 = 7812) + the transmission (512 uses)
        design = [512] * (1 if name == "awgn" else 3)
        assert calls == [8, 8, 7, 7, 8, 8] + (design + [512]) * 2
        assert _expected_uses("quant-hamming74-qpsk", 16, 8)[0] == 7


def test_bad_device_exits_2_with_message(tmp_path, capsys):
    from experiments.cli import main

    rc = main(["compare", "--source", "gaussian", "--schemes", "analog", "--snr-db", "0", "--device", "nodevice",
               "--no-progress", "--out", str(tmp_path / "d")])
    assert rc == 2
    assert "--device 'nodevice'" in capsys.readouterr().err
    assert not (tmp_path / "d" / "compare.csv").exists()


def test_text_scheme_resume_gives_the_same_csv_with_a_batch_dependent_encoder(tmp_path):
    """A batched encoder's output depends slightly on its batch (MiniLM: ~1e-7); a resumed run must
    still write the rows an uninterrupted run writes (no embedding cache shared across points)."""
    from experiments.core.sources import FeatureSource

    def encoder(texts):
        rows = []
        for t in texts:
            g = torch.Generator().manual_seed(sum(ord(c) * (i + 1) for i, c in enumerate(t)) % (2 ** 31))
            rows.append(torch.randn(12, generator=g))
        return torch.stack(rows) + 1e-3 * len(texts)  # depends on the batch, like a real batched model

    items = ["a" * n + "b" * (n % 3) for n in range(1, 17)]
    src = FeatureSource("toy-text", encoder(items), items, encoder)
    kw = dict(schemes=["ascii-none-16qam"], channels=["awgn"], budget=64, seed=3)
    execute(src, CompareConfig(snr_db=[40.0, 12.0], **kw), str(tmp_path / "a"), progress=False)
    rows = csv_rows(tmp_path / "a")
    low = next(r for r in rows if r["snr_db"] == "12.0")
    assert 0.0 < float(low["ber"]) < 0.2  # some sentences garbled, others intact
    execute(src, CompareConfig(snr_db=[40.0], **kw), str(tmp_path / "b"), progress=False)
    execute(src, CompareConfig(snr_db=[40.0, 12.0], **kw), str(tmp_path / "b"), progress=False)
    assert (tmp_path / "a" / "compare.csv").read_bytes() == (tmp_path / "b" / "compare.csv").read_bytes()


def test_text_scheme_with_a_budget_below_one_character_falls_back_instead_of_crashing():
    """Budget 2 uses < the 4 uses of one ASCII character (7 bits -> 2 Hamming codewords -> 14 bits
    -> 4 16-QAM symbols): nothing is sent, the receiver uses the source mean, like the other schemes."""
    from experiments.core.sources import FeatureSource

    def enc(texts):
        return torch.stack([torch.full((4,), float(len(t))) + torch.arange(4.0) for t in texts])

    items = ["ab", "cde", "fghi", "jklmn", "o"]
    src = FeatureSource("toy-text", enc(items), items, enc)
    (row,) = run_comparison(src, CompareConfig(schemes=["ascii-hamming74-16qam"], snr_db=[10.0], budget=2),
                            progress=False)
    assert row["channel_uses"] == 0 and row["fits"] is False and row["chars_sent"] == 0.0
    train, test = split_indices(5, 0.8, 0)
    f = src.features[test]
    mean = src.features[train].mean(0, keepdim=True).expand_as(f)   # the receiver's training mean
    assert row["nmse"] == pytest.approx(float((f - mean).square().sum() / f.square().sum()))
    assert row["bleu"] == 0.0
