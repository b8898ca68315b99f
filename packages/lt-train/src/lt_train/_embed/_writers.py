"""Writers of the embedding files, fed batch by batch so memory does not grow with the
dataset.

Each writer writes into an open binary file (the temporary file that becomes ``out``):

- ``torch``: ``torch.save({"filenames": list[str], "embeddings": Tensor(N, D) float32})``;
  the embeddings go to a raw scratch file next to ``out`` as they come and are memory-mapped
  for the final save, so only the file names stay in memory.
- ``csv``: ``filename,embedding_0,...,embedding_{D-1}``, one row per image, streamed.
- ``lightly_csv``: ``filenames,embedding_0,...,embedding_{D-1},labels`` (labels 0), streamed.
- ``parquet``: columns ``filename`` (string) and ``embedding`` (fixed-size list of D
  float32), one row group per :data:`CHUNK_ROWS` images (needs pyarrow).
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
import os
import secrets
from pathlib import Path
from typing import IO, Any, Protocol

import torch

from lt_train._atomic import TEMP_MARKER

__all__ = ["CHUNK_ROWS", "EMBED_FORMATS", "EmbeddingWriter", "check_writer", "open_writer"]

#: The formats of ``embed``.
EMBED_FORMATS = ("torch", "csv", "lightly_csv", "parquet")

#: Rows per parquet row group.
CHUNK_ROWS = 8192

_PARQUET_INSTALL = 'pip install "lightly-train[parquet]"  (or: pip install pyarrow)'


class EmbeddingWriter(Protocol):
    def write(self, names: list[str], embeddings: torch.Tensor) -> None:
        """Append ``embeddings`` (float32, ``(B, D)``) of the images ``names``."""

    def close(self) -> None:
        """Finish the file."""

    def abort(self) -> None:
        """Remove scratch files after a failure."""


def check_writer(format: str) -> None:
    """Raise ImportError with the install command if ``format`` needs a missing package."""
    if format == "parquet" and not _available("pyarrow"):
        raise ImportError(f"format='parquet' needs pyarrow. Install it with: {_PARQUET_INSTALL}")


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def open_writer(format: str, f: IO[bytes], out: Path, dim: int) -> EmbeddingWriter:
    """A writer of ``format`` into ``f``; ``out`` is the final path (scratch files go next
    to it), ``dim`` the embedding size to declare if no image is written."""
    if format == "torch":
        return _TorchWriter(f, out)
    if format == "parquet":
        return _ParquetWriter(f, dim)
    return _CsvWriter(f, lightly=format == "lightly_csv")


class _CsvWriter:
    def __init__(self, f: IO[bytes], lightly: bool) -> None:
        self._text = io.TextIOWrapper(f, encoding="utf-8", newline="")
        self._csv = csv.writer(self._text)
        self._lightly = lightly
        self._header = False

    def _write_header(self, dim: int) -> None:
        columns = [f"embedding_{i}" for i in range(dim)]
        if self._lightly:
            self._csv.writerow(["filenames", *columns, "labels"])
        else:
            self._csv.writerow(["filename", *columns])
        self._header = True

    def write(self, names: list[str], embeddings: torch.Tensor) -> None:
        if not self._header:
            self._write_header(embeddings.shape[1])
        label = [0] if self._lightly else []
        self._csv.writerows([name, *row, *label] for name, row in zip(names, embeddings.tolist()))

    def close(self) -> None:
        if not self._header:  # no image: the header without embedding columns
            self._write_header(0)
        self._text.flush()
        self._text.detach()  # the caller flushes, syncs and renames the binary file

    def abort(self) -> None:
        with contextlib.suppress(ValueError):
            self._text.detach()


class _TorchWriter:
    def __init__(self, f: IO[bytes], out: Path) -> None:
        self._f = f
        self._raw_path = out.parent / (
            f".{out.name}{TEMP_MARKER}{os.getpid()}-{secrets.token_hex(4)}.embeddings"
        )
        self._raw = self._raw_path.open("xb")
        self._names: list[str] = []
        self._dim: int | None = None

    def write(self, names: list[str], embeddings: torch.Tensor) -> None:
        self._dim = embeddings.shape[1]
        self._raw.write(embeddings.to(torch.float32).contiguous().numpy().tobytes())
        self._names.extend(names)

    def close(self) -> None:
        self._raw.close()
        n, dim = len(self._names), self._dim
        try:
            if n == 0 or dim is None:
                embeddings = torch.empty(0)
            else:  # memory-mapped: pages are read while saving, not held
                embeddings = torch.from_file(
                    str(self._raw_path), shared=True, size=n * dim, dtype=torch.float32
                ).view(n, dim)
            torch.save({"filenames": self._names, "embeddings": embeddings}, self._f)
            del embeddings
        finally:
            self._raw_path.unlink(missing_ok=True)

    def abort(self) -> None:
        self._raw.close()
        self._raw_path.unlink(missing_ok=True)


class _KeepOpen(io.RawIOBase):
    """A view of a binary file that pyarrow may close without closing the file."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return self._f.write(data)

    def tell(self) -> int:
        return self._f.tell()


class _ParquetWriter:
    def __init__(self, f: IO[bytes], dim: int) -> None:
        import pyarrow as pa  # type: ignore[import-not-found,import-untyped,unused-ignore]

        self._pa = pa
        self._sink = _KeepOpen(f)
        self._dim = dim
        self._writer: Any = None
        self._names: list[str] = []
        self._chunks: list[torch.Tensor] = []

    def write(self, names: list[str], embeddings: torch.Tensor) -> None:
        self._names.extend(names)
        self._chunks.append(embeddings.to(torch.float32))
        if len(self._names) >= CHUNK_ROWS:
            self._flush()

    def _flush(self) -> None:
        import pyarrow.parquet as pq  # type: ignore[import-not-found,import-untyped,unused-ignore]

        pa = self._pa
        values = torch.cat(self._chunks) if self._chunks else torch.empty(0, self._dim)
        dim = values.shape[1] if self._chunks else self._dim
        if self._writer is None:
            schema = pa.schema(
                [("filename", pa.string()), ("embedding", pa.list_(pa.float32(), dim))]
            )
            self._writer = pq.ParquetWriter(self._sink, schema)
        flat = pa.array(values.reshape(-1).numpy(), type=pa.float32())
        table = pa.table(
            {
                "filename": pa.array(self._names, type=pa.string()),
                "embedding": pa.FixedSizeListArray.from_arrays(flat, dim),
            },
            schema=self._writer.schema,
        )
        self._writer.write_table(table)
        self._names, self._chunks = [], []

    def close(self) -> None:
        if self._names or self._writer is None:
            self._flush()
        self._writer.close()

    def abort(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
