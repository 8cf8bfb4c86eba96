# `make demo` and `make test` are the whole set-up on a fresh machine: each creates
# .venv from requirements.txt when it is missing (or older than the pins).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-requirements

DEMO_CONFIG := config.demo_googlenet_config
DEMO_OUT    := output/demo

# Table 6 of He et al. 2016 for ResNet-20 on CIFAR-10 held as JPEG class folders:
#   make cifar-table6 CIFAR10_IMAGES=/path/to/cifar10-images [TABLE6_RUNS=5] [TABLE6_DEPTH=56]
# Re-running the target continues where it stopped (the records are kept once they verify,
# every run resumes from its newest checkpoint).
CIFAR10_IMAGES ?=
TABLE6_CONFIG  := config.cifar10_folder_config
TABLE6_DEPTH   ?= 20
TABLE6_RUNS    ?= 1
TABLE6_OUT     ?= output/cifar10/table6/resnet$(TABLE6_DEPTH)
TABLE6_ENV      = CIFAR10_IMAGES="$(CIFAR10_IMAGES)"

.PHONY: venv demo test test-fast lint bench bench-quick clean-demo cifar-table6

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

cifar-table6: $(STAMP)
	@test -n "$(CIFAR10_IMAGES)" || { echo "usage: make cifar-table6 CIFAR10_IMAGES=/path/to/cifar10-images (train/<class>/*.jpg and test/<class>/*.jpg)" >&2; exit 2; }
	$(TABLE6_ENV) $(PY) verify_records.py --config $(TABLE6_CONFIG) >/dev/null 2>&1 || \
		$(TABLE6_ENV) $(PY) build_imagenet.py --config $(TABLE6_CONFIG)
	$(TABLE6_ENV) $(PY) train_cifar.py --config $(TABLE6_CONFIG) --depth $(TABLE6_DEPTH) \
		--shortcut A --runs $(TABLE6_RUNS) --seed 1 --resume --checkpoints $(TABLE6_OUT) --prefix resnet
	$(TABLE6_ENV) $(PY) cifar_stats.py $(TABLE6_OUT) --prefix resnet

clean-demo:
	rm -rf datasets/digits $(DEMO_OUT)
