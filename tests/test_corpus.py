"""The real-text corpus: line-aligned chunks, licence detection, a deterministic table of distinct
documents per source, and the installed packages really provide five sources.
Run: `.venv/bin/python -m pytest tests/test_corpus.py`.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from skillit_ray.cli import main
from skillit_ray.data.prepare.corpus import TextSource, build_corpus_table, chunk_text, is_license_file, read_utf8


def test_chunks_are_line_aligned_and_cover_the_text():
    text = "".join(f"line {index}\n" for index in range(100))
    chunks = chunk_text(text, chunk_characters=50, minimum_characters=0)
    assert "".join(chunks) == text and all(chunk.endswith("\n") for chunk in chunks)
    assert all(len(chunk) >= 50 for chunk in chunks[:-1])


def test_a_long_line_is_hard_split_and_short_tails_are_dropped():
    chunks = chunk_text("x" * 250 + "\ntail\n", chunk_characters=100, minimum_characters=20)
    assert [len(chunk) for chunk in chunks] == [100, 100, 56]
    assert chunk_text("short\n", chunk_characters=100, minimum_characters=20) == []


def test_license_files_are_recognized():
    assert is_license_file(Path("pkg/LICENSE")) and is_license_file(Path("pkg/COPYING.txt"))
    assert is_license_file(Path("x-1.0.dist-info/licenses/AUTHORS.md"))
    assert not is_license_file(Path("pkg/license.py")) and not is_license_file(Path("pkg/README.md"))


def test_the_table_is_deterministic_with_distinct_documents(tmp_path):
    directory = tmp_path / "files"
    directory.mkdir()
    for index in range(6):
        (directory / f"f{index}.txt").write_text("".join(f"file {index} line {line}\n" for line in range(80)))
    (directory / "copy.txt").write_text((directory / "f0.txt").read_text())
    sources = [TextSource("alpha", "test files", lambda: sorted(directory.glob("*.txt")), read_utf8)]
    counts = build_corpus_table(str(tmp_path / "a.parquet"), 20, 200, 50, 2, sources=sources)
    build_corpus_table(str(tmp_path / "b.parquet"), 20, 200, 50, 2, sources=sources)
    first, second = pq.read_table(tmp_path / "a.parquet"), pq.read_table(tmp_path / "b.parquet")
    assert first.equals(second) and counts == {"alpha": 20}
    texts = first.column("text").to_pylist()
    assert len(set(texts)) == len(texts) == 20


def test_the_installed_packages_provide_five_sources(tmp_path, capsys):
    assert main(["corpus", "--out", str(tmp_path / "corpus.parquet"), "--documents-per-source", "5"]) == 0
    table = pq.read_table(tmp_path / "corpus.parquet")
    assert sorted(set(table.column("source").to_pylist())) == [
        "c_headers", "configs", "licenses", "package_docs", "python",
    ]  # fmt: skip
    assert table.num_rows == 25 and "wrote" in capsys.readouterr().out
