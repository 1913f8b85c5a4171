"""The pipeline end to end from containers only, each run as its manifest's pod: the migrate and
queue-setup Jobs, a long-running dispatcher, the CronJob's `dispatcher --once`, two executors and
the API, against the real PostgreSQL (a throwaway database), LocalStack (a fresh queue) and the
KeeperHub stand-in. Then the faults an operator meets: an executor stopped (SIGTERM) with calls in
flight, a dispatcher killed (SIGKILL) with runs in its hands.

The tests of this module share one deployment and run in their order, as a rollout would.
"""

from __future__ import annotations

import asyncio
import functools
import json
import secrets
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, create_engine, text

from keeperhub_scheduler.db.engine import sqlalchemy_url
from keeperhub_scheduler.transport.sqs import QueueEndpoint, open_client
from tests.deploy.support import find
from tests.image.podman import Container, Podman, seen_from_container, wait_for
from tests.image.pods import Pod, manifest, pod
from tests.support import postgres, sqs
from tests.support.standin import StandInProcess

WORKFLOW = "wf-image"
EVERY_SECOND = "* * * * * *"
FINAL = "('succeeded', 'failed', 'dead', 'skipped')"  # the run statuses nothing follows
# Shorter than the ConfigMap's, only to keep the checks short: a stopped executor finishes its
# long poll (20 s) before it drains, and a killed dispatcher's runs wait out its relay lease (30 s).
TEST_SETTINGS = {"SCHEDULER_RECEIVE_WAIT_SECONDS": "2", "SCHEDULER_RELAY_LEASE_SECONDS": "3"}
SUCCEEDED = "keeperhub_scheduler_runs_finished_total"
IN_FLIGHT = "keeperhub_scheduler_executions_in_flight"


@dataclass
class Deployment:
    containers: Podman
    overrides: dict[str, str]  # this machine's addresses, and TEST_SETTINGS
    database: Engine
    standin: StandInProcess
    queue: QueueEndpoint  # as the host reaches it
    jobs: dict[str, Any] = field(default_factory=dict)
    running: dict[str, Container] = field(default_factory=dict)
    schedule_id: str = ""

    def options(self, manifest_pod: Pod, **overrides: str) -> list[str]:
        """The pod's options, and its environment (ConfigMap, Secret, env) with our overrides."""
        env = manifest_pod.env | self.overrides | overrides
        return [*manifest_pod.options, *(f"--env={name}={value}" for name, value in env.items())]

    def start(self, name: str, manifest_pod: Pod, **overrides: str) -> Container:
        container = self.containers.start(
            name, self.options(manifest_pod, **overrides), manifest_pod.args,
            ports=sorted(manifest_pod.ports.values()),
        )  # fmt: skip
        self.running[name] = container
        return container

    def run(self, name: str, manifest_pod: Pod, **overrides: str) -> Any:
        return self.containers.run(name, self.options(manifest_pod, **overrides), manifest_pod.args)

    def api(self, token: str | None = "") -> httpx.Client:
        """A client of the API container; with the Secret's token unless ``token`` is given."""
        api = manifest_pod("api")
        token = api.env["SCHEDULER_API_TOKENS"].split(",")[0] if token == "" else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        base = self.running["api"].url(api.ports["http"])
        return httpx.Client(base_url=base, headers=headers, timeout=10)

    def calls(self) -> list[dict[str, Any]]:
        return [call for call in self.standin.calls() if call["workflowId"] == WORKFLOW]

    def runs(self, where: str = "true") -> list[dict[str, Any]]:
        with self.database.connect() as connection:
            rows = connection.execute(
                text(f"SELECT id, status FROM schedule_runs WHERE schedule_id = :id AND {where}"),
                {"id": self.schedule_id},
            ).mappings().all()  # fmt: skip
        return [dict(row) for row in rows]

    def logs_hint(self) -> str:
        return f"container logs in {self.containers.log_dir}"


PODS = {
    "migrate": ("Job", "scheduler-migrate"),
    "queue setup": ("Job", "scheduler-queue-setup"),
    "dispatcher": ("Deployment", "schedule-dispatcher"),
    "dispatcher --once": ("CronJob", "schedule-dispatcher"),
    "executor": ("Deployment", "schedule-executor"),
    "api": ("Deployment", "schedule-api"),
}


@functools.cache
def manifest_pod(role: str) -> Pod:
    return pod(*PODS[role])


def role_of(container_name: str) -> str:
    return "executor" if container_name.startswith("executor-") else container_name


def wait_until_answers(url: str, what: str) -> None:
    wait_for(lambda: answers(url) == 200, 90, what)


def metric(container: Container, name: str, **labels: str) -> float:
    path, port = manifest_pod("executor").metrics or ("/metrics", 8080)
    body = httpx.get(container.url(port, path), timeout=5).text
    total = 0.0
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


def answers(url: str) -> int:
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.TransportError:
        return 0


def queue_attributes(endpoint: QueueEndpoint, url: str) -> dict[str, str]:
    async def read() -> dict[str, str]:
        async with AsyncExitStack() as stack:
            client = await open_client(endpoint, stack, pool=2)
            answer = await client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
        return dict(answer["Attributes"])

    return asyncio.run(read())


@pytest.fixture(scope="module")
def deployment(containers: Podman, pg_admin_url: str, localstack: str) -> Iterator[Deployment]:
    service_key = manifest_pod("executor").env["SCHEDULER_SERVICE_API_KEY"]
    with postgres.throwaway_database("image") as database_url:
        queue = sqs.endpoint_for(f"khs-image-{secrets.token_hex(4)}")
        standin = StandInProcess(containers.log_dir / "standin.jsonl", service_key=service_key)
        addresses = {
            "DATABASE_URL": seen_from_container(database_url),
            "AWS_ENDPOINT_URL": seen_from_container(localstack),
            "SQS_QUEUE_URL": seen_from_container(queue.queue_url),
            "SCHEDULER_DLQ_URL": seen_from_container(queue.dlq_url or ""),
            "KEEPERHUB_URL": seen_from_container(standin.url),
        }
        engine = create_engine(sqlalchemy_url(database_url, driver="sync"))
        world = Deployment(containers, addresses | TEST_SETTINGS, engine, standin, queue)
        try:
            bring_up(world)
            yield world
        finally:
            containers.remove_all()
            standin.stop()
            engine.dispose()
            asyncio.run(sqs.delete_queues(queue))


def bring_up(world: Deployment) -> None:
    """The order of `make deploy-scheduler`: the Jobs, then the Deployments; then a schedule."""
    jobs = ("migrate", "queue setup")  # independent: one writes the database, one the queues
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = pool.map(lambda job: world.run(job.replace(" ", "-"), manifest_pod(job)), jobs)
        world.jobs = dict(zip(jobs, results, strict=True))
    for job, result in world.jobs.items():
        assert result.returncode == 0, f"the {job} Job failed:\n{result.stdout}{result.stderr}"
    world.start("api", manifest_pod("api"))
    world.start("dispatcher", manifest_pod("dispatcher"))
    for number in (1, 2):
        world.start(f"executor-{number}", manifest_pod("executor"))
    for name, container in world.running.items():
        path, port = manifest_pod(role_of(name)).probes["readinessProbe"]
        wait_until_answers(container.url(port, path), f"{name}'s readiness probe")
    with world.api() as api:
        answer = api.post("/v1/workflows", json={"id": WORKFLOW, "name": "image", "enabled": True})
        assert answer.status_code == 201, answer.text
        answer = api.post(
            "/v1/schedules",
            json={"workflow_id": WORKFLOW, "cron_expression": EVERY_SECOND, "timezone": "UTC"},
        )
        assert answer.status_code == 201, answer.text
        world.schedule_id = answer.json()["id"]


# --- the Jobs ----------------------------------------------------------------------------------


def test_migrate_and_queue_setup_run_as_the_jobs_run_them(deployment: Deployment) -> None:
    assert "is at revision" in deployment.jobs["migrate"].stdout
    config = manifest_pod("queue setup").env
    queue = queue_attributes(deployment.queue, deployment.queue.queue_url)
    assert queue["VisibilityTimeout"] == config["SCHEDULER_VISIBILITY_TIMEOUT_SECONDS"]
    redrive = json.loads(queue["RedrivePolicy"])
    assert str(redrive["maxReceiveCount"]) == config["SCHEDULER_MAX_RECEIVE_COUNT"]
    assert redrive["deadLetterTargetArn"].endswith(deployment.queue.dlq_url.rsplit("/", 1)[1])  # type: ignore[union-attr]


# --- the Deployments -----------------------------------------------------------------------------


def test_probes_and_metrics_answer_on_the_ports_the_manifests_name(deployment: Deployment) -> None:
    for name, container in deployment.running.items():
        manifest = manifest_pod(role_of(name))
        for probe, (path, port) in manifest.probes.items():
            status = answers(container.url(port, path))
            assert status == 200, f"{name}: {probe} GET :{port}{path} answered {status}"
        if manifest.metrics:
            path, port = manifest.metrics
            body = httpx.get(container.url(port, path), timeout=5).text
            assert "keeperhub_scheduler_queue_messages" in body, f"{name}: {path} on :{port}"
        health = container.healthcheck()
        assert health.returncode == 0, f"{name}: the image's HEALTHCHECK: {health.stdout}"


def test_the_api_answers_with_a_token_and_refuses_without(deployment: Deployment) -> None:
    for token in (None, "not-a-token"):
        with deployment.api(token) as api:
            assert api.get("/v1/status").status_code == 401
    with deployment.api() as api:
        answer = api.get("/v1/status")
    assert answer.status_code == 200, answer.text
    assert answer.json()["queue"] is not None


def test_schedules_fire_and_each_run_reaches_keeperhub_exactly_once(
    deployment: Deployment,
) -> None:
    wait_for(lambda: len(deployment.calls()) >= 3, 60, "three runs to reach KeeperHub")

    # The CronJob's pass beside the long-running dispatcher: it exits 0, and sends nothing twice.
    once = deployment.run("dispatcher-once", manifest_pod("dispatcher --once"))
    assert once.returncode == 0, f"dispatcher --once: exit {once.returncode}\n{once.stderr}"
    assert '"msg": "dispatcher pass"' in once.stderr

    calls = deployment.calls()
    twice = [run for run, count in Counter(call["executionId"] for call in calls).items()
             if count > 1]  # fmt: skip
    assert not twice, f"called more than once: {twice}"
    runs = {row["id"] for row in deployment.runs()}
    assert {call["executionId"] for call in calls} <= runs


# --- the faults ----------------------------------------------------------------------------------


def test_sigterm_drains_an_executor_with_calls_in_flight(deployment: Deployment) -> None:
    # Which executor gets the messages is LocalStack's choice: with one run a second it can be the
    # same one for minutes (its longest-waiting poll wins, and periodic arrivals keep the same
    # poll longest). So the executor stopped is the one that has calls in flight.
    executors = {name: c for name, c in deployment.running.items() if name.startswith("executor-")}
    busy: list[str] = []

    def one_is_busy() -> bool:
        busy[:] = [name for name, c in executors.items() if metric(c, IN_FLIGHT) >= 1][:1]
        return bool(busy)

    deployment.standin.post("/_control/chaos", {"stallRate": 1.0, "stallSeconds": 5})
    try:
        wait_for(one_is_busy, 30, "an executor to have calls in flight")
        executor = executors.pop(busy[0])
        code = executor.stop(manifest_pod("executor").grace_seconds)
    finally:
        deployment.standin.post("/_control/chaos", {})
    assert code == 0, f"{executor.name} exited {code} on SIGTERM; {deployment.logs_hint()}"
    lines = executor.log_lines()
    draining = [line for line in lines if line.get("msg") == "draining"]
    assert draining, "no drain was logged"
    assert int(draining[0]["in_flight"]) >= 1, draining  # type: ignore[call-overload]
    assert any(line.get("msg") == "drained" for line in lines)
    assert not [line for line in lines if line.get("msg") == "drain timed out; cancelled"]
    # The calls it had in flight were finished and recorded by it before it exited.
    started = lines.index(draining[0])
    finished = {
        str(line["run_id"]) for line in lines[started:] if line.get("msg") == "run finished"
    }
    assert finished, "nothing finished during the drain"
    statuses = {row["id"]: row["status"] for row in deployment.runs()}
    assert {statuses[run] for run in finished} == {"succeeded"}

    # The other executor carries on.
    (other,) = executors.values()
    done = metric(other, SUCCEEDED)
    wait_for(lambda: metric(other, SUCCEEDED) > done, 30, f"{other.name} to execute runs")


@contextmanager
def unanswering_endpoint() -> Iterator[int]:
    """A TCP port that accepts connections and never answers: SQS as a hung network sees it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not done.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        done.set()
        thread.join()
        for connection in held:
            connection.close()
        listener.close()


def test_sigkill_of_a_dispatcher_its_runs_are_sent_by_the_other(deployment: Deployment) -> None:
    # The long-running dispatcher stops cleanly on SIGTERM, and another takes its place whose
    # sends hang: every run it claims stays in its hands (pending, under its relay lease) until it
    # is killed, as in a kill in mid-send. It is the only dispatcher: every pending run is its.
    first = deployment.running["dispatcher"]
    code = first.stop(manifest_pod("dispatcher").grace_seconds)
    assert code == 0, f"the dispatcher exited {code} on SIGTERM; {deployment.logs_hint()}"
    with unanswering_endpoint() as port:
        hung = f"http://127.0.0.1:{port}"
        doomed = deployment.start(
            "dispatcher-killed", manifest_pod("dispatcher"),
            AWS_ENDPOINT_URL=seen_from_container(hung),
        )  # fmt: skip
        wait_for(lambda: deployment.runs("status = 'pending'"), 60, "the dispatcher to claim runs")
        code = doomed.kill()
    assert code == 137, f"SIGKILL should end it with 137, not {code}"
    held = {row["id"] for row in deployment.runs("status = 'pending'")}
    assert held
    wait_for(lambda: not deployment.runs("status = 'pending' AND relay_lease_until > now()"),
             30, "the killed dispatcher's relay lease to lapse")  # fmt: skip

    # The CronJob's pass is the other dispatcher: it sends them, and each is executed once.
    once = deployment.run("dispatcher-once-after-kill", manifest_pod("dispatcher --once"))
    assert once.returncode == 0, f"dispatcher --once: exit {once.returncode}\n{once.stderr}"
    wait_for(
        lambda: {row["id"] for row in deployment.runs("status = 'succeeded'")} >= held,
        60, "the killed dispatcher's runs to be executed",
    )  # fmt: skip
    counts = Counter(call["executionId"] for call in deployment.calls())
    assert {run: counts[run] for run in held} == dict.fromkeys(held, 1)


def test_nothing_lost_nothing_twice_no_secret_logged_and_every_process_exits_cleanly(
    deployment: Deployment,
) -> None:
    with deployment.api() as api:
        answer = api.patch(f"/v1/schedules/{deployment.schedule_id}", json={"enabled": False})
    assert answer.status_code == 200, answer.text
    wait_for(lambda: not deployment.runs(f"status NOT IN {FINAL}"), 60, "every run to finish")

    executed = {row["id"]: row["status"] for row in deployment.runs("status <> 'skipped'")}
    counts = Counter(call["executionId"] for call in deployment.calls())
    assert set(executed.values()) == {"succeeded"}, Counter(executed.values())
    assert set(counts) == set(executed), "every run was called, and nothing else"
    assert set(counts.values()) == {1}, {run: n for run, n in counts.items() if n > 1}

    # Every process still running stops on SIGTERM, within its pod's grace period, with 0.
    running = {name: c for name, c in deployment.running.items() if c.running()}
    assert "api" in running
    with ThreadPoolExecutor(len(running)) as pool:
        codes = dict(zip(running, pool.map(
            lambda name: running[name].stop(manifest_pod(role_of(name)).grace_seconds), running
        ), strict=True))  # fmt: skip
    assert set(codes.values()) == {0}, f"exit codes on SIGTERM: {codes}; {deployment.logs_hint()}"

    secret = find(manifest(), "Secret", "scheduler-secrets")["stringData"]
    for container in deployment.running.values():
        logs = container.logs()
        assert not [name for name, value in secret.items() if value in logs], container.name
    for path in deployment.containers.log_dir.glob("*.log"):
        logs = path.read_text()
        assert not [name for name, value in secret.items() if value in logs], path
