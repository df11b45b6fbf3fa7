"""Run storage: one place for where a run's files live, local directory or cloud URI.

Role in the flow: train/graph/tune -> **storage**. Ray Train writes checkpoints under
`<storage_path>/<run name>/checkpoint_*`; we write the run outputs (mixture.jsonl, summary.json, ...)
next to them through pyarrow filesystems, so `s3://` and `gs://` work like a local path and a job
survives losing the node it started on. Every write is atomic for local paths (temporary file, then
`os.replace`); on object stores a single PUT is atomic already.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pyarrow.fs as pafs


def is_uri(path: str) -> bool:
    return "://" in path


class RunStorage:
    """Files of one run under `<storage_path>/<name>`."""

    def __init__(self, storage_path: str, name: str) -> None:
        self.storage_path, self.name = storage_path, name
        if is_uri(storage_path):
            self.filesystem, base = pafs.FileSystem.from_uri(storage_path.rstrip("/"))
            self.base = f"{base}/{name}"
        else:
            self.filesystem = None
            self.base = str(Path(storage_path).expanduser().resolve() / name)

    @property
    def is_local(self) -> bool:
        return self.filesystem is None

    def local_path(self) -> Path:
        return Path(self.base)

    def train_storage_path(self) -> str:
        """What to give `ray.train.RunConfig(storage_path=...)` (absolute for local storage)."""
        return self.storage_path if not self.is_local else str(Path(self.base).parent)

    def uri(self, relative: str) -> str:
        if self.is_local:
            return str(Path(self.base) / relative) if relative else self.base
        prefix = self.storage_path.split("://")[0]
        return f"{prefix}://{self.base}/{relative}".rstrip("/")

    def exists(self, relative: str) -> bool:
        if self.is_local:
            return (Path(self.base) / relative).exists()
        return self.filesystem.get_file_info(f"{self.base}/{relative}").type != pafs.FileType.NotFound

    def list_directories(self, prefix: str) -> list[str]:
        if self.is_local:
            base = Path(self.base)
            return sorted(p.name for p in base.glob(f"{prefix}*") if p.is_dir()) if base.is_dir() else []
        selector = pafs.FileSelector(self.base, allow_not_found=True)
        return sorted(
            info.base_name
            for info in self.filesystem.get_file_info(selector)
            if info.type == pafs.FileType.Directory and info.base_name.startswith(prefix)
        )

    def read_text(self, relative: str) -> str:
        if self.is_local:
            return (Path(self.base) / relative).read_text()
        with self.filesystem.open_input_stream(f"{self.base}/{relative}") as stream:
            return stream.read().decode()

    def write_text(self, relative: str, text: str) -> str:
        return self.write_bytes(relative, text.encode())

    def write_bytes(self, relative: str, payload: bytes) -> str:
        if self.is_local:
            target = Path(self.base) / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(target, payload)
            return str(target)
        target = f"{self.base}/{relative}"
        self.filesystem.create_dir(target.rsplit("/", 1)[0], recursive=True)  # no-op on object stores
        with self.filesystem.open_output_stream(target) as stream:
            stream.write(payload)
        return self.uri(relative)


def atomic_write_bytes(target: Path, payload: bytes) -> None:
    """Write to a temporary file in the same directory, then rename over the target."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
