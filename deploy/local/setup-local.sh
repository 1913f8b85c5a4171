#!/usr/bin/env bash
# Local Kubernetes for the scheduler (`make setup-local-kubernetes`), as the spec's setup describes:
#   1. minikube with the Docker driver (started unless it already runs);
#   2. namespace `local` with PostgreSQL (postgresql:5432, user/password local, database keeperhub);
#   3. LocalStack (localstack:4566, SQS only) with the queue keeperhub-workflow-queue and its DLQ
#      keeperhub-workflow-queue-dlq, created by LocalStack's ready hook.
# Idempotent: run it again at any time; it changes only what is missing or different.
# KeeperHub's own TLS setup (cert-manager, mkcert) is not needed by the scheduler and is left out.
#
# Environment: MINIKUBE_PROFILE (default minikube), MINIKUBE_CPUS (2), MINIKUBE_MEMORY (4096, MiB),
# SETUP_TIMEOUT (seconds to wait for each rollout, default 300).
set -euo pipefail
cd "$(dirname "$0")/../.."

PROFILE="${MINIKUBE_PROFILE:-minikube}"
CPUS="${MINIKUBE_CPUS:-2}"
MEMORY="${MINIKUBE_MEMORY:-4096}"
TIMEOUT="${SETUP_TIMEOUT:-300}"
NAMESPACE=local
QUEUE=keeperhub-workflow-queue

say() { printf '==> %s\n' "$*"; }
fail() {
  printf 'setup-local: %s\n' "$*" >&2
  exit 1
}

# --- tools ------------------------------------------------------------------------------------
missing=()
command -v docker >/dev/null 2>&1 ||
  missing+=("docker: install Docker Engine or Docker Desktop (https://docs.docker.com/get-docker/)")
command -v minikube >/dev/null 2>&1 ||
  missing+=("minikube: install it (https://minikube.sigs.k8s.io/docs/start/)")
command -v kubectl >/dev/null 2>&1 ||
  missing+=("kubectl: install it (https://kubernetes.io/docs/tasks/tools/)")
if [ "${#missing[@]}" -gt 0 ]; then
  printf 'setup-local: missing tool: %s\n' "${missing[@]}" >&2
  exit 1
fi
docker info >/dev/null 2>&1 ||
  fail "docker is installed but its daemon does not answer: start Docker, then run this again"

# --- minikube ---------------------------------------------------------------------------------
if minikube status --profile "$PROFILE" >/dev/null 2>&1; then
  say "minikube profile $PROFILE is running"
else
  say "starting minikube profile $PROFILE (docker driver, $CPUS CPUs, $MEMORY MiB)"
  minikube start --profile "$PROFILE" --driver=docker --cpus="$CPUS" --memory="$MEMORY"
fi
kubectl config use-context "$PROFILE" >/dev/null
kubectl cluster-info >/dev/null || fail "kubectl cannot reach the cluster of context $PROFILE"

# --- PostgreSQL and LocalStack ------------------------------------------------------------------
say "applying deploy/local/infrastructure (namespace $NAMESPACE, PostgreSQL, LocalStack)"
kubectl apply -k deploy/local/infrastructure

say "waiting for PostgreSQL"
kubectl rollout status --namespace "$NAMESPACE" statefulset/postgresql --timeout="${TIMEOUT}s"
say "waiting for LocalStack"
kubectl rollout status --namespace "$NAMESPACE" deployment/localstack --timeout="${TIMEOUT}s"

say "waiting for the queues $QUEUE and $QUEUE-dlq"
deadline=$((SECONDS + TIMEOUT))
until kubectl exec --namespace "$NAMESPACE" deploy/localstack -- \
  awslocal sqs get-queue-url --queue-name "$QUEUE-dlq" >/dev/null 2>&1 &&
  kubectl exec --namespace "$NAMESPACE" deploy/localstack -- \
    awslocal sqs get-queue-url --queue-name "$QUEUE" >/dev/null 2>&1; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    fail "the queues did not appear within ${TIMEOUT}s; see: kubectl logs -n $NAMESPACE deploy/localstack"
  fi
  sleep 3
done

cat <<DONE
==> ready
    PostgreSQL  postgresql://local:local@postgresql:5432/keeperhub   (in namespace $NAMESPACE)
    SQS         http://localstack:4566/000000000000/$QUEUE (+ -dlq)
Next: make deploy-to-local-kubernetes   (KeeperHub, or our stand-in, as keeperhub-common:3000)
      make build-scheduler-image && make deploy-scheduler
DONE
