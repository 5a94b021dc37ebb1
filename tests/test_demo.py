"""`make demo`'s script end to end on the tiny world: targets, training with validation before
and after, summary and pictures."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).parents[1]


def test_demo_runs_end_to_end_on_the_tiny_world(synthetic_av2_root, tmp_path):
    root = tmp_path / 'world'
    shutil.copytree(synthetic_av2_root / 'sensor', root / 'sensor')
    work_dir = tmp_path / 'work'
    proc = subprocess.run([
        sys.executable,
        str(REPO / 'tools/demo.py'), '--data-root',
        str(root), '--work-dir',
        str(work_dir), '--preset', 'tiny', '--max-iters', '3', '--workers', '1'
    ],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'RANDOMLY INITIALISED ViT-S/14' in proc.stdout
    summary = json.loads((work_dir / 'demo_summary.json').read_text())
    assert summary['iterations'] == 3
    expected = {'field/occupancy_auroc', 'field/ego_auroc', 'field/feature_cosine'}
    assert expected <= set(summary['metrics_initialised'])
    assert expected <= set(summary['metrics_trained'])
    for name in expected:
        assert np.isfinite(summary['metrics_trained'][name])
    assert 0.0 <= summary['metrics_trained']['field/occupancy_auroc'] <= 1.0
    assert summary['pictures'] and all(Path(p).is_file() for p in summary['pictures'])
    # the reliability hooks run in the demo too
    assert 'NonFiniteGuardHook' in proc.stdout
