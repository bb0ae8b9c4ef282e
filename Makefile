# Fresh-machine entry points:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --quiet -c constraints.txt
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-all clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e '.[test]'
	touch $(STAMP)

# Degrade a bundled photo (scikit-image's astronaut) 4x and restore it.
demo: $(STAMP)
	$(PY) examples/demo.py --out demo-out

# The default suite (< 10 min on 2 cores). pytest exit code 5 = "no tests collected".
test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

test-all: $(STAMP)
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) demo-out build *.egg-info
