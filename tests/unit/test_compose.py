"""docker-compose.yml, checked statically (no Docker engine runs in CI).

It parses; every service has an image or a build whose Dockerfile exists;
every ``${VARIABLE}`` it uses is documented in .env.example; every
``YUQING_*`` variable it sets names a real setting; named volumes are
declared; dependencies name services; long-running services have a health
check and a restart policy.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
# ${NAME}, ${NAME:-default}, ${NAME:?message}; "$$" escapes a literal "$" for the container.
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")
ONE_SHOT = {"index-init", "kibana-setup"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def documented_variables() -> set[str]:
    names = set()
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\s*#?\s*([A-Z_][A-Z0-9_]*)=", line)
        if match:
            names.add(match.group(1))
    return names


def test_the_real_services_are_there(compose: dict[str, Any]) -> None:
    assert {"elasticsearch", "postgres", "worker", "dashboard", "kibana"} <= set(services(compose))
    assert "kibana" in services(compose)["kibana"]["profiles"]
    es_env = services(compose)["elasticsearch"]["environment"]
    assert es_env["xpack.security.enabled"] == "true"
    assert es_env["discovery.type"] == "single-node"
    assert "ELASTIC_PASSWORD" in str(es_env["ELASTIC_PASSWORD"])
    assert services(compose)["worker"]["command"] == ["yuqing", "run"]


def test_every_service_has_an_image_or_a_build(compose: dict[str, Any]) -> None:
    for name, svc in services(compose).items():
        assert "image" in svc or "build" in svc, name
        if "build" in svc:
            build = svc["build"]
            context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile")
            assert (context / (dockerfile or "Dockerfile")).is_file(), name


def strings(node: Any) -> list[str]:
    """Every string in the parsed file, keys included (comments are not interpolated)."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*strings(k), *strings(v))]
    if isinstance(node, list):
        return [s for v in node for s in strings(v)]
    return []


def test_every_variable_is_documented_in_env_example(compose: dict[str, Any]) -> None:
    used = {name for text in strings(compose) for name in VARIABLE.findall(text)}
    assert used, "the file should take its secrets from .env"
    missing = used - documented_variables()
    assert not missing, f"document these in .env.example: {sorted(missing)}"


def _setting_exists(model: type[BaseModel], path: list[str]) -> bool:
    field = model.model_fields.get(path[0])
    if field is None:
        return False
    if len(path) == 1:
        return True
    sub = field.annotation
    return isinstance(sub, type) and issubclass(sub, BaseModel) and _setting_exists(sub, path[1:])


def test_yuqing_variables_name_real_settings(compose: dict[str, Any]) -> None:
    for name, svc in services(compose).items():
        env = svc.get("environment") or {}
        assert isinstance(env, dict), f"{name}: use the mapping form of environment"
        for key in env:
            if key.startswith("YUQING_") and key != "YUQING_CONFIG":
                path = key.removeprefix("YUQING_").lower().split("__")
                assert _setting_exists(Settings, path), f"{name}: {key} is not a setting"


def test_volumes_dependencies_health_and_restart(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    names = set(services(compose))
    for name, svc in services(compose).items():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name}: volume {source} is not declared"
        for dep in svc.get("depends_on", {}):
            assert dep in names, f"{name} depends on unknown service {dep}"
        if name not in ONE_SHOT:
            assert svc.get("restart") in ("unless-stopped", "always"), name
            assert "healthcheck" in svc, f"{name} has no health check"


def test_dockerfile_installs_the_package_with_postgres() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "FROM python:3.11" in text
    assert "'.[postgres]'" in text
    assert "USER yuqing" in text
