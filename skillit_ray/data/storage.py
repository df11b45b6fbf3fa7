"""Storage: the one writer of every file the system produces, on local disk or s3:// / gs://.

Role in the flow: train/graph/tune/prepare/report -> **storage**. Ray Train writes checkpoints under
`<storage_path>/<run name>/checkpoint_*`; everything else (run outputs such as mixture.jsonl and
summary.json, graph.json/graph.npy/heatmap, tune's best_config.yaml and trials.json, plots) goes
through `RunStorage`, backed by pyarrow filesystems, so a cloud URI works like a local path and a job
survives losing the node it started on. Every local write is atomic (`atomic_write_bytes`: a
temporary file in the target directory, fsync, then `os.replace`); on object stores a single PUT is
atomic already.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pyarrow.fs as pafs


def is_uri(path: str | Path) -> bool:
    return "://" in str(path)


class RunStorage:
    """Files under one directory `<storage_path>/<name>` (local or a cloud URI)."""

    def __init__(self, storage_path: str, name: str) -> None:
        self.storage_path, self.name = str(storage_path), name
        if is_uri(storage_path):
            try:
                self.filesystem, base = pafs.FileSystem.from_uri(self.storage_path.rstrip("/"))
            except Exception as error:  # pyarrow raises OSError, ArrowInvalid, ... for auth, DNS, missing libraries
                raise ValueError(
                    f"storage {self.storage_path!r} is not reachable ({type(error).__name__}: "
                    f"{str(error).splitlines()[0]}); check the URI, credentials and network, or use a local directory"
                ) from None
            self.base = f"{base}/{name}" if name else base
        else:
            self.filesystem = None
            root = Path(storage_path).expanduser().resolve()
            self.base = str(root / name if name else root)

    @classmethod
    def at(cls, directory: str | Path) -> RunStorage:
        """The storage rooted exactly at `directory` (a local path or a URI)."""
        text = str(directory).rstrip("/")
        if is_uri(text):
            parent, _, name = text.rpartition("/")
            return cls(text, "") if parent.endswith(":/") else cls(parent, name)
        return cls(text, "")

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

    def list_directories(self, prefix: str, under: str = "") -> list[str]:
        """Names of the subdirectories of `under` (relative to the run) that start with `prefix`."""
        if self.is_local:
            base = Path(self.base) / under
            return sorted(p.name for p in base.glob(f"{prefix}*") if p.is_dir()) if base.is_dir() else []
        selector = pafs.FileSelector(f"{self.base}/{under}".rstrip("/"), allow_not_found=True)
        return sorted(
            info.base_name
            for info in self.filesystem.get_file_info(selector)
            if info.type == pafs.FileType.Directory and info.base_name.startswith(prefix)
        )

    def delete(self, relative: str) -> None:
        """Remove one file; a missing one is fine."""
        if self.is_local:
            (Path(self.base) / relative).unlink(missing_ok=True)
        elif self.exists(relative):
            self.filesystem.delete_file(f"{self.base}/{relative}")

    def check_reachable(self, key: str = "run.storage_path") -> None:
        """Fail now, naming the URI, when a cloud storage path cannot be listed (credentials, network, bucket)."""
        if self.is_local:
            return
        try:
            self.filesystem.get_file_info(pafs.FileSelector(self.base, allow_not_found=True))
        except Exception as error:  # pyarrow raises OSError and others for auth, DNS and missing buckets
            raise ValueError(
                f"{key}={self.storage_path!r} is not reachable ({type(error).__name__}: {error}); check the "
                "credentials and the network, or use a local directory"
            ) from None

    def read_bytes(self, relative: str) -> bytes:
        if self.is_local:
            return (Path(self.base) / relative).read_bytes()
        with self.filesystem.open_input_stream(f"{self.base}/{relative}") as stream:
            return stream.read()

    def read_text(self, relative: str) -> str:
        return self.read_bytes(relative).decode()

    def write_text(self, relative: str, text: str) -> str:
        return self.write_bytes(relative, text.encode())

    def write_bytes(self, relative: str, payload: bytes) -> str:
        """Write one file (atomically on local disk); returns its path or URI."""
        if self.is_local:
            target = Path(self.base) / relative
            atomic_write_bytes(target, payload)
            return str(target)
        target = f"{self.base}/{relative}"
        self.filesystem.create_dir(target.rsplit("/", 1)[0], recursive=True)  # no-op on object stores
        with self.filesystem.open_output_stream(target) as stream:
            stream.write(payload)
        return self.uri(relative)


def write_file(path: str | Path, payload: bytes) -> str:
    """Write one file given by its full path or URI, through `RunStorage` (atomic on local disk)."""
    text = str(path)
    directory, _, name = text.rpartition("/")
    return RunStorage.at(directory or ".").write_bytes(name, payload)


def read_file(path: str | Path) -> bytes:
    """Read one file given by its full path or URI."""
    text = str(path)
    directory, _, name = text.rpartition("/")
    return RunStorage.at(directory or ".").read_bytes(name)


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
