# GASP: BEV ResNet + FPN encoder, implicit decoder with occupancy, ego and feature heads.
point_cloud_range = [-70.0, -70.0, -4.5, 70.0, 70.0, 4.5]
voxel_size = [0.2, 0.2, 0.5]  # BEV cells 0.2 m; height slices 0.5 m (default)
num_past_sweeps = 5
past_interval_s = 0.2
future_horizon_s = 3.0
feature_dim = 64
bev_channels = 128
num_height_slices = 18  # (4.5 - -4.5) / 0.5

model = dict(
    type='GASP',
    data_preprocessor=dict(
        type='GASPDataPreprocessor',
        point_cloud_range=point_cloud_range,
        voxel_size=voxel_size,
        num_past_sweeps=num_past_sweeps,
        past_interval_s=past_interval_s,
        occupancy_sampler=dict(
            type='OccupancyQuerySampler',
            num_queries=2**17,
            positive_margin=0.3,
            negative_margin=0.3),
        ego_sampler=dict(
            type='EgoQuerySampler',
            num_queries=2**14,
            region_xy=point_cloud_range[:2] + point_cloud_range[3:5]),
        num_feature_queries=2**14),
    backbone=dict(
        type='BEVResNetFPN',
        in_channels=num_past_sweeps * num_height_slices,
        out_channels=bev_channels),
    decoder=dict(
        type='ImplicitOccupancyDecoder',
        in_channels=bev_channels,
        point_cloud_range=point_cloud_range,
        time_range=[0.0, future_horizon_s],
        heads=dict(occupancy=1, ego=1, feature=feature_dim)),
    losses=dict(
        occupancy=dict(type='OccupancyBCELoss', loss_weight=1.0),
        ego=dict(type='OccupancyBCELoss', loss_weight=1.0),
        feature=dict(
            type='FeatureDistillationLoss', l1_weight=1.0, cosine_weight=1.0, loss_weight=1.0)),
    # Queries per sample through the decoder trunk at once, all heads together (2^17 + 2 x
    # 2^14 in training: one pass); bounds the memory of inference.
    decoder_chunk=2**18)
