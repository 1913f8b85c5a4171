"""Scale-out on AWS: KEDA scales the executor on the queue's backlog (the overlay's ScaledObject,
validated against KEDA's schema in test_manifests.py), within bounds that keep the database's
connections in budget, and scale-in and evictions let every executor drain."""

from __future__ import annotations

import math

from keeperhub_scheduler.config import Settings
from tests.deploy.support import OVERLAYS, Doc, find, pod_labels, pod_spec, rendered

# PostgreSQL's default max_connections: the scheduler at its largest must fit in it.
CONNECTION_BUDGET = 100


def aws() -> list[Doc]:
    return rendered(OVERLAYS / "aws")


def setting(name: str) -> float:
    config = find(aws(), "ConfigMap", "scheduler-env")["data"]
    default = Settings.model_fields[name.lower()].default
    return float(config.get(name, default))


def scaled_object() -> Doc:
    return find(aws(), "ScaledObject", "schedule-executor")


def test_keda_scales_the_executor_deployment_on_the_queue_it_consumes():
    docs = aws()
    spec = scaled_object()["spec"]
    target = spec["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
    executor = find(docs, "Deployment", target["name"])
    assert pod_spec(executor)["containers"][0]["args"] == ["executor"]
    assert scaled_object()["metadata"]["namespace"] == executor["metadata"]["namespace"]

    (trigger,) = spec["triggers"]
    assert trigger["type"] == "aws-sqs-queue"
    config = find(docs, "ConfigMap", "scheduler-env")["data"]
    assert trigger["metadata"]["queueURL"] == config["SQS_QUEUE_URL"]
    assert trigger["metadata"]["awsRegion"] == config["AWS_REGION"]
    # Waiting messages only: retries waiting out their backoff are invisible and need no executor.
    assert trigger["metadata"]["scaleOnInFlight"] == "false"
    assert int(trigger["metadata"]["queueLength"]) > 0
    authentication = find(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    assert authentication["spec"]["podIdentity"] == {"provider": "aws"}  # KEDA's own IRSA role


def test_the_replica_bounds_keep_two_executors_and_the_connections_in_budget():
    spec = scaled_object()["spec"]
    assert 2 <= spec["minReplicaCount"] < spec["maxReplicaCount"]
    docs = aws()
    pool = setting("SCHEDULER_DB_POOL_SIZE")
    with_overflow = pool + pool // 2  # the dispatcher's and the API's pools may burst by half
    dispatchers = find(docs, "Deployment", "schedule-dispatcher")["spec"]["replicas"]
    apis = find(docs, "Deployment", "schedule-api")["spec"]["replicas"]
    executors = spec["maxReplicaCount"] * pool  # the executor's pool has no overflow
    listeners = dispatchers  # each long-running dispatcher LISTENs on a connection of its own
    total = executors + (dispatchers + apis) * with_overflow + listeners
    assert total <= CONNECTION_BUDGET, f"{total} connections at the largest"


def test_scale_in_and_evictions_let_each_executor_drain():
    docs = aws()
    executor = find(docs, "Deployment", "schedule-executor")
    drain = setting("SCHEDULER_RECEIVE_WAIT_SECONDS") + setting("SCHEDULER_DRAIN_SECONDS")
    assert pod_spec(executor)["terminationGracePeriodSeconds"] > drain

    # The HPA that KEDA makes removes one executor at a time, no faster than one drains.
    behavior = scaled_object()["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    (policy,) = behavior["scaleDown"]["policies"]
    assert (policy["type"], policy["value"]) == ("Pods", 1)
    assert policy["periodSeconds"] >= math.ceil(drain)
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 60

    # Node drains evict executors one at a time, and always may: never all, never none.
    budget = find(docs, "PodDisruptionBudget", "schedule-executor")["spec"]
    assert budget["selector"]["matchLabels"].items() <= pod_labels(executor).items()
    assert budget.get("maxUnavailable") == 1
    assert "minAvailable" not in budget
