"""Estimate the generation time of a preset from a few sweeps and camera frames.

``python -m gasp.synthetic.benchmark --preset full --device cuda`` times scene building, lidar
sweeps and full ring-camera frames (7 images), then extrapolates to one log of the preset.
"""
import argparse
import time

import torch

from .cameras import camera_rig, render_images
from .generate import _camera_batches, _ray_budget
from .lidar import av2_lidar_rig, simulate_sweep
from .presets import get_preset
from .scene import build_scene


def _sync(device: str) -> None:
    if str(device).startswith('cuda'):
        torch.cuda.synchronize()


def benchmark(preset='full', device='cpu', sweeps: int = 3, frames: int = 2, seed: int = 0):
    """Time parts of one log's generation and extrapolate (excluding file writes).

    Returns:
        dict of seconds: ``scene``, ``per_sweep``, ``per_camera_frame`` (7 images) and
        ``log_estimate``; plus ``points_per_sweep``.
    """
    preset = get_preset(preset)
    if not str(device).startswith('cuda'):
        torch.set_num_threads(1)
    start = time.perf_counter()
    scene = build_scene(preset, seed, 'train', 0)
    tensors = scene.tensors(device=torch.device(device))
    t_scene = time.perf_counter() - start
    rig = av2_lidar_rig(preset.lidar_azimuth_steps, preset.max_range_m)
    cams = camera_rig(preset.camera_scale)
    with torch.no_grad():
        simulate_sweep(scene, tensors, rig, 0, preset.heightfield_steps)  # warm-up
        _sync(device)
        start = time.perf_counter()
        points = [
            len(simulate_sweep(scene, tensors, rig, k + 1, preset.heightfield_steps).frame)
            for k in range(sweeps)
        ]
        _sync(device)
        t_sweep = (time.perf_counter() - start) / sweeps
        start = time.perf_counter()
        for batch in _camera_batches(scene, cams, _ray_budget(device), range(frames)):
            render_images(scene, tensors, batch, preset.heightfield_steps)
        _sync(device)
        t_frame = (time.perf_counter() - start) / frames
    est = t_scene + preset.num_sweeps * t_sweep + preset.num_camera_frames * t_frame
    return {
        'scene': t_scene,
        'per_sweep': t_sweep,
        'per_camera_frame': t_frame,
        'log_estimate': est,
        'points_per_sweep': sum(points) / len(points)
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--preset', default='full')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--sweeps', type=int, default=3)
    parser.add_argument('--frames', type=int, default=2)
    args = parser.parse_args()
    res = benchmark(args.preset, args.device, args.sweeps, args.frames)
    if str(args.device).startswith('cuda'):
        res['max_gpu_mem_gb'] = torch.cuda.max_memory_allocated() / 2**30
    print({k: round(v, 3) for k, v in res.items()})


if __name__ == '__main__':
    main()
