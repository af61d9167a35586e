# Two entry points for people: `make demo` and `make test`. Everything else is a step they depend on.
# They run on the machine's node. With NODE=24 (`make test NODE=24`) the same targets run on the pinned Node 24 LTS
# instead, in a separate copy of the sources with its own node_modules and native builds: see scripts/node24.sh.
SHELL := /bin/bash
.DEFAULT_GOAL := test
NODE_BIN ?= node
TEST_FILES = $(shell find dist/test -name '*.test.js' | sort)

.PHONY: install build lint test unit demo clean check-moto

# npm sets NODE to its node's path in the scripts it runs (`npm test`): only NODE=24, or NODE given to make, selects.
ifeq ($(NODE),24)

install build lint test unit demo:
	MAKE="$(MAKE)" scripts/node24.sh make $@

# Drops Node 24's copy of the sources, its node_modules and builds; keeps the fetched Node 24 (.tools/node-24).
clean:
	rm -rf .tools/node24-work

else ifneq ($(and $(NODE),$(filter command line,$(origin NODE))),)
$(error NODE=$(NODE): leave NODE out for the machine's node ($(shell node --version)), or say NODE=24)
else

# npm ci only when the lockfile changed since the last install: repeat runs stay fast.
node_modules/.installed: package-lock.json package.json $(wildcard binding.gyp native/*.cc native/*.h)
	npm ci --no-audit --no-fund
	touch $@

install: node_modules/.installed

# tsc only when a source changed since the last build: `make demo` twice in a row starts at once the second time.
TS_SOURCES = $(shell find src test bench scripts -name '*.ts' 2>/dev/null) tsconfig.json
dist/.built: node_modules/.installed $(TS_SOURCES)
	npx tsc -p tsconfig.json
	touch $@

build: install dist/.built

lint: build
	npx eslint .

# The tests run S3 against a real moto_server: without one, say so at once, not after a build and a timeout.
check-moto:
	@command -v moto_server >/dev/null || { echo "moto_server not found: pip install 'moto[server]' (the tests run S3 against it; see README)" >&2; exit 1; }

test: check-moto lint
	$(NODE_BIN) --test --test-concurrency=2 --test-timeout=300000 $(TEST_FILES)

unit: build
	$(NODE_BIN) --test $(shell find dist/test/unit -name '*.test.js' | sort)

demo: build
	scripts/demo.sh

clean:
	rm -rf dist build node_modules var

endif
