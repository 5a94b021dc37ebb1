#!/usr/bin/env bash
# Create (or refresh) the GASP development environment in $VENV (default .venv).
#
# Idempotent: a stamp inside the venv records a hash of everything that decides its
# contents; when nothing changed the script exits in a second. The compiled mmcv wheel
# is cached in $GASP_CACHE (default ~/.cache/gasp) so a fresh clone reuses it.
#
# Usage: bash tools/install_env.sh        (or: make install)
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3.11}
GASP_CACHE=${GASP_CACHE:-$HOME/.cache/gasp}
MMCV_VERSION=2.1.0
# sha256 of mmcv-2.1.0.tar.gz as published on PyPI.
MMCV_SHA256=d387bcab66b467479b6660310e23746cfc79c6e57acf04094680adb499a5cd3f

log() { printf '[install] %s\n' "$*"; }

stamp_hash=$(cat requirements/*.txt tools/install_env.sh pyproject.toml | sha256sum | cut -c1-16)
stamp="$VENV/.gasp-env-$stamp_hash"
if [ -f "$stamp" ]; then
    log "environment $VENV is up to date"
    exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
    command -v "$PYTHON" >/dev/null || PYTHON=python3
    log "creating $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check -q)

log "installing torch and the build tools (requirements/build.txt)"
"${PIP[@]}" install -r requirements/build.txt

# ---------------------------------------------------------------------------
# mmcv 2.1.0: PyPI has it only as a source tarball (mmcv-lite lacks the compiled
# ops mmdet3d imports). Traps, measured: torch 2.14 headers need -std=c++20,
# setup.py needs pkg_resources (setuptools < 82) and torch in the build env
# (--no-build-isolation). CUDA ops are built when a GPU is visible.
# ---------------------------------------------------------------------------
read -r torch_tag cuda_flag < <("$PY" - <<'EOF'
import torch
print(torch.__version__.replace('+', '_'), int(torch.cuda.is_available()))
EOF
)
py_tag=$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
wheel_dir="$GASP_CACHE/wheels/mmcv-$MMCV_VERSION-$py_tag-torch$torch_tag-cuda$cuda_flag"
if ! ls "$wheel_dir"/mmcv-*.whl >/dev/null 2>&1; then
    log "compiling mmcv $MMCV_VERSION (cuda ops: $cuda_flag); this takes ~6 min on 2 cores, once"
    build=$(mktemp -d)
    trap 'rm -rf "$build"' EXIT
    sdist_url=$(curl -fsSL https://pypi.org/simple/mmcv/ \
        | grep -o "https://[^\"#]*/mmcv-$MMCV_VERSION.tar.gz" | head -n 1)
    curl -fsSL -o "$build/mmcv.tar.gz" "$sdist_url"
    echo "$MMCV_SHA256  $build/mmcv.tar.gz" | sha256sum -c --quiet
    tar -xzf "$build/mmcv.tar.gz" -C "$build"
    sed -i 's/-std=c++17/-std=c++20/g' "$build/mmcv-$MMCV_VERSION/setup.py"
    tmp_wheels="$build/wheels"
    (
        cd "$build/mmcv-$MMCV_VERSION"
        export MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)}
        [ "$cuda_flag" = 1 ] && export FORCE_CUDA=1
        "$OLDPWD/$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$tmp_wheels" .
    )
    mkdir -p "$wheel_dir"
    # Publish atomically: a killed build never leaves a half-written wheel in the cache.
    for w in "$tmp_wheels"/mmcv-*.whl; do
        cp "$w" "$wheel_dir/.$(basename "$w").part"
        mv "$wheel_dir/.$(basename "$w").part" "$wheel_dir/$(basename "$w")"
    done
else
    log "reusing cached mmcv wheel from $wheel_dir"
fi
"${PIP[@]}" install --no-deps "$wheel_dir"/mmcv-*.whl
"${PIP[@]}" install 'addict' 'opencv-python-headless' 'packaging' 'pyyaml' 'yapf' 'Pillow'

log "installing the OpenMMLab stack (requirements/runtime.txt, requirements/tests.txt)"
"${PIP[@]}" install -r requirements/runtime.txt -r requirements/tests.txt
"${PIP[@]}" install --no-deps -r requirements/mmdet3d.txt

log "installing gasp (editable)"
"${PIP[@]}" install --no-deps --no-build-isolation -e .

"$PY" - <<'EOF'
import mmcv, mmdet3d.models, mmdet3d.datasets, mmpretrain.models  # noqa: F401
import gasp
print(f'[install] ok: mmcv {mmcv.__version__}, mmdet3d {mmdet3d.__version__}, gasp {gasp.__version__}')
EOF
rm -f "$VENV"/.gasp-env-*
touch "$stamp"
