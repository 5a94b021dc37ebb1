# GASP for OpenMMLab. `make test` and `make demo` do all set-up on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: install lint test demo format
DEMO_ARGS ?=

install:
	bash tools/install_env.sh

lint: install
	$(PY) -m flake8 projects gasp_ops configs tools tests
	$(PY) -m isort --check-only --diff projects gasp_ops configs tools tests

test: install lint
	$(PY) -m pytest $(PYTEST_ARGS)

# The main job on the embedded default: synthetic AV2 world -> infos -> GASP pre-training on
# CPU -> evaluation before/after -> PNGs in work_dirs/demo/.
demo: install
	$(PY) tools/demo.py $(DEMO_ARGS)

format: install
	$(PY) -m isort projects gasp_ops configs tools tests
	$(PY) -m yapf -i -r projects gasp_ops configs tools tests
