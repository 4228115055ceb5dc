"""The text scheme's received sentences are encoded once: a seeded run made again reads them from the MiniLM
cache folder and writes the same compare.csv."""
from __future__ import annotations

from experiments.cli import main
from semantic.sentences import MiniLMEncoder


def test_second_run_encodes_nothing_and_writes_the_same_csv(tmp_path, monkeypatch):
    calls = []
    real = MiniLMEncoder.encode

    def counting(self, sentences, batch_size=64):
        calls.append(len(sentences))
        return real(self, sentences, batch_size)

    monkeypatch.setattr(MiniLMEncoder, "encode", counting)
    cache = tmp_path / "cache"
    argv = ["compare", "--source", "pydoc-minilm", "--max-items", "40", "--schemes", "ascii-hamming74-16qam",
            "--snr-db", "0,20", "--realizations", "2", "--text-max-items", "4", "--cache-dir", str(cache),
            "--no-progress"]
    assert main(argv + ["--out", str(tmp_path / "a")]) == 0
    first = len(calls)
    assert first >= 2 and any((cache / "texts").iterdir())
    assert main(argv + ["--out", str(tmp_path / "b")]) == 0
    assert len(calls) == first                                  # every call came from the cache
    assert (tmp_path / "a" / "compare.csv").read_text() == (tmp_path / "b" / "compare.csv").read_text()
