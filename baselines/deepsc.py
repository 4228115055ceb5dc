"""DeepSC (Xie, Qin, Li, Juang, "Deep Learning Enabled Semantic Communication Systems", IEEE TSP 2021).

A Transformer text autoencoder trained end to end through the shared channel core::

    words -> embedding + positions -> Transformer encoder (semantic encoder)
          -> dense 2L reals per token -> L complex symbols per token          (channel encoder)
          -> per-example power normalisation -> phy channel (AWGN / Rayleigh / ...) -> equaliser
          -> dense layers back to d_model (+ residual, LayerNorm)            (channel decoder)
          -> Transformer decoder, greedy -> words                            (semantic decoder)

Conventions of this implementation
----------------------------------
* **Power.** Each sentence's block of symbols has mean ``|x|^2 = 1`` over the symbols actually
  sent (:func:`phy.utils.conventions.normalize_power`, corrected for padding), so one sentence's power
  never depends on the rest of the batch and ``snr_db`` is Es/N0 per complex channel use with
  ``N0/2`` per real dimension. The widely used public PyTorch port instead normalises the mean
  square over the whole batch (and only when it exceeds 1) and adds noise of standard deviation
  ``1/sqrt(2*snr)`` to each real output of unit mean square; read as complex symbols (two reals
  each) that is an Es/N0 up to 3 dB above the SNR it is labelled with, so its curves are not
  directly comparable with ours.
* **Channel uses.** A sentence of ``w`` words is sent as ``w + 2`` tokens (``<start> ... <end>``),
  each as ``symbols_per_token`` complex symbols: ``channel_uses = (w + 2) * symbols_per_token``
  (:meth:`DeepSC.channel_uses`). Padding positions are not sent (they are zero and the receiver
  ignores them: the frame length is assumed known). The cost therefore grows with the sentence
  length: for a comparison at matched channel uses, compare on the same sentences and report the
  mean channel uses per sentence (or fix ``symbols_per_token`` so that the mean matches).
* **Fading.** ``Rayleigh()`` draws ``h`` i.i.d. per symbol; the receiver equalises with
  :class:`phy.mimo.equalization.Equalizer` (MMSE by default, ZF selectable) before the channel decoder.
  A block-fading channel needs ``block_length`` to divide ``max_len * symbols_per_token``.
* **Text.** Sentences are normalised as in the DeepSC preprocessing of Europarl
  (:func:`preprocess_sentence`: ASCII-folded, lower-cased, ``. ! ?`` split off as tokens, every
  other non-letter replaced by a space) and split on whitespace. The vocabulary is built from the
  training corpus (:func:`build_vocab`) and saved in the checkpoint's ``config.json``.
* **Corpus.** :func:`load_corpus` reads a Europarl-style text file (one sentence per line, UTF-8;
  e.g. ``europarl-v7.fr-en.en`` or the concatenated ``txt/en/*.txt`` of the v7 release with the
  ``<...>`` markup lines dropped), keeping sentences of ``min_words..max_words`` words after
  normalisation (DeepSC used 4-30); with no path it uses the embedded pydoc corpus of
  :func:`semantic.sentences.load_pydoc_corpus`.
* The mutual-information regulariser of the paper is not implemented (cross-entropy only, as in
  the paper's main results).

Example
-------
>>> import torch
>>> from phy.channel.flat import AWGN
>>> corpus = ["the cat sat on the mat .", "a dog ran in the park ."]
>>> model = DeepSC.from_corpus(corpus, DeepSCConfig(d_model=32, num_heads=2, num_layers=1, d_ff=64,
...                                                  max_len=12, symbols_per_token=4))
>>> model.channel_uses("the cat sat on the mat .")   # (7 tokens + <start> + <end>) * 4
36
>>> out = model.transmit(corpus, AWGN(seed=0), snr_db=10.0)
>>> len(out)
2
"""
from __future__ import annotations

import math
import numbers
import os
import re
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

import semantic  # noqa: F401  (installs the torchvision shim before diffusers is imported)
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config

from phy.channel.base import Channel
from phy.utils.conventions import normalize_power
from phy.mimo.equalization import Equalizer
from phy.link.base import snr_to_no_tensor

__all__ = [
    "SPECIAL_TOKENS",
    "PAD_ID",
    "START_ID",
    "END_ID",
    "UNK_ID",
    "preprocess_sentence",
    "tokenize",
    "load_corpus",
    "build_vocab",
    "vocabulary_coverage",
    "DeepSCConfig",
    "DeepSC",
    "TrainResult",
    "train",
    "transmit",
    "channel_uses",
    "main",
]

#: The four special tokens every DeepSC vocabulary starts with.
SPECIAL_TOKENS = ("<pad>", "<start>", "<end>", "<unk>")
#: Ids of the special tokens (their positions in :data:`SPECIAL_TOKENS`).
PAD_ID, START_ID, END_ID, UNK_ID = 0, 1, 2, 3

PathLike = Union[str, os.PathLike]


# --------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------
def preprocess_sentence(sentence: str) -> str:
    """DeepSC-style normalisation: ASCII-fold, lower-case, split off ``. ! ?``, drop other symbols.

    Example
    -------
    >>> preprocess_sentence("Hello, World! It's 3 o'clock.")
    'hello world ! it s o clock .'
    """
    if not isinstance(sentence, str):
        raise TypeError(f"sentence must be a str, got {type(sentence).__name__}")
    s = unicodedata.normalize("NFKD", sentence).encode("ascii", "ignore").decode("ascii").lower()
    s = re.sub(r"([.!?])", r" \1 ", s)
    s = re.sub(r"[^a-z.!?]+", " ", s)
    return " ".join(s.split())


def tokenize(sentence: str) -> List[str]:
    """Words of :func:`preprocess_sentence`.

    Examples
    --------
    >>> tokenize("Hello, World!")
    ['hello', 'world', '!']
    """
    return preprocess_sentence(sentence).split()


def load_corpus(path: Optional[PathLike] = None, min_words: int = 4, max_words: int = 30,
                max_sentences: Optional[int] = None) -> List[str]:
    """Normalised sentences of ``min_words..max_words`` words, de-duplicated, in file order.

    Parameters
    ----------
    path : path, optional
        Europarl-format text file: one sentence per line, UTF-8; lines starting with ``<`` (the
        v7 release's markup) are skipped. A ``.csv`` file is read by its ``caption`` column (e.g.
        ``baseline_captions.csv`` of ``semcom vlf-msc-eval``: BLIP-2's captions, or a dataset's
        ``image,caption`` CSV). ``None``: the embedded pydoc corpus.
    min_words, max_words : int
        Length filter applied after :func:`preprocess_sentence` (DeepSC: 4 and 30).
    max_sentences : int, optional

    Examples
    --------
    >>> corpus = load_corpus(max_sentences=3)             # the embedded pydoc corpus
    >>> len(corpus), all(4 <= len(s.split()) <= 30 for s in corpus)
    (3, True)
    """
    if not (isinstance(min_words, int) and isinstance(max_words, int) and 1 <= min_words <= max_words):
        raise ValueError(f"need 1 <= min_words <= max_words, got {min_words!r}, {max_words!r}")
    if path is None:
        from semantic.sentences import load_pydoc_corpus

        lines = load_pydoc_corpus()
    else:
        p = Path(path).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"corpus path {str(p)!r} is not a file (expected one sentence per line)")
        if p.suffix.lower() == ".csv":
            import csv

            with open(p, encoding="utf-8", errors="replace", newline="") as f:
                reader = csv.DictReader(f)
                if "caption" not in (reader.fieldnames or []):
                    raise ValueError(f"corpus CSV {str(p)!r} has no 'caption' column (columns: {reader.fieldnames})")
                lines = [r["caption"] for r in reader if (r["caption"] or "").strip()]
        else:
            with open(p, encoding="utf-8", errors="replace") as f:
                lines = [ln for ln in f if ln.strip() and not ln.lstrip().startswith("<")]
    out, seen = [], set()
    for ln in lines:
        s = preprocess_sentence(ln)
        n = len(s.split())
        if min_words <= n <= max_words and s not in seen:
            seen.add(s)
            out.append(s)
            if max_sentences is not None and len(out) >= max_sentences:
                break
    if not out:
        raise ValueError(f"no sentence of {min_words}..{max_words} words in the corpus ({path or 'pydoc'})")
    return out


def build_vocab(sentences: Sequence[str], min_count: int = 1, max_size: Optional[int] = None) -> List[str]:
    """Special tokens followed by the corpus words, most frequent first (ties alphabetical).

    Examples
    --------
    >>> build_vocab(["a dog runs", "a cat runs", "a dog"])
    ['<pad>', '<start>', '<end>', '<unk>', 'a', 'dog', 'runs', 'cat']
    """
    if isinstance(sentences, str):
        raise TypeError("sentences must be a list of str, got a single str")
    counts = Counter(w for s in sentences for w in tokenize(s))
    words = sorted((w for w, c in counts.items() if c >= min_count and w not in SPECIAL_TOKENS),
                   key=lambda w: (-counts[w], w))
    if max_size is not None:
        words = words[: max(0, max_size - len(SPECIAL_TOKENS))]
    return list(SPECIAL_TOKENS) + words


def vocabulary_coverage(vocab: Sequence[str], sentences: Sequence[str]) -> float:
    """Share of the tokens of ``sentences`` (after :func:`preprocess_sentence` and :func:`tokenize`) that
    ``vocab`` holds: the others are sent as ``<unk>``. 1.0 for no tokens.

    Example
    -------
    >>> vocabulary_coverage(["<pad>", "a", "cat"], ["A cat.", "a dog"])
    0.6
    """
    if isinstance(sentences, str):
        raise TypeError("sentences must be a list of str, got a single str")
    words = set(vocab)
    toks = [w for s in sentences for w in tokenize(preprocess_sentence(s))]
    return sum(w in words for w in toks) / len(toks) if toks else 1.0


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------
@dataclass
class DeepSCConfig:
    """Hyper-parameters of :class:`DeepSC` (defaults: the paper's Europarl model).

    Examples
    --------
    >>> cfg = DeepSCConfig(d_model=32, num_layers=1)
    >>> cfg.d_model, cfg.num_layers, cfg.symbols_per_token
    (32, 1, 8)
    """

    max_len: int = 32             # tokens per sentence including <start> and <end>
    d_model: int = 128            # Transformer width
    num_heads: int = 8
    num_layers: int = 3           # encoder layers = decoder layers
    d_ff: int = 512               # Transformer feed-forward width
    dropout: float = 0.1
    symbols_per_token: int = 8    # complex channel uses per token (16 real outputs of the channel encoder)
    channel_hidden: int = 256     # channel-encoder hidden width
    decoder_hidden: int = 512     # channel-decoder hidden width


def _positional_encoding(n: int, d: int) -> torch.Tensor:
    pos = torch.arange(n, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(n, d)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)[:, : d // 2]
    return pe


def _check_repeat(repeat) -> int:
    if isinstance(repeat, bool) or not isinstance(repeat, numbers.Integral) or repeat < 1:
        raise ValueError(f"repeat (copies of every channel symbol) must be a positive int, got {repeat!r}")
    return int(repeat)


def _check_snr_arg(snr_db):
    if isinstance(snr_db, bool) or not isinstance(snr_db, (numbers.Real, torch.Tensor)):
        raise TypeError(f"snr_db must be a number or a tensor of per-sentence SNRs, got {type(snr_db).__name__}")


class DeepSC(ModelMixin, ConfigMixin):
    """DeepSC transceiver (see the module docstring for the block diagram and conventions).

    Parameters
    ----------
    vocab : list of str
        Token list; the first four must be :data:`SPECIAL_TOKENS`. Saved in ``config.json``.
    max_len, d_model, num_heads, num_layers, d_ff, dropout, symbols_per_token, channel_hidden, decoder_hidden
        See :class:`DeepSCConfig`.

    Notes
    -----
    Checkpoints are folders (``save_pretrained`` / ``from_pretrained``: ``config.json`` with the
    vocabulary + ``diffusion_pytorch_model.safetensors``).

    Examples
    --------
    >>> from phy.channel.flat import AWGN
    >>> vocab = build_vocab(["a dog runs on the beach", "a cat sleeps"])
    >>> model = DeepSC(vocab, max_len=12, d_model=16, num_heads=2, num_layers=1, d_ff=32, channel_hidden=16,
    ...                decoder_hidden=16).eval()
    >>> model.channel_uses("a dog runs")       # (3 words + <start> + <end>) x 8 symbols per token
    40
    >>> received = model.transmit(["a dog runs"], AWGN(seed=0), snr_db=10.0)   # untrained: some sentence
    >>> len(received), isinstance(received[0], str)
    (1, True)
    """

    config_name = "config.json"

    @register_to_config
    def __init__(self, vocab: List[str], max_len: int = 32, d_model: int = 128, num_heads: int = 8,
                 num_layers: int = 3, d_ff: int = 512, dropout: float = 0.1, symbols_per_token: int = 8,
                 channel_hidden: int = 256, decoder_hidden: int = 512):
        super().__init__()
        vocab = list(vocab)
        if tuple(vocab[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError(f"vocab must start with the special tokens {SPECIAL_TOKENS}, got {vocab[:4]}")
        if len(set(vocab)) != len(vocab):
            raise ValueError("vocab contains duplicate tokens")
        for name, v in (("max_len", max_len), ("d_model", d_model), ("num_heads", num_heads),
                        ("num_layers", num_layers), ("d_ff", d_ff), ("symbols_per_token", symbols_per_token),
                        ("channel_hidden", channel_hidden), ("decoder_hidden", decoder_hidden)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if max_len < 3:
            raise ValueError(f"max_len must be >= 3 (<start>, a word, <end>), got {max_len}")
        if d_model % num_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")
        self.vocab = vocab
        self.word_to_id: Dict[str, int] = {w: i for i, w in enumerate(vocab)}
        V, d, L = len(vocab), d_model, symbols_per_token
        self.embedding = nn.Embedding(V, d, padding_idx=PAD_ID)
        self.register_buffer("pos", _positional_encoding(max_len, d), persistent=False)
        self.drop = nn.Dropout(dropout)
        enc_layer = nn.TransformerEncoderLayer(d, num_heads, d_ff, dropout, batch_first=True)
        self.semantic_encoder = nn.TransformerEncoder(enc_layer, num_layers, enable_nested_tensor=False)
        self.channel_encoder = nn.Sequential(nn.Linear(d, channel_hidden), nn.ReLU(), nn.Linear(channel_hidden, 2 * L))
        self.channel_decoder = nn.Sequential(nn.Linear(2 * L, d), nn.ReLU(), nn.Linear(d, decoder_hidden), nn.ReLU(),
                                             nn.Linear(decoder_hidden, d))
        self.channel_decoder_in = nn.Linear(2 * L, d)
        self.channel_decoder_norm = nn.LayerNorm(d)
        dec_layer = nn.TransformerDecoderLayer(d, num_heads, d_ff, dropout, batch_first=True)
        self.semantic_decoder = nn.TransformerDecoder(dec_layer, num_layers)
        self.output = nn.Linear(d, V)

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_corpus(cls, sentences: Sequence[str], config: Optional[DeepSCConfig] = None, min_count: int = 1,
                    max_vocab: Optional[int] = None) -> "DeepSC":
        """A fresh model whose vocabulary is built from ``sentences``."""
        cfg = config or DeepSCConfig()
        if not isinstance(cfg, DeepSCConfig):
            raise TypeError(f"config must be a DeepSCConfig, got {type(cfg).__name__}")
        return cls(vocab=build_vocab(sentences, min_count=min_count, max_size=max_vocab), **asdict(cfg))

    # -- text <-> ids ----------------------------------------------------------------------
    @property
    def max_words(self) -> int:
        """Longest sentence (in words) the model sends: ``max_len - 2``."""
        return self.config.max_len - 2

    def encode_sentences(self, sentences: Sequence[str]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Sentences -> token ids ``[batch, T]`` int64 (``<start> w... <end> <pad>...``) and mask ``[batch, T]`` bool.

        ``T`` is the longest sentence in the batch (+2). Words outside the vocabulary map to
        ``<unk>``. A sentence longer than ``max_len - 2`` words raises ``ValueError``.
        """
        if isinstance(sentences, str) or not all(isinstance(s, str) for s in sentences):
            raise TypeError("sentences must be a list of str")
        if len(sentences) == 0:
            raise ValueError("sentences is empty")
        toks = [tokenize(s) for s in sentences]
        for i, t in enumerate(toks):
            if len(t) > self.max_words:
                raise ValueError(f"sentence {i} has {len(t)} words after normalisation; this model sends at most "
                                 f"max_len - 2 = {self.max_words} (filter the corpus or raise max_len)")
        T = max(len(t) for t in toks) + 2
        ids = torch.full((len(toks), T), PAD_ID, dtype=torch.long)
        for i, t in enumerate(toks):
            row = [START_ID] + [self.word_to_id.get(w, UNK_ID) for w in t] + [END_ID]
            ids[i, : len(row)] = torch.tensor(row)
        return ids, ids != PAD_ID

    def decode_ids(self, ids: Sequence[int]) -> str:
        """Token ids -> sentence (stops at ``<end>``; drops ``<start>``/``<pad>``)."""
        words = []
        for i in ids:
            i = int(i)
            if i == END_ID:
                break
            if i in (PAD_ID, START_ID):
                continue
            words.append(self.vocab[i])
        return " ".join(words)

    def channel_uses(self, sentence: Union[str, Sequence[str]], repeat: int = 1) -> Union[int, List[int]]:
        """Complex channel uses to send ``sentence``: ``repeat * (words + 2) * symbols_per_token``.

        A list of sentences gives a list of counts; ``repeat`` as in :meth:`channel_pass`.
        """
        repeat = _check_repeat(repeat)
        if isinstance(sentence, str):
            n = len(tokenize(sentence))
            if n > self.max_words:
                raise ValueError(f"sentence has {n} words; this model sends at most {self.max_words}")
            return repeat * (n + 2) * self.config.symbols_per_token
        return [self.channel_uses(s, repeat) for s in sentence]

    # -- blocks ----------------------------------------------------------------------------
    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        T = ids.shape[1]
        if T > self.config.max_len:
            raise ValueError(f"sequence length {T} exceeds max_len={self.config.max_len}")
        return self.drop(self.embedding(ids) * math.sqrt(self.config.d_model) + self.pos[:T])

    def encode(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Transmitter: ids ``[B, T]`` -> unit-power symbols ``[B, T*L]`` complex64 (zeros at padding).

        Each example has mean ``|x|^2 = 1`` over its ``mask.sum() * L`` transmitted symbols.
        """
        h = self.semantic_encoder(self._embed(ids), src_key_padding_mask=~mask)
        r = self.channel_encoder(h).float()                                   # [B, T, 2L]
        B, T, _ = r.shape
        z = torch.view_as_complex(r.reshape(B, T, -1, 2).contiguous())       # [B, T, L]
        z = z * mask.unsqueeze(-1)
        x, _ = normalize_power(z.reshape(B, -1))                              # mean over all T*L symbols = 1
        n_sent = mask.sum(-1, keepdim=True).to(r.dtype) * self.config.symbols_per_token
        return x * torch.sqrt(n_sent / x.shape[-1])                           # mean over sent symbols = 1

    def decode_memory(self, x_hat: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Channel decoder: equalised symbols ``[B, T*L]`` complex -> memory ``[B, T, d_model]``."""
        B, T = mask.shape
        r = torch.view_as_real(x_hat.reshape(B, T, -1).contiguous()).reshape(B, T, -1)
        r = r * mask.unsqueeze(-1)
        return self.channel_decoder_norm(self.channel_decoder_in(r) + self.channel_decoder(r))

    def channel_pass(self, x: torch.Tensor, channel: Channel, snr_db, equalizer: Union[str, Equalizer] = "mmse",
                     repeat: int = 1) -> torch.Tensor:
        """Send symbols ``[B, n]`` through ``channel`` at Es/N0 ``snr_db`` (number or ``[B]``) and equalise.

        ``repeat = r > 1``: the block is sent ``r`` times (``[x, x, ..., x]``, ``r * n`` channel uses, the copies
        of a symbol ``n`` uses apart) and the copies are maximum-ratio combined with perfect CSI
        (:func:`phy.mimo.equalization.combine_repetitions`) before the equaliser: an ``r``-fold SNR gain on AWGN
        (the ZF output's noise variance is ``N0 / r``), diversity on fading. The trained model is unchanged
        (what ``semcom vlf-msc-eval --budget matched`` uses to spend a larger budget without retraining).
        """
        from phy.mimo.equalization import combine_repetitions

        if not isinstance(channel, Channel):
            raise TypeError(f"channel must be a phy.channel.base.Channel, got {type(channel).__name__}")
        _check_snr_arg(snr_db)
        repeat = _check_repeat(repeat)
        eq = equalizer if isinstance(equalizer, Equalizer) else Equalizer(equalizer)
        if repeat > 1 and eq.csi != "perfect":
            raise ValueError(f"repeat={repeat} combines the copies with perfect CSI; the equalizer has "
                             f"csi={eq.csi!r}")
        no = snr_to_no_tensor(snr_db, x.shape[:1], 1.0, x.real.dtype, x.device)
        out = channel(x.repeat(1, repeat) if repeat > 1 else x, no)
        x_hat, _ = eq(combine_repetitions(out, repeat), channel.generator(x.device))
        return x_hat

    def _causal(self, n: int, device) -> torch.Tensor:
        return torch.triu(torch.ones(n, n, dtype=torch.bool, device=device), diagonal=1)  # True = masked

    def decode_logits(self, memory: torch.Tensor, mask: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Semantic decoder (teacher forcing): ``[B, T', vocab]`` logits for targets ``tgt_in`` ``[B, T']``."""
        T = tgt_in.shape[1]
        h = self.semantic_decoder(self._embed(tgt_in), memory, tgt_mask=self._causal(T, memory.device),
                                  tgt_key_padding_mask=tgt_in == PAD_ID, memory_key_padding_mask=~mask,
                                  tgt_is_causal=True)
        return self.output(h)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, channel: Channel, snr_db,
                equalizer: Union[str, Equalizer] = "mmse") -> torch.Tensor:
        """Teacher-forced pass: logits ``[B, T-1, vocab]`` predicting ``ids[:, 1:]``."""
        x = self.encode(ids, mask)
        memory = self.decode_memory(self.channel_pass(x, channel, snr_db, equalizer), mask)
        return self.decode_logits(memory, mask, ids[:, :-1])

    def loss(self, ids: torch.Tensor, mask: torch.Tensor, channel: Channel, snr_db,
             equalizer: Union[str, Equalizer] = "mmse") -> torch.Tensor:
        """Token cross-entropy (padding ignored)."""
        logits = self(ids, mask, channel, snr_db, equalizer)
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1),
                                           ignore_index=PAD_ID)

    @torch.no_grad()
    def greedy_decode(self, memory: torch.Tensor, mask: torch.Tensor, max_len: Optional[int] = None
                      ) -> torch.Tensor:
        """Greedy decoding: ids ``[B, <= max_len]`` starting with ``<start>``."""
        max_len = max_len or self.config.max_len
        B = memory.shape[0]
        out = torch.full((B, 1), START_ID, dtype=torch.long, device=memory.device)
        done = torch.zeros(B, dtype=torch.bool, device=memory.device)
        for _ in range(max_len - 1):
            nxt = self.decode_logits(memory, mask, out)[:, -1].argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, PAD_ID), nxt)
            out = torch.cat([out, nxt.unsqueeze(1)], dim=1)
            done |= nxt == END_ID
            if bool(done.all()):
                break
        return out

    @torch.no_grad()
    def transmit(self, sentences: Sequence[str], channel: Channel, snr_db, equalizer: Union[str, Equalizer] = "mmse",
                 batch_size: int = 64, repeat: int = 1) -> List[str]:
        """Send sentences over ``channel`` at Es/N0 ``snr_db`` and decode them greedily.

        Parameters
        ----------
        sentences : list of str
            Raw or normalised sentences (normalised with :func:`preprocess_sentence` here).
        channel : phy.channel.base.Channel
            The experiment's shared channel object.
        snr_db : float, or Tensor ``[len(sentences)]``
        equalizer : ``"mmse"`` (default) or ``"zf"`` or an :class:`~phy.mimo.equalization.Equalizer`
        repeat : int
            Send every symbol ``repeat`` times and combine the copies (:meth:`channel_pass`).

        Returns
        -------
        list of str
            Decoded sentences in normalised form; score them against
            ``[preprocess_sentence(s) for s in sentences]``.
        """
        _check_snr_arg(snr_db)
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if isinstance(sentences, str):
            raise TypeError("sentences must be a list of str, got a single str")
        if isinstance(snr_db, torch.Tensor) and snr_db.dim() > 0 and snr_db.numel() != len(sentences):
            raise ValueError(f"snr_db tensor must have one entry per sentence ({len(sentences)}), got "
                             f"shape {tuple(snr_db.shape)}")
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        out: List[str] = []
        try:
            for i in range(0, len(sentences), batch_size):
                ids, mask = self.encode_sentences(sentences[i:i + batch_size])
                ids, mask = ids.to(device), mask.to(device)
                snr = snr_db[i:i + batch_size].to(device) if isinstance(snr_db, torch.Tensor) and snr_db.dim() else snr_db
                x = self.encode(ids, mask)
                memory = self.decode_memory(self.channel_pass(x, channel, snr, equalizer, repeat), mask)
                dec = self.greedy_decode(memory, mask)
                out.extend(self.decode_ids(row[1:].tolist()) for row in dec.cpu())
        finally:
            self.train(was_training)
        return out


# --------------------------------------------------------------------------------------------
# Training (resumable)
# --------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    """Outcome of :func:`train`: ``losses[k]`` is the training loss of step ``k + 1``.

    Examples
    --------
    >>> from phy.channel.flat import AWGN
    >>> model = DeepSC(build_vocab(["a dog runs", "a cat sleeps"]), max_len=8, d_model=16, num_heads=2,
    ...                num_layers=1, d_ff=32, channel_hidden=16, decoder_hidden=16)
    >>> res = train(model, ["a dog runs", "a cat sleeps"], AWGN(seed=0), steps=2, batch_size=2)
    >>> isinstance(res, TrainResult), res.steps, len(res.losses), res.resumed_from
    (True, 2, 2, 0)
    """

    steps: int
    losses: List[float] = field(default_factory=list)
    resumed_from: int = 0
    checkpoint_dir: Optional[str] = None
    dropped_sentences: int = 0


def _snr_range(snr_range) -> Tuple[float, float]:
    if isinstance(snr_range, numbers.Real) and not isinstance(snr_range, bool):
        return float(snr_range), float(snr_range)
    try:
        lo, hi = (float(v) for v in snr_range)
    except (TypeError, ValueError):
        raise ValueError(f"snr_range must be a number or (low_db, high_db), got {snr_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ValueError(f"snr_range must be finite with low <= high, got {snr_range!r}")
    return lo, hi


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, str(tmp))
    os.replace(tmp, path)


def train(model: DeepSC, corpus: Union[None, PathLike, Sequence[str]], channel: Channel,
          snr_range=(0.0, 15.0), steps: int = 1000, batch_size: int = 64, lr: float = 1e-4,
          weight_decay: float = 0.0, equalizer: str = "mmse", device: Union[str, torch.device] = "cpu",
          seed: int = 0, checkpoint_dir: Optional[PathLike] = None, checkpoint_every: int = 500,
          log_every: int = 0, callback: Optional[Callable[[int, float], None]] = None) -> TrainResult:
    """Train ``model`` end to end through ``channel`` with an SNR drawn per sentence.

    Parameters
    ----------
    model : DeepSC
    corpus : list of str, a path (Europarl format, see :func:`load_corpus`) or None (pydoc corpus)
        Sentences longer than ``model.max_words`` words are dropped (counted in the result).
    channel : phy.channel.base.Channel
    snr_range : float or (low_db, high_db)
        Es/N0 drawn uniformly per sentence and step.
    steps : int
        Total number of optimiser steps (a resumed run continues up to this number).
    batch_size, lr, weight_decay : Adam settings (the paper: lr 1e-4).
    equalizer : ``"mmse"`` or ``"zf"``
    device : str or torch.device
    seed : int
        Seed of the batch/SNR sampling stream (the channel keeps its own stream).
    checkpoint_dir : path, optional
        If given, ``trainer_state.pt`` (model, optimiser, step, random states, losses) is written
        atomically every ``checkpoint_every`` steps and at the end, and the model is saved with
        ``save_pretrained`` into ``<checkpoint_dir>/model``. If ``trainer_state.pt`` exists, training
        resumes from it.
    log_every : int
        Print the mean loss every ``log_every`` steps (0: silent).
    callback : callable(step, loss), optional

    Examples
    --------
    >>> from phy.channel.flat import AWGN
    >>> corpus = ["a dog runs on the beach", "a cat sleeps on the sofa", "the bird sings"]
    >>> model = DeepSC(build_vocab(corpus), max_len=10, d_model=16, num_heads=2, num_layers=1, d_ff=32,
    ...                channel_hidden=16, decoder_hidden=16)
    >>> res = train(model, corpus, AWGN(seed=0), snr_range=(0.0, 10.0), steps=3, batch_size=3)
    >>> res.steps, len(res.losses), all(l > 0 for l in res.losses)
    (3, 3, True)
    """
    if not isinstance(model, DeepSC):
        raise TypeError(f"model must be a DeepSC, got {type(model).__name__}")
    if not isinstance(channel, Channel):
        raise TypeError(f"channel must be a phy.channel.base.Channel, got {type(channel).__name__}")
    for name, v in (("steps", steps), ("batch_size", batch_size), ("checkpoint_every", checkpoint_every)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    lo, hi = _snr_range(snr_range)
    if corpus is None or isinstance(corpus, (str, os.PathLike)):
        sentences = load_corpus(corpus, max_words=model.max_words)
    else:
        sentences = [preprocess_sentence(s) for s in corpus]
    keep = [s for s in sentences if 1 <= len(s.split()) <= model.max_words]
    dropped = len(sentences) - len(keep)
    if not keep:
        raise ValueError(f"no usable sentence in the corpus (need 1..{model.max_words} words)")
    device = torch.device(device)
    model.to(device).train()
    eq = Equalizer(equalizer)
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.98), eps=1e-8, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(int(seed))
    result = TrainResult(steps=0, checkpoint_dir=str(checkpoint_dir) if checkpoint_dir else None,
                         dropped_sentences=dropped)
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    state_file = ckpt / "trainer_state.pt" if ckpt else None
    start = 0
    if state_file is not None and state_file.is_file():
        from semantic.checkpoints import safe_torch_load

        st = safe_torch_load(state_file, what="DeepSC trainer state")
        if st["vocab"] != model.vocab:
            raise ValueError(f"checkpoint {str(state_file)!r} was trained with a different vocabulary")
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        gen.set_state(st["sampler_state"])
        channel.generator(device).set_state(st["channel_state"])
        start = int(st["step"])
        result.losses = list(st["losses"])
        result.resumed_from = start

    def save(step: int) -> None:
        if ckpt is None:
            return
        ckpt.mkdir(parents=True, exist_ok=True)
        _atomic_save({"step": step, "model": model.state_dict(), "optimizer": opt.state_dict(),
                      "sampler_state": gen.get_state(), "channel_state": channel.generator(device).get_state(),
                      "losses": result.losses, "vocab": model.vocab}, state_file)
        model.save_pretrained(str(ckpt / "model"))

    running = []
    for step in range(start, steps):
        idx = torch.randint(len(keep), (batch_size,), generator=gen).tolist()
        snr = lo + (hi - lo) * torch.rand(batch_size, generator=gen)
        ids, mask = model.encode_sentences([keep[i] for i in idx])
        loss = model.loss(ids.to(device), mask.to(device), channel, snr.to(device), eq)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lv = float(loss.detach())
        result.losses.append(lv)
        running.append(lv)
        if callback is not None:
            callback(step + 1, lv)
        if log_every and (step + 1) % log_every == 0:
            print(f"deepsc step {step + 1}/{steps} loss {sum(running) / len(running):.4f}", flush=True)
            running = []
        if (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            save(step + 1)
    if steps > start or (ckpt is not None and not state_file.is_file()):
        save(max(steps, start))
    result.steps = max(steps, start)
    model.eval()
    return result


def transmit(model: DeepSC, sentences: Sequence[str], channel: Channel, snr_db, **kw) -> List[str]:
    """Functional form of :meth:`DeepSC.transmit`.

    Examples
    --------
    >>> from phy.channel.flat import AWGN
    >>> model = DeepSC(build_vocab(["a dog runs"]), max_len=8, d_model=16, num_heads=2, num_layers=1, d_ff=32,
    ...                channel_hidden=16, decoder_hidden=16).eval()
    >>> len(transmit(model, ["a dog runs", "a dog"], AWGN(seed=0), snr_db=10.0))
    2
    """
    return model.transmit(sentences, channel, snr_db, **kw)


def channel_uses(model: DeepSC, sentence: Union[str, Sequence[str]]) -> Union[int, List[int]]:
    """Functional form of :meth:`DeepSC.channel_uses`.

    Examples
    --------
    >>> model = DeepSC(build_vocab(["a dog runs"]), max_len=8, d_model=16, num_heads=2, num_layers=1, d_ff=32,
    ...                channel_hidden=16, decoder_hidden=16)
    >>> channel_uses(model, ["a dog", "a dog runs"])       # (words + 2) x symbols_per_token
    [32, 40]
    """
    return model.channel_uses(sentence)


# --------------------------------------------------------------------------------------------
# Command line: python -m baselines.deepsc --out runs/deepsc [--corpus europarl.en] [--steps N]
# --------------------------------------------------------------------------------------------
def main(argv: Optional[Sequence[str]] = None) -> int:
    """Train a DeepSC checkpoint (resumable): ``python -m baselines.deepsc --out DIR``.

    The trained model is written to ``DIR/model`` (the folder ``--deepsc-checkpoint`` of
    ``semcom vlf-msc-eval`` expects); running the same command again resumes from
    ``DIR/trainer_state.pt``.

    Examples
    --------
    A two-step run on the embedded pydoc corpus (the paper trains for 20000 steps on Europarl):

    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> main(["--out", out, "--steps", "2", "--batch-size", "4", "--max-sentences", "16", "--log-every", "0"])
    DeepSC: 16 sentences, vocab 151, 2 steps (resumed from 0); mean channel uses per sentence 173.0; model in ...
    0
    >>> (Path(out) / "model" / "config.json").is_file()
    True
    """
    import argparse
    import json

    from phy.channel.registry import make_channel

    ap = argparse.ArgumentParser(prog="python -m baselines.deepsc", description=main.__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="checkpoint folder (model in OUT/model)")
    ap.add_argument("--corpus", default=None,
                    help="Europarl-format text file, or a CSV with a 'caption' column (default: embedded pydoc corpus)")
    ap.add_argument("--vocab-corpus", action="append", default=[],
                    help="more text/CSV files whose words join the vocabulary; repeatable. Never the evaluation "
                         "captions: that leaks test words into training (`semcom train-deepsc` builds the "
                         "vocabulary from the training corpus alone)")
    ap.add_argument("--max-sentences", type=int, default=None)
    ap.add_argument("--channel", default="awgn", help="phy.channel registry name (awgn, rayleigh, ...)")
    ap.add_argument("--snr-low", type=float, default=0.0)
    ap.add_argument("--snr-high", type=float, default=15.0)
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--equalizer", default="mmse", choices=("mmse", "zf"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint-every", type=int, default=500)
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--config", default=None,
                    help="JSON object overriding DeepSCConfig fields, e.g. '{\"symbols_per_token\": 4}'")
    args = ap.parse_args(argv)

    cfg = DeepSCConfig(**(json.loads(args.config) if args.config else {}))
    sentences = load_corpus(args.corpus, max_words=cfg.max_len - 2, max_sentences=args.max_sentences)
    out = Path(args.out)
    saved = out / "model" / "config.json"
    torch.manual_seed(args.seed)
    vocab_sentences = list(sentences)
    for extra in args.vocab_corpus:
        vocab_sentences += load_corpus(extra, min_words=1, max_words=10_000)  # every word, any length
    model = (DeepSC.from_pretrained(str(out / "model")) if saved.is_file()
             else DeepSC.from_corpus(vocab_sentences, cfg))
    channel = make_channel(args.channel, seed=args.seed)
    res = train(model, sentences, channel, snr_range=(args.snr_low, args.snr_high), steps=args.steps,
                batch_size=args.batch_size, lr=args.lr, equalizer=args.equalizer, device=args.device,
                seed=args.seed, checkpoint_dir=out, checkpoint_every=args.checkpoint_every,
                log_every=args.log_every)
    uses = model.channel_uses(sentences)
    print(f"DeepSC: {len(sentences)} sentences, vocab {len(model.vocab)}, {res.steps} steps "
          f"(resumed from {res.resumed_from}); mean channel uses per sentence {sum(uses) / len(uses):.1f}; "
          f"model in {out / 'model'}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
