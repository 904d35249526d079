"""Names for clusters and Kubernetes objects derived from database names.

CNPG Cluster names must be DNS-1035 labels of at most 50 characters (its webhook); database names
may hold anything PostgreSQL allows, including spaces, quotes, upper case and non-ASCII.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

CLUSTER_NAME_MAX = 50
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def cluster_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a Cluster name as is, or None when it can."""
    if len(name) > CLUSTER_NAME_MAX:
        return f"{len(name)} characters (at most {CLUSTER_NAME_MAX})"
    if not _DNS1035.match(name):
        return "not a DNS-1035 label (lowercase letters, digits and '-', starting with a letter)"
    return None


def sanitize_cluster_name(name: str, taken: set[str] | None = None) -> str:
    """A valid, unique DNS-1035 name close to ``name`` (``Wiki.js_Prod`` → ``wiki-js-prod``).

    Non-ASCII letters are transliterated when possible; names that collide or had to be cut get
    a short stable hash suffix so two databases never map to one cluster.
    """
    taken = taken or set()
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    if not slug or not slug[0].isalpha():
        slug = f"db-{slug}".rstrip("-")
    suffix = hashlib.sha256(name.encode()).hexdigest()[:6]
    if len(slug) > CLUSTER_NAME_MAX:
        slug = slug[: CLUSTER_NAME_MAX - 7].rstrip("-") + "-" + suffix
    candidate = slug
    if candidate in taken:
        candidate = f"{slug[: CLUSTER_NAME_MAX - 7].rstrip('-')}-{suffix}"
    n = 2
    while candidate in taken:
        candidate = f"{slug[: CLUSTER_NAME_MAX - 8].rstrip('-')}-{suffix[:4]}{n}"
        n += 1
    return candidate
