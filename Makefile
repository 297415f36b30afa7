# The two commands a newcomer needs (each does its own set-up first):
#   make demo   # videos -> features -> trained head -> scores, offline, on an embedded dataset
#   make test   # the test suite (what CI runs)
SHELL := /bin/bash
VENV ?= $(if $(AQA_VENV),$(AQA_VENV),.venv)
PY := $(VENV)/bin/python
ENV := . ./env.sh &&

.PHONY: setup test demo lint bench-decode

setup:
	@AQA_VENV=$(VENV) bash setup.sh

test: setup
	@$(VENV)/bin/ruff check -q aqa pipeline extractors models data tests bench
	@$(ENV) YOLO_OFFLINE=1 YOLO_AUTOINSTALL=false $(PY) -m pytest $(PYTEST_ARGS)

demo: setup
	@$(ENV) $(PY) -m aqa.pipeline.demo $(DEMO_ARGS)

lint: setup
	@$(VENV)/bin/ruff check aqa pipeline extractors models data tests bench
