"""SemCLIP's JSCC on real features that exist offline: MiniLM sentence embeddings (N = 384).

No CLIP weights can be downloaded here, but the JSCC is modality-agnostic, so this trains the
SNR-adaptive JSCC (contrastive loss, eq. 4) on the 384-d MiniLM embeddings of the pydoc corpus
(:func:`semantic.sentences.corpus_features`) at ``L = N/8 = 48`` complex channel uses and measures
*retrieval by transmission*: the received feature must find its own sentence among all sentences
(nearest original feature by cosine). Compared at the same 48 channel uses with

* ``analog-first96``: the first ``2L = 96`` feature dimensions sent as analog symbols
  (:class:`phy.link.analog.AnalogLink`, per-example power normalisation), matched against the first 96
  dimensions of every sentence;
* ``analog-pca96``: the 96 leading PCA coefficients (PCA fitted on the training sentences) sent the
  same way, matched in the PCA coefficient space;
* ``analog-pca96-white``: the same PCA coefficients whitened (unit variance each) before sending, a
  stronger linear analog scheme (not asked for; reported because it is the best linear baseline we know);
* ``jscc-noaf``: the same JSCC without AF modules (does not see the SNR), trained on the same SNR
  range: SemCLIP's Table I ablation on this data;
* ``jscc-fixed0dB``: the JSCC without AF modules trained at one SNR (``--fixed-snr-db``, 0 dB) and
  evaluated across the range (the classic fixed-SNR JSCC).

Two protocols: ``transductive`` (trained and evaluated on all sentences: the items are the
database, as in a retrieval-by-transmission task) and ``heldout`` (trained on 80 % of the
sentences, queries are the other 20 % transmitted, the database is still *all* sentences). Every
number is averaged over ``--repeats`` channel realisations. Writes a JSON and prints a table.

Run: ``OMP_NUM_THREADS=2 python benchmarks/bench_semclip_minilm.py --out benchmarks/results/bench_semclip_minilm.json``
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import semantic  # noqa: E402,F401  (torchvision shim first)
import torch  # noqa: E402

from phy.channel.registry import make_channel  # noqa: E402
from phy.link.analog import AnalogLink  # noqa: E402
from semantic.semclip import SemCLIPConfig, feature_retrieval_topk, train_jscc, transmit_tokens  # noqa: E402
from experiments.core.results import write_json_atomic  # noqa: E402


def pca_basis(x: torch.Tensor, k: int):
    """Mean ``[1, D]``, the ``k`` leading principal directions ``[D, k]`` and their std ``[k]``."""
    mean = x.mean(0, keepdim=True)
    _, s, v = torch.linalg.svd(x - mean, full_matrices=False)
    return mean, v[:k].T, s[:k] / max(1, x.shape[0] - 1) ** 0.5


def run_analog(link, payload, snr_db, repeats):
    outs = []
    for _ in range(repeats):
        outs.append(link(payload, snr_db=float(snr_db)).x_hat)
    return outs


def evaluate(feats, train_idx, query_idx, codecs, snrs, channel_name, repeats, seed, L):
    """Retrieval top-1/top-5 of every scheme for queries ``query_idx`` against all ``feats``."""
    res = {}
    mean, basis, std = pca_basis(feats[train_idx], 2 * L)
    db_first = feats[:, : 2 * L]
    db_pca = (feats - mean) @ basis
    db_white = db_pca / std
    q = feats[query_idx]
    targets = query_idx
    for snr in snrs:
        row = {}
        ch = make_channel(channel_name, seed=seed + 1000 + int(snr * 10))
        link = AnalogLink(ch, equalizer="mmse")
        for name, payload, db in (("analog-first96", q[:, : 2 * L], db_first),
                                  ("analog-pca96", (q - mean) @ basis, db_pca),
                                  ("analog-pca96-white", (q - mean) @ basis / std, db_white)):
            acc = [feature_retrieval_topk(r, db, targets) for r in run_analog(link, payload, snr, repeats)]
            row[name] = {"top1": sum(a[1] for a in acc) / repeats, "top5": sum(a[5] for a in acc) / repeats}
        for name, codec in codecs.items():
            acc = [feature_retrieval_topk(transmit_tokens(q, codec, ch, float(snr)), feats, targets)
                   for _ in range(repeats)]
            row[name] = {"top1": sum(a[1] for a in acc) / repeats, "top5": sum(a[5] for a in acc) / repeats}
        res[float(snr)] = row
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--channel-uses", type=int, default=48)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=2048, help="capped at the number of training sentences (full batch)")
    p.add_argument("--hidden-dim", type=int, default=256)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--temperature", type=float, default=0.02)
    p.add_argument("--train-snr", type=float, nargs=2, default=(-15.0, 10.0))
    p.add_argument("--snrs", type=float, nargs="+", default=[-15, -10, -5, 0, 5, 10])
    p.add_argument("--fixed-snr-db", type=lambda v: None if v.lower() == "none" else float(v), default=0.0,
                   help="also train a no-AF JSCC at this single SNR (the fixed-SNR ablation); 'none' to skip")
    p.add_argument("--channel", default="awgn")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--heldout-fraction", type=float, default=0.2)
    p.add_argument("--protocols", nargs="+", default=["transductive", "heldout"])
    p.add_argument("--max-sentences", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/bench_semclip_minilm.json")
    args = p.parse_args(argv)

    from semantic.sentences import corpus_features, load_pydoc_corpus

    t0 = time.time()
    feats = corpus_features(load_pydoc_corpus(max_sentences=args.max_sentences)).float()
    n, N = feats.shape
    L = args.channel_uses
    g = torch.Generator().manual_seed(args.seed)
    perm = torch.randperm(n, generator=g)
    n_test = int(round(n * args.heldout_fraction))
    splits = {"transductive": (torch.arange(n), torch.arange(n)),
              "heldout": (perm[n_test:].sort().values, perm[:n_test].sort().values)}
    report = {"n_sentences": n, "token_dim": N, "channel_uses": L, "channel": args.channel,
              "bandwidth_ratio_vs_token": L / N, "args": vars(args), "protocols": {}}
    for proto in args.protocols:
        train_idx, query_idx = splits[proto]
        codecs, histories = {}, {}
        variants = [("jscc-af", True, tuple(args.train_snr)), ("jscc-noaf", False, tuple(args.train_snr))]
        if args.fixed_snr_db is not None:
            variants.append((f"jscc-fixed{args.fixed_snr_db:g}dB", False, (args.fixed_snr_db, args.fixed_snr_db)))
        for name, use_af, train_range in variants:
            cfg = SemCLIPConfig(token_dim=N, channel_uses=L, hidden_dim=args.hidden_dim, use_af=use_af,
                                channel=args.channel, snr_train_range=train_range,
                                temperature=args.temperature, jscc_batch_size=args.batch_size,
                                jscc_lr=args.lr, jscc_steps=args.steps, seed=args.seed)
            t1 = time.time()
            codec, hist = train_jscc(feats[train_idx], cfg, progress=None)
            codecs[name] = codec
            histories[name] = {"final_loss": sum(hist[-100:]) / len(hist[-100:]), "train_s": time.time() - t1}
            print(f"[{proto}] trained {name}: {args.steps} steps in {time.time() - t1:.0f} s, "
                  f"final loss {histories[name]['final_loss']:.3f}", flush=True)
        res = evaluate(feats, train_idx, query_idx, codecs, args.snrs, args.channel, args.repeats, args.seed, L)
        report["protocols"][proto] = {"n_train": len(train_idx), "n_queries": len(query_idx),
                                      "n_database": n, "training": histories, "results": res}
        schemes = list(next(iter(res.values())).keys())
        print(f"\n{proto}: retrieval top-1 / top-5 of {len(query_idx)} queries among {n} sentences, "
              f"L={L} channel uses, {args.channel}")
        print("snr_db  " + "  ".join(f"{s:>16s}" for s in schemes))
        for snr, row in res.items():
            print(f"{snr:6.1f}  " + "  ".join(f"{row[s]['top1']:7.3f}/{row[s]['top5']:.3f}" for s in schemes))
    report["elapsed_s"] = time.time() - t0
    out = Path(args.out)
    write_json_atomic(out, report)
    print(f"\nwrote {out} ({report['elapsed_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
