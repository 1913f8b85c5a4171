"""Production AWS documents: least-privilege IAM policies that cover exactly what the code calls,
IRSA trust policies that match the overlay's ServiceAccounts, and queue settings (CloudFormation,
the local LocalStack hook) that agree with the settings the processes run with."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.support import (
    DEPLOY,
    INFRASTRUCTURE,
    LOCAL_MANIFEST,
    OVERLAYS,
    ROOT,
    find,
    load,
    rendered,
)

IAM = DEPLOY / "aws" / "iam"
SQS_SOURCE = ROOT / "src" / "keeperhub_scheduler" / "transport" / "sqs.py"


def policy(name: str) -> dict[str, Any]:
    return json.loads((IAM / f"{name}.json").read_text())  # type: ignore[no-any-return]


def grants(document: dict[str, Any]) -> dict[str, set[str]]:
    """action -> resources it is allowed on."""
    allowed: dict[str, set[str]] = {}
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"]
        resources = statement["Resource"]
        for action in [actions] if isinstance(actions, str) else actions:
            allowed.setdefault(action, set()).update(
                [resources] if isinstance(resources, str) else resources
            )
    return allowed


def aws_config() -> dict[str, str]:
    return find(rendered(OVERLAYS / "aws"), "ConfigMap", "scheduler-env")["data"]  # type: ignore[no-any-return]


def arn_of(queue_url: str) -> str:
    match = re.fullmatch(r"https://sqs\.([a-z0-9-]+)\.amazonaws\.com/(\d{12})/([\w-]+)", queue_url)
    assert match, queue_url
    region, account, name = match.groups()
    return f"arn:aws:sqs:{region}:{account}:{name}"


QUEUE = arn_of(aws_config()["SQS_QUEUE_URL"])
DLQ = arn_of(aws_config()["SCHEDULER_DLQ_URL"])


def test_every_document_is_valid_iam_json_without_wildcards():
    for path in sorted(IAM.glob("*.json")):
        document = json.loads(path.read_text())
        assert document["Version"] == "2012-10-17", path.name
        for statement in document["Statement"]:
            assert statement["Effect"] == "Allow", path.name
            assert re.fullmatch(r"[A-Za-z0-9]+", statement["Sid"]), path.name
            text = json.dumps({k: v for k, v in statement.items() if k != "Condition"})
            assert "*" not in text, f"{path.name}: no wildcard actions or resources"


def test_dispatcher_may_only_send_to_the_queue():
    # SendMessageBatch is authorised by sqs:SendMessage; GetQueueAttributes serves /readyz and
    # the queue-depth gauges of /metrics, which count the DLQ too.
    assert grants(policy("dispatcher-policy")) == {
        "sqs:SendMessage": {QUEUE},
        "sqs:GetQueueAttributes": {QUEUE, DLQ},
    }


def test_executor_may_consume_the_queue_and_only_send_to_the_dlq():
    assert grants(policy("executor-policy")) == {
        "sqs:ReceiveMessage": {QUEUE},
        "sqs:DeleteMessage": {QUEUE},
        "sqs:ChangeMessageVisibility": {QUEUE},
        "sqs:GetQueueAttributes": {QUEUE, DLQ},
        "sqs:SendMessage": {DLQ},
    }


def test_api_may_only_read_queue_attributes():
    assert grants(policy("api-policy")) == {"sqs:GetQueueAttributes": {QUEUE, DLQ}}


def test_keda_may_only_read_the_queue_depth():
    # KEDA's operator scales the executor on the queue's backlog (the aws overlay's ScaledObject).
    assert grants(policy("keda-policy")) == {"sqs:GetQueueAttributes": {QUEUE}}


def test_queue_setup_is_a_separate_policy_on_both_queues():
    assert grants(policy("queue-setup-policy")) == {
        "sqs:CreateQueue": {QUEUE, DLQ},
        "sqs:GetQueueAttributes": {QUEUE, DLQ},
        "sqs:SetQueueAttributes": {QUEUE, DLQ},
    }


def iam_action(operation: str) -> str:
    """An SQS client operation (send_message_batch) -> the IAM action that authorises it."""
    action = "".join(word.capitalize() for word in operation.split("_"))
    return "sqs:" + action.removesuffix("Batch")


def test_the_policies_cover_every_sqs_call_the_code_makes():
    source = SQS_SOURCE.read_text()
    operations = set(re.findall(r"client\.(\w+)\(", source))
    operations |= set(re.findall(r'_call\(\s*"(\w+)"', source))  # _call and _batch_call
    batched = {"send_message_batch", "delete_message_batch", "change_message_visibility_batch"}
    assert batched | {"receive_message"} <= operations
    granted = set()
    for name in ("dispatcher-policy", "executor-policy", "api-policy", "queue-setup-policy"):
        granted |= set(grants(policy(name)))
    missing = {operation for operation in operations if iam_action(operation) not in granted}
    assert not missing, f"the code calls SQS operations no policy allows: {sorted(missing)}"


@pytest.mark.parametrize("process", ["dispatcher", "executor", "api"])
def test_trust_policy_admits_only_its_own_service_account(process):
    docs = rendered(OVERLAYS / "aws")
    namespace = find(docs, "Namespace", "keeperhub-scheduler")["metadata"]["name"]
    account = find(docs, "ServiceAccount", f"schedule-{process}")
    role = account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    (statement,) = policy(f"{process}-trust-policy")["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    provider = statement["Principal"]["Federated"].split(":oidc-provider/", 1)[1]
    conditions = statement["Condition"]["StringEquals"]
    assert conditions == {
        f"{provider}:sub": f"system:serviceaccount:{namespace}:schedule-{process}",
        f"{provider}:aud": "sts.amazonaws.com",
    }
    assert role.split(":")[4] == statement["Principal"]["Federated"].split(":")[4]  # one account


class CloudFormationLoader(yaml.SafeLoader):
    """Reads CloudFormation's short tags (!Ref, !Sub, !GetAtt) as plain values."""


CloudFormationLoader.add_multi_constructor(
    "!",
    lambda loader, suffix, node: loader.construct_scalar(node),  # type: ignore[arg-type]
)


def test_cloudformation_queues_match_the_settings():
    template = yaml.load(
        (DEPLOY / "aws" / "cloudformation" / "sqs-queues.yaml").read_text(),
        Loader=CloudFormationLoader,  # a SafeLoader subclass
    )
    resources = template["Resources"]
    queue = resources["WorkflowQueue"]["Properties"]
    dlq = resources["DeadLetterQueue"]["Properties"]
    config = aws_config()
    assert template["Parameters"]["QueueName"]["Default"] == QUEUE.rsplit(":", 1)[1]
    assert dlq["QueueName"] == "${QueueName}-dlq"
    assert str(queue["VisibilityTimeout"]) == config["SCHEDULER_VISIBILITY_TIMEOUT_SECONDS"]
    assert str(queue["RedrivePolicy"]["maxReceiveCount"]) == config["SCHEDULER_MAX_RECEIVE_COUNT"]
    assert queue["ReceiveMessageWaitTimeSeconds"] == int(config["SCHEDULER_RECEIVE_WAIT_SECONDS"])
    assert queue["SqsManagedSseEnabled"] is True
    assert dlq["SqsManagedSseEnabled"] is True
    assert dlq["MessageRetentionPeriod"] >= queue["MessageRetentionPeriod"]


def test_local_queue_hook_matches_the_local_settings():
    hook = (INFRASTRUCTURE / "localstack-init" / "create-queues.sh").read_text()
    config = find(load(LOCAL_MANIFEST), "ConfigMap", "scheduler-env")["data"]

    def value(name: str) -> str:
        found = re.search(rf"^{name}=(\S+)$", hook, re.M)
        assert found, f"create-queues.sh sets no {name}"
        return found.group(1)

    assert value("QUEUE") == config["SQS_QUEUE_URL"].rsplit("/", 1)[1]
    assert value("DLQ") == '"$QUEUE-dlq"'
    assert value("MAX_RECEIVE_COUNT") == config["SCHEDULER_MAX_RECEIVE_COUNT"]
    assert value("VISIBILITY_TIMEOUT") == config["SCHEDULER_VISIBILITY_TIMEOUT_SECONDS"]


def test_the_queue_path_is_one_path():
    """Every file that names the queue uses the spec's name."""
    for path in [LOCAL_MANIFEST, *IAM.glob("*-policy.json")]:
        if "trust" in path.name:
            continue
        assert "keeperhub-workflow-queue" in Path(path).read_text(), path
