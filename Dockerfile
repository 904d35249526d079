# The image of consolidator's copy Jobs (execute --in-cluster), usable as a CLI too:
#   docker build -t consolidator:VERSION .      (VERSION: consolidator --version; the Jobs' default image)
#   docker run --rm consolidator:VERSION --help
# Client tools (pg_dump, pg_restore, psql, pg_basebackup) of every PostgreSQL major CloudNativePG
# runs as a target (14-18) come from the PGDG repository; no server binaries are needed.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl; \
    install -d /usr/share/postgresql-common/pgdg; \
    curl -fsSL -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc \
        https://www.postgresql.org/media/keys/ACCC4CF8.asc; \
    echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt bookworm-pgdg main" \
        > /etc/apt/sources.list.d/pgdg.list; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
        postgresql-client-14 \
        postgresql-client-15 \
        postgresql-client-16 \
        postgresql-client-17 \
        postgresql-client-18; \
    apt-get purge -y --auto-remove curl; \
    rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md ./
COPY consolidator ./consolidator
RUN pip install . && rm -rf /src

# Unprivileged, with a numeric UID so Kubernetes can enforce runAsNonRoot (the Job runs as 10001).
RUN groupadd --system --gid 10001 consolidator \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/consolidator --create-home \
        --shell /usr/sbin/nologin consolidator
USER 10001:10001
WORKDIR /home/consolidator

ENTRYPOINT ["consolidator"]
CMD ["--help"]
