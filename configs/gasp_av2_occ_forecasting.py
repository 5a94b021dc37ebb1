# 4D occupancy forecasting (AV2 val, 1 s and 3 s) of a pre-trained GASP model: the occupancy
# field rendered into expected depth along the benchmark's query rays (SPEC section 5).
#   python tools/test.py configs/gasp_av2_occ_forecasting.py work_dirs/gasp_av2/iter_100000.pth
#   tools/dist_test.sh configs/gasp_av2_occ_forecasting.py CHECKPOINT 8
# Prints one table per horizon; writes occ_forecasting_{1s,3s}.json and PNGs (vis hook) to
# the work dir. For UnO: `_base_ = ['./uno_av2.py', ...]` instead of gasp_av2.py.
_base_ = ['./gasp_av2.py', './_base_/datasets/av2_occ_forecasting.py']

data_root = 'data/av2/'
point_cloud_range = [-70.0, -70.0, -4.5, 70.0, 70.0, 4.5]  # the field's region (ego frame)

# Expected depth: march 0.2 m steps through the field to the region exit (SPEC s. 5).
# For UnO's learned renderer see configs/gasp_av2_occ_forecasting_learned_renderer.py.
renderer = dict(
    type='ExpectedDepthRenderer',
    step=0.2,
    max_depth=100.0,
    point_cloud_range=point_cloud_range,
    field_output='logits',
    steps_per_chunk=32,
    min_transmittance=1e-4)
model = dict(type='GASPOccForecaster', renderer=renderer, rays_per_render=2**14)

test_dataloader = dict(
    _delete_=True,
    batch_size=1,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='AV2OccForecastingDataset',
        data_root=data_root,
        split='val',
        horizons=[1, 3],
        num_past_sweeps={{_base_.num_past_sweeps}},
        past_interval_s={{_base_.past_interval_s}},
        pipeline={{_base_.occ_forecasting_pipeline}}))
test_evaluator = [{{_base_.occ_forecasting_metric_1s}}, {{_base_.occ_forecasting_metric_3s}}]
custom_hooks = [{{_base_.occ_forecasting_vis_hook}}]
default_hooks = dict(logger=dict(interval=10))  # a progress line every 10 frames
