# Runtime shared by every GASP config: mmdet3d's defaults plus the GASP plugin.
_base_ = ['mmdet3d::_base_/default_runtime.py']

# Importing `gasp` registers its datasets, transforms, models, metrics and hooks into
# the mmdet3d registries and applies the stack fixes of `gasp.compat`.
custom_imports = dict(imports=['gasp'], allow_failed_imports=False)
