"""The Kubernetes manifests: they render, they validate against the API's schemas, and they say what
the spec and our design need (names, labels, schedule, probes, drain time, hardening, secrets).

No cluster runs here, so everything is checked statically: the schemas of pinned Kubernetes versions
(kubernetes-validate, strict: unknown fields are errors) and the rendered objects themselves.
"""

from __future__ import annotations

import pytest
from kubernetes_validate import validate
from kubernetes_validate.utils import ValidationError

from keeperhub_scheduler.config import Settings
from tests.deploy.support import (
    CUSTOM_RESOURCES,
    INFRASTRUCTURE,
    KUBERNETES_VERSIONS,
    LOCAL_MANIFEST,
    OVERLAYS,
    ROOT,
    STANDIN_MANIFEST,
    Doc,
    custom_resource_problems,
    find,
    ident,
    kustomization_dirs,
    load,
    manifest_sets,
    pod_labels,
    pod_spec,
    render,
    rendered,
    scheduler_containers,
)

SPEC_CONFIG = {  # the spec's ConfigMap, verbatim
    "AWS_ENDPOINT_URL": "http://localstack:4566",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "SQS_QUEUE_URL": "http://localstack:4566/000000000000/keeperhub-workflow-queue",
    "KEEPERHUB_URL": "http://keeperhub-common:3000",
    "DATABASE_URL": "postgresql://local:local@postgresql:5432/keeperhub",
}
SECRET_SETTINGS = {"SCHEDULER_SERVICE_API_KEY", "SCHEDULER_SIGNING_KEY", "SCHEDULER_API_TOKENS"}


def local() -> list[Doc]:
    return load(LOCAL_MANIFEST)


def aws() -> list[Doc]:
    return rendered(OVERLAYS / "aws")


def identity(doc: Doc) -> tuple[str, str, str]:
    meta = doc["metadata"]
    return (doc["kind"], meta.get("namespace", ""), meta["name"])


# --- rendering and schemas ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "directory", kustomization_dirs(), ids=lambda path: str(path.relative_to(ROOT))
)
def test_every_kustomization_renders(directory):
    objects = rendered(directory)
    assert objects, f"{directory} renders nothing"


@pytest.mark.waits  # on an external tool, seconds each
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_validates_against_the_kubernetes_schemas(version):
    """Custom resources (KEDA's) against their CRDs' schemas, the rest against Kubernetes'."""
    problems = []
    for source, objects in manifest_sets().items():
        for doc in objects:
            if (doc["apiVersion"], doc["kind"]) in CUSTOM_RESOURCES:
                where = f"{source}: {ident(doc)}"
                problems += [f"{where}: {problem}" for problem in custom_resource_problems(doc)]
                continue
            try:
                validate(doc, version, strict=True)
            except ValidationError as error:
                where = "/".join(str(part) for part in error.path)
                problems.append(f"{source}: {ident(doc)}: {where}: {error.message}")
    assert not problems, f"invalid for Kubernetes {version}:\n" + "\n".join(problems)


def test_local_manifest_is_the_rendered_local_overlay():
    """deploy/local/schedule-trigger.yaml is generated: it must not drift from its sources."""
    expected = sorted(rendered(OVERLAYS / "local"), key=identity)
    actual = sorted(local(), key=identity)
    assert [identity(doc) for doc in actual] == [identity(doc) for doc in expected], (
        "deploy/local/schedule-trigger.yaml is out of date: run deploy/local/render.sh"
    )
    for have, want in zip(actual, expected, strict=True):
        assert have == want, f"{ident(want)} differs from the overlay: run deploy/local/render.sh"
    assert LOCAL_MANIFEST.read_text().startswith("# keeperhub-scheduler on a local cluster")


# --- the local manifest -------------------------------------------------------------------------


def test_local_objects_live_in_namespace_local_which_teardown_never_deletes():
    docs = local() + load(STANDIN_MANIFEST)
    assert all(doc["metadata"].get("namespace") == "local" for doc in docs)
    # `make teardown-scheduler` deletes everything in the file: the namespace (with PostgreSQL and
    # LocalStack in it) must not be there.
    assert not [doc for doc in local() if doc["kind"] == "Namespace"]
    infra = rendered(INFRASTRUCTURE)
    assert find(infra, "Namespace", "local")


def test_configmap_has_the_spec_variables_and_no_secret():
    config = find(local(), "ConfigMap", "scheduler-env")["data"]
    assert {key: config.get(key) for key in SPEC_CONFIG} == SPEC_CONFIG
    assert not SECRET_SETTINGS & set(config), "secrets belong in the Secret, not the ConfigMap"
    assert config["SCHEDULER_DLQ_URL"] == SPEC_CONFIG["SQS_QUEUE_URL"] + "-dlq"


def test_secret_holds_the_service_key_signing_key_and_api_tokens():
    secret = find(local(), "Secret", "scheduler-secrets")
    assert set(secret["stringData"]) == SECRET_SETTINGS
    standin_secret = find(load(STANDIN_MANIFEST), "Secret", "keeperhub-standin")
    assert (
        standin_secret["stringData"]["SCHEDULER_SERVICE_API_KEY"]
        == secret["stringData"]["SCHEDULER_SERVICE_API_KEY"]
    ), "the KeeperHub stand-in must expect the key the executor sends"


def test_every_scheduler_container_reads_the_configmap_and_the_secret():
    for workload, container in scheduler_containers(local()):
        sources = [next(iter(source.values()))["name"] for source in container.get("envFrom", [])]
        assert sources == ["scheduler-env", "scheduler-secrets"], ident(workload)


def test_dispatcher_cronjob_is_the_spec_one():
    cron = find(local(), "CronJob", "schedule-dispatcher")
    spec = cron["spec"]
    assert spec["schedule"] == "* * * * *"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert 0 < spec["startingDeadlineSeconds"] < 60  # a run that cannot start in its minute is
    # skipped; the next one catches up (misfire policy), so nothing is lost
    assert spec["successfulJobsHistoryLimit"] >= 1
    assert spec["failedJobsHistoryLimit"] >= 1
    job = spec["jobTemplate"]
    assert 60 < job["spec"]["activeDeadlineSeconds"] <= 600
    # the spec's commands: kubectl get jobs / logs -l app=schedule-dispatcher
    assert cron["metadata"]["labels"]["app"] == "schedule-dispatcher"
    assert job["metadata"]["labels"]["app"] == "schedule-dispatcher"
    assert pod_labels(cron)["app"] == "schedule-dispatcher"
    (container,) = pod_spec(cron)["containers"]
    assert container["args"] == ["dispatcher", "--once"]
    assert container["image"] == "keeperhub-scheduler:latest"


def test_executor_deployment_probes_resources_and_drain():
    deployment = find(local(), "Deployment", "schedule-executor")
    assert deployment["spec"]["replicas"] == 1
    assert pod_labels(deployment)["app"] == "schedule-executor"
    spec = pod_spec(deployment)
    (container,) = spec["containers"]
    assert container["args"] == ["executor"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    config = find(local(), "ConfigMap", "scheduler-env")["data"]
    default_port = Settings.model_fields["scheduler_health_port"].default
    health_port = int(config.get("SCHEDULER_HEALTH_PORT", default_port))
    assert ports == {"health": health_port} == {"health": 8080}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        check = container[probe]["httpGet"]
        assert check["path"] == path
        assert ports[check["port"]] == 8080
    resources = container["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) == {"cpu", "memory"}
    # SIGTERM: finish the current long poll, then drain; Kubernetes must not kill it before.
    defaults = {name.upper(): field.default for name, field in Settings.model_fields.items()}
    long_poll = int(
        config.get("SCHEDULER_RECEIVE_WAIT_SECONDS", defaults["SCHEDULER_RECEIVE_WAIT_SECONDS"])
    )
    drain = float(config.get("SCHEDULER_DRAIN_SECONDS", defaults["SCHEDULER_DRAIN_SECONDS"]))
    assert (long_poll, drain) == (20, 25)
    assert spec["terminationGracePeriodSeconds"] > long_poll + drain + 5


def test_long_running_dispatcher_has_two_replicas_and_a_budget_that_selects_only_it():
    docs = local()
    deployment = find(docs, "Deployment", "schedule-dispatcher")
    assert deployment["spec"]["replicas"] == 2
    (container,) = pod_spec(deployment)["containers"]
    assert container["args"] == ["dispatcher"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    budget = find(docs, "PodDisruptionBudget", "schedule-dispatcher")
    assert budget["spec"]["minAvailable"] == 1
    selector = budget["spec"]["selector"]["matchLabels"]
    assert selector == deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels(deployment).items()
    cron_pods = pod_labels(find(docs, "CronJob", "schedule-dispatcher"))
    assert not selector.items() <= cron_pods.items(), "the budget must not count CronJob pods"
    assert pod_labels(deployment)["app"] == cron_pods["app"] == "schedule-dispatcher"


def test_setup_jobs_run_migrate_and_queue_setup():
    docs = local()
    migrate = find(docs, "Job", "scheduler-migrate")
    queue = find(docs, "Job", "scheduler-queue-setup")
    assert pod_spec(migrate)["containers"][0]["args"] == ["migrate"]
    assert pod_spec(queue)["containers"][0]["args"] == ["queue", "setup"]


@pytest.mark.parametrize("overlay", ["local", "aws"])
def test_every_scheduler_pod_is_hardened(overlay):
    docs = rendered(OVERLAYS / overlay)
    containers = list(scheduler_containers(docs))
    assert len(containers) >= 4
    for workload, container in containers:
        name = ident(workload)
        spec = pod_spec(workload)
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert pod["runAsUser"] >= 10000, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        assert spec["serviceAccountName"] != "default", name
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"] == {"drop": ["ALL"]}, name
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], f"{name}: /tmp must be an emptyDir"
        assert set(container["resources"]["limits"]) == {"cpu", "memory"}, name


def test_localstack_and_postgresql_answer_to_the_names_the_config_uses():
    infra = rendered(INFRASTRUCTURE)
    assert find(infra, "Service", "localstack")["spec"]["ports"][0]["port"] == 4566
    assert find(infra, "Service", "postgresql")["spec"]["ports"][0]["port"] == 5432
    assert pod_labels(find(infra, "Deployment", "localstack"))["app"] == "localstack"
    standin = load(STANDIN_MANIFEST)
    assert find(standin, "Service", "keeperhub-common")["spec"]["ports"][0]["port"] == 3000
    credentials = find(infra, "Secret", "postgresql-credentials")["stringData"]
    assert (
        f"postgresql://{credentials['POSTGRES_USER']}:{credentials['POSTGRES_PASSWORD']}"
        f"@postgresql:5432/{credentials['POSTGRES_DB']}"
    ) == SPEC_CONFIG["DATABASE_URL"]


# --- the AWS overlay ----------------------------------------------------------------------------


def test_aws_overlay_uses_real_sqs_without_endpoint_or_static_keys():
    docs = aws()
    text = render(OVERLAYS / "aws")
    for variable in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert variable not in text, f"{variable} must not be set on AWS"
    assert "localstack" not in text.lower()
    assert not [doc for doc in docs if doc["kind"] == "Secret"], "secrets come from a secret store"
    config = find(docs, "ConfigMap", "scheduler-env")["data"]
    assert "DATABASE_URL" not in config, "it carries a password: it belongs in scheduler-secrets"
    assert config["SQS_QUEUE_URL"].startswith("https://sqs.us-east-1.amazonaws.com/")
    assert config["SCHEDULER_DLQ_URL"] == config["SQS_QUEUE_URL"] + "-dlq"
    assert config["SCHEDULER_VISIBILITY_TIMEOUT_SECONDS"] == "30"
    for _, container in scheduler_containers(docs):
        assert ":latest" not in container["image"]
        assert container["image"].startswith("123456789012.dkr.ecr.")


def test_aws_overlay_gives_each_process_its_own_iam_role():
    docs = aws()
    roles = {
        doc["metadata"]["name"]: doc["metadata"]
        .get("annotations", {})
        .get("eks.amazonaws.com/role-arn")
        for doc in docs
        if doc["kind"] == "ServiceAccount"
    }
    assert roles["schedule-dispatcher"].endswith(":role/keeperhub-scheduler-dispatcher")
    assert roles["schedule-executor"].endswith(":role/keeperhub-scheduler-executor")
    assert roles["schedule-api"].endswith(":role/keeperhub-scheduler-api")
    assert roles["scheduler-migrate"] is None  # PostgreSQL only
    for workload, _ in scheduler_containers(docs):
        account = pod_spec(workload)["serviceAccountName"]
        assert account in roles, ident(workload)


def test_aws_overlay_runs_the_long_running_dispatcher_and_at_least_two_executors():
    docs = aws()
    assert not [doc for doc in docs if doc["kind"] == "CronJob"]
    assert find(docs, "Deployment", "schedule-dispatcher")["spec"]["replicas"] == 2
    # KEDA sets the executors' count (test_scaling.py), never fewer than two.
    assert "replicas" not in find(docs, "Deployment", "schedule-executor")["spec"]
    assert find(docs, "ScaledObject", "schedule-executor")["spec"]["minReplicaCount"] == 2
    namespace = find(docs, "Namespace", "keeperhub-scheduler")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_custom_resource_check_is_strict():
    scaled = find(aws(), "ScaledObject", "schedule-executor")
    assert not custom_resource_problems(scaled)
    misspelt = {**scaled, "spec": {**scaled["spec"], "maxReplicas": 6}}
    assert custom_resource_problems(misspelt) == [
        "spec: Additional properties are not allowed ('maxReplicas' was unexpected)"
    ]
    wrong_type = {**scaled, "spec": {**scaled["spec"], "minReplicaCount": "2"}}
    assert custom_resource_problems(wrong_type)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_schema_check_is_strict(version):
    """A misspelt field must fail validation, or the checks above would prove nothing."""
    executor = find(local(), "Deployment", "schedule-executor")
    broken = {**executor, "spec": {**executor["spec"], "terminationGracePeriod": 60}}
    with pytest.raises(ValidationError):
        validate(broken, version, strict=True)


def test_api_serves_the_management_api_with_health_probes_on_its_port():
    docs = local()
    deployment = find(docs, "Deployment", "schedule-api")
    (container,) = pod_spec(deployment)["containers"]
    assert container["args"] == ["api"]
    assert {"name": "SCHEDULER_API_HOST", "value": "0.0.0.0"} in container["env"]
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    service = find(docs, "Service", "schedule-api")
    assert service["spec"]["selector"] == {"app": "schedule-api"}
    assert service["spec"]["ports"][0]["port"] == 8000
