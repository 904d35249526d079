"""kill -9 at random points of execute, then --resume: verification passes, nothing lost or doubled.

Slow (about a minute and a half): run with ``pytest -m slow``.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from consolidator.pg.connect import connect
from tests.harness import Server
from tests.test_cli import REPO, cli
from tests.test_execute_dump import make_plan, source  # noqa: F401 - fixture

TRIALS = 10


@pytest.mark.slow
def test_random_kills_then_resume(source: Server, local_root: Path, tmp_path: Path) -> None:  # noqa: F811 - fixture
    rng = random.Random(20261121)
    with connect(source.dsn, dbname="mastodon_production") as conn:
        expected = conn.execute("SELECT count(*), sum(hashtext(s::text)::numeric) FROM statuses s").fetchone()
    for trial in range(TRIALS):
        out = tmp_path / f"plan{trial}"
        make_plan(source, local_root, out)
        proc = subprocess.Popen([sys.executable, "-m", "consolidator", "execute", str(out), "--yes", "--app",
                                 "mastodon_production", "--app", "nextcloud"], cwd=REPO,
                                env={**os.environ, "NO_COLOR": "1"}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(rng.uniform(0.3, 6.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        resumed = cli("execute", str(out), "--yes", "--resume", "--app", "mastodon_production", "--app", "nextcloud")
        if resumed.returncode != 0 and "no previous run" not in resumed.stderr:
            assert resumed.returncode == 0, f"trial {trial}: {resumed.stderr[-2000:]}"
        status = cli("status", str(out), "--json").stdout
        assert status.count('"state": "cut_over"') == 2, f"trial {trial}: {status[:2000]}"
        assert cli("verify", str(out), "--app", "mastodon_production", "--app", "nextcloud").returncode == 0
        target = next(a for a in __import__("json").loads(status)["apps"] if a["name"] == "mastodon_production")
        with connect(target["target"]["conninfo"], dbname="mastodon_production") as conn:
            got = conn.execute("SELECT count(*), sum(hashtext(s::text)::numeric) FROM statuses s").fetchone()
        assert got == expected, f"trial {trial}: rows lost or doubled"
        assert cli("rollback", str(out), "--app", "mastodon_production").returncode == 0
        assert cli("rollback", str(out), "--app", "nextcloud").returncode == 0
        assert cli("teardown", str(out), "--yes", "--force").returncode == 0
        shutil.rmtree(out, ignore_errors=True)
