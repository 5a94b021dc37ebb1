"""The stack fixes of ``gasp.compat`` give the numbers of a reference computation."""
import pytest
import torch

import gasp  # noqa: F401  (applies the fixes)
from gasp_ops import dynamic_scatter_reference


def _loop_scatter(feats, coors, reduce_type):
    """Dictionary-of-voxels reduction written the obvious way."""
    groups = {}
    for i, c in enumerate(coors.tolist()):
        if min(c) >= 0:
            groups.setdefault(tuple(c), []).append(i)
    keys = sorted(groups)
    rows = []
    for key in keys:
        members = feats[groups[key]]
        if reduce_type == 'sum':
            rows.append(members.sum(0))
        elif reduce_type == 'mean':
            rows.append(members.mean(0))
        else:
            rows.append(members.max(0).values)
    return torch.stack(rows), torch.tensor(keys, dtype=coors.dtype)


def test_dynamic_scatter_hand_computed():
    feats = torch.tensor([[1., 10.], [3., -2.], [5., 4.], [7., 7.]])
    coors = torch.tensor([[0, 0, 1], [0, 0, 1], [0, 2, 0], [-1, 0, 0]], dtype=torch.int32)
    mean, voxel_coors = dynamic_scatter_reference(feats, coors, 'mean')
    assert voxel_coors.tolist() == [[0, 0, 1], [0, 2, 0]]
    assert mean.tolist() == [[2., 4.], [5., 4.]]
    maxed, _ = dynamic_scatter_reference(feats, coors, 'max')
    assert maxed.tolist() == [[3., 10.], [5., 4.]]
    summed, _ = dynamic_scatter_reference(feats, coors, 'sum')
    assert summed.tolist() == [[4., 8.], [5., 4.]]


@pytest.mark.parametrize('reduce_type', ['sum', 'mean', 'max'])
def test_dynamic_scatter_matches_loop_values_and_grads(reduce_type):
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(200, 5, generator=gen, dtype=torch.float64)
    coors = torch.randint(-1, 4, (200, 3), generator=gen, dtype=torch.int32)
    feats_a = feats.clone().requires_grad_()
    feats_b = feats.clone().requires_grad_()
    out_a, coors_a = dynamic_scatter_reference(feats_a, coors, reduce_type)
    out_b, coors_b = _loop_scatter(feats_b, coors, reduce_type)
    assert torch.equal(coors_a, coors_b)
    torch.testing.assert_close(out_a, out_b)
    weights = torch.randn(out_a.shape, generator=gen, dtype=torch.float64)
    (out_a * weights).sum().backward()
    (out_b * weights).sum().backward()
    torch.testing.assert_close(feats_a.grad, feats_b.grad)


def test_dynamic_scatter_max_gradient_goes_to_first_tied_point():
    # mmcv's CUDA kernel sends the gradient of a tied maximum to the lowest point index.
    feats = torch.tensor([[2.], [2.], [1.]], requires_grad=True)
    coors = torch.zeros(3, 3, dtype=torch.int32)
    out, _ = dynamic_scatter_reference(feats, coors, 'max')
    out.sum().backward()
    assert feats.grad.squeeze(1).tolist() == [1., 0., 0.]


def test_mmcv_dynamic_scatter_runs_on_cpu_through_the_fix():
    from mmcv.ops import DynamicScatter
    points = torch.tensor([[0.05, 0.05, 0.1, 1.], [0.15, 0.05, 0.1, 3.], [0.55, 0.3, 0.2, 5.]])
    scatter = DynamicScatter(
        voxel_size=[0.2, 0.2, 1.0], point_cloud_range=[0, 0, 0, 1, 1, 1], average_points=True)
    # (batch, z, y, x) voxel indices, as mmdet3d's dynamic voxelization produces them.
    coors = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 2]], dtype=torch.int32)
    voxel_feats, voxel_coors = scatter(points, coors)
    assert voxel_coors.tolist() == [[0, 0, 0, 0], [0, 0, 1, 2]]
    torch.testing.assert_close(voxel_feats,
                               torch.tensor([[0.1, 0.05, 0.1, 2.], [0.55, 0.3, 0.2, 5.]]))


def test_mmdet3d_dynamic_pillar_encoder_runs_on_cpu():
    from mmdet3d.registry import MODELS
    encoder = MODELS.build(
        dict(
            type='DynamicPillarFeatureNet',
            in_channels=4,
            feat_channels=(16, ),
            voxel_size=(0.5, 0.5, 4),
            point_cloud_range=(0, 0, -2, 4, 4, 2)))
    features = torch.rand(50, 4) * torch.tensor([4., 4., 4., 1.]) - torch.tensor([0., 0., 2., 0.])
    xy = (features[:, :2] / 0.5).long()
    coors = torch.cat([torch.zeros(50, 2, dtype=torch.long), xy.flip(1)], 1).int()
    voxel_feats, voxel_coors = encoder(features, coors)
    assert voxel_feats.shape == (len(torch.unique(xy, dim=0)), 16)
    voxel_feats.sum().backward()
    assert all(p.grad is not None for p in encoder.parameters() if p.requires_grad)


def test_spconv_cpu_backward_matches_dense_convolution():
    # With several CPU threads, spconv 2.3.8's CPU convolution intermittently returns wrong
    # values at a few output sites (about 9 runs in 10 with 2 threads in one process, none with
    # one thread): an upstream race, not the backward fix tested here. One thread keeps this
    # test about the fix; the race is recorded in the project notes.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _check_spconv_against_dense_convolution()
    finally:
        torch.set_num_threads(threads)


def _check_spconv_against_dense_convolution():
    import spconv.pytorch as spconv
    gen = torch.Generator().manual_seed(0)
    shape = [5, 6, 7]
    flat = torch.randperm(5 * 6 * 7, generator=gen)[:40]
    zyx = torch.stack([flat // 42, (flat // 7) % 6, flat % 7], 1)
    indices = torch.cat([torch.zeros(40, 1, dtype=torch.long), zyx], 1).int()
    feats = torch.randn(40, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    conv = spconv.SparseConv3d(3, 4, 3, padding=1, bias=False).double()
    sparse_out = conv(spconv.SparseConvTensor(feats, indices, shape, 1)).dense()
    weights = torch.randn(sparse_out.shape, generator=gen, dtype=torch.float64)
    (sparse_out * weights).sum().backward()

    feats_dense = feats.detach().clone().requires_grad_()
    grid = torch.zeros(*shape, 3, dtype=torch.float64)
    grid = grid.index_put((zyx[:, 0], zyx[:, 1], zyx[:, 2]), feats_dense)
    dense_in = grid.permute(3, 0, 1, 2).unsqueeze(0)
    # spconv 2 keeps weights as (out, kz, ky, kx, in).
    weight = conv.weight.detach().permute(0, 4, 1, 2, 3).clone().requires_grad_()
    dense_out = torch.nn.functional.conv3d(dense_in, weight, padding=1)
    torch.testing.assert_close(sparse_out, dense_out)
    (dense_out * weights).sum().backward()
    torch.testing.assert_close(feats.grad, feats_dense.grad)
    torch.testing.assert_close(conv.weight.grad.permute(0, 4, 1, 2, 3), weight.grad)


_KILLED_WRITER = r'''
import os, signal, sys
import torch
import gasp  # noqa: F401  (applies the fixes)
from mmengine.runner.checkpoint import save_checkpoint
path = sys.argv[1]
save_checkpoint({'meta': {'iter': 2}, 'state_dict': {'w': torch.full((4, ), 2.0)}}, path)
# The next save is killed after its bytes are written but before they are on disk for good.
os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
save_checkpoint({'meta': {'iter': 4}, 'state_dict': {'w': torch.zeros(2**20)}}, path)
'''


def test_checkpoint_write_killed_midway_leaves_the_previous_checkpoint(tmp_path):
    import subprocess
    import sys
    path = tmp_path / 'iter.pth'
    result = subprocess.run(
        [sys.executable, '-c', _KILLED_WRITER, str(path)],
        capture_output=True,
        text=True,
        timeout=120)
    assert result.returncode == -9, result.stderr[-2000:]
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    assert ckpt['meta']['iter'] == 2
    assert ckpt['state_dict']['w'].tolist() == [2.0] * 4
    # Only the unfinished temporary file of the killed write is left beside it.
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name != 'iter.pth')
    assert len(leftovers) == 1 and leftovers[0].startswith('.iter.pth.')


def test_local_backend_put_replaces_the_file_whole(tmp_path, monkeypatch):
    from mmengine.fileio.backends import LocalBackend
    path = tmp_path / 'sub' / 'a.bin'
    LocalBackend().put(b'old', str(path))
    assert path.read_bytes() == b'old'

    def crash(fd):
        raise KeyboardInterrupt('killed while writing')

    monkeypatch.setattr('os.fsync', crash)
    with pytest.raises(KeyboardInterrupt):
        LocalBackend().put(b'new and longer', str(path))
    assert path.read_bytes() == b'old'
    assert [p.name for p in path.parent.iterdir()] == ['a.bin']
    monkeypatch.undo()
    LocalBackend().put_text('text', str(path))
    assert path.read_text() == 'text'


def test_find_latest_checkpoint_falls_back_when_last_checkpoint_is_broken(tmp_path):
    from mmengine.runner import checkpoint, runner

    from gasp.compat import find_latest_checkpoint
    assert runner.find_latest_checkpoint is find_latest_checkpoint
    assert checkpoint.find_latest_checkpoint is find_latest_checkpoint
    assert find_latest_checkpoint(str(tmp_path)) is None
    for it in (2, 4, 10):
        (tmp_path / f'iter_{it}.pth').write_bytes(b'x')
    (tmp_path / 'iter_12.pth').write_bytes(b'')  # an empty file is no checkpoint
    last = tmp_path / 'last_checkpoint'
    last.write_text(str(tmp_path / 'iter_4.pth'))
    assert find_latest_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_4.pth')
    last.write_text('')  # killed while mmengine wrote it in place
    assert find_latest_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_10.pth')
    last.write_text(str(tmp_path / 'iter_99.pth'))
    assert find_latest_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_10.pth')


class _RunsCode:
    """Unpickling this runs ``os.system``: what a malicious checkpoint holds."""

    def __reduce__(self):
        import os
        return (os.system, ('touch ran_code', ))


def test_local_checkpoints_load_weights_only_even_when_the_environment_says_no(
        tmp_path, monkeypatch):
    import pickle

    from mmengine.runner.checkpoint import _load_checkpoint
    path = tmp_path / 'bad.pth'
    torch.save({'state_dict': {}, 'payload': _RunsCode()}, path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    with pytest.raises(pickle.UnpicklingError, match='system'):
        _load_checkpoint(str(path), map_location='cpu')
    assert not (tmp_path / 'ran_code').exists()
    good = tmp_path / 'good.pth'
    torch.save({'state_dict': {'w': torch.ones(2)}}, good)
    assert _load_checkpoint(str(good), map_location='cpu')['state_dict']['w'].tolist() == [1., 1.]
