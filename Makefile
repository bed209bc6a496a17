# The README's two commands are `make run` and `make test`; everything else is a convenience.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
DATA   ?= ../shared/data/fsdd
STAMP  := $(VENV)/.installed
TOOLS  := .venv-tools
TSTAMP := $(TOOLS)/.installed

.PHONY: run test setup lint train cv results lock clean bento reliability

run: $(STAMP)  ## train the default model if the store has none, then serve it (HTTP 3000, gRPC 50051)
	DATA=$(DATA) PY=$(PY) bash scripts/main.sh

test: $(STAMP) $(TSTAMP)  ## the whole test suite, as CI runs it
	$(PY) -m pytest

setup: $(STAMP) $(TSTAMP)

$(STAMP): requirements.lock requirements-pretrained.txt pyproject.toml scripts/system_deps.sh
	@test -n "$(PYTHON)" || { echo "need python3.11 on PATH"; exit 1; }
	bash scripts/system_deps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --require-hashes -r requirements-pretrained.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# checkov and pip-audit in a venv of their own: their pins conflict with the service's.
$(TSTAMP): requirements-tools.lock
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS)/bin/python -m pip install --quiet -r requirements-tools.lock
	touch $(TSTAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

train: $(STAMP)  ## one training run: make train OUT=runs/x ARGS="--config configs/instruments.yaml"
	$(PY) -m training train --data $(DATA) --out $(or $(OUT),runs/train) $(ARGS)

results: $(STAMP)  ## every run behind docs/results.md (recorded wall times add up to 1.9 h on 2 cores)
	$(PY) scripts/results.py

bento: $(STAMP)  ## the Bento, exported with its model to runs/bento: make bento [VARIANT=gpu] [MODEL=audio_classifier:<version>]
	PY=$(PY) bash k8s/build_bento.sh $(or $(VARIANT),cpu) runs/bento $(or $(MODEL),audio_classifier:latest)

reliability: $(STAMP) $(TSTAMP)  ## hostile input, overload, killed workers, SIGTERM, bad models, audits -> docs/reliability.md
	$(PY) -m scripts.reliability

lock:  ## re-resolve the pinned tree after editing pyproject.toml
	rm -rf /tmp/lockenv && $(PYTHON) -m venv /tmp/lockenv
	/tmp/lockenv/bin/pip install --quiet ".[dev]"
	/tmp/lockenv/bin/pip freeze --exclude audioclf > requirements.lock

clean:
	rm -rf $(VENV) $(TOOLS) runs .pytest_cache

# Load tests against a running server (make run); HOST/GRPC_HOST point elsewhere. Results: runs/loadtests/<profile>/.
HOST      ?= http://127.0.0.1:3000
GRPC_HOST ?= 127.0.0.1:50051
.PHONY: loadtest-smoke loadtest-steady loadtest-ramp benchmark

loadtest-smoke: $(STAMP)  ## Locust, 8 s, HTTP + gRPC users: zero failures expected
	$(PY) -m loadtests.run smoke --host $(HOST) --grpc-host $(GRPC_HOST)

loadtest-steady: $(STAMP)  ## Locust, 2 min below saturation: zero failures expected (load-shed 503s counted apart)
	$(PY) -m loadtests.run steady --host $(HOST) --grpc-host $(GRPC_HOST)

loadtest-ramp: $(STAMP)  ## Locust, closed-loop users stepping 4..128: where throughput stops growing
	$(PY) -m loadtests.run ramp --host $(HOST) --grpc-host $(GRPC_HOST)

benchmark: $(STAMP)  ## starts its own servers; ~6 min on 2 cores; writes docs/performance.md (ARGS="--model-dir runs/x/model")
	$(PY) -m loadtests.benchmark $(ARGS)
