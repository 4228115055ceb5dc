"""DeepSC baseline: power, channel uses, learning, greedy decoding beats chance, checkpoints, resume."""
from collections import Counter

import pytest
import torch

from baselines.deepsc import (DeepSC, DeepSCConfig, END_ID, PAD_ID, SPECIAL_TOKENS, START_ID, build_vocab,
                              load_corpus, preprocess_sentence, tokenize, train)
from phy.channel.flat import AWGN, Rayleigh
from semantic.metrics import bleu


TINY = DeepSCConfig(max_len=16, d_model=64, num_heads=4, num_layers=2, d_ff=128, dropout=0.0,
                    symbols_per_token=4, channel_hidden=64, decoder_hidden=128)


@pytest.fixture(scope="module")
def corpus():
    return load_corpus(None, max_words=14, max_sentences=64)


def test_preprocessing_and_vocab():
    assert preprocess_sentence("Hello, World!  It's 3 o'clock.") == "hello world ! it s o clock ."
    assert preprocess_sentence("Caf\u00e9 na\u00efve?") == "cafe naive ?"
    v = build_vocab(["b a a .", "a c ."])
    assert tuple(v[:4]) == SPECIAL_TOKENS
    assert v[4:] == ["a", ".", "b", "c"]  # by count (a: 3, .: 2), ties alphabetical


def test_load_corpus_europarl_file(tmp_path):
    f = tmp_path / "europarl.en"
    f.write_text("<CHAPTER ID=1>\nResumption of the session.\nI declare resumed the session of the European "
                 "Parliament.\nToo short.\nI declare resumed the session of the European Parliament.\n",
                 encoding="utf-8")
    assert load_corpus(f, min_words=4) == ["resumption of the session .",
                                           "i declare resumed the session of the european parliament ."]
    with pytest.raises(FileNotFoundError):
        load_corpus(tmp_path / "missing.txt")


def test_encode_sentences_and_channel_uses(corpus):
    m = DeepSC.from_corpus(corpus, TINY)
    ids, mask = m.encode_sentences(["the name is bound .", "the value ."])
    assert ids.shape == (2, 7) and ids[0, 0] == START_ID and ids[0, 6] == END_ID
    assert ids[1, 4] == END_ID and (ids[1, 5:] == PAD_ID).all() and mask.sum().item() == 7 + 5
    assert m.decode_ids(ids[0, 1:].tolist()) == "the name is bound ."
    assert m.channel_uses("The name is bound.") == (5 + 2) * TINY.symbols_per_token
    assert m.channel_uses(["a b", "a b c"]) == [16, 20]
    assert m.decode_ids(m.encode_sentences(["zzzunknownword the"])[0][0, 1:].tolist()) == "<unk> the"
    with pytest.raises(ValueError, match="max_len - 2"):
        m.encode_sentences([" ".join(["the"] * 15)])
    with pytest.raises(TypeError):
        m.encode_sentences("the name")


def test_per_example_power_is_one(corpus):
    m = DeepSC.from_corpus(corpus, TINY)
    ids, mask = m.encode_sentences(corpus[:8])
    x = m.encode(ids, mask)
    L = TINY.symbols_per_token
    assert x.dtype == torch.complex64 and x.shape == (8, ids.shape[1] * L)
    sent = mask.repeat_interleave(L, dim=1)
    p = (x.abs() ** 2 * sent).sum(-1) / sent.sum(-1)
    torch.testing.assert_close(p, torch.ones(8), atol=1e-5, rtol=0)
    assert (x[~sent] == 0).all()  # padding is not sent
    # an example's symbols do not depend on the rest of the batch
    x0 = m.encode(*m.encode_sentences(corpus[:1]))
    torch.testing.assert_close(x0[0], x[0, : x0.shape[1]], atol=1e-5, rtol=1e-5)


def test_one_step_lowers_loss_on_fixed_batch(corpus):
    m = DeepSC.from_corpus(corpus, TINY)
    ids, mask = m.encode_sentences(corpus[:16])
    ch = AWGN(seed=0)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    ch.reset(1)
    before = m.loss(ids, mask, ch, 20.0)
    opt.zero_grad()
    before.backward()
    opt.step()
    ch.reset(1)  # same noise realisation
    with torch.no_grad():
        after = m.loss(ids, mask, ch, 20.0)
    assert after.item() < before.item()
    assert before.item() == pytest.approx(torch.log(torch.tensor(float(len(m.vocab)))).item(), rel=0.25)


def test_rayleigh_pass_runs_with_both_equalizers(corpus):
    m = DeepSC.from_corpus(corpus, TINY)
    ids, mask = m.encode_sentences(corpus[:4])
    for eq in ("mmse", "zf"):
        loss = m.loss(ids, mask, Rayleigh(seed=0), torch.tensor([0.0, 5.0, 10.0, 15.0]), equalizer=eq)
        assert torch.isfinite(loss)
        loss.backward()


def test_short_training_beats_majority_baseline(corpus, tmp_path):
    torch.manual_seed(0)
    m = DeepSC.from_corpus(corpus, TINY)
    ch = AWGN(seed=0)
    res = train(m, corpus, ch, snr_range=(5.0, 20.0), steps=250, batch_size=32, lr=1e-3, seed=0)
    assert len(res.losses) == 250 and res.dropped_sentences == 0
    assert sum(res.losses[-20:]) / 20 < 0.5 * sum(res.losses[:20]) / 20
    refs = [preprocess_sentence(s) for s in corpus]
    out = m.transmit(corpus, ch, snr_db=20.0, batch_size=32)
    # chance level: always send the corpus' most frequent word, as many times as the reference has words
    top = Counter(w for s in refs for w in tokenize(s)).most_common(1)[0][0]
    majority = [" ".join([top] * len(s.split())) for s in refs]
    b_major = bleu(majority, refs, orders=(1,))["bleu1"].mean
    b_deepsc = bleu(out, refs, orders=(1,))["bleu1"].mean
    assert b_deepsc > b_major + 40.0, (b_deepsc, b_major)
    # token accuracy against the references (position by position)
    acc = sum(sum(a == b for a, b in zip(o.split(), r.split())) / len(r.split()) for o, r in zip(out, refs)) / len(refs)
    assert acc > 0.5, acc
    # at -30 dB the channel carries (almost) nothing: much worse than at 20 dB
    noisy = m.transmit(corpus, ch, snr_db=-30.0)
    assert bleu(noisy, refs, orders=(1,))["bleu1"].mean < b_deepsc - 20.0
    # checkpoint round trip (config.json with the vocabulary + safetensors)
    m.save_pretrained(tmp_path / "deepsc")
    m2 = DeepSC.from_pretrained(tmp_path / "deepsc")
    assert m2.vocab == m.vocab and m2.config.symbols_per_token == TINY.symbols_per_token
    for k, v in m.state_dict().items():
        assert torch.equal(m2.state_dict()[k], v), k
    ch.reset(5)
    a = m.transmit(corpus[:8], ch, 10.0)
    ch.reset(5)
    assert m2.transmit(corpus[:8], ch, 10.0) == a


def test_training_resumes_bit_exactly(corpus, tmp_path):
    small = corpus[:16]
    torch.manual_seed(0)
    straight = DeepSC.from_corpus(small, TINY)
    torch.manual_seed(0)
    resumed = DeepSC.from_corpus(small, TINY)
    kw = dict(snr_range=(0.0, 10.0), batch_size=4, lr=1e-3, seed=3)
    r_straight = train(straight, small, AWGN(seed=7), steps=6, **kw)
    ckpt = tmp_path / "ckpt"
    train(resumed, small, AWGN(seed=7), steps=3, checkpoint_dir=ckpt, **kw)
    assert (ckpt / "trainer_state.pt").is_file() and (ckpt / "model" / "config.json").is_file()
    torch.manual_seed(0)
    fresh = DeepSC.from_corpus(small, TINY)  # a new process would start from scratch weights
    r_resumed = train(fresh, small, AWGN(seed=7), steps=6, checkpoint_dir=ckpt, **kw)
    assert r_resumed.resumed_from == 3 and len(r_resumed.losses) == 6
    assert r_resumed.losses == pytest.approx(r_straight.losses, rel=1e-5)
    for k, v in straight.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[k], v, rtol=1e-5, atol=1e-6)


def test_bad_arguments(corpus):
    m = DeepSC.from_corpus(corpus, TINY)
    with pytest.raises(TypeError, match="channel"):
        m.transmit(corpus[:2], "awgn", 10.0)
    with pytest.raises(ValueError, match="snr_range"):
        train(m, corpus, AWGN(seed=0), snr_range=(10.0, 0.0), steps=1)
    with pytest.raises(ValueError, match="special tokens"):
        DeepSC(vocab=["a", "b"])
    with pytest.raises(ValueError, match="divisible"):
        DeepSC(vocab=list(SPECIAL_TOKENS), d_model=10, num_heads=4)


def test_caption_corpus_csv_and_vocabulary_from_the_evaluation_captions(tmp_path):
    """The DeepSC-on-captions recipe: train on a caption CSV, with the evaluation captions' words in the
    vocabulary; vlf-msc-eval's coverage check then passes (and fails for the default pydoc vocabulary)."""
    import json

    from baselines.deepsc import main as deepsc_main, vocabulary_coverage

    train_csv = tmp_path / "train.csv"
    train_csv.write_text("image,caption\na.png,a dog runs on the grass\nb.png,\"two cats sleep, on a sofa\"\n"
                         "c.png,a red car parked in the street\n")
    assert load_corpus(train_csv, min_words=4) == ["a dog runs on the grass", "two cats sleep on a sofa",
                                                   "a red car parked in the street"]
    bad = tmp_path / "bad.csv"
    bad.write_text("image,text\na.png,hello there my friend\n")
    with pytest.raises(ValueError, match="caption"):
        load_corpus(bad)
    evalcaps = tmp_path / "baseline_captions.csv"
    evalcaps.write_text("image,mode,name,caption\nx.png,blip2,x,a giraffe eats leaves\n")
    out = tmp_path / "deepsc"
    cfg = json.dumps(dict(max_len=16, d_model=16, num_heads=2, num_layers=1, d_ff=32, symbols_per_token=2,
                          channel_hidden=16, decoder_hidden=16))
    assert deepsc_main(["--out", str(out), "--corpus", str(train_csv), "--vocab-corpus", str(evalcaps),
                        "--steps", "1", "--batch-size", "2", "--config", cfg]) == 0
    vocab = json.loads((out / "model" / "config.json").read_text())["vocab"]
    assert vocabulary_coverage(vocab, ["a giraffe eats leaves", "two cats sleep on a sofa"]) == 1.0
    pydoc_vocab = DeepSC.from_corpus(load_corpus(None)).vocab
    assert vocabulary_coverage(pydoc_vocab, ["a giraffe eats leaves"]) == 0.5  # only "a" and "leaves"
