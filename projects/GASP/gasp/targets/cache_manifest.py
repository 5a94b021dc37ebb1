"""The manifest of a target cache: what made it, checked before any cached file is used.

``<cache_dir>/manifest.json`` holds the settings that change the cached values (backbone,
weights hash, image size, reduction, ...). Every per-sweep file stores the manifest's
``cache_id`` (a hash of those settings), so a file left from another run is refused too.
"""
import hashlib
import json
import mmap
import struct
import zipfile
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..datasets.errors import AV2DataError
from ..fileio import dump_json_atomic

MANIFEST_NAME = 'manifest.json'


def cache_id_of(settings: dict) -> str:
    """Short stable hash of the settings (sorted JSON)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def read_manifest(cache_dir, what: str, make_it: str) -> dict:
    """Read ``<cache_dir>/manifest.json``.

    Args:
        cache_dir: the cache folder.
        what: the cache kind for messages ('DINO feature', 'missing-ray').
        make_it: the command that creates the cache (named in the error).

    Raises:
        AV2DataError: no manifest (the cache was never made, or the path is wrong).
    """
    path = Path(cache_dir) / MANIFEST_NAME
    if not path.is_file():
        raise AV2DataError(
            f'no {what} cache manifest',
            path=str(path),
            fix=f'create the cache with `{make_it}`, or fix the cache_dir in '
            'the config.')
    with open(path) as f:
        return json.load(f)


def check_settings(manifest: dict, expected: Optional[dict], cache_dir, make_it: str) -> None:
    """Refuse a cache whose settings differ from the expected ones (keys of ``expected``
    only; None values are not checked).

    Raises:
        AV2DataError: listing every differing setting and the command to rebuild.
    """
    settings = manifest.get('settings', {})
    wrong = {
        k: (settings.get(k), v)
        for k, v in (expected or {}).items() if v is not None and settings.get(k) != v
    }
    if wrong:
        listed = '; '.join(f'{k}: cache has {have!r}, config wants {want!r}'
                           for k, (have, want) in sorted(wrong.items()))
        raise AV2DataError(
            f'the cache was made with other settings ({listed})',
            path=str(Path(cache_dir) / MANIFEST_NAME),
            fix=f'point the config at a matching cache, or rebuild this one with '
            f'`{make_it}` (use a new --output-dir).')


def write_or_check_manifest(cache_dir, kind: str, settings: dict, make_it: str) -> str:
    """Start or resume a cache: write the manifest, or check that an existing one has the
    same settings (resuming with other settings would mix two caches).

    Returns:
        The cache id.
    """
    path = Path(cache_dir) / MANIFEST_NAME
    cache_id = cache_id_of(settings)
    if path.is_file():
        existing = read_manifest(cache_dir, kind, make_it)
        if existing.get('cache_id') != cache_id:
            check_settings(existing, settings, cache_dir, make_it)
            raise AV2DataError(
                'the cache manifest does not match these settings',
                path=str(path),
                fix='use a new --output-dir.')
        return cache_id
    dump_json_atomic(
        dict(kind=kind, cache_id=cache_id, settings=settings), path, indent=1, sort_keys=True)
    return cache_id


class NpzMembers:
    """The arrays of an ``.npz`` as :func:`numpy.savez` writes it, read without numpy's zip
    streaming: ``data[name]`` reads a member whole with one read (``np.load`` copies it
    through ``zipfile`` in small blocks and checks its CRC), ``data.memmap(name)``
    memory-maps it (a sample needs a few thousand rows of each sweep's arrays: mapping them
    and copying only those rows is much faster). Compressed members are read whole through
    ``zipfile`` either way. Arrays of Python objects are refused. Use as a context manager.
    """

    def __init__(self, path):
        self.path = Path(path)
        self._file = open(self.path, 'rb')
        self._map = None
        try:
            with zipfile.ZipFile(self._file) as archive:  # leaves the file open
                self._members = {
                    info.filename[:-len('.npy')]: info
                    for info in archive.infolist() if info.filename.endswith('.npy')
                }
        except BaseException:
            self._file.close()
            raise

    @property
    def files(self):
        """Member names (without ``.npy``)."""
        return list(self._members)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> 'NpzMembers':
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getitem__(self, name: str) -> np.ndarray:
        info = self._member(name)
        if info.compress_type != zipfile.ZIP_STORED:
            return self._read_compressed(info)
        self._seek_member(info)
        return np.lib.format.read_array(self._file, allow_pickle=False)

    def memmap(self, name: str) -> np.ndarray:
        """Member ``name`` mapped read-only (index it to read rows); the map stays open while
        an array of it lives."""
        info = self._member(name)
        if info.compress_type != zipfile.ZIP_STORED:
            return self._read_compressed(info)
        self._seek_member(info)
        version = np.lib.format.read_magic(self._file)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version[0] == 1 else np.lib.format.read_array_header_2_0)
        shape, fortran_order, dtype = read_header(self._file)
        if dtype.hasobject:
            raise ValueError(f'{self.path}: {name}.npy holds Python objects; refusing to load it')
        if self._map is None:  # one map of the file serves every member (np.memmap: one each)
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        flat = np.frombuffer(
            self._map, dtype=dtype, count=int(np.prod(shape)), offset=self._file.tell())
        return flat.reshape(shape, order='F' if fortran_order else 'C')

    def _member(self, name: str) -> zipfile.ZipInfo:
        if name not in self._members:
            raise KeyError(f'{name} is not a file in the archive')
        return self._members[name]

    def _read_compressed(self, info: zipfile.ZipInfo) -> np.ndarray:
        with zipfile.ZipFile(self.path) as archive, archive.open(info) as f:
            return np.lib.format.read_array(f, allow_pickle=False)

    def _seek_member(self, info: zipfile.ZipInfo) -> None:
        """Put the file at the start of a stored member's ``.npy`` bytes."""
        self._file.seek(info.header_offset)
        local_header = self._file.read(30)
        if local_header[:4] != b'PK\x03\x04':
            raise ValueError(f'{self.path}: broken zip entry for {info.filename}')
        name_len, extra_len = struct.unpack('<HH', local_header[26:30])
        self._file.seek(info.header_offset + 30 + name_len + extra_len)


def read_cached_sweep(path: Path, what: str, cache_id: str, log_id: str, timestamp_ns: int,
                      missing_fix: str, read: Callable[[Path, NpzMembers], dict]) -> dict:
    """Read one sweep's ``.npz`` of a cache: ``read(path, data)`` picks the arrays
    (``data[name]`` reads one, ``data.memmap(name)`` maps it; see :class:`NpzMembers`).

    Raises:
        AV2DataError: the file is absent (``missing_fix`` says what to do), unreadable, or
            from another cache than the manifest's ``cache_id``.
    """
    where = dict(log_id=log_id, path=str(path), timestamp_ns=int(timestamp_ns))
    if not path.is_file():
        raise AV2DataError(f'no cached {what} for this sweep', fix=missing_fix, **where)
    try:
        with NpzMembers(path) as data:
            out = read(path, data)
            file_id = str(data['cache_id'])
    except Exception as err:
        raise AV2DataError(
            f'cannot read cached {what} ({type(err).__name__}: {err})',
            fix='delete the file and re-run the extraction.',
            **where) from err
    if file_id != cache_id:
        raise AV2DataError(
            f'cached file belongs to another cache (cache_id {file_id}, manifest {cache_id})',
            fix='rebuild the cache in a new folder.',
            **where)
    return out
