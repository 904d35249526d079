"""The demo runs end to end: four apps, one per strategy, migrated under a live workload."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from consolidator.demo.run import DemoOptions, run_demo


def test_demo_migrates_every_app() -> None:
    out = Path(tempfile.mkdtemp(prefix="consolidator-demo-"))
    out.chmod(0o755)  # local targets run as the unprivileged server user
    try:
        result = run_demo(DemoOptions(out=out, scale_mb=5, sample_seconds=1, jobs=2))
        assert result.executed is not None
        assert {a.name: a.state for a in result.executed.apps} == {
            "keycloak": "cut_over", "mastodon_production": "cut_over", "nextcloud": "cut_over",
            "Team Wiki": "cut_over",
        }  # fmt: skip
        strategies = {a.strategy.name for a in result.plan.apps}
        assert strategies == {"dump", "logical", "physical"}
        # the simulated apps kept working: they wrote before and after their cutover
        masto = result.workload["mastodon_production"]
        assert masto.committed > 0 and masto.failures > 0  # fenced for a moment, then on the target
        assert (out / "summary.md").exists() and (out / "report.html").exists()
        assert not (out / "targets").exists() or not any((out / "targets").iterdir())  # cleaned up
    finally:
        shutil.rmtree(out, ignore_errors=True)
