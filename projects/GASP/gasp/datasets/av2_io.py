"""Reading AV2 sensor-log files through the ``av2`` package, with errors that say where.

Layout of one log (``<root>/sensor/<split>/<log_id>/``): ``city_SE3_egovehicle.feather``,
``calibration/{egovehicle_SE3_sensor,intrinsics}.feather``, ``sensors/lidar/<ts>.feather``,
``sensors/cameras/<camera>/<ts>.jpg``, ``annotations.feather``, ``map/``.
"""
from pathlib import Path
from typing import Dict, Sequence, Tuple

import numpy as np
import torch
from av2.utils.io import read_feather
from pyarrow import feather as pa_feather

from ..geometry import pose_matrix
from .errors import AV2DataError

RING_CAMERAS = ('ring_front_center', 'ring_front_left', 'ring_front_right', 'ring_side_left',
                'ring_side_right', 'ring_rear_left', 'ring_rear_right')
LIDARS = ('up_lidar', 'down_lidar')
# The per-return fields of a sweep besides its coordinates, and their dtypes.
SWEEP_FIELDS = ('intensity', 'laser_number', 'offset_ns')
FIELD_DTYPES = dict(intensity=np.uint8, laser_number=np.uint8, offset_ns=np.int32)
POSE_COLUMNS = ('qw', 'qx', 'qy', 'qz', 'tx_m', 'ty_m', 'tz_m')
# laser_number 0-31 belong to the up lidar, 32-63 to the down lidar.
LASERS_PER_LIDAR = 32


def _read_table(path: Path, columns, log_id: str):
    if not path.is_file():
        raise AV2DataError('file is missing', log_id=log_id, path=str(path))
    try:
        table = read_feather(path)
    except Exception as err:  # pyarrow raises several types for corrupt files
        raise AV2DataError(
            f'cannot read feather file ({type(err).__name__}: {err})',
            log_id=log_id,
            path=str(path)) from err
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise AV2DataError(
            f'columns {missing} are missing (found {list(table.columns)})',
            log_id=log_id,
            path=str(path))
    return table


def lidar_path(log_dir: Path, timestamp_ns: int) -> Path:
    return log_dir / 'sensors' / 'lidar' / f'{timestamp_ns}.feather'


def camera_path(log_dir: Path, camera: str, timestamp_ns: int) -> Path:
    return log_dir / 'sensors' / 'cameras' / camera / f'{timestamp_ns}.jpg'


def list_lidar_timestamps(log_dir: Path) -> np.ndarray:
    """Sorted (T,) int64 lidar sweep timestamps of a log, from the file names."""
    return np.sort(
        np.array([int(p.stem) for p in (log_dir / 'sensors' / 'lidar').glob('*.feather')],
                 dtype=np.int64))


def list_camera_timestamps(log_dir: Path, camera: str) -> np.ndarray:
    """Sorted (T,) int64 image timestamps of one camera, from the file names."""
    folder = log_dir / 'sensors' / 'cameras' / camera
    return np.sort(np.array([int(p.stem) for p in folder.glob('*.jpg')], dtype=np.int64))


def read_city_from_ego(log_dir: Path) -> Tuple[np.ndarray, np.ndarray]:
    """Ego poses of a log.

    Returns:
        timestamps_ns: (T,) sorted int64.
        city_from_ego: (T, 4, 4) float64.
    """
    path = log_dir / 'city_SE3_egovehicle.feather'
    table = _read_table(path, ('timestamp_ns', ) + POSE_COLUMNS, log_dir.name)
    order = np.argsort(table['timestamp_ns'].to_numpy())
    values = table.loc[:, list(POSE_COLUMNS)].to_numpy(np.float64)[order]
    if not np.isfinite(values).all():
        bad = table['timestamp_ns'].to_numpy()[order][~np.isfinite(values).all(1)]
        raise AV2DataError(
            'non-finite ego pose', log_id=log_dir.name, path=str(path), timestamp_ns=int(bad[0]))
    return (table['timestamp_ns'].to_numpy(np.int64)[order],
            pose_matrix(values[:, :4], values[:, 4:]))


def read_ego_from_sensor(log_dir: Path) -> Dict[str, np.ndarray]:
    """Extrinsics of every sensor of a log: name -> (4, 4) ``ego_from_sensor``."""
    path = log_dir / 'calibration' / 'egovehicle_SE3_sensor.feather'
    table = _read_table(path, ('sensor_name', ) + POSE_COLUMNS, log_dir.name)
    values = table.loc[:, list(POSE_COLUMNS)].to_numpy(np.float64)
    poses = pose_matrix(values[:, :4], values[:, 4:])
    return {str(name): poses[i] for i, name in enumerate(table['sensor_name'])}


def read_intrinsics(log_dir: Path) -> Dict[str, dict]:
    """Pinhole intrinsics of every camera: name -> dict(fx, fy, cx, cy, width, height)."""
    path = log_dir / 'calibration' / 'intrinsics.feather'
    cols = ('sensor_name', 'fx_px', 'fy_px', 'cx_px', 'cy_px', 'width_px', 'height_px')
    table = _read_table(path, cols, log_dir.name)
    return {
        str(row.sensor_name):
        dict(
            fx=float(row.fx_px),
            fy=float(row.fy_px),
            cx=float(row.cx_px),
            cy=float(row.cy_px),
            width=int(row.width_px),
            height=int(row.height_px))
        for row in table.itertuples()
    }


def read_sweep(path: Path,
               log_id: str,
               fields: Sequence[str] = SWEEP_FIELDS,
               xyz_float32: bool = True) -> Dict[str, np.ndarray]:
    """Read one lidar sweep (ego frame at the sweep timestamp) and check it.

    This is the data loader's hot path: the Arrow table is read memory-mapped on the calling
    thread (a loader worker is one of many processes; Arrow's thread pool would start a
    thread per core in each), only the columns asked for are decompressed (a training sample
    needs neither ``offset_ns``, a third of a sweep's bytes, nor the future sweeps'
    ``intensity``), and they go straight to numpy (av2's ``read_feather`` builds a pandas
    frame first, which costs more than the read); ``tests/test_sweep_loading.py`` checks the
    result against av2's ``Sweep.from_feather``.

    Args:
        path: the sweep file.
        log_id: its log (for errors).
        fields: which of :data:`SWEEP_FIELDS` to read besides the coordinates.
        xyz_float32: False keeps ``xyz_ego`` in the file's dtype (AV2: float16), for a
            caller that uses a few of its rows: :func:`xyz_rows_float32` converts only them.

    Returns:
        dict with ``xyz_ego`` (N, 3) float32 and those of ``intensity`` (N,) uint8,
        ``laser_number`` (N,) uint8, ``offset_ns`` (N,) int32 that ``fields`` names.

    Raises:
        AV2DataError: unreadable or truncated file, wrong columns, no points, or
            non-finite coordinates.
    """
    timestamp_ns = int(path.stem) if path.stem.isdigit() else None
    if not path.is_file():
        raise AV2DataError(
            'lidar sweep file is missing', log_id=log_id, path=str(path), timestamp_ns=timestamp_ns)
    unknown = [name for name in fields if name not in SWEEP_FIELDS]
    if unknown:
        raise ValueError(f'unknown sweep fields {unknown}; choose from {SWEEP_FIELDS}')
    columns = ['x', 'y', 'z'] + list(fields)
    try:
        table = pa_feather.read_table(path, columns=columns, memory_map=True, use_threads=False)
    except Exception as err:  # pyarrow raises several types for corrupt files
        raise _unreadable_sweep(path, log_id, timestamp_ns, columns, err) from err
    if table.num_rows == 0:
        raise AV2DataError(
            'lidar sweep has no points', log_id=log_id, path=str(path), timestamp_ns=timestamp_ns)

    if xyz_float32:
        xyz = _float32_columns(table, ('x', 'y', 'z'))
    else:
        xyz = _stacked_columns(table, ('x', 'y', 'z'))
    if not _all_finite(xyz):
        count = int((~np.isfinite(xyz).all(1)).sum())
        raise AV2DataError(
            f'lidar sweep has {count} points with NaN or infinite coordinates',
            log_id=log_id,
            path=str(path),
            timestamp_ns=timestamp_ns)
    sweep = dict(xyz_ego=xyz)
    for name in fields:
        sweep[name] = _column(table, name).astype(FIELD_DTYPES[name], copy=False)
    return sweep


def _unreadable_sweep(path: Path, log_id: str, timestamp_ns, columns,
                      err: Exception) -> AV2DataError:
    """The error for a sweep file that a column read failed on: the columns it lacks, or
    why it cannot be read."""
    try:
        found = pa_feather.read_table(path, memory_map=True).column_names
    except Exception:  # the file itself is unreadable
        found = None
    missing = [c for c in columns if found is not None and c not in found]
    if missing:
        return AV2DataError(
            f'columns {missing} are missing (found {found})',
            log_id=log_id,
            path=str(path),
            timestamp_ns=timestamp_ns)
    return AV2DataError(
        f'cannot read feather file ({type(err).__name__}: {err})',
        log_id=log_id,
        path=str(path),
        timestamp_ns=timestamp_ns)


def _all_finite(xyz: np.ndarray) -> bool:
    """Whether no coordinate is NaN or infinite. numpy tests float16 element by element
    (~2 ns each); a float16 is finite unless its five exponent bits are all set."""
    if xyz.dtype == np.float16:
        exponent = np.bitwise_and(xyz.view(np.uint16), np.uint16(0x7C00))
        return bool(exponent.max() < 0x7C00)
    return bool(np.isfinite(xyz).all())


def xyz_rows_float32(xyz: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(M, 3) float32 rows of (N, 3) coordinates of any float dtype: the rows are taken
    first, so only they are converted (exact for float16 and float32, the float32 rounding
    of float64)."""
    taken = np.take(xyz, rows, axis=0)
    if taken.dtype == np.float16:
        return torch.from_numpy(taken).float().numpy()  # see _float32_columns
    return taken.astype(np.float32, copy=False)


def _column(table, name: str) -> np.ndarray:
    """One column as a numpy array in the file's dtype.

    Arrow's ``ChunkedArray.to_numpy`` converts through a slow generic path (0.25 ms for a
    96k-row float16 column); a column without nulls is taken chunk by chunk instead (a
    fresh, writable array). Nulls (pandas writes NaN as null) keep Arrow's conversion, which
    turns them into NaN for the finiteness check.
    """
    chunked = table.column(name)
    if chunked.null_count:
        return chunked.to_numpy()
    return np.concatenate([chunk.to_numpy() for chunk in chunked.chunks])


def _stacked_columns(table, names) -> np.ndarray:
    """(N, len(names)) from numeric columns, in their common dtype; each Arrow chunk is
    written into place (no per-column array to join first)."""
    columns = [table.column(name) for name in names]
    if any(chunked.null_count for chunked in columns):
        return np.stack([_column(table, name) for name in names], axis=1)
    dtype = np.result_type(*(chunked.type.to_pandas_dtype() for chunked in columns))
    out = np.empty((table.num_rows, len(names)), dtype)
    for i, chunked in enumerate(columns):
        start = 0
        for chunk in chunked.chunks:
            out[start:start + len(chunk), i] = chunk.to_numpy()
            start += len(chunk)
    return out


def _float32_columns(table, names) -> np.ndarray:
    """(N, len(names)) float32 from numeric columns; exact for float16 (AV2 stores x, y, z
    so). numpy converts float16 element by element (~2 ns each); torch's vectorised
    conversion is ten times faster."""
    out = np.empty((table.num_rows, len(names)), np.float32)
    out_t = torch.from_numpy(out)
    for i, name in enumerate(names):
        values = _column(table, name)
        if values.dtype == np.float16 and values.flags.writeable:
            out_t[:, i] = torch.from_numpy(values)
        else:
            out[:, i] = values
    return out


def read_sample_sweep(results: dict,
                      path: Path,
                      log_id: str,
                      fields: Sequence[str] = SWEEP_FIELDS) -> Dict[str, np.ndarray]:
    """:func:`read_sweep`, remembered in a sample's ``results`` under ``'sweep_memo'``.

    The future rays and the feature targets of a sample come from the same sweep files; with
    this they are read once (again only when a later caller needs a field the first did not
    read). Both take a few thousand rows of a sweep, so ``xyz_ego`` stays in the file's
    dtype (float16): take rows with :func:`xyz_rows_float32`. Callers must not modify the
    returned arrays in place.
    """
    memo = results.setdefault('sweep_memo', {})
    sweep = memo.get(path)
    if sweep is None or any(name not in sweep for name in fields):
        held = sweep or {}
        wanted = tuple(name for name in SWEEP_FIELDS if name in fields or name in held)
        sweep = memo[path] = read_sweep(path, log_id, wanted, xyz_float32=False)
    return sweep
