# keeperhub-scheduler: developer and deployment targets. `make help` lists them.
.DEFAULT_GOAL := help
SHELL := /usr/bin/env bash

.PHONY: help demo check test test-e2e test-image build-scheduler-image setup-local-kubernetes \
  deploy-to-local-kubernetes deploy-scheduler scheduler-status scheduler-logs teardown-scheduler

# Local Kubernetes (minikube). The manifests use namespace `local`, as the spec's commands do.
KUBECTL ?= kubectl
DOCKER ?= docker
MINIKUBE ?= minikube
SCHEDULER_IMAGE ?= keeperhub-scheduler:latest
LOCAL_NAMESPACE := local
SCHEDULER_MANIFEST := deploy/local/schedule-trigger.yaml
ROLLOUT_TIMEOUT ?= 300s

demo: ## Run the embedded scheduler with a demo workflow firing every 5 seconds
	@scripts/bootstrap.sh
	@PATH="$$HOME/.local/bin:$$PATH" uv run --frozen keeperhub-scheduler dev --demo

test: ## Before a push: everything CI runs (starts LocalStack, needs PostgreSQL on 127.0.0.1:5432)
	@scripts/test.sh

check: ## Before each commit: lint, format, types and the tests that need no server and do not wait
	@scripts/check.sh

help: ## List the targets
	@# The Makefile's order (user targets first); colour only on a terminal, never into a pipe.
	@if [ -t 1 ]; then c='\033[36m'; r='\033[0m'; else c=''; r=''; fi; \
	  grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk -v c="$$c" -v r="$$r" 'BEGIN {FS = ":.*## "}; {printf "  %s%-28s%s %s\n", c, $$1, r, $$2}'

test-e2e: ## Run the end-to-end tests (tests/e2e) through the test script
	@scripts/test.sh tests/e2e

test-image: ## Build the image with podman (as root; installs podman) and run tests/image against it
	@scripts/test-image.sh

build-scheduler-image: ## Build the scheduler image (Dockerfile target scheduler) and load it into minikube
	$(DOCKER) build --target scheduler -t $(SCHEDULER_IMAGE) .
	$(MINIKUBE) image load $(SCHEDULER_IMAGE)

setup-local-kubernetes: ## Start minikube with PostgreSQL and LocalStack (queue + DLQ) in namespace local
	deploy/local/setup-local.sh

deploy-to-local-kubernetes: ## Deploy KeeperHub (KEEPERHUB_DIR=its checkout) or our stand-in as keeperhub-common:3000
ifdef KEEPERHUB_DIR
	$(MAKE) -C "$(KEEPERHUB_DIR)" deploy-to-local-kubernetes
else
	$(MAKE) build-scheduler-image
	$(KUBECTL) apply -f deploy/local/keeperhub-standin.yaml
	$(KUBECTL) rollout restart -n $(LOCAL_NAMESPACE) deployment/keeperhub-common
	$(KUBECTL) rollout status -n $(LOCAL_NAMESPACE) deployment/keeperhub-common --timeout=$(ROLLOUT_TIMEOUT)
endif

deploy-scheduler: ## Deploy the dispatcher CronJob (and long-running Deployment), executor Deployment and API
	$(KUBECTL) delete job -n $(LOCAL_NAMESPACE) scheduler-migrate scheduler-queue-setup --ignore-not-found
	$(KUBECTL) apply -f $(SCHEDULER_MANIFEST)
	$(KUBECTL) wait -n $(LOCAL_NAMESPACE) --for=condition=complete job/scheduler-migrate job/scheduler-queue-setup --timeout=$(ROLLOUT_TIMEOUT)
	$(KUBECTL) rollout restart -n $(LOCAL_NAMESPACE) deployment -l app.kubernetes.io/part-of=keeperhub-scheduler
	$(KUBECTL) rollout status -n $(LOCAL_NAMESPACE) deployment/schedule-executor --timeout=$(ROLLOUT_TIMEOUT)
	$(KUBECTL) rollout status -n $(LOCAL_NAMESPACE) deployment/schedule-dispatcher --timeout=$(ROLLOUT_TIMEOUT)

scheduler-status: ## Show the dispatcher CronJob, the executor pods and LocalStack
	@echo "=== Schedule Dispatcher Jobs ==="
	@$(KUBECTL) get cronjobs -n $(LOCAL_NAMESPACE) -l app=schedule-dispatcher
	@echo
	@echo "=== Schedule Executor ==="
	@$(KUBECTL) get pods -n $(LOCAL_NAMESPACE) -l app=schedule-executor
	@echo
	@echo "=== LocalStack (SQS) ==="
	@$(KUBECTL) get pods -n $(LOCAL_NAMESPACE) -l app=localstack

scheduler-logs: ## Follow the dispatcher and executor logs
	$(KUBECTL) logs -n $(LOCAL_NAMESPACE) -l 'app in (schedule-dispatcher,schedule-executor)' --prefix --tail=50 --max-log-requests=10 -f

teardown-scheduler: ## Remove the scheduler from the cluster (PostgreSQL, LocalStack and their data stay)
	$(KUBECTL) delete -f $(SCHEDULER_MANIFEST) --ignore-not-found
