"""Verification: prove that a target database holds the same data, schema and globals as its source.

Data is compared per table with a count plus two 64-bit row-hash sums taken under pinned session
settings (verification.md §2–§3); a mismatch is narrowed down to rows through key-hash buckets (§5)
so the volume moved is proportional to the differences. Catalog objects, roles, ACLs, settings,
sequences, large objects and materialized views are compared from the catalogs (§6).

Entry point: :func:`consolidator.verify.run.verify_database`.
"""

from __future__ import annotations
