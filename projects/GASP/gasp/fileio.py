"""Crash-safe file writing: every file GASP writes goes through here.

Data goes to a temporary file in the target folder, is flushed to disk and then renamed over
the target with ``os.replace`` (atomic on POSIX), so a crash leaves either the old file or the
complete new one, never half of one.
"""
import contextlib
import gzip
import io
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import IO, Iterator

import numpy as np


def _default_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_open(path, mode: str = 'wb') -> Iterator[IO]:
    """Open a temporary file next to ``path``; on a clean exit it replaces ``path``.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    if mode not in ('wb', 'w'):
        raise ValueError(f"atomic_open writes only ('wb' or 'w'), got mode={mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.part')
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _default_file_mode())  # mkstemp creates 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` so that a reader sees either the old file or the complete new one."""
    with atomic_open(path) as f:
        f.write(data)
    return Path(path)


def dump_json_atomic(obj, path, indent=None, sort_keys=False) -> Path:
    """JSON (gzip-compressed when ``path`` ends in ``.gz``), written atomically.

    ``indent=None`` writes compact JSON (for large ray files).
    """
    data = json.dumps(obj, indent=indent, sort_keys=sort_keys).encode('utf-8')
    if Path(path).suffix == '.gz':
        data = gzip.compress(data, mtime=0)
    return atomic_write_bytes(path, data)


def load_json(path):
    """Read a JSON file written by :func:`dump_json_atomic` (plain or ``.gz``)."""
    path = Path(path)
    opener = gzip.open if path.suffix == '.gz' else open
    with opener(path, 'rt') as f:
        return json.load(f)


def save_npz_atomic(path, **arrays: np.ndarray) -> Path:
    """Uncompressed ``.npz`` (fast to load), written atomically."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return atomic_write_bytes(path, buffer.getvalue())


def save_pickle_atomic(path, obj) -> Path:
    """A pickle (highest protocol), written atomically."""
    with atomic_open(path) as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
    return Path(path)
