# Two commands on a fresh machine: `make demo` and `make test`. Both set up .venv first when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup browser test test-fast demo lint clean

setup: $(STAMP)

# Re-install whenever pyproject.toml changes. torch is pinned exactly in pyproject.toml.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[pretrained,dev]'
	touch $(STAMP)

# The page of `zoo serve` is tested in a real headless browser: Debian's Chromium and its driver (a browser
# that a test downloads cannot work offline). Installed when missing and we are root; else say how.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	  else \
	    echo "the browser test needs Chromium: sudo apt-get install -y chromium chromium-driver" >&2; \
	  fi; \
	fi

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

demo: $(STAMP)
	$(BIN)/python examples/demo.py

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) output .pytest_cache
