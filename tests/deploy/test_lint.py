"""Linters and the security scan: hadolint on the Dockerfile, shellcheck on every shell script of
the repository, checkov on the Dockerfile, the rendered manifests and the CloudFormation template.
Plus the properties of the image that no linter knows: its stages, its user, its build context.

Skips of the security scan are never global: each sits next to the object it concerns, with its
reason (``checkov.io/skipN`` annotations, the template's ``Metadata``), and a test below requires
the reason.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.deploy.support import (
    CHECKOV_PIN,
    DEPLOY,
    INFRASTRUCTURE,
    LOCAL_MANIFEST,
    OVERLAYS,
    ROOT,
    STANDIN_MANIFEST,
    manifest_sets,
    render,
    tool_run,
    uv,
    venv_tool,
)

DOCKERFILE = ROOT / "Dockerfile"


def shell_scripts() -> list[Path]:
    """Every tracked or new (not ignored) file that is a shell script: by suffix or by shebang."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    scripts = []
    for name in listed:
        path = ROOT / name
        if not path.is_file():
            continue
        if path.suffix == ".sh":
            scripts.append(path)
            continue
        with path.open("rb") as file:
            first = file.readline(200)
        if re.match(rb"#!\s*/(?:usr/)?bin/(?:env\s+)?(?:ba|da|k)?sh\b", first):
            scripts.append(path)
    return sorted(scripts)


def test_hadolint_passes_on_the_dockerfile():
    result = subprocess.run(
        [venv_tool("hadolint"), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"hadolint:\n{result.stdout}{result.stderr}"


def test_shellcheck_passes_on_every_shell_script():
    scripts = shell_scripts()
    names = {str(path.relative_to(ROOT)) for path in scripts}
    assert {
        ".ci/run",
        "scripts/test.sh",
        "deploy/local/setup-local.sh",
        "deploy/local/render.sh",
        "deploy/local/infrastructure/localstack-init/create-queues.sh",
    } <= names
    result = subprocess.run(
        [venv_tool("shellcheck"), "--external-sources", *map(str, scripts)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"shellcheck:\n{result.stdout}{result.stderr}"


@pytest.mark.waits  # on an external tool, seconds each
def test_checkov_security_scan_passes(tmp_path):
    scan = tmp_path / "scan"
    scan.mkdir()
    for index, (source, _) in enumerate(sorted(manifest_sets().items())):
        name = re.sub(r"[^a-z0-9]+", "-", source.lower()).strip("-")
        if source.startswith("kubectl kustomize"):
            if source.endswith("/base"):
                continue  # no namespace of its own: scanned through the overlays
            directory = ROOT / source.removeprefix("kubectl kustomize ")
            text = render(directory)
        else:
            text = (ROOT / source).read_text()
        (scan / f"{index:02d}-{name}.yaml").write_text(text)
    (scan / "Dockerfile").write_text(with_arg_defaults(DOCKERFILE.read_text()))
    (scan / "cloudformation-sqs-queues.yaml").write_text(
        (DEPLOY / "aws" / "cloudformation" / "sqs-queues.yaml").read_text()
    )
    result = tool_run(
        CHECKOV_PIN,
        "checkov",
        "--directory",
        str(scan),
        "--framework",
        "kubernetes",
        "dockerfile",
        "cloudformation",
        "--skip-download",  # no calls to the vendor's platform: the checks are all local
        "--output",
        "json",
        "--quiet",
        cwd=tmp_path,
    )
    assert result.stdout.strip(), (
        f"checkov printed nothing (exit {result.returncode}):\n{result.stderr}"
    )
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    frameworks = {report["check_type"] for report in reports}
    assert {"kubernetes", "dockerfile", "cloudformation"} <= frameworks, frameworks
    failures = [
        f"{report['check_type']}: {check['check_id']} {check['check_name']}: "
        f"{check['resource']} ({check['file_path']})"
        for report in reports
        for check in report["results"]["failed_checks"]
    ]
    assert not failures, "checkov found:\n" + "\n".join(failures)
    assert result.returncode == 0, result.stderr
    passed = sum(report["summary"]["passed"] for report in reports)
    assert passed > 500  # the scan really ran its checks on our objects


def with_arg_defaults(dockerfile: str) -> str:
    """The Dockerfile as a build without --build-arg sees it: checkov does not read the defaults
    of ARGs, and would take `FROM ${BASE_IMAGE}` for an image without a tag."""
    defaults = dict(re.findall(r"^ARG (\w+)=(\S+)$", dockerfile, re.M))
    assert defaults, "the Dockerfile's ARGs have defaults"
    return re.sub(r"\$\{(\w+)\}", lambda match: defaults.get(match[1], match[0]), dockerfile)


def test_every_scan_skip_gives_its_reason():
    texts = [LOCAL_MANIFEST.read_text(), STANDIN_MANIFEST.read_text()]
    texts += [render(OVERLAYS / "aws"), render(INFRASTRUCTURE)]
    skips = [
        match
        for text in texts
        for match in re.findall(r"checkov\.io/skip\d+: ['\"]?([^\n]*(?:\n {6,}[^\n]*)*)", text)
    ]
    assert skips
    for skip in skips:
        check, _, reason = skip.partition("=")
        assert re.fullmatch(r"CKV2?_K8S_\d+", check), skip
        assert len(reason.split()) >= 6, f"{check}: say why it does not apply"
    cloudformation = (DEPLOY / "aws" / "cloudformation" / "sqs-queues.yaml").read_text()
    for block in re.findall(r"- id: (CKV\w+)\n\s+comment: >-\n((?:\s{14}.*\n)+)", cloudformation):
        assert len(block[1].split()) >= 10, block[0]
    assert "checkov:skip" not in DOCKERFILE.read_text(), "the Dockerfile passes with no skip"


# --- the image ----------------------------------------------------------------------------------


def stages() -> dict[str, str]:
    text = DOCKERFILE.read_text()
    parts = re.split(r"^FROM ", text, flags=re.M)[1:]
    found = {}
    for part in parts:
        header, _, body = part.partition("\n")
        image, _, name = header.partition(" AS ")
        found[name.strip()] = image.strip() + "\n" + body
    return found


def test_dockerfile_builds_a_slim_non_root_scheduler_stage_from_the_lock():
    found = stages()
    assert list(found) == ["build", "scheduler"], "the scheduler target is the final stage"
    build, runtime = found["build"], found["scheduler"]
    base = {stage.partition("\n")[0] for stage in found.values()}
    assert base == {"${BASE_IMAGE}"}, "both stages share one base"
    default = re.findall(r"^ARG BASE_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.M)
    assert default == ["python:3.11-slim-bookworm"], "the base defaults to a slim Python 3.11"
    assert re.search(r"pip install --no-cache-dir uv==\d+\.\d+\.\d+\n", build), "uv is pinned"
    assert "uv sync --frozen --no-dev" in build
    # the runtime stage: no uv, no pip, no compiler; a numeric non-root user; health; entrypoint
    for tool in ("uv ", "apt-get", "gcc", "build-essential"):
        assert tool not in runtime, tool
    assert "pip uninstall --yes --quiet pip setuptools wheel" in runtime
    assert re.search(r"^USER 10001:10001$", runtime, re.M)
    healthcheck = r'^HEALTHCHECK .*\n\s+CMD \["python", "/app/healthcheck.py"\]'
    assert re.search(healthcheck, runtime, re.M)
    assert re.search(r'^ENTRYPOINT \["keeperhub-scheduler"\]$', runtime, re.M)
    assert "PYTHONDONTWRITEBYTECODE=1" in runtime  # read-only root filesystem
    assert "COPY --from=build /app/.venv /app/.venv" in runtime


def test_dockerignore_sends_only_what_the_build_copies():
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*", "the build context is an allowlist"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    copied = set()
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            copied.update(line.split()[1:-1])
    assert copied == allowed, "allow exactly what the Dockerfile copies"
    for name in (".venv", ".git", ".cache", ".env", "tests"):
        assert name not in allowed


@pytest.mark.parametrize("port_variable", ["SCHEDULER_HEALTH_PORT", "SCHEDULER_API_PORT"])
def test_healthcheck_script_reads_the_ports_of_our_settings(port_variable):
    from keeperhub_scheduler.config import Settings

    script = (DEPLOY / "docker" / "healthcheck.py").read_text()
    assert port_variable in script
    assert port_variable.lower() in Settings.model_fields


def test_healthcheck_script_passes_only_when_healthz_answers_200():
    import http.server
    import os
    import sys
    import threading

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    closed = http.server.HTTPServer(("127.0.0.1", 0), Health)
    unused = str(closed.server_port)
    closed.server_close()
    script = str(DEPLOY / "docker" / "healthcheck.py")

    def check(health_port: str, api_port: str) -> int:
        env = {**os.environ, "SCHEDULER_HEALTH_PORT": health_port, "SCHEDULER_API_PORT": api_port}
        return subprocess.run([sys.executable, script], env=env, timeout=30, check=False).returncode

    try:
        port = str(server.server_port)
        assert check(port, unused) == 0  # dispatcher, executor
        assert check(unused, port) == 0  # api
        assert check(unused, unused) == 1
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.waits  # on an external tool, seconds each
def test_the_image_install_works_from_the_build_context_alone(tmp_path):
    """What the build stage does, without Docker: copy only what .dockerignore lets through, then
    `uv sync --frozen --no-dev --no-editable` into a fresh venv. The CLI must run from that venv,
    from another directory, without the sources and without dev dependencies."""
    import os
    import shutil

    context = tmp_path / "context"
    context.mkdir()
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        if line.startswith("!"):
            source = ROOT / line[1:].rstrip("/")
            target = context / line[1:].rstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, target)
    venv = tmp_path / "venv"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_"))},
        "UV_PROJECT_ENVIRONMENT": str(venv),
    }
    sync = subprocess.run(
        [uv(), "sync", "--frozen", "--no-dev", "--no-editable", "--quiet"],
        cwd=context,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert sync.returncode == 0, f"uv sync --frozen --no-dev failed:\n{sync.stderr}"
    shutil.rmtree(context)  # the image has no sources either
    run_env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": "/tmp"}
    run_env["PYTHONDONTWRITEBYTECODE"] = "1"
    cli = subprocess.run(
        [str(venv / "bin" / "keeperhub-scheduler"), "--help"],
        cwd=tmp_path,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert cli.returncode == 0, cli.stderr
    for command in ("migrate", "dispatcher", "executor", "queue"):
        assert command in cli.stdout
    dev_only = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import pytest"],
        env=run_env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert dev_only.returncode != 0, "dev dependencies must not be in the image"
