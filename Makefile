# keeperhub-scheduler: developer and deployment targets. `make help` lists them.
.DEFAULT_GOAL := help
SHELL := /usr/bin/env bash

.PHONY: help demo test

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-28s\033[0m %s\n", $$1, $$2}'

demo: ## Run the embedded scheduler with a demo workflow firing every 5 seconds
	@scripts/bootstrap.sh
	@PATH="$$HOME/.local/bin:$$PATH" uv run --frozen keeperhub-scheduler dev --demo

test: ## Run the whole test suite (starts LocalStack, needs PostgreSQL on 127.0.0.1:5432)
	@scripts/test.sh
