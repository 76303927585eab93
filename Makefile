# `make train` runs the main job, `make test` the tests; each sets up .venv on first use.
PYTHON ?= python3
VENV ?= .venv
EXTRA ?= cpu
ARGS ?=
BIN := $(VENV)/bin

.PHONY: train demo test clean

$(BIN)/.installed-$(EXTRA): setup.py
	$(PYTHON) -m venv $(VENV)
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

clean:
	rm -rf $(VENV) build *.egg-info
