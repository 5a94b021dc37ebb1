# Map segmentation on a GASP encoder pre-trained with mmdet3d's PointPillars parts
# (configs/gasp_av2_pointpillars.py): `load_from` its checkpoint loads voxel_encoder.*,
# middle_encoder.*, backbone.* and neck.*. Other tasks: the same overrides on their config.
_base_ = ['./map_segmentation_av2.py']

point_cloud_range = [-70.0, -70.0, -4.5, 70.0, 70.0, 4.5]
pillar_size = [0.4, 0.4, 9.0]
grid_size = [350, 350]  # (ny, nx) = 140 m / 0.4 m
point_features = 5  # x, y, z, intensity, t_rel_s

model = dict(
    data_preprocessor=dict(
        bev_input=False,
        voxel_layer=dict(
            max_num_points=32,
            point_cloud_range=point_cloud_range,
            voxel_size=pillar_size,
            max_voxels=(60000, 60000))),
    voxel_encoder=dict(
        type='PillarFeatureNet',
        in_channels=point_features,
        feat_channels=[64],
        with_distance=False,
        voxel_size=pillar_size,
        point_cloud_range=point_cloud_range),
    middle_encoder=dict(type='PointPillarsScatter', in_channels=64, output_shape=grid_size),
    backbone=dict(
        _delete_=True,
        type='SECOND',
        in_channels=64,
        layer_nums=[3, 5, 5],
        layer_strides=[2, 2, 2],
        out_channels=[64, 128, 256]),
    neck=dict(
        type='SECONDFPN',
        in_channels=[64, 128, 256],
        upsample_strides=[1, 2, 4],
        out_channels=[128, 128, 128]),
    head=dict(in_channels=384))
