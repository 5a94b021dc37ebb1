# GASP for OpenMMLab. `make test` and `make demo` do all set-up on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: install lint test format

install:
	bash tools/install_env.sh

lint: install
	$(PY) -m flake8 projects gasp_ops configs tools tests
	$(PY) -m isort --check-only --diff projects gasp_ops configs tools tests

test: install lint
	$(PY) -m pytest $(PYTEST_ARGS)

format: install
	$(PY) -m isort projects gasp_ops configs tools tests
	$(PY) -m yapf -i -r projects gasp_ops configs tools tests
