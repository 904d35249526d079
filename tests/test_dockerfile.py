"""The copy image's Dockerfile checked against the code (no Docker engine needed)."""

from __future__ import annotations

import importlib
import json
import re
import tomllib
from pathlib import Path

from consolidator import __version__
from consolidator.k8s.jobs import DEFAULT_IMAGE, RUN_AS
from consolidator.manifests.admission import SUPPORTED_MAJORS
from consolidator.manifests.render import CURRENT_MINORS
from consolidator.pg.binaries import CLIENT_TOOLS
from consolidator.plan.build import CNPG_MAJORS

REPO = Path(__file__).resolve().parents[1]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (REPO / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_every_target_major_has_its_client_tools() -> None:
    runs = " ".join(args for word, args in instructions() if word == "RUN")
    installed = {int(m) for m in re.findall(r"\bpostgresql-client-(\d+)\b", runs)}
    assert set(SUPPORTED_MAJORS) <= installed and set(CNPG_MAJORS) <= installed and set(CURRENT_MINORS) <= installed
    assert "apt.postgresql.org" in runs and "signed-by=" in runs  # PGDG, with its key
    assert not re.search(r"\bpostgresql-\d+\b", runs), "server packages are not needed: client tools only"
    # what find_client() looks for is in every postgresql-client-N package
    assert set(CLIENT_TOOLS) == {"pg_dump", "pg_restore", "psql", "vacuumdb"}


def test_base_image_matches_the_supported_python() -> None:
    (base,) = [args for word, args in instructions() if word == "FROM"]
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    minimum = pyproject["project"]["requires-python"].removeprefix(">=")
    assert base.startswith(f"python:{minimum}-slim")


def test_entrypoint_is_the_console_script() -> None:
    (entrypoint,) = [json.loads(args) for word, args in instructions() if word == "ENTRYPOINT"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint == ["consolidator"] and "consolidator" in scripts
    module, _, function = scripts["consolidator"].partition(":")
    assert callable(getattr(importlib.import_module(module), function))
    assert DEFAULT_IMAGE == f"consolidator:{__version__}"


def test_project_is_installed_and_the_user_is_unprivileged() -> None:
    steps = instructions()
    copied = [src for word, args in steps if word == "COPY" for src in args.split()[:-1]]
    assert "pyproject.toml" in copied and "README.md" in copied and "consolidator" in copied  # README: package metadata
    assert any(word == "RUN" and "pip install ." in args for word, args in steps)
    users = [args for word, args in steps if word == "USER"]
    assert users, "the image must not run as root"
    uid = users[-1].split(":")[0]
    assert uid not in ("root", "0") and uid.isdigit() and int(uid) == RUN_AS  # numeric: runAsNonRoot can check it
    last_user = max(i for i, (word, _) in enumerate(steps) if word == "USER")
    assert not any(word == "RUN" for word, _ in steps[last_user:]), "nothing runs as root after USER"


def test_dockerignore_keeps_only_what_the_build_copies() -> None:
    rules = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]  # fmt: skip
    assert rules[0] == "*"
    assert {"!pyproject.toml", "!README.md", "!consolidator/"} <= set(rules)
