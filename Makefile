# `make demo` and `make test` are the whole set-up on a fresh machine: each creates
# .venv from requirements.txt when it is missing (or older than the pins).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-requirements

DEMO_CONFIG := config.demo_googlenet_config
DEMO_OUT    := output/demo

.PHONY: venv demo test test-fast lint bench bench-quick clean-demo

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: lint
	$(PY) -m pytest -q

# Everything but the tests marked slow (over ~20 s each: kills, restarts, clusters, benchmarks).
test-fast: lint
	$(PY) -m pytest -q -m "not slow"

demo: $(STAMP)
	$(PY) build_demo_dataset.py --config $(DEMO_CONFIG)
	$(PY) build_imagenet.py --config $(DEMO_CONFIG)
	rm -rf $(DEMO_OUT)
	$(PY) train_googlenet.py --config $(DEMO_CONFIG) --checkpoints $(DEMO_OUT) --prefix googlenet
	$(PY) plot_log.py --checkpoints $(DEMO_OUT) --prefix googlenet
	$(PY) test_googlenet.py --config $(DEMO_CONFIG) --checkpoints $(DEMO_OUT) --prefix googlenet \
		--epoch last --require-rank1 0.90
	$(PY) export_onnx.py --config $(DEMO_CONFIG) --checkpoints $(DEMO_OUT) --prefix googlenet --epoch last
	$(PY) report.py --checkpoints $(DEMO_OUT) --prefix googlenet
	@echo "demo done: checkpoints, logs, curves (googlenet_*.png), the ONNX model and the report (googlenet-report.html) are in $(DEMO_OUT)/"

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

bench-quick: $(STAMP)
	$(PY) benchmarks/run_all.py --quick

clean-demo:
	rm -rf datasets/digits $(DEMO_OUT)
