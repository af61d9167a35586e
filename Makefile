# Two entry points for people: `make demo` and `make test`. Everything else is a step they depend on.
SHELL := /bin/bash
.DEFAULT_GOAL := test
NODE_BIN ?= node
TEST_FILES = $(shell find dist/test -name '*.test.js' | sort)

.PHONY: install build lint test unit demo clean

# npm ci only when the lockfile changed since the last install: repeat runs stay fast.
node_modules/.installed: package-lock.json package.json binding.gyp $(wildcard native/*.cc)
	npm ci --no-audit --no-fund
	touch $@

install: node_modules/.installed

build: install
	npx tsc -p tsconfig.json

lint: build
	npx eslint .

test: lint
	$(NODE_BIN) --test --test-concurrency=2 --test-timeout=300000 $(TEST_FILES)

unit: build
	$(NODE_BIN) --test $(shell find dist/test/unit -name '*.test.js' | sort)

demo: build
	scripts/demo.sh

clean:
	rm -rf dist build node_modules var
