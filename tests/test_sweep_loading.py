"""Fast paths of the training data loader against plain computations: the feather sweep
reader, transforms into column slices, random row subsets and the in-place yaw rotation."""
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from av2.structures.sweep import Sweep
from mmdet3d.registry import DATASETS, TRANSFORMS
from pyarrow import feather as pa_feather

import gasp  # noqa: F401
from gasp.datasets import SampleTiming, create_av2_infos
from gasp.datasets.av2_io import (lidar_path, list_lidar_timestamps, read_sample_sweep, read_sweep,
                                  xyz_rows_float32)
from gasp.datasets.errors import AV2DataError
from gasp.datasets.subsampling import random_rows, sorted_rows
from gasp.datasets.transforms.random_yaw_rotation import rotate_xy
from gasp.geometry import pose_matrix, transform_points


def _a_sweep_file(root) -> Path:
    log_dir = sorted((Path(root) / 'sensor' / 'train').iterdir())[0]
    return lidar_path(log_dir, int(list_lidar_timestamps(log_dir)[2]))


def test_read_sweep_equals_av2s_reader(synthetic_av2_root):
    path = _a_sweep_file(synthetic_av2_root)
    assert pa_feather.read_table(path).schema.field('x').type == pa.float16()  # as AV2 stores it
    sweep, reference = read_sweep(path, 'log'), Sweep.from_feather(path)
    assert sweep['xyz_ego'].dtype == np.float32 and sweep['xyz_ego'].flags.c_contiguous
    np.testing.assert_array_equal(sweep['xyz_ego'], reference.xyz.astype(np.float32))
    np.testing.assert_array_equal(sweep['intensity'], reference.intensity)
    np.testing.assert_array_equal(sweep['laser_number'], reference.laser_number)
    np.testing.assert_array_equal(sweep['offset_ns'], reference.offset_ns)


@pytest.mark.parametrize('xyz_type,chunk_rows', [(pa.float16(), 7), (pa.float32(), None),
                                                 (pa.float64(), 1000)])
def test_read_sweep_takes_any_float_type_and_chunking(synthetic_av2_root, tmp_path, xyz_type,
                                                      chunk_rows):
    table = pa_feather.read_table(_a_sweep_file(synthetic_av2_root))
    rng = np.random.default_rng(0)
    xyz = rng.uniform(-80, 80, size=(table.num_rows, 3))
    for i, name in enumerate('xyz'):
        table = table.set_column(i, name, pa.array(xyz[:, i], type=xyz_type))
    path = tmp_path / '315969629019741000.feather'
    pa_feather.write_feather(table, path, chunksize=chunk_rows)
    assert chunk_rows is None or table.num_rows > 2 * chunk_rows
    sweep = read_sweep(path, 'log')
    expected = xyz.astype(xyz_type.to_pandas_dtype()).astype(np.float32)
    np.testing.assert_array_equal(sweep['xyz_ego'], expected)
    np.testing.assert_array_equal(sweep['laser_number'], table.column('laser_number').to_numpy())
    # Kept in the file's dtype, rows converted after they are taken: the same values.
    stored = read_sweep(path, 'log', fields=(), xyz_float32=False)['xyz_ego']
    assert stored.dtype == xyz_type.to_pandas_dtype() and stored.shape == expected.shape
    rows = np.array([0, 5, 3, table.num_rows - 1, 5])
    taken = xyz_rows_float32(stored, rows)
    assert taken.dtype == np.float32 and taken.flags.c_contiguous
    np.testing.assert_array_equal(taken, expected[rows])


@pytest.mark.parametrize('xyz_float32', [True, False])
@pytest.mark.parametrize('bad,as_null', [(np.inf, False), (-np.inf, False), (np.nan, False),
                                         (np.nan, True)])
def test_read_sweep_rejects_non_finite_coordinates(synthetic_av2_root, tmp_path, xyz_float32, bad,
                                                   as_null):
    table = pa_feather.read_table(_a_sweep_file(synthetic_av2_root))
    z = table.column('z').to_numpy().copy()
    z[[3, 17]] = bad
    path = tmp_path / '315969629019741000.feather'
    # pandas writes NaN as null (from_pandas=True does so too).
    column = pa.array(z, type=pa.float16(), from_pandas=as_null)
    assert column.null_count == (2 if as_null else 0)
    pa_feather.write_feather(table.set_column(2, 'z', column), path)
    with pytest.raises(AV2DataError, match='2 points with NaN or infinite'):
        read_sweep(path, 'log', xyz_float32=xyz_float32)
    # The largest finite float16 (exponent bits 11110) is a coordinate like any other.
    z[[3, 17]] = np.float16(65504.0)
    pa_feather.write_feather(table.set_column(2, 'z', pa.array(z, type=pa.float16())), path)
    assert read_sweep(path, 'log', xyz_float32=xyz_float32)['xyz_ego'][3, 2] == 65504.0


def test_read_sweep_reads_only_the_fields_asked_for(synthetic_av2_root, tmp_path):
    path = _a_sweep_file(synthetic_av2_root)
    full, reference = read_sweep(path, 'log'), Sweep.from_feather(path)
    laser_only = read_sweep(path, 'log', fields=('laser_number', ))
    assert sorted(laser_only) == ['laser_number', 'xyz_ego']
    np.testing.assert_array_equal(laser_only['xyz_ego'], reference.xyz.astype(np.float32))
    np.testing.assert_array_equal(laser_only['laser_number'], reference.laser_number)
    assert sorted(read_sweep(path, 'log', fields=())) == ['xyz_ego']
    with pytest.raises(ValueError, match='unknown sweep fields'):
        read_sweep(path, 'log', fields=('ring', ))
    # A file without offset_ns is readable for what does not need it, and says what it lacks.
    table = pa_feather.read_table(path)
    lacking = tmp_path / path.name
    pa_feather.write_feather(table.drop(['offset_ns']), lacking)
    np.testing.assert_array_equal(
        read_sweep(lacking, 'log', fields=('intensity', ))['intensity'], full['intensity'])
    with pytest.raises(AV2DataError, match=r"columns \['offset_ns'\] are missing"):
        read_sweep(lacking, 'log')
    corrupt = tmp_path / ('1' + path.name)
    corrupt.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(AV2DataError, match='cannot read feather file'):
        read_sweep(corrupt, 'log', fields=('laser_number', ))


def test_sample_sweep_memo_reads_once_and_again_for_a_missing_field(synthetic_av2_root):
    path = _a_sweep_file(synthetic_av2_root)
    results = {}
    first = read_sample_sweep(results, path, 'log', fields=('laser_number', ))
    assert read_sample_sweep(results, path, 'log', fields=()) is first
    wider = read_sample_sweep(results, path, 'log', fields=('intensity', ))
    assert wider is not first and sorted(wider) == ['intensity', 'laser_number', 'xyz_ego']
    assert read_sample_sweep(results, path, 'log', fields=('laser_number', )) is wider
    assert wider['xyz_ego'].dtype == np.float16  # as stored; rows are converted when taken
    reference = Sweep.from_feather(path)
    np.testing.assert_array_equal(wider['intensity'], reference.intensity)
    np.testing.assert_array_equal(wider['laser_number'], reference.laser_number)


def test_transform_points_into_a_column_slice():
    rng = np.random.default_rng(1)
    a_from_b = pose_matrix([0.9, 0.1, -0.2, 0.3], [12.5, -40.0, 1.5])
    points_b = rng.uniform(-100, 100, size=(500, 3))
    expected = points_b @ a_from_b[:3, :3].T + a_from_b[:3, 3]
    np.testing.assert_allclose(transform_points(a_from_b, points_b), expected, rtol=0, atol=1e-9)
    wide = np.full((500, 5), 7.0, np.float32)
    got = transform_points(a_from_b, points_b.astype(np.float32), out=wide[:, :3])
    assert np.shares_memory(got, wide)
    np.testing.assert_allclose(wide[:, :3], expected, rtol=0, atol=1e-4)
    assert (wide[:, 3:] == 7.0).all()


def test_random_rows_are_sorted_distinct_and_uniform():
    rng = np.random.default_rng(2)
    np.testing.assert_array_equal(random_rows(5, None, rng), np.arange(5))
    np.testing.assert_array_equal(random_rows(5, 5, rng), np.arange(5))
    np.testing.assert_array_equal(random_rows(5, 9, rng), np.arange(5))
    hits = np.zeros(300)
    for _ in range(2000):
        rows = random_rows(300, 40, rng)
        assert len(rows) == 40 and np.all(np.diff(rows) > 0) and rows[-1] < 300
        hits[rows] += 1
    expected = 2000 * 40 / 300
    assert hits.sum() == 2000 * 40
    assert np.abs(hits - expected).max() < 5 * np.sqrt(expected)  # no row favoured
    draw = rng.choice(1000, 100, replace=False)
    np.testing.assert_array_equal(sorted_rows(draw, 1000), np.sort(draw))


@pytest.mark.parametrize('dtype', [np.float32, np.float64, np.float16])
def test_rotate_xy_rotates_in_place_and_leaves_other_columns(dtype):
    rng = np.random.default_rng(3)
    points = rng.uniform(-50, 50, size=(1000, 5)).astype(dtype)
    before = points.astype(np.float64)
    yaw = 2.1
    rotation = np.array([[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]])
    out = rotate_xy(points, yaw)
    assert out is points
    tolerance = {np.float16: 0.1, np.float32: 1e-4, np.float64: 1e-10}[dtype]
    np.testing.assert_allclose(points[:, :2], before[:, :2] @ rotation.T, atol=tolerance)
    np.testing.assert_array_equal(points[:, 2:], before[:, 2:].astype(dtype))
    # A column-strided array (no complex view) takes the column-wise path.
    strided = np.asfortranarray(before[:, :2].astype(dtype))
    np.testing.assert_allclose(rotate_xy(strided, yaw), before[:, :2] @ rotation.T, atol=tolerance)


def test_past_sweeps_are_the_returns_outside_the_ego_box_moved_to_the_reference(
        synthetic_av2_root, tmp_path):
    """LoadPastSweeps (one output array, float32 transforms into its columns) equals the
    plain float64 computation, sweep after sweep in file order."""
    timing = SampleTiming(
        num_past_sweeps=3, past_interval_s=0.2, future_horizon_s=1.0, future_interval_s=0.2)
    infos = create_av2_infos(
        str(synthetic_av2_root), str(tmp_path), splits=['train'], timing=timing)
    dataset = DATASETS.build(
        dict(
            type='AV2OccDataset',
            data_root=str(synthetic_av2_root),
            ann_file=str(infos['train']),
            serialize_data=False))
    info = dataset.get_data_info(1)
    box = (-1.25, -1.2, 4.1, 1.2)
    points = TRANSFORMS.build(dict(type='LoadPastSweeps', ego_box_xy=box))(dict(info))['points']
    log_dir = Path(synthetic_av2_root) / info['log']['log_dir']
    ref_from_city = np.linalg.inv(info['log']['city_from_ego'][np.searchsorted(
        info['log']['pose_timestamps_ns'], info['timestamp_ns'])])
    start, dropped = 0, 0
    for stamp in info['past_timestamps_ns']:
        sweep = Sweep.from_feather(lidar_path(log_dir, stamp))
        xyz = sweep.xyz.astype(np.float64)
        outside = ~((xyz[:, 0] >= box[0]) & (xyz[:, 0] <= box[2]) & (xyz[:, 1] >= box[1]) &
                    (xyz[:, 1] <= box[3]))
        dropped += int((~outside).sum())
        city_from_ego = info['log']['city_from_ego'][np.searchsorted(
            info['log']['pose_timestamps_ns'], stamp)]
        ref_from_ego = ref_from_city @ city_from_ego
        expected = xyz[outside] @ ref_from_ego[:3, :3].T + ref_from_ego[:3, 3]
        rows = points[start:start + len(expected)]
        np.testing.assert_allclose(rows[:, :3], expected, rtol=0, atol=1e-4)
        np.testing.assert_allclose(rows[:, 3], sweep.intensity[outside] / 255.0, atol=1e-7)
        assert np.all(rows[:, 4] == np.float32((stamp - info['timestamp_ns']) / 1e9))
        start += len(expected)
    assert start == len(points) and points.dtype == np.float32
    assert dropped > 0, 'the synthetic lidar should see returns inside the ego box'
