# The two commands: `make run` and `make test`. Both set up everything on a fresh machine with Python 3.11+.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app app
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: run test install clean bench bench-smoke wrk bench-database translations translations-extract

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is needed, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# Translations (donations/translations/): the .po files are the source, kept in git; the .mo files the app reads
# are built from them here (and by tests/conftest.py for a bare pytest), never committed.
MO_FILES := $(patsubst %.po,%.mo,$(wildcard donations/translations/*/LC_MESSAGES/messages.po))

translations: $(MO_FILES)

donations/translations/%/LC_MESSAGES/messages.mo: donations/translations/%/LC_MESSAGES/messages.po | $(VENV)/.installed
	$(BIN)/pybabel compile --statistics -i $< -o $@ -l $*

# After changing a marked message: refresh messages.pot and merge it into each language's .po (then translate).
translations-extract: install
	$(BIN)/pybabel extract -F babel.cfg -k _l -k N_ --no-location --sort-output --project=Donations --version=1.0 \
	  --msgid-bugs-address=none --width=120 -o donations/translations/messages.pot .
	$(BIN)/pybabel update -i donations/translations/messages.pot -d donations/translations --width=120 \
	  --ignore-obsolete --no-fuzzy-matching

run: install translations
	$(FLASK) db upgrade
	$(FLASK) seed-demo
	@echo "Donations demo: http://$(HOST):$(PORT)/  (sandbox payments, emails in the outbox and the log)"
	@trap 'kill 0' INT TERM EXIT; \
	$(FLASK) scheduler run & \
	$(FLASK) run --host $(HOST) --port $(PORT)

test: install translations
	$(BIN)/python -m pytest

# The README's screenshots (docs/screenshots/*.png), taken in Chromium from the app as the browser tests run it.
.PHONY: screenshots
screenshots: install
	SCREENSHOTS=1 $(BIN)/python -m pytest tests/browser/test_screenshots.py -q

# Benchmarks against PostgreSQL (DATABASE_URL, a database of its own) with wrk and aiosmtpd: `make bench` seeds
# 1,000,000 donations once (kept for later runs), runs every measurement and writes docs/benchmarks.md and .json;
# `make bench-smoke` (CI) runs the same harness on 10,000 donations with tiny sizes, without judging any figure.
BENCH_MEASUREMENTS ?= embed queries export renewals outbox
BENCH_SMOKE_OUTPUT ?= instance/bench-smoke/benchmarks.json

bench: install wrk bench-database
	$(FLASK) db upgrade
	$(FLASK) bench seed --donations $(or $(DONATIONS),1000000) --supporters $(or $(SUPPORTERS),200000) --keep
	set -e; for m in $(BENCH_MEASUREMENTS); do $(FLASK) bench $$m; done

bench-smoke: install wrk bench-database
	$(FLASK) db upgrade
	$(FLASK) bench seed --donations 10000 --supporters 2000 --keep
	set -e; for m in $(BENCH_MEASUREMENTS); do $(FLASK) bench $$m --smoke --output $(BENCH_SMOKE_OUTPUT); done

# The data the benchmarks run on: an empty PostgreSQL database (upgraded first) filled by COPY.
# SEED_ARGS=--force empties the seeded tables of a database that holds data first.
.PHONY: bench-seed
bench-seed: install bench-database
	$(FLASK) db upgrade
	$(FLASK) bench seed --donations $(or $(DONATIONS),1000000) --supporters $(or $(SUPPORTERS),200000) $(SEED_ARGS)

bench-database:
	@case "$$DATABASE_URL" in postgresql*) ;; *) echo "The benchmarks need PostgreSQL: set \
	DATABASE_URL=postgresql+psycopg://user:password@127.0.0.1:5432/database (a database of its own)" >&2; exit 1;; esac

wrk:
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; \
	  else \
	    echo "The benchmarks need wrk (an HTTP load generator): on Debian or Ubuntu sudo apt-get install wrk," \
	      "on macOS brew install wrk, elsewhere build it from https://github.com/wg/wrk" >&2; exit 1; \
	  fi; }

clean:
	rm -rf $(VENV) .pytest_cache
