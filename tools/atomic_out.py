"""Atomic file output for the golden generators (the Python side of models/atomic_file.h).

    with atomic_path("fixtures/x/golden.json") as tmp:
        write tmp (any writer that takes a path: open(), safetensors' save_file, ...)

The temporary file sits in the destination folder; on success it is fsynced and renamed over the
target, so a killed generator leaves the old file or none, never a partial one. On an exception
the temporary file is removed and the exception propagates. Tested by tools/test_atomic_out.py.
"""
from __future__ import annotations

import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_path(path):
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".tmp.", dir=folder)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text_atomic(path, text, encoding="utf-8"):
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding=encoding) as f:
            f.write(text)
