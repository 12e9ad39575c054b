# botai — `make run` and `make test` do all set-up on a fresh Debian machine.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
export PATH := $(HOME)/.cargo/bin:$(PATH)

PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
PGPORT_BOTAI ?= 5555
DATABASE ?= bot_trading_v3
# Set-up runs as the developer's superuser role over the Unix socket (peer).
ADMIN_ENV = PGHOST=/var/run/postgresql PGPORT=$(PGPORT_BOTAI) PGDATABASE=$(DATABASE) PGUSER=$$(id -un)
BOTAI := target/release/botai

.PHONY: test-failover test-python sql-golden sql-release fuzz all deps extension cluster db migrate daemon test run status lint fmt bench reset-db clean-cluster onnxruntime train evaluate

all: db daemon

deps:            ## Debian packages, cargo-pgrx 0.18.0
	scripts/deps.sh

extension: deps  ## build botai.so and its SQL, install it (the server is stopped around a new .so)
	cargo pgrx package -p botai --pg-config $(PG_CONFIG)
	scripts/cluster.sh install target/release/botai-pg15

cluster: extension ## the cluster on port 5555 with botai preloaded, database bot_trading_v3
	scripts/cluster.sh ensure

daemon: deps
	cargo build --release -p botai-daemon

migrate: cluster daemon ## roles, CREATE EXTENSION, seed configuration; a password for botai_service in .env
	$(ADMIN_ENV) $(BOTAI) db migrate
	scripts/cluster.sh credentials

db: migrate

TEST_DATABASE ?= botai_test
TEST_ENV = PGHOST=/var/run/postgresql PGPORT=$(PGPORT_BOTAI) PGDATABASE=$(TEST_DATABASE) PGUSER=$$(id -un)

test-python: onnxruntime ## test-only Python packages (ccxt) in .cache/venv
	scripts/test-python.sh

# The tests link 25 binaries against the daemon: without link-time
# optimisation each links in seconds instead of a minute (the daemon's
# behaviour is the same; `make run` and `make bench` keep thin LTO). The
# setting holds for what `make test` builds first, the daemon and the
# extension included.
test: export CARGO_PROFILE_RELEASE_LTO := false
test: cluster daemon onnxruntime test-python ## every test, against the real server, in a database made fresh for the run
	scripts/cluster.sh reset $(TEST_DATABASE)
	$(TEST_ENV) $(BOTAI) db migrate
	scripts/cluster.sh credentials
	scripts/sql-golden.sh 2>&1 | tee target/test.log
	$(TEST_ENV) cargo test --release --workspace --exclude botai -- --nocapture 2>&1 | tee -a target/test.log
	$(TEST_ENV) scripts/test-python-client.sh 2>&1 | tee -a target/test.log

# The failover drills of tests/failover/: make test runs the two on a pair
# of clusters promoted by hand; this adds the one under Patroni and etcd.
test-failover: cluster daemon onnxruntime ## failover drills, Patroni's included (installs patroni and etcd-server; not part of make test)
	scripts/deps.sh patroni etcd-server
	$(TEST_ENV) cargo test --release -p botai-tests --test failover -- --include-ignored --nocapture 2>&1 | tee target/test-failover.log

# make run steps the replay bar by bar (deterministic, about 4 minutes for
# the month); REPLAY_SPEED=3000 make run replays on the wall clock instead.
REPLAY_SPEED ?= max

# The shipped model emits nothing (its margin is null: no edge out of sample, models/MODEL_CARD.md),
# so make run shows the system trading with the reversal demo, which claims no edge.
# RUN_STRATEGY=patchtst make run runs the model alone (silent).
RUN_STRATEGY ?= reversal-demo

run: db onnxruntime ## the whole system on its embedded defaults (a month no model saw, the reversal demo)
	REPLAY_SPEED=$(REPLAY_SPEED) STRATEGY=$(RUN_STRATEGY) $(BOTAI) run

BENCH_DATABASE ?= botai_bench

bench: cluster daemon onnxruntime ## benchmarks, in a database of their own (not part of make test)
	scripts/cluster.sh reset $(BENCH_DATABASE)
	PGHOST=/var/run/postgresql PGPORT=$(PGPORT_BOTAI) PGDATABASE=$(BENCH_DATABASE) PGUSER=$$(id -un) $(BOTAI) db migrate
	PGHOST=/var/run/postgresql PGPORT=$(PGPORT_BOTAI) PGDATABASE=$(BENCH_DATABASE) PGUSER=$$(id -un) bench/bench.sh

sql-golden: cluster daemon ## the SQL contract files (pg_extension/tests/sql) against their expected output; --update rewrites them
	scripts/sql-golden.sh

sql-release: extension ## freeze the current version's SQL in pg_extension/sql/ (once, when releasing it)
	scripts/sql-release.sh target/release/botai-pg15

FUZZ_DATABASE ?= botai_fuzz
FUZZ_QUERIES ?= 20000

fuzz: cluster daemon ## sqlsmith against the extension as botai_service (not part of make test)
	scripts/cluster.sh reset $(FUZZ_DATABASE)
	PGHOST=/var/run/postgresql PGPORT=$(PGPORT_BOTAI) PGDATABASE=$(FUZZ_DATABASE) PGUSER=$$(id -un) $(BOTAI) db migrate
	scripts/sqlsmith.sh $(FUZZ_DATABASE) $(FUZZ_QUERIES)

onnxruntime: deps ## ONNX Runtime 1.31.1 (the onnxruntime wheel) in .cache: the library the daemon loads, the Python reference for tests
	scripts/onnxruntime.sh

train:           ## retrain the signal model (PyTorch, CPU, ~11 min); writes models/patchtst.onnx, patchtst.json, metrics.json
	test -x .cache/train-venv/bin/python || python3 -m venv .cache/train-venv
	.cache/train-venv/bin/pip install --quiet --disable-pip-version-check -r ml/requirements-train.txt
	.cache/train-venv/bin/python ml/train.py

evaluate:        ## walk-forward evaluation over 8 years of Binance bars as they trade (CPU, 83 min here on 2 cores, reruns reuse cached predictions; never downloads): models/evaluation.json, EVALUATION.md, evaluation.png, MODEL_CARD.md, the manifest's margin
	test -x .cache/train-venv/bin/python || python3 -m venv .cache/train-venv
	.cache/train-venv/bin/pip install --quiet --disable-pip-version-check -r ml/requirements-train.txt
	.cache/train-venv/bin/python ml/evaluate.py

status:
	$(BOTAI) status

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

reset-db:        ## drop and recreate bot_trading_v3, then migrate (all its data)
	scripts/cluster.sh reset
	$(MAKE) migrate

clean-cluster:   ## drop the cluster (all its data)
	scripts/cluster.sh stop; sudo_or() { if [ "$$(id -u)" = 0 ]; then "$$@"; else sudo "$$@"; fi; }; sudo_or pg_dropcluster 15 botai
