# 4D occupancy forecasting on AV2 (SPEC section 5): test-time pieces. A leaf config sets
#   test_dataloader = dict(_delete_=True, ..., dataset=dict(type='AV2OccForecastingDataset',
#                          pipeline=occ_forecasting_pipeline, ...))
#   test_evaluator = [occ_forecasting_metric_1s, occ_forecasting_metric_3s]
# (names distinct from the pre-training pieces, so both can be bases of one config).
occ_forecasting_pipeline = [
    dict(type='LoadPastSweeps'),  # the model's input sweeps, ego frame at t = 0
    dict(type='LoadOccForecastingQueries'),  # every 5th return of each future frame
    dict(type='PackOccForecastingInputs'),
]
# One metric per horizon; out_file is relative to the work dir (tools/test.py), and holds
# every (log, frame, step) row. clamp_to_box=True gives the paper's clamped variant.
occ_forecasting_metric_1s = dict(
    type='OccForecastingMetric',
    horizon='1s',
    prefix='occ_forecasting_1s',
    clamp_to_box=False,
    out_file='occ_forecasting_1s.json')
occ_forecasting_metric_3s = dict(
    type='OccForecastingMetric',
    horizon='3s',
    prefix='occ_forecasting_3s',
    clamp_to_box=False,
    out_file='occ_forecasting_3s.json')
occ_forecasting_vis_hook = dict(type='OccForecastingVisualizationHook', num_frames=2)
