"""Shared pytest fixtures."""
import os
import sys

import pytest

_GASP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'projects', 'GASP')
try:
    import gasp.synthetic  # noqa: F401
except ImportError:  # package not installed (editable) yet: use the in-repo copy
    sys.path.insert(0, os.path.abspath(_GASP_DIR))

#: Seed of the session-wide synthetic dataset.
SYNTHETIC_AV2_SEED = 0


@pytest.fixture(scope='session')
def synthetic_av2_root(tmp_path_factory):
    """Root (the folder containing ``sensor/``) of the ``tiny`` synthetic AV2 dataset.

    Generated once per test session: 2 train, 1 val and 1 test log of 3 s each (lidar 10 Hz,
    7 ring cameras at 20 Hz, map, labels, ground-truth sidecar ``synthetic_gt/``).
    """
    from gasp.synthetic import generate_world
    root = tmp_path_factory.mktemp('synthetic_av2')
    generate_world(root, preset='tiny', seed=SYNTHETIC_AV2_SEED, workers=1, show_progress=False)
    return root
