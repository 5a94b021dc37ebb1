# 4D occupancy forecasting (1 s) of the CPU-sized synthetic GASP model (gasp_synthetic_demo.py)
# on the synthetic world's val split: the same pieces as gasp_av2_occ_forecasting.py.
#   python tools/test.py configs/gasp_synthetic_occ_forecasting.py work_dirs/demo/iter_100.pth
# The demo model is trained to a 1 s horizon (and tiny logs are 3 s long), so only the 1 s
# protocol is run; on the demo world (6 s logs) add 3 to `horizons` and
# `occ_forecasting_metric_3s` to test_evaluator for the 3 s protocol.
_base_ = ['./gasp_synthetic_demo.py', './_base_/datasets/av2_occ_forecasting.py']

data_root = 'data/av2_synthetic/'
point_cloud_range = [-32.0, -32.0, -4.5, 32.0, 32.0, 4.5]  # the demo field's region

renderer = dict(
    type='ExpectedDepthRenderer',
    step=0.2,
    max_depth=100.0,
    point_cloud_range=point_cloud_range,
    field_output='logits',
    steps_per_chunk=32,
    min_transmittance=1e-4)
model = dict(type='GASPOccForecaster', renderer=renderer, rays_per_render=2**13)

test_dataloader = dict(
    _delete_=True,
    batch_size=1,
    num_workers=1,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='AV2OccForecastingDataset',
        data_root=data_root,
        split='val',
        horizons=[1],
        num_past_sweeps={{_base_.num_past_sweeps}},
        past_interval_s=0.2,
        pipeline={{_base_.occ_forecasting_pipeline}}))
test_evaluator = [{{_base_.occ_forecasting_metric_1s}}]
custom_hooks = [{{_base_.occ_forecasting_vis_hook}}]
default_hooks = dict(logger=dict(interval=1))  # one progress line per frame
