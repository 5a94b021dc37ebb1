"""Target extraction: DINOv2/DINOv3 ViTs, feature targets and their cache, missing rays."""
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from av2.geometry.camera.pinhole_camera import PinholeCamera
from av2.structures.sweep import Sweep
from av2.utils.io import read_city_SE3_ego
from mmdet3d.registry import DATASETS, TRANSFORMS
from torch import nn

import gasp  # noqa: F401
from gasp.datasets import AV2DataError, SampleTiming, create_av2_infos
from gasp.datasets.av2_io import RING_CAMERAS
from gasp.targets import (DINOv2ViT, DINOv3ViT, FeatureDenoiser, FeatureReduction,
                          OnlineFeatureTargets, build_backbone, build_dinov2, extract_dino_features,
                          extract_missing_rays, fit_feature_reduction, load_dinov2_checkpoint)
from gasp.targets.camera_projection import pinhole_camera, project_points
from gasp.targets.dinov3_vit import rope_apply
from gasp.targets.feature_extractor import DINOFeatureExtractor
from gasp.targets.feature_sampling import sample_feature_map
from gasp.targets.sweep_features import project_sweep, read_sweep_points
from gasp.targets.sweep_jobs import jobs_from_root

TIMING = SampleTiming(
    num_past_sweeps=2, past_interval_s=0.2, future_horizon_s=1.0, future_interval_s=0.2)
TINY_VIT = dict(arch=dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=128))
SHORT_SIDE = 28


# --------------------------------------------------------------------------------------------
# An independent, straightforward transcription of the official DINOv2 architecture
# (facebookresearch/dinov2 ``DinoVisionTransformer``, eval mode), with the official names.
class _OfficialBlock(nn.Module):

    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = nn.Module()
        self.attn.qkv = nn.Linear(dim, 3 * dim)
        self.attn.proj = nn.Linear(dim, dim)
        self.ls1 = nn.Module()
        self.ls1.gamma = nn.Parameter(torch.ones(dim))
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(dim, 4 * dim)
        self.mlp.fc2 = nn.Linear(4 * dim, dim)
        self.ls2 = nn.Module()
        self.ls2.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.attn.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, c // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn = (q * (c // self.heads)**-0.5) @ k.transpose(-2, -1)
        y = (attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c)
        x = x + self.attn.proj(y) * self.ls1.gamma
        y = self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm2(x))))
        return x + y * self.ls2.gamma


class _OfficialDinoV2(nn.Module):

    def __init__(self, dim=32, depth=2, heads=2, patch=14, img_size=56, registers=0):
        super().__init__()
        self.patch, self.registers = patch, registers
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, (img_size // patch)**2 + 1, dim))
        if registers:
            self.register_tokens = nn.Parameter(torch.zeros(1, registers, dim))
        self.blocks = nn.ModuleList(_OfficialBlock(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mask_token = nn.Parameter(torch.zeros(1, dim))

    def forward(self, img):
        b, _, w, h = img.shape  # official naming
        x = self.patch_embed.proj(img).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(b, -1, -1), x], 1)
        n = self.pos_embed.shape[1] - 1
        if x.shape[1] - 1 == n and w == h:
            pos = self.pos_embed
        else:
            m = int(math.sqrt(n))
            w0, h0 = w // self.patch, h // self.patch
            pp = F.interpolate(
                self.pos_embed[:, 1:].reshape(1, m, m, -1).permute(0, 3, 1, 2),
                scale_factor=((w0 + 0.1) / m, (h0 + 0.1) / m),
                mode='bicubic')
            pos = torch.cat([self.pos_embed[:, :1],
                             pp.permute(0, 2, 3, 1).reshape(1, w0 * h0, -1)], 1)
        x = x + pos
        if self.registers:
            x = torch.cat([x[:, :1], self.register_tokens.expand(b, -1, -1), x[:, 1:]], 1)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)[:, 1 + self.registers:]  # x_norm_patchtokens


@pytest.mark.parametrize('registers', [0, 4])
def test_official_dinov2_checkpoint_loads_and_matches_the_official_forward(tmp_path, registers):
    torch.manual_seed(registers)
    official = _OfficialDinoV2(registers=registers)
    with torch.no_grad():
        for p in official.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    path = tmp_path / 'dinov2_tiny_pretrain.pth'
    torch.save(official.state_dict(), path)
    assert {
        'cls_token', 'pos_embed', 'mask_token', 'patch_embed.proj.weight', 'blocks.1.norm1.weight',
        'blocks.1.attn.qkv.weight', 'blocks.1.ls1.gamma', 'blocks.1.mlp.fc1.weight', 'norm.weight'
    } <= set(official.state_dict())

    ours = DINOv2ViT(arch=TINY_VIT['arch'], img_size=56, num_register_tokens=registers)
    sha = load_dinov2_checkpoint(ours, path)  # strict: no missing / unexpected keys
    assert len(sha) == 64
    assert (sum(p.numel() for p in ours.parameters()) == sum(p.numel()
                                                             for p in official.parameters()))
    ours.eval()
    with torch.no_grad():
        for height, width in ((56, 56), (42, 70)):  # training grid, and interpolated pos embed
            image = torch.randn(2, 3, height, width)
            expected = official(image)
            got = ours(image).flatten(2).transpose(1, 2)
            torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-4)


def test_vits14_has_the_official_parameter_count():
    # Official ViT-S/14 at 518 px: pos_embed 1370 x 384 + cls + mask + patch conv + 12 blocks
    # of (qkv, proj, 2 norms, 2 layer scales, fc1, fc2) + final norm.
    block = (384 * 1152 + 1152) + (384 * 384 + 384) + 4 * 384 + 2 * 384 + (384 * 1536 + 1536) + (
        1536 * 384 + 384)
    official = 1370 * 384 + 384 + 384 + (384 * 3 * 14 * 14 + 384) + 12 * block + 2 * 384
    assert sum(p.numel() for p in build_dinov2('dinov2_vits14').parameters()) == official


def test_a_wrong_architecture_checkpoint_is_refused(tmp_path):
    official = _OfficialDinoV2(registers=4)
    torch.save(official.state_dict(), tmp_path / 'reg.pth')
    with pytest.raises(AV2DataError, match='register'):
        load_dinov2_checkpoint(DINOv2ViT(arch=TINY_VIT['arch'], img_size=56), tmp_path / 'reg.pth')


def test_dinov3_has_official_names_and_relative_rope():
    model = DINOv3ViT(embed_dim=32, depth=1, num_heads=2, ffn_ratio=4.0)
    keys = set(model.state_dict())
    assert {
        'cls_token', 'storage_tokens', 'mask_token', 'rope_embed.periods',
        'patch_embed.proj.weight', 'blocks.0.norm1.weight', 'blocks.0.attn.qkv.weight',
        'blocks.0.attn.qkv.bias', 'blocks.0.attn.qkv.bias_mask', 'blocks.0.attn.proj.weight',
        'blocks.0.ls1.gamma', 'blocks.0.mlp.fc1.weight', 'blocks.0.mlp.fc2.weight',
        'blocks.0.ls2.gamma', 'norm.weight', 'norm.bias'
    } == keys - {
        'patch_embed.proj.bias', 'blocks.0.norm1.bias', 'blocks.0.attn.proj.bias',
        'blocks.0.norm2.weight', 'blocks.0.norm2.bias', 'blocks.0.mlp.fc1.bias',
        'blocks.0.mlp.fc2.bias'
    }
    # periods_k = 100 ** (4 k / D_head), D_head = 16.
    torch.testing.assert_close(model.rope_embed.periods, 100.0**(4 * torch.arange(4) / 16))
    # RoPE makes q . k depend only on the offset between the two patches.
    sin, cos = model.rope_embed(4, 4)
    q, k = torch.randn(16), torch.randn(16)
    qr, kr = rope_apply(q.expand(16, 16), sin, cos), rope_apply(k.expand(16, 16), sin, cos)
    dots = qr @ kr.T  # (16, 16) over patch pairs
    assert torch.allclose(dots[0, 5], dots[5, 10], atol=1e-5)  # offset (+1, +1) both times
    assert not torch.allclose(dots[0, 5], dots[0, 6], atol=1e-3)
    # The K bias is masked out.
    attn = model.blocks[0].attn
    with torch.no_grad():
        attn.qkv.bias.fill_(1.0)
    out = attn.qkv(torch.zeros(1, 32))
    assert torch.all(out[0, 32:64] == 0) and torch.all(out[0, :32] == 1)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 48, 64)).shape == (1, 32, 3, 4)


# --------------------------------------------------------------------------------------------
def _forward_camera(width=56, height=42, f=50.0):
    """Camera at ego (1, 0, 1.5) looking along ego +x (camera x = -ego y, y = -ego z)."""
    ego_from_camera = np.eye(4)
    ego_from_camera[:3, :3] = [[0, 0, 1], [-1, 0, 0], [0, -1, 0]]
    ego_from_camera[:3, 3] = [1.0, 0.0, 1.5]
    return dict(
        ego_from_camera=ego_from_camera,
        fx=f,
        fy=f,
        cx=(width - 1) / 2,
        cy=(height - 1) / 2,
        width=width,
        height=height)


def test_a_point_gets_the_feature_of_the_pixel_it_lands_on():
    entry = _forward_camera()
    camera = pinhole_camera('ring_front_center', entry)
    # Points at 10 m ahead of the camera, 1 m left and 0.5 m up / at the optical axis.
    points = np.array([[11.0, 0.0, 1.5], [11.0, 1.0, 2.0], [11.0, -0.6, 1.2]])
    uv, valid = project_points(points, camera, np.eye(4), np.eye(4))
    assert valid.all()
    expected = np.array([[27.5, 20.5], [27.5 - 5.0, 20.5 - 2.5], [27.5 + 3.0, 20.5 + 1.5]])
    np.testing.assert_allclose(uv, expected, atol=1e-9)
    # Camera taken 1 s later after driving 2 m forward: the point appears 2 m closer.
    city_from_ego_cam = np.eye(4)
    city_from_ego_cam[0, 3] = 2.0
    uv_later, _ = project_points(points[1:2], camera, np.eye(4), city_from_ego_cam)
    np.testing.assert_allclose(uv_later, [[27.5 - 50 / 8, 20.5 - 50 * 0.5 / 8]], atol=1e-9)
    # A 3 x 4 feature map (patch 14) whose cells hold their own pixel centre: bilinear
    # sampling of a linear field returns exactly the pixel each point lands on.
    rows, cols = torch.meshgrid(torch.arange(3.0), torch.arange(4.0), indexing='ij')
    fmap = torch.stack([(cols + 0.5) * 14 - 0.5, (rows + 0.5) * 14 - 0.5])
    got = sample_feature_map(fmap, torch.as_tensor(uv, dtype=torch.float32), 42, 56)
    np.testing.assert_allclose(got.numpy(), uv, atol=1e-4)


@pytest.fixture(scope='module')
def infos(synthetic_av2_root, tmp_path_factory):
    return create_av2_infos(
        str(synthetic_av2_root),
        str(tmp_path_factory.mktemp('infos')),
        splits=('train', 'val'),
        timing=TIMING)


def test_projection_lands_on_the_object_each_return_hit(synthetic_av2_root):
    """Lidar returns projected (motion-compensated) into the cameras land on pixels that
    show the object they hit (the generator's per-pixel ids); parallax between lidar and
    camera and 64 x 48 px images make a few disagree at object edges."""
    jobs, logs = jobs_from_root(synthetic_av2_root, ['val'])
    agree, total = 0, 0
    for job in jobs[::3]:
        log, root = logs[job.log_id], Path(logs[job.log_id]['log_dir'])
        proj = project_sweep(job, log, read_sweep_points(job, log))
        hit = np.load(root / 'synthetic_gt' / 'lidar' / f'{job.timestamp_ns}.npz')['object_id']
        for cam, stamp in job.camera_timestamps_ns:
            mine = proj['camera_index'] == RING_CAMERAS.index(cam)
            ids = cv2.imread(
                str(root / 'synthetic_gt' / 'camera_ids' / cam / f'{stamp}.png'),
                cv2.IMREAD_UNCHANGED).astype(np.int64) - 1
            pix = np.round(proj['uv'][mine]).astype(int)
            agree += (ids[pix[:, 1], pix[:, 0]] == hit[proj['point_index'][mine]]).sum()
            total += mine.sum()
    assert total > 1000 and agree / total > 0.75, agree / total


@pytest.fixture(scope='module')
def feature_cache(synthetic_av2_root, infos, tmp_path_factory):
    out = tmp_path_factory.mktemp('dino_cache')
    torch.manual_seed(0)
    stats = extract_dino_features(
        synthetic_av2_root,
        out,
        None,
        info_files=[str(infos['val'])],
        image_short_side=SHORT_SIDE,
        backbone_overrides=TINY_VIT,
        device='cpu',
        show_progress=False)
    return out, stats


def _bilinear_numpy(fmap, u, v, height, width):
    """Reference bilinear sampling: cell centres at ((j + .5) W / w - .5), edge-clamped."""
    c, h, w = fmap.shape
    x = np.clip((u + 0.5) * w / width - 0.5, 0, w - 1)
    y = np.clip((v + 0.5) * h / height - 0.5, 0, h - 1)
    x0, y0 = np.minimum(np.floor(x).astype(int), w - 2), np.minimum(np.floor(y).astype(int), h - 2)
    ax, ay = x - x0, y - y0
    return ((1 - ax) * (1 - ay) * fmap[:, y0, x0] + ax * (1 - ay) * fmap[:, y0, x0 + 1] +
            (1 - ax) * ay * fmap[:, y0 + 1, x0] + ax * ay * fmap[:, y0 + 1, x0 + 1]).T


def test_cached_features_equal_a_direct_computation(synthetic_av2_root, feature_cache):
    cache_dir, stats = feature_cache
    assert stats['sweeps_done'] == stats['sweeps_total'] > 0
    manifest = json.loads((cache_dir / 'manifest.json').read_text())
    assert manifest['settings']['backbone'] == 'dinov2_vits14'
    assert manifest['settings']['image_short_side'] == SHORT_SIDE
    # The same random ViT, rebuilt independently from the seed.
    torch.manual_seed(0)
    extractor = DINOFeatureExtractor(build_dinov2('dinov2_vits14', **TINY_VIT), SHORT_SIDE).eval()
    log_dir = next((synthetic_av2_root / 'sensor' / 'val').iterdir())
    sweep_file = sorted((cache_dir / log_dir.name).glob('*.npz'))[2]
    stamp = int(sweep_file.stem)
    cached = np.load(sweep_file)
    points = read_sweep_points(
        type('Job', (), dict(log_id=log_dir.name, timestamp_ns=stamp))(),
        dict(log_dir=str(log_dir)))
    poses = read_city_SE3_ego(log_dir)
    checked = 0
    for cam_idx, cam in enumerate(RING_CAMERAS):
        rows = cached['camera_index'] == cam_idx
        if not rows.any():
            continue
        images = sorted((log_dir / 'sensors' / 'cameras' / cam).glob('*.jpg'))
        cam_stamp = min((int(p.stem) for p in images), key=lambda t: abs(t - stamp))
        camera = PinholeCamera.from_feather(log_dir, cam)
        uv, _, valid = camera.project_ego_to_img_motion_compensated(
            points[cached['point_index'][rows]], poses[cam_stamp], poses[stamp])
        assert valid.all()
        rgb = cv2.imread(str(log_dir / 'sensors' / 'cameras' / cam / f'{cam_stamp}.jpg'))[..., ::-1]
        with torch.no_grad():
            fmap = extractor(torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None])[0].numpy()
        direct = _bilinear_numpy(fmap, uv[:, 0], uv[:, 1], *rgb.shape[:2])
        np.testing.assert_allclose(
            cached['features'][rows].astype(np.float32), direct, atol=2e-2, rtol=1e-2)
        checked += rows.sum()
    assert checked > 100


def _dataset(root, info_path, pipeline):
    return DATASETS.build(
        dict(
            type='AV2OccDataset',
            data_root=str(root),
            ann_file=str(info_path),
            pipeline=pipeline,
            serialize_data=False))


def test_load_feature_targets_puts_points_in_the_reference_frame(synthetic_av2_root, infos,
                                                                 feature_cache):
    cache_dir, _ = feature_cache
    info = _dataset(synthetic_av2_root, infos['val'], []).get_data_info(1)
    results = TRANSFORMS.build(
        dict(
            type='LoadFeatureTargets',
            cache_dir=str(cache_dir),
            backbone='dinov2_vits14',
            feature_dim=32,
            image_short_side=SHORT_SIDE))(
                info)
    targets = results['feature_targets']
    log_dir = Path(synthetic_av2_root) / info['log']['log_dir']
    poses = read_city_SE3_ego(log_dir)
    ref_from_city = poses[info['timestamp_ns']].inverse()
    start = 0
    for stamp in info['future_timestamps_ns']:
        cached = np.load(cache_dir / info['log_id'] / f'{stamp}.npz')
        count = len(cached['point_index'])
        sweep = Sweep.from_feather(log_dir / 'sensors' / 'lidar' / f'{stamp}.feather')
        expected = ref_from_city.compose(poses[stamp]).transform_point_cloud(
            sweep.xyz[cached['point_index']])
        np.testing.assert_allclose(targets['points'][start:start + count], expected, atol=1e-4)
        np.testing.assert_array_equal(targets['features'][start:start + count], cached['features'])
        assert np.allclose(targets['times_s'][start:start + count],
                           (stamp - info['timestamp_ns']) / 1e9)
        start += count
    assert start == len(targets['points']) and targets['features'].dtype == np.float16


def test_a_feature_target_subset_keeps_each_point_with_its_feature(synthetic_av2_root, infos,
                                                                   feature_cache):
    """With ``max_points_per_sweep``, every kept target is one cached row: its point (float32
    math) is that row's point moved by av2's float64 poses, its feature that row's feature,
    rows in file order and distinct."""
    cache_dir, _ = feature_cache
    info = _dataset(synthetic_av2_root, infos['val'], []).get_data_info(1)
    np.random.seed(0)
    limit = 40
    targets = TRANSFORMS.build(
        dict(type='LoadFeatureTargets', cache_dir=str(cache_dir),
             max_points_per_sweep=limit))(info)['feature_targets']
    log_dir = Path(synthetic_av2_root) / info['log']['log_dir']
    poses = read_city_SE3_ego(log_dir)
    ref_from_city = poses[info['timestamp_ns']].inverse()
    start = 0
    for stamp in info['future_timestamps_ns']:
        cached = np.load(cache_dir / info['log_id'] / f'{stamp}.npz')
        assert len(cached['point_index']) > limit
        sweep = Sweep.from_feather(log_dir / 'sensors' / 'lidar' / f'{stamp}.feather')
        every = ref_from_city.compose(poses[stamp]).transform_point_cloud(
            sweep.xyz[cached['point_index']])
        chunk = slice(start, start + limit)
        gap = np.linalg.norm(targets['points'][chunk, None] - every[None], axis=2)
        rows = gap.argmin(1)
        assert gap.min(1).max() < 1e-4 and np.all(np.diff(rows) > 0)
        np.testing.assert_array_equal(targets['features'][chunk], cached['features'][rows])
        start += limit
    assert start == len(targets['points']) == len(targets['features'])


def test_a_cache_made_with_other_settings_is_refused(synthetic_av2_root, infos, feature_cache,
                                                     tmp_path):
    cache_dir, _ = feature_cache
    info = _dataset(synthetic_av2_root, infos['val'], []).get_data_info(0)
    for wrong in (dict(backbone='dinov2_vitb14'), dict(feature_dim=64), dict(image_short_side=448)):
        key = next(iter(wrong))
        with pytest.raises(AV2DataError, match=f'{key}: cache has'):
            TRANSFORMS.build(dict(type='LoadFeatureTargets', cache_dir=str(cache_dir), **wrong))(
                dict(info))
    # Resuming the extraction with other settings into the same folder is refused too.
    with pytest.raises(AV2DataError, match='image_short_side'):
        extract_dino_features(
            synthetic_av2_root,
            cache_dir,
            None,
            info_files=[str(infos['val'])],
            image_short_side=56,
            backbone_overrides=TINY_VIT,
            show_progress=False)
    # An absent cache names the command that makes it; so does a missing sweep file.
    with pytest.raises(AV2DataError, match='extract_dino_features'):
        TRANSFORMS.build(dict(type='LoadFeatureTargets', cache_dir=str(tmp_path)))(dict(info))
    partial = tmp_path / 'partial'
    partial.mkdir()
    (partial / 'manifest.json').write_text((cache_dir / 'manifest.json').read_text())
    with pytest.raises(AV2DataError, match=str(info['future_timestamps_ns'][0])):
        TRANSFORMS.build(dict(type='LoadFeatureTargets', cache_dir=str(partial)))(dict(info))


def test_pca_reduction_finds_the_main_axes():
    rng = np.random.default_rng(0)
    axes = np.linalg.qr(rng.normal(size=(8, 8)))[0]
    samples = (rng.normal(size=(4000, 8)) * [10, 5, 1, .1, .1, .1, .1, .1]) @ axes.T + 3.0
    pca = FeatureReduction.fit_pca(samples, 2)
    np.testing.assert_allclose(np.abs(pca.matrix.T @ axes[:, :2]), np.eye(2), atol=0.02)
    np.testing.assert_allclose(pca.mean, 3.0, atol=0.5)
    reduced = pca.apply(torch.as_tensor(samples, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(reduced.std(0), [10, 5], rtol=0.05)
    subset = FeatureReduction.subset(384, 64).apply(torch.arange(384.0)[None])
    assert subset.shape == (1, 64) and subset[0, 0] == 0 and subset[0, -1] == 383


# --------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def missing_cache(synthetic_av2_root, tmp_path_factory):
    return extract_missing_rays(
        synthetic_av2_root,
        tmp_path_factory.mktemp('missing'),
        splits=('train', 'val'),
        show_progress=False)


def test_missing_rays_recover_the_beams_that_hit_nothing(synthetic_av2_root, missing_cache):
    tp = fp = fn = 0
    angles = []
    for log_dir in sorted((synthetic_av2_root / 'sensor').glob('*/*')):
        if not (missing_cache / log_dir.name).is_dir():
            continue
        lidar = json.loads((log_dir / 'synthetic_gt' / 'scene.json').read_text())['lidar']
        column_ns = lidar['sweep_period_ns'] / lidar['azimuth_steps']
        for gt_file in sorted((log_dir / 'synthetic_gt' / 'lidar').glob('*.npz')):
            gt = np.load(gt_file)
            ours = np.load(missing_cache / log_dir.name / gt_file.name)
            key_gt = {
                (int(l), int(round(o / column_ns))): i
                for i, (l,
                        o) in enumerate(zip(gt['missing_laser_number'], gt['missing_offset_ns']))
            }
            key_ours = {
                (int(l), int(round(o / column_ns))): i
                for i, (l, o) in enumerate(zip(ours['laser_number'], ours['offset_ns']))
            }
            both = set(key_gt) & set(key_ours)
            tp, fp, fn = tp + len(both), fp + len(key_ours) - len(both), fn + len(key_gt) - len(
                both)
            d_ours = ours['directions_ego'][[key_ours[k] for k in both]].astype(np.float64)
            d_gt = gt['missing_direction_ego'][[key_gt[k] for k in both]]
            angles.append(
                np.degrees(
                    np.arccos(
                        np.clip((d_ours * d_gt).sum(1) / np.linalg.norm(d_ours, axis=1), -1, 1))))
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    angles = np.concatenate(angles)
    print(f'missing rays: precision {precision:.4f}, recall {recall:.4f}, direction error '
          f'median {np.median(angles):.3f} deg, p99 {np.percentile(angles, 99):.3f} deg '
          f'({tp} true, {fp} false, {fn} missed)')
    assert precision > 0.98 and recall > 0.98
    assert np.median(angles) < 0.1 and np.percentile(angles, 99) < 1.0


def test_load_missing_rays_in_the_reference_frame(synthetic_av2_root, infos, missing_cache,
                                                  tmp_path):
    info = _dataset(synthetic_av2_root, infos['train'], []).get_data_info(2)
    results = TRANSFORMS.build(dict(type='LoadMissingRays', cache_dir=str(missing_cache)))(
        dict(info))
    rays = results['missing_rays']
    log_dir = Path(synthetic_av2_root) / info['log']['log_dir']
    poses = read_city_SE3_ego(log_dir)
    ref_from_city = poses[info['timestamp_ns']].inverse()
    np.testing.assert_allclose(np.linalg.norm(rays['directions'], axis=1), 1.0, atol=1e-5)
    start = 0
    for stamp in info['future_timestamps_ns']:
        gt = np.load(log_dir / 'synthetic_gt' / 'lidar' / f'{stamp}.npz')
        count = len(np.load(missing_cache / info['log_id'] / f'{stamp}.npz')['laser_number'])
        ref_from_ego = ref_from_city.compose(poses[stamp]).transform_matrix
        chunk = slice(start, start + count)
        # Every ray is (close to) a ground-truth missing direction moved into the frame.
        gt_ref = gt['missing_direction_ego'] @ ref_from_ego[:3, :3].T
        best = (rays['directions'][chunk] @ gt_ref.T).max(1)
        assert np.median(best) > np.cos(np.radians(0.1))
        lidars = np.array([[1.35, 0, 1.95], [1.35, 0, 1.75]]) @ ref_from_ego[:3, :3].T + \
            ref_from_ego[:3, 3]
        gap = np.linalg.norm(rays['origins'][chunk, None] - lidars[None], axis=2).min(1)
        assert gap.max() < 1e-4
        assert np.allclose(rays['times_s'][chunk], (stamp - info['timestamp_ns']) / 1e9)
        start += count
    assert start == len(rays['origins'])
    with pytest.raises(AV2DataError, match='extract_missing_points'):
        TRANSFORMS.build(dict(type='LoadMissingRays', cache_dir=str(tmp_path)))(dict(info))


def test_missing_rays_pick_converts_only_the_kept_rows(synthetic_av2_root, infos, missing_cache):
    from gasp.targets import read_missing_rays
    info = _dataset(synthetic_av2_root, infos['train'], []).get_data_info(2)
    loader = TRANSFORMS.build(dict(type='LoadMissingRays', cache_dir=str(missing_cache)))
    cache_id = loader._check_cache()
    stamp = info['future_timestamps_ns'][0]
    full = read_missing_rays(missing_cache, info['log_id'], stamp, cache_id)
    rows = np.array([0, 3, 7, len(full['laser_number']) - 1])
    picked = read_missing_rays(
        missing_cache, info['log_id'], stamp, cache_id, pick=lambda count: rows)
    assert np.array_equal(picked['directions_ego'], full['directions_ego'][rows])
    assert np.array_equal(picked['laser_number'], full['laser_number'][rows])


TINY_V3 = dict(embed_dim=32, depth=1, num_heads=2)


def test_dinov3_reduction_and_on_the_fly_targets(synthetic_av2_root, tmp_path):
    # An official-format DINOv3 file loads strictly through the backbone builder.
    torch.manual_seed(1)
    reference = DINOv3ViT(**TINY_V3)
    with torch.no_grad():
        for p in reference.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    torch.save(reference.state_dict(), tmp_path / 'dinov3_tiny.pth')
    model, sha = build_backbone('dinov3_vits16', str(tmp_path / 'dinov3_tiny.pth'), **TINY_V3)
    image = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        torch.testing.assert_close(model(image), reference(image))
    assert len(sha) == 64
    # PCA fitted on features at lidar points across the data.
    reduction = fit_feature_reduction(
        synthetic_av2_root,
        tmp_path / 'pca.npz',
        str(tmp_path / 'dinov3_tiny.pth'),
        dim=4,
        splits=('val', ),
        num_sweeps=3,
        image_short_side=32,
        show_progress=False,
        backbone_overrides=TINY_V3)
    np.testing.assert_allclose(reduction.matrix.T @ reduction.matrix, np.eye(4), atol=1e-5)
    assert np.all(np.diff(reduction.explained_variance) <= 0)
    # On-the-fly targets on the training device: the reduced feature of the pixel.
    online = OnlineFeatureTargets(
        weights=str(tmp_path / 'dinov3_tiny.pth'),
        reduction=str(tmp_path / 'pca.npz'),
        image_short_side=32,
        backbone_overrides=TINY_V3)
    images = torch.randint(0, 255, (2, 3, 48, 64), dtype=torch.uint8)
    uv = torch.tensor([[10.0, 20.0], [40.5, 7.25], [63.0, 47.0]])
    got = online(images, uv, torch.tensor([0, 1, 1]))
    maps = online.extractor(images)
    direct = torch.stack(
        [sample_feature_map(maps[i], uv[j:j + 1], 48, 64)[0] for j, i in enumerate([0, 1, 1])])
    torch.testing.assert_close(got, reduction.apply(direct))
    subset = OnlineFeatureTargets(feature_dim=8, image_short_side=32, backbone_overrides=TINY_V3)
    assert subset(images, uv, torch.tensor([0, 1, 1])).shape == (3, 8)


def test_feature_denoiser_loads_from_a_local_file(tmp_path):
    torch.manual_seed(2)
    denoiser = FeatureDenoiser(32, num_heads=2, pos_grid=(4, 4))
    with torch.no_grad():
        denoiser.pos_embed.normal_()
    torch.save(denoiser.state_dict(), tmp_path / 'denoiser.pth')
    loaded = FeatureDenoiser.from_file(tmp_path / 'denoiser.pth', num_heads=2)
    features = torch.randn(2, 32, 3, 5)
    with torch.no_grad():
        out = loaded(features)
        torch.testing.assert_close(out, denoiser(features))
    assert out.shape == features.shape and not torch.allclose(out, features)
    with pytest.raises(AV2DataError, match='denoiser'):
        FeatureDenoiser.from_file(tmp_path / 'absent.pth')


def test_npz_members_are_memory_mapped_with_the_same_values(tmp_path):
    from gasp.targets.cache_manifest import NpzMembers
    rng = np.random.default_rng(0)
    features = rng.normal(size=(1000, 24)).astype(np.float16)
    index = np.arange(1000, dtype=np.int32)[::-1].copy()
    fortran = np.asfortranarray(rng.normal(size=(7, 5)))
    np.savez(
        tmp_path / 'stored.npz',
        features=features,
        point_index=index,
        fortran=fortran,
        cache_id='abc')
    np.savez_compressed(tmp_path / 'compressed.npz', features=features, cache_id='abc')
    with NpzMembers(tmp_path / 'stored.npz') as data:
        mapped = data.memmap('features')
        assert sorted(data.files) == ['cache_id', 'features', 'fortran', 'point_index']
        # Read whole: the same arrays (dtype, shape, order) as np.load gives.
        with np.load(tmp_path / 'stored.npz') as reference:
            for name in reference.files:
                value = data[name]
                assert value.dtype == reference[name].dtype
                np.testing.assert_array_equal(value, reference[name])
        np.testing.assert_array_equal(data.memmap('point_index'), index)
        np.testing.assert_array_equal(data.memmap('fortran'), fortran)
        assert str(data['cache_id']) == 'abc'
        with pytest.raises(KeyError, match='absent is not a file'):
            data['absent']
    assert mapped.shape == (1000, 24) and not mapped.flags.writeable  # a view of the file
    rows = np.array([3, 999, 0, 512])
    np.testing.assert_array_equal(mapped[rows], features[rows])
    with NpzMembers(tmp_path / 'compressed.npz') as data:
        np.testing.assert_array_equal(data.memmap('features'), features)
        np.testing.assert_array_equal(data['features'], features)
        assert str(data['cache_id']) == 'abc'
    np.savez(tmp_path / 'objects.npz', features=np.array([{'a': 1}], dtype=object))
    with NpzMembers(tmp_path / 'objects.npz') as data:
        with pytest.raises(ValueError, match='Python objects'):
            data.memmap('features')
        with pytest.raises(ValueError, match='allow_pickle=False'):
            data['features']
