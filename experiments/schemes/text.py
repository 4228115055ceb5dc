"""Text schemes: :class:`TextScheme` (``ascii-<code>-<mod>``) sends the raw sentence as 7-bit ASCII through a
:class:`phy.link.digital.DigitalLink`; the received text is re-encoded by the source's encoder for the feature
metrics and scored with BLEU against the full sentence.
"""
from __future__ import annotations

import torch

from experiments.schemes.protocol import Plan, Received, Scheme

__all__ = ["TextScheme"]


class TextScheme(Scheme):
    """Raw text as 7-bit ASCII + code + QAM; the received text is re-encoded by the source encoder.

    Examples
    --------
    Needs text items (a source with an encoder, e.g. ``pydoc-minilm``): the received text is re-encoded.
    At a matched budget (here ``ceil(384 / 2) = 192`` uses) only the start of each sentence fits, so even
    error-free the BLEU against the full sentence stays well below 100:

    >>> import tempfile
    >>> from experiments.core.sources import load_source
    >>> from experiments.comparison import CompareConfig, run_comparison
    >>> src = load_source("pydoc-minilm", max_items=40, cache_dir=tempfile.mkdtemp())
    >>> cfg = CompareConfig(schemes=("ascii-hamming74-16qam",), snr_db=[20.0], realizations=1, text_max_items=8)
    >>> row = run_comparison(src, cfg, progress=False, log=lambda msg: None)[0]
    >>> row["scheme"], row["channel_uses"], 0 < row["bleu"] < 50
    ('ascii-hamming74-16qam', 191, True)
    """

    kind = "text"
    supports_grid = True
    supports_mimo = True   # DigitalLink's ledger counts num_tx streams per channel use

    def __init__(self, code: str = "hamming74", modulation: str = "16qam"):
        from phy.mapping.modulation import bits_per_symbol

        if code not in ("hamming74", "none"):
            raise ValueError(f"ascii-<code>-<mod>: code must be hamming74 or none (a fixed small block), got {code!r}")
        self.code_name = code
        self.modulation = modulation
        self.m = bits_per_symbol(modulation)
        self.name = f"ascii-{code}-{modulation}"

    def applies(self, source):
        if not source.has_text:
            return False, "source has no sentences + encoder"
        return True, ""

    def _codec_link(self, ctx, channel=None):
        from phy.link.digital import DigitalLink
        from phy.source.text_codec import TextCodec

        code = ctx.code(self.code_name, k=1) if self.code_name == "none" else ctx.code(self.code_name)
        link = DigitalLink(channel if channel is not None else ctx.channel, code=code, modulation=self.modulation)
        return TextCodec(block_size=code.k, errors="replace"), link

    def uses_for_chars(self, ctx, chars: int, _cl=None) -> int:
        """Channel uses of a sentence of ``chars`` characters (``DigitalLink.channel_uses``)."""
        codec, link = _cl or self._codec_link(ctx)
        return 0 if chars == 0 else link.channel_uses(codec.num_bits(chars))

    def max_chars(self, ctx) -> int:
        """Longest sentence prefix (characters) whose frame fits the budget."""
        cl = self._codec_link(ctx)
        c = 0
        while self.uses_for_chars(ctx, c + 1, cl) <= ctx.budget:
            c += 1
        return c

    def _index(self, ctx) -> torch.Tensor:
        """Held-out items sent (the first ``text_max_items`` of them)."""
        idx = ctx.test_index
        return idx[:ctx.text_max_items] if ctx.text_max_items is not None else idx

    def _items(self, ctx):
        return [ctx.source.items[i] for i in self._index(ctx).tolist()]

    def plan(self, ctx, snr_db, channel):
        items = self._items(ctx)
        lengths = [len(s) for s in items]
        if ctx.matched:
            cmax = self.max_chars(ctx)
            sent = [min(n, cmax) for n in lengths]
        else:
            cmax = max(lengths)
            sent = lengths
        cl = self._codec_link(ctx)
        table = {c: self.uses_for_chars(ctx, c, cl) for c in set(sent)}
        uses = [table[c] for c in sent]
        cut = sum(a < b for a, b in zip(sent, lengths))
        note = (f"{cut} of {len(items)} sentences cut to {cmax} chars" if cut else "full sentences")
        if len(items) < ctx.n_test:
            note += f"; first {len(items)} held-out sentences sent, retrieval among all {ctx.source.n_items}"
        return Plan(max(uses), cut == 0, info_bits=None, chars_sent=sum(sent) / len(sent),
                    channel_uses_mean=sum(uses) / len(uses), note=note,
                    extra={"sent_chars": sent, "max_chars": cmax})

    def transmit(self, ctx, plan, channel, snr_db, defer_encoding: bool = False):
        items = self._items(ctx)
        sent_chars = plan.extra["sent_chars"]
        texts = [s[:c] for s, c in zip(items, sent_chars)]
        if max(sent_chars) == 0:  # the budget carries no character: nothing sent, fallback estimate
            n = len(items)
            return Received(ctx.fallback.expand(n, ctx.dim).clone(), self._index(ctx), texts=[""] * n)
        codec, link = self._codec_link(ctx, channel)
        bits, lengths = codec.encode_batch(texts)
        bits = bits.to(ctx.device)
        out = link(bits, snr_db=float(snr_db))
        rx = codec.decode_batch(out.x_hat, lengths)
        n_bits = [7 * c for c in sent_chars]
        mask = torch.arange(bits.shape[1], device=bits.device).unsqueeze(0) < torch.tensor(n_bits,
                                                                                           device=bits.device)[:, None]
        errs = ((out.x_hat != bits) & mask).double().sum(1).cpu()
        ber = float(errs.sum() / mask.sum().clamp_min(1))
        feats = None if defer_encoding else ctx.encode_texts(rx)
        return Received(feats, self._index(ctx), texts=rx, ber=ber, bit_errors=errs,
                        bits_sent=mask.double().sum(1).cpu())

    def transmit_realizations(self, ctx, plan, channel, snr_db, realizations):
        """Every realisation's received texts are re-encoded in one batch (their sorted distinct
        union, local to this point, so a resumed run encodes exactly the same batch)."""
        rxs = [self.transmit(ctx, plan, channel, snr_db, defer_encoding=True) for _ in range(realizations)]
        pending = [rx for rx in rxs if rx.features is None]
        if pending:
            texts = [t for rx in pending for t in rx.texts]
            feats = ctx.encode_texts(texts)
            pos = 0
            for rx in pending:
                rx.features = feats[pos:pos + len(rx.texts)]
                pos += len(rx.texts)
        return rxs
