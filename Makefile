# `make demo` and `make test` each do all of their own set-up on a fresh machine.
PYTHON ?= python3
export TF_CPP_MIN_LOG_LEVEL := 3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MODELS := build/models
DEMO := build/demo

.PHONY: venv models demo test bench zoo conformance clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

venv: $(STAMP)

$(MODELS)/manifest.json: $(STAMP) $(wildcard models/*.py)
	$(PY) -m models.build --out $(MODELS)

models: $(MODELS)/manifest.json

# The reference models to every available target, calibrated on their calibration sets and scored
# on their evaluation sets.
demo: models
	$(PY) -m qconvert $(MODELS)/unet.h5 --to all -o $(DEMO)/unet \
		--calib $(MODELS)/unet_calib.npz --eval $(MODELS)/unet_eval.npz
	$(PY) -m qconvert models/vgg_torch.py:build --weights $(MODELS)/vgg_weights.pt --trust-code \
		--input-shape 1,3,32,32 --batch 32 --to all -o $(DEMO)/vgg \
		--calib $(MODELS)/vgg_calib.npz --eval $(MODELS)/vgg_eval.npz
	$(PY) -m qconvert $(MODELS)/resnet.pt2 --batch 32 --to all -o $(DEMO)/resnet \
		--calib $(MODELS)/resnet_calib.npz --eval $(MODELS)/resnet_eval.npz
	$(PY) -m qconvert $(MODELS)/mobilenet.pt2 --batch 32 --to all -o $(DEMO)/mobilenet \
		--calib $(MODELS)/mobilenet_calib.npz --eval $(MODELS)/mobilenet_eval.npz

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadscope

bench: models
	$(PY) -m bench.quant_vs_ort --models $(MODELS) --out bench/QUANT.md
	$(PY) -m bench.run --models $(MODELS) --out bench/RESULTS.md
	$(PY) -m bench.qat_vs_tfmot --models $(MODELS) --out bench/QAT.md
	$(PY) -m bench.qat_dwnet --models $(MODELS) --out bench/QAT_DWNET.md
	$(PY) -m bench.prune --models $(MODELS) --out bench/PRUNE.md
	$(PY) -m bench.bundle_venvs --models $(MODELS) --out bench/BUNDLES.md
	$(PY) -m bench.tflite_convert_time --models $(MODELS) --out bench/TFLITE_CONVERT.md

# Public architectures with random weights (models/zoo), each to every float target: bench/ZOO.md; their
# channel groups pruned by half and checked (zeroing equals removal): bench/ZOO_PRUNE.md; each trained
# with --qat and lowered to every int8 target: bench/ZOO_QAT.md.
zoo: $(STAMP)
	$(PY) -m bench.zoo --out bench/ZOO.md --jobs 2
	$(PY) -m bench.zoo_prune --out bench/ZOO_PRUNE.md
	$(PY) -m bench.zoo_qat --out bench/ZOO_QAT.md

# ONNX's backend node tests through the TFLite and torch emitters: bench/CONFORMANCE.md.
conformance: $(STAMP)
	$(PY) -m bench.conformance --out bench/CONFORMANCE.md

clean:
	rm -rf build qconvert-out
