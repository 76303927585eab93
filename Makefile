# `make train` runs the main job, `make test` the tests, `make notebook` opens the chapter's
# notebook; each sets up .venv on first use with PYTHON, by default the newest Python 3.8-3.11
# on PATH (tools/find-python says what to do when there is none).
PYTHON ?=
VENV ?= .venv
EXTRA ?= cpu
ARGS ?=
BIN := $(VENV)/bin

.PHONY: train demo test notebook clean

$(BIN)/.installed-$(EXTRA): setup.py
	@py='$(PYTHON)'; [ -n "$$py" ] || py=$$(tools/find-python) || exit 1; \
	echo "$$py -m venv $(VENV)"; "$$py" -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[$(EXTRA),test]"
	touch $@

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
