"""House rules that keep the layers apart and the docs honest."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import consolidator
from consolidator.inventory.findings import CATALOG

REPO = Path(__file__).resolve().parents[1]
FACES = ("consolidator.cli", "consolidator.tui")


def core_modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(consolidator.__path__, "consolidator.")]
    return [n for n in names if not n.startswith(FACES) and not n.endswith("__main__")]


def test_core_never_imports_textual_or_rich() -> None:
    modules = core_modules()
    assert "consolidator.inventory.collect" in modules and "consolidator.plan.build" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "", f"core pulled in: {out.stdout.strip()}"


def test_every_finding_code_is_documented() -> None:
    doc = (REPO / "docs" / "findings.md").read_text()
    for code, check in CATALOG.items():
        assert f"| {code} | {check.severity} |" in doc, f"{code} missing from docs/findings.md"


def test_codes_are_unique_and_well_formed() -> None:
    assert all(code.startswith("CN") and len(code) == 5 and code[2:].isdigit() for code in CATALOG)
