# `make demo` trains for a minute, `make train` runs the main job (hours on a CPU), `make test`
# the tests, `make notebook` opens the chapter's notebook, `make install` only sets up .venv;
# each sets up .venv on first use with PYTHON, by default the Python tools/find-python picks
# (3.8-3.11 first, else 3.14, 3.13 or 3.12; it says what to do when there is none).
# On 3.8-3.11 pip installs the pinned stack; on 3.12+ mxnet's and d2l's pins have no wheels, so
# uv (from PyPI, into the venv) installs with tools/overrides.txt replacing them. Then
# tools/system-libs checks the system libraries MXNet links (installing them as root).
# The build (EXTRA: cpu, or cu112 for a GPU) is remembered by its marker .installed-EXTRA in the
# venv: after `make train EXTRA=cu112`, a plain make keeps cu112. mxnet and mxnet-cu112 both
# write the `mxnet` package, so installing one first removes the other.
PYTHON ?=
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(patsubst .installed-%,%,$(notdir $(wildcard $(BIN)/.installed-*)))
EXTRA ?= $(or $(firstword $(INSTALLED)),cpu)
ARGS ?=
OTHER_MXNET = $(if $(filter cu112,$*),mxnet,mxnet-cu112)

.PHONY: install train demo test notebook clean

$(BIN)/.installed-%: setup.py tools/overrides.txt tools/system-libs
	@py='$(PYTHON)'; [ -n "$$py" ] || py=$$(tools/find-python) || exit 1; \
	echo "$$py -m venv $(VENV)"; "$$py" -m venv $(VENV)
	rm -f $(BIN)/.installed-*
	$(BIN)/python -m pip uninstall --quiet --yes $(OTHER_MXNET) 2>/dev/null || true
	@if $(BIN)/python -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then \
	    set -x; $(BIN)/pip install --quiet uv && \
	    $(BIN)/uv pip install --quiet --python $(BIN)/python --override tools/overrides.txt \
	        -e ".[$*,test]"; \
	else \
	    set -x; $(BIN)/pip install --quiet --upgrade pip && \
	    $(BIN)/pip install --quiet -e ".[$*,test]"; \
	fi
	tools/system-libs $(BIN)/python
	touch $@

install: $(BIN)/.installed-$(EXTRA)

train: $(BIN)/.installed-$(EXTRA)
	$(BIN)/python examples/train_pokemon.py $(ARGS)

demo: $(BIN)/.installed-$(EXTRA)
	rm -rf runs/demo
	$(BIN)/python examples/train_pokemon.py --dataset sprites --num-epochs 5 --batch-size 64 \
		--n-G 32 --n-D 32 --seed 0 --out-dir runs/demo $(ARGS)

test: $(BIN)/.installed-$(EXTRA)
	$(BIN)/python -m pytest -q tests $(ARGS)

notebook: $(BIN)/.installed-$(EXTRA)
	$(BIN)/jupyter notebook examples/dcgan.ipynb $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
