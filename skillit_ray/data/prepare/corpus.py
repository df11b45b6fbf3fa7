"""`skillit-ray corpus`: a real-text multi-source table from text that ships with the installed packages.

Role in the flow: **corpus** -> `skillit-ray prepare table` -> train. It writes one parquet table with
columns `text` and `source` (skills = sources, as RedPajama's sources are), so the efficiency
benchmark, the README's "Bring your own data" and the tests have real text wherever the project is
installed. Every source is a set of files found through `sysconfig` (the standard library, the
interpreter's include directory, site-packages); nothing is downloaded. The text depends on what is
installed, so the table records where it looked.

    python        *.py of the standard library
    c_headers     *.h, *.hh, *.hpp, *.cuh under site-packages and the interpreter's include directory
    licenses      LICENSE*, LICENCE*, COPYING*, NOTICE* files and *.dist-info/licenses/*
    package_docs  the long description of *.dist-info/METADATA, *.md and *.rst under site-packages
    configs       *.json, *.yaml, *.yml, *.toml under site-packages

Documents: each file is cut into line-aligned chunks of about `chunk_characters` characters (a
long line is hard-split, short tails dropped). Files are visited in a seeded order; a first pass
keeps at most `max_chunks_per_file` chunks of each file (a seeded choice, for diversity) and a
second pass, for a scarce source, the rest of the visited files' chunks; identical documents are
kept once. Each source stops at `documents_per_source`. Same environment and arguments, same table.
"""

from __future__ import annotations

import hashlib
import sysconfig
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from skillit_ray.data.storage import write_file

LICENSE_PREFIXES = ("LICENSE", "LICENCE", "COPYING", "NOTICE")
NOT_LICENSE_SUFFIXES = {".py", ".pyc", ".pyi", ".so", ".json", ".html", ".js", ".h"}
HEADER_SUFFIXES = {".h", ".hh", ".hpp", ".cuh"}
CONFIG_SUFFIXES = {".json", ".yaml", ".yml", ".toml"}
DOCUMENTATION_SUFFIXES = {".md", ".rst"}
SKIPPED_DIRECTORY_NAMES = {"site-packages", "dist-packages", "__pycache__"}


@dataclass(frozen=True)
class TextSource:
    """One skill of the corpus: its name, what it holds, how to list its files and read one."""

    name: str
    description: str
    list_files: Callable[[], list[Path]]
    read_text: Callable[[Path], str | None]


def environment_directories() -> dict[str, Path]:
    """The stdlib, include and site-packages directories of the running interpreter."""
    paths = sysconfig.get_paths()
    return {key: Path(paths[key]) for key in ("stdlib", "include", "purelib", "platlib")}


def _walk_files(root: Path, skipped: set[str]) -> Iterator[Path]:
    """Every regular file under `root`, not following directory links, skipping directories by name."""
    stack = [root] if root.is_dir() else []
    while stack:
        try:
            entries = list(stack.pop().iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir() and not entry.is_symlink():
                if entry.name not in skipped:
                    stack.append(entry)
            elif entry.is_file():
                yield entry


def _site_package_files() -> Iterator[Path]:
    directories = environment_directories()
    for root in sorted({directories["purelib"], directories["platlib"]}):
        yield from _walk_files(root, {"__pycache__"})


def _sorted(paths) -> list[Path]:
    return sorted(set(paths), key=str)


def is_license_file(path: Path) -> bool:
    """LICENSE*/LICENCE*/COPYING*/NOTICE* (not code or data), or any file under a dist-info licenses folder."""
    parts = path.parts
    if any(
        part == "licenses" and index > 0 and parts[index - 1].endswith(".dist-info") for index, part in enumerate(parts)
    ):
        return True
    return path.name.upper().startswith(LICENSE_PREFIXES) and path.suffix.lower() not in NOT_LICENSE_SUFFIXES


def python_files() -> list[Path]:
    stdlib = environment_directories()["stdlib"]
    return _sorted(path for path in _walk_files(stdlib, SKIPPED_DIRECTORY_NAMES) if path.suffix == ".py")


def header_files() -> list[Path]:
    include = _walk_files(environment_directories()["include"], {"__pycache__"})
    return _sorted(path for path in [*_site_package_files(), *include] if path.suffix in HEADER_SUFFIXES)


def license_files() -> list[Path]:
    stdlib_license = environment_directories()["stdlib"] / "LICENSE.txt"
    found = [path for path in _site_package_files() if is_license_file(path)]
    return _sorted(found + ([stdlib_license] if stdlib_license.is_file() else []))


def documentation_files() -> list[Path]:
    return _sorted(
        path
        for path in _site_package_files()
        if not is_license_file(path)
        and (
            path.suffix.lower() in DOCUMENTATION_SUFFIXES
            or (path.name == "METADATA" and path.parent.name.endswith(".dist-info"))
        )
    )


def config_files() -> list[Path]:
    return _sorted(
        path for path in _site_package_files() if path.suffix.lower() in CONFIG_SUFFIXES and not is_license_file(path)
    )


def read_utf8(path: Path) -> str | None:
    """The file as UTF-8 text with Unix line ends, or None when it is unreadable, binary or empty."""
    try:
        payload = path.read_bytes()
    except OSError:
        return None
    if b"\x00" in payload:
        return None
    try:
        text = payload.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError:
        return None
    return text if text.strip() else None


def read_documentation(path: Path) -> str | None:
    """Markdown/reST as is; a METADATA file's long description (the body after the header block)."""
    text = read_utf8(path)
    if text is None or path.name != "METADATA":
        return text
    _, separator, body = text.partition("\n\n")
    return body if separator and body.strip() else None


def default_sources() -> list[TextSource]:
    """The five sources, in skill order."""
    return [
        TextSource("python", "*.py of the standard library", python_files, read_utf8),
        TextSource("c_headers", "C/C++ headers in site-packages and the include dir", header_files, read_utf8),
        TextSource("licenses", "LICENSE*/COPYING*/NOTICE* and dist-info licenses", license_files, read_utf8),
        TextSource("package_docs", "METADATA descriptions, *.md, *.rst", documentation_files, read_documentation),
        TextSource("configs", "*.json/*.yaml/*.yml/*.toml in site-packages", config_files, read_utf8),
    ]


def chunk_text(text: str, chunk_characters: int, minimum_characters: int) -> list[str]:
    """Consecutive line-aligned chunks of at least `chunk_characters` characters (long lines hard-split);
    a final chunk shorter than `minimum_characters` and whitespace-only chunks are dropped."""
    if chunk_characters < 1 or minimum_characters < 0:
        raise ValueError(f"chunk_characters={chunk_characters} must be >= 1 and minimum_characters >= 0")
    chunks: list[str] = []
    current: list[str] = []
    length = 0
    for line in text.splitlines(keepends=True):
        while len(line) > chunk_characters:  # a minified file: hard-split its long line
            head, line = line[: chunk_characters - length], line[chunk_characters - length :]
            chunks.append("".join([*current, head]))
            current, length = [], 0
        current.append(line)
        length += len(line)
        if length >= chunk_characters:
            chunks.append("".join(current))
            current, length = [], 0
    if length >= max(1, minimum_characters):
        chunks.append("".join(current))
    return [chunk for chunk in chunks if chunk.strip() and len(chunk) >= minimum_characters]


def source_documents(
    source: TextSource, count: int, chunk_characters: int, minimum_characters: int, max_chunks_per_file: int, seed: int
) -> list[str]:
    """Up to `count` distinct documents of one source, deterministic in (files, arguments, seed)."""
    files = source.list_files()
    salt = int.from_bytes(hashlib.sha256(source.name.encode()).digest()[:4], "little")
    order = np.random.default_rng([seed, salt]).permutation(len(files))
    seen: set[str] = set()
    documents: list[str] = []
    leftovers: list[list[str]] = []

    def add(chunks: list[str]) -> None:
        for chunk in chunks:
            digest = hashlib.sha256(chunk.encode()).digest()
            if digest not in seen and len(documents) < count:
                seen.add(digest)
                documents.append(chunk)

    for position, file_index in enumerate(order):
        if len(documents) >= count:
            break
        text = source.read_text(files[file_index])
        chunks = chunk_text(text, chunk_characters, minimum_characters) if text else []
        ranking = np.random.default_rng([seed, salt, position]).permutation(len(chunks))
        add([chunks[index] for index in sorted(ranking[:max_chunks_per_file].tolist())])
        leftovers.append([chunks[index] for index in sorted(ranking[max_chunks_per_file:].tolist())])
    for rest in leftovers:  # a scarce source: the rest of the chunks of the files visited, same order
        add(rest)
    return documents


def build_corpus_table(
    out: str,
    documents_per_source: int = 1650,
    chunk_characters: int = 1200,
    minimum_characters: int = 200,
    max_chunks_per_file: int = 8,
    seed: int = 0,
    sources: list[TextSource] | None = None,
) -> dict[str, int]:
    """Write the corpus as one parquet table (`text`, `source`, in source order); returns documents per source."""
    texts, names, counts = [], [], {}
    for source in sources or default_sources():
        documents = source_documents(
            source, documents_per_source, chunk_characters, minimum_characters, max_chunks_per_file, seed
        )
        if not documents:
            raise ValueError(f"source {source.name!r} ({source.description}) has no text in this environment")
        texts.extend(documents)
        names.extend([source.name] * len(documents))
        counts[source.name] = len(documents)
    looked_in = {key: str(value) for key, value in environment_directories().items()}
    table = pa.table({"text": pa.array(texts, pa.string()), "source": pa.array(names, pa.string())})
    table = table.replace_schema_metadata({"skillit_ray.corpus": str({"seed": seed, "looked_in": looked_in})})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    write_file(out, sink.getvalue().to_pybytes())
    return counts
