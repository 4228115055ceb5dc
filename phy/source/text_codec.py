"""7-bit ASCII text <-> bit codec for the digital separation baseline.

Format
------
* Each character is 7 bits, most significant first (``ord(ch) < 128``).
* The bit string of a text is zero-padded at the end to a multiple of ``block_size`` (default 4,
  one Hamming(7,4) information block); :meth:`TextCodec.num_bits` gives the padded length.
* Batches: shorter texts are right-padded with ``pad_char`` (default ``" "``) to the longest text
  *before* conversion, so every row has the same length; the true lengths are returned and
  :meth:`TextCodec.decode_batch` cuts every row back to its own length.

Decoding never raises on corrupted bits: every 7-bit value that is not a printable ASCII
character (``0x20``..``0x7E``) or one of ``keep_controls`` (default ``"\\n\\t"``) becomes
``replacement`` (default ``"?"``), so the decoded text always has the requested length.
Input values are thresholded at 0.5 (anything not 0/1, NaN included, counts as 0 unless >= 0.5).

Example
-------
>>> codec = TextCodec()
>>> bits = codec.encode("Hi!")            # 21 bits -> padded to 24
>>> bits.shape
torch.Size([24])
>>> codec.decode(bits, num_chars=3)
'Hi!'
>>> bits[0] = 1 - bits[0]                 # 'H' = 1001000 -> 0001000 (a control char)
>>> codec.decode(bits, num_chars=3)
'?i!'
"""
from __future__ import annotations

import numbers
from typing import List, Optional, Sequence, Tuple

import torch

__all__ = ["TextCodec", "BITS_PER_CHAR"]

#: Bits per character (7-bit ASCII).
BITS_PER_CHAR = 7


class TextCodec:
    """Text <-> 7-bit ASCII bits, framed into blocks of ``block_size`` bits.

    Parameters
    ----------
    block_size : int
        The bit count is padded to a multiple of this (4 for Hamming(7,4); a code's ``k``).
    replacement : str
        One printable ASCII character that replaces invalid decoded characters.
    pad_char : str
        One character used to pad shorter texts of a batch.
    errors : ``"strict"`` (default) or ``"replace"``
        What :meth:`encode` does with a character it cannot represent (non-ASCII, or a control
        character not in ``keep_controls``): raise ``ValueError``, or send ``replacement``.
    keep_controls : str
        Control characters that are valid (encoded and decoded as themselves).

    Examples
    --------
    >>> codec = TextCodec(block_size=4)
    >>> bits = codec.encode("Hi")
    >>> bits.shape, codec.num_bits(2)             # 2 x 7 bits, padded to a multiple of 4
    (torch.Size([16]), 16)
    >>> codec.decode(bits, num_chars=2)
    'Hi'
    """

    def __init__(self, block_size: int = 4, replacement: str = "?", pad_char: str = " ",
                 errors: str = "strict", keep_controls: str = "\n\t"):
        if isinstance(block_size, bool) or not isinstance(block_size, numbers.Integral) or block_size < 1:
            raise ValueError(f"block_size must be a positive int, got {block_size!r}")
        for name, ch in (("replacement", replacement), ("pad_char", pad_char)):
            if not isinstance(ch, str) or len(ch) != 1 or not 0x20 <= ord(ch) <= 0x7E:
                raise ValueError(f"{name} must be one printable ASCII character, got {ch!r}")
        if errors not in ("strict", "replace"):
            raise ValueError(f"errors must be 'strict' or 'replace', got {errors!r}")
        if not isinstance(keep_controls, str) or any(ord(c) >= 32 for c in keep_controls):
            raise ValueError(f"keep_controls must be a string of ASCII control characters, got {keep_controls!r}")
        self.block_size = int(block_size)
        self.replacement = replacement
        self.pad_char = pad_char
        self.errors = errors
        self.keep_controls = keep_controls
        valid = torch.zeros(128, dtype=torch.bool)
        valid[0x20:0x7F] = True
        for c in keep_controls:
            valid[ord(c)] = True
        self._valid = valid

    # -- sizes --------------------------------------------------------------------------------
    def num_bits(self, num_chars: int) -> int:
        """Bits for ``num_chars`` characters after padding to a multiple of ``block_size``."""
        if isinstance(num_chars, bool) or not isinstance(num_chars, numbers.Integral) or num_chars < 0:
            raise ValueError(f"num_chars must be an int >= 0, got {num_chars!r}")
        raw = BITS_PER_CHAR * int(num_chars)
        return raw + (-raw) % self.block_size

    def is_valid(self, ch: str) -> bool:
        return len(ch) == 1 and ord(ch) < 128 and bool(self._valid[ord(ch)])

    # -- encoding -----------------------------------------------------------------------------
    def _codes(self, text: str) -> List[int]:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        out = []
        for i, ch in enumerate(text):
            if not self.is_valid(ch):
                if self.errors == "strict":
                    raise ValueError(f"text has a character the 7-bit codec cannot send at index {i}: {ch!r} "
                                     f"(use errors='replace' to send {self.replacement!r} instead)")
                ch = self.replacement
            out.append(ord(ch))
        return out

    def _to_bits(self, codes: torch.Tensor, dtype) -> torch.Tensor:
        shifts = torch.arange(BITS_PER_CHAR - 1, -1, -1)
        b = (codes.unsqueeze(-1) >> shifts) & 1
        b = b.reshape(*codes.shape[:-1], codes.shape[-1] * BITS_PER_CHAR)
        pad = (-b.shape[-1]) % self.block_size
        if pad:
            b = torch.nn.functional.pad(b, (0, pad))
        return b.to(dtype)

    def encode(self, text: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """One text -> bits ``[num_bits(len(text))]`` (0/1 of ``dtype``)."""
        codes = torch.tensor(self._codes(text), dtype=torch.int64).reshape(-1)
        return self._to_bits(codes, dtype)

    def encode_batch(self, texts: Sequence[str], dtype: torch.dtype = torch.float32
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Texts -> (bits ``[batch, num_bits(max_len)]``, lengths ``[batch]`` int64 in characters).

        Shorter texts are padded with ``pad_char`` up to the longest one.
        """
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise TypeError(f"texts must be a list of str, got {type(texts).__name__}")
        if len(texts) == 0:
            raise ValueError("texts must not be empty")
        codes = [self._codes(t) for t in texts]
        lengths = torch.tensor([len(c) for c in codes], dtype=torch.int64)
        width = int(lengths.max())
        pad = ord(self.pad_char)
        mat = torch.tensor([c + [pad] * (width - len(c)) for c in codes], dtype=torch.int64).reshape(len(texts),
                                                                                                   width)
        return self._to_bits(mat, dtype), lengths

    # -- decoding -----------------------------------------------------------------------------
    def _chars(self, bits: torch.Tensor, num_chars: int) -> torch.Tensor:
        b = (bits[..., : num_chars * BITS_PER_CHAR] >= 0.5).to(torch.int64)
        b = b.reshape(*bits.shape[:-1], num_chars, BITS_PER_CHAR).cpu()
        weights = 2 ** torch.arange(BITS_PER_CHAR - 1, -1, -1)
        codes = (b * weights).sum(-1)
        repl = ord(self.replacement)
        return torch.where(self._valid[codes], codes, torch.full_like(codes, repl))

    def _check_bits_arg(self, bits, ndim: int) -> torch.Tensor:
        if not isinstance(bits, torch.Tensor):
            raise TypeError(f"bits must be a torch.Tensor, got {type(bits).__name__}")
        if bits.is_complex() or bits.dim() != ndim:
            raise ValueError(f"bits must be a real tensor with {ndim} dimension(s), got dtype {bits.dtype} "
                             f"shape {tuple(bits.shape)}")
        return bits.detach()

    def decode(self, bits: torch.Tensor, num_chars: Optional[int] = None) -> str:
        """Bits ``[L]`` -> text of exactly ``num_chars`` characters (default ``L // 7``).

        Never raises on corrupted bit values; raises ``ValueError`` only if ``L < 7 * num_chars``.
        """
        bits = self._check_bits_arg(bits, 1)
        if num_chars is None:
            num_chars = bits.shape[-1] // BITS_PER_CHAR
        if isinstance(num_chars, bool) or not isinstance(num_chars, numbers.Integral) or num_chars < 0:
            raise ValueError(f"num_chars must be an int >= 0, got {num_chars!r}")
        if BITS_PER_CHAR * num_chars > bits.shape[-1]:
            raise ValueError(f"{num_chars} characters need {BITS_PER_CHAR * num_chars} bits, got {bits.shape[-1]}")
        return "".join(map(chr, self._chars(bits, int(num_chars)).tolist()))

    def decode_batch(self, bits: torch.Tensor, lengths) -> List[str]:
        """Bits ``[batch, L]`` and per-text lengths (``[batch]`` ints) -> list of texts."""
        bits = self._check_bits_arg(bits, 2)
        lengths = [int(v) for v in (lengths.tolist() if isinstance(lengths, torch.Tensor) else lengths)]
        if len(lengths) != bits.shape[0]:
            raise ValueError(f"lengths has {len(lengths)} entries for a batch of {bits.shape[0]}")
        width = max(lengths) if lengths else 0
        if min(lengths, default=0) < 0 or BITS_PER_CHAR * width > bits.shape[-1]:
            raise ValueError(f"lengths (max {width}) need {BITS_PER_CHAR * width} bits, got {bits.shape[-1]}")
        codes = self._chars(bits, width).tolist()
        return ["".join(map(chr, row[:n])) for row, n in zip(codes, lengths)]

    def __repr__(self) -> str:
        return (f"TextCodec(block_size={self.block_size}, replacement={self.replacement!r}, "
                f"pad_char={self.pad_char!r}, errors={self.errors!r})")
