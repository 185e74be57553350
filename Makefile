# The README's commands. Each target sets up what it needs, so a fresh clone needs only these.
# The first interpreter that actually runs and is 3.11+ (pyenv shims may exist but not run).
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11 python; do \
            $$p -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null && { echo $$p; break; }; done)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup postgres chromium db demo test dev bench clean

setup: $(STAMP) postgres

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11+ is required (set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev,deploy]"
	touch $(STAMP)

# PostgreSQL server binaries: the machine's, else Debian's package (as root), else the pgserver wheel.
postgres: $(STAMP)
	@$(BIN)/python -c 'from equity_assets.db.cluster import find_bin_dir; find_bin_dir()' 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else $(BIN)/pip install --quiet 'pgserver>=0.1.4'; fi; }

# The consent-page tests drive Debian's chromium through Playwright (never a downloaded browser).
chromium:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "WARNING: /usr/bin/chromium is missing and this is not root: browser tests will be SKIPPED" >&2; fi; }

db: setup
	$(BIN)/equity db start

demo: db
	$(BIN)/equity demo

test: db chromium
	$(BIN)/lint-imports
	$(BIN)/pytest -q

# e.g. make dev DEV_ARGS="--port 3001 --sandbox-port 8091 --gateway-port 8081"
dev: db
	$(BIN)/equity dev $(DEV_ARGS)

clean:
	-$(BIN)/equity db stop
	rm -rf $(VENV) .equity
