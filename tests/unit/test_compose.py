"""docker-compose.yml and the Dockerfile, checked without a Docker engine: compose runs exactly the
commands `duetime dev` and the e2e tests run, and the image holds what those commands need."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from duetime import cli
from shared.devserver import MIGRATE_ARGS, WORKER_ARGS, api_args

ROOT = Path(__file__).resolve().parents[2]
DUETIME_SERVICES = ("migrate", "api", "worker")


def _services() -> dict[str, Any]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services: dict[str, Any] = compose["services"]
    return services


def _dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions, (INSTRUCTION, arguments), grouped by stage."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction.upper(), " ".join(args.split())))
    return stages


COMMANDS = {
    "api": api_args("0.0.0.0", 8000),
    "worker": WORKER_ARGS,
    "migrate": MIGRATE_ARGS,
}


@pytest.mark.parametrize(("service", "args"), COMMANDS.items())
def test_compose_runs_the_dev_commands(service: str, args: list[str]) -> None:
    assert _services()[service]["command"] == ["duetime", *args]
    # The subcommand exists and its flags parse: through --help, and by converting every value.
    result = CliRunner().invoke(cli, [*args, "--help"])
    assert result.exit_code == 0, result.output
    group = typer.main.get_command(cli)
    assert isinstance(group, typer.core.TyperGroup)
    command = group.get_command(group.make_context("duetime", list(args)), args[0])
    assert command is not None
    command.make_context(args[0], args[1:])


def test_compose_services() -> None:
    services = _services()
    assert services["worker"]["deploy"]["replicas"] == 10
    assert services["postgres"]["healthcheck"]["test"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["migrate"]["restart"] == "no"
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
    assert "/health" in " ".join(services["api"]["healthcheck"]["test"])
    images = {services[name]["image"] for name in DUETIME_SERVICES}
    assert len(images) == 1, images
    for name in DUETIME_SERVICES:
        build = services[name]["build"]
        if isinstance(build, str):
            build = {"context": build}
        assert (ROOT / build["context"]).resolve() == ROOT
        assert build.get("dockerfile", "Dockerfile") == "Dockerfile"


def test_dockerfile() -> None:
    stages = _dockerfile_stages()
    assert len(stages) >= 2, "a builder stage and a runtime stage"
    final = stages[-1]
    users = [args for instruction, args in final if instruction == "USER"]
    assert users, "the final stage runs as a non-root user"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert any("/app/.venv/bin" in args for instruction, args in final if instruction == "ENV")
    # The project is installed editable: the runtime needs the builder's /app at the same path.
    workdirs = {args for stage in stages for instruction, args in stage if instruction == "WORKDIR"}
    assert workdirs == {"/app"}
    assert any(i == "COPY" and args.split()[-2:] == ["/app", "/app"] for i, args in final)
    syncs = [
        sync
        for stage in stages
        for instruction, args in stage
        if instruction == "RUN"
        for sync in re.findall(r"uv sync[^&;|]*", args)
    ]
    assert syncs, "the venv is made by uv sync"
    assert all("--locked" in sync for sync in syncs), syncs

    # Everything the wheel is built from, the migrations next to `shared`, and what uv reads.
    hatch = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]
    wheel = hatch["build"]["targets"]["wheel"]
    wanted = {*wheel["packages"], *wheel["only-include"], "migrations"}
    wanted |= {"pyproject.toml", "uv.lock", "README.md"}
    copied = {
        source.rstrip("/")
        for stage in stages
        for instruction, args in stage
        if instruction == "COPY" and not args.startswith("--from")
        for source in args.split()[:-1]
    }
    assert wanted <= copied, wanted - copied
    # The build context is a whitelist: each of those must be let through .dockerignore.
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert {f"!{name}" for name in wanted} <= {line.strip().rstrip("/") for line in lines}


def test_docker_compose_config() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client")
    version = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
    if version.returncode != 0:
        pytest.skip("the docker client has no compose plugin")
    result = subprocess.run(
        [docker, "compose", "config", "-q"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_compose_waits_for_the_workers_grace_and_final_flush() -> None:
    from worker.loop import FINAL_FLUSH_SECONDS

    grace = next(
        p.default
        for p in typer.main.get_command(cli).commands["worker"].params
        if p.name == "grace"
    )
    period = _services()["worker"]["stop_grace_period"]
    match = re.fullmatch(r"(\d+)s", period)
    assert match, period
    assert int(match.group(1)) > grace + FINAL_FLUSH_SECONDS
