"""Benchmark: inventory of a server hosting 200 small databases (target ≤ 5 s without the window).

Prints the wall-clock time of the catalog pass with bounded parallel connections (default 4) and,
as a baseline measured in the same run, the same inventory with one connection at a time.
"""

from __future__ import annotations

import argparse
import time

from psycopg import sql

from consolidator.inventory.collect import InventoryOptions, run_inventory
from consolidator.pg.connect import connect
from consolidator.pg.instance import LocalInstance

TEMPLATE_SQL = """
CREATE TABLE users (id bigserial PRIMARY KEY, email text UNIQUE NOT NULL, created_at timestamptz DEFAULT now());
CREATE TABLE orders (id bigserial PRIMARY KEY, user_id bigint REFERENCES users(id), total numeric(12,2));
CREATE TABLE audit_log (at timestamptz DEFAULT now(), what text);
CREATE INDEX ON orders (user_id);
CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
INSERT INTO users (email) SELECT 'u' || g || '@example.org' FROM generate_series(1, 200) g;
INSERT INTO orders (user_id, total) SELECT 1 + g % 200, g FROM generate_series(1, 500) g;
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--databases", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=4)
    args = parser.parse_args()
    inst = LocalInstance.create(settings={"max_connections": "100"})
    try:
        inst.start()
        with connect(inst.conninfo()) as conn:
            conn.execute("CREATE DATABASE bench_template")
        with connect(inst.conninfo(dbname="bench_template")) as conn:
            conn.execute(TEMPLATE_SQL)
        with connect(inst.conninfo()) as conn:
            for i in range(args.databases):
                conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE bench_template").format(
                    sql.Identifier(f"app_{i:03d}")))
        timings = {}
        for jobs in (args.jobs, 1):
            started = time.perf_counter()
            inv = run_inventory(inst.conninfo(), InventoryOptions(sample_seconds=0, jobs=jobs))
            timings[jobs] = time.perf_counter() - started
            assert len(inv.databases) >= args.databases
        fast, slow = timings[args.jobs], timings[1]
        print(f"inventory of {args.databases} databases, {args.jobs} connections: {fast:.2f} s "
              f"(target ≤ 5 s: {'met' if fast <= 5 else 'MISSED'})")
        print(f"baseline, 1 connection: {slow:.2f} s; ratio parallel/sequential = {fast / slow:.2f}")
    finally:
        inst.destroy()


if __name__ == "__main__":
    main()
