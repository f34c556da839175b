# PostgreSQL 15 with pgvector for deploy/compose.yaml. The official postgres:15-bookworm image has the
# PostgreSQL project's apt repository (apt.postgresql.org) configured, which packages pgvector per server
# version as postgresql-15-pgvector. Debian 12's own archive has no pgvector package (see docs/deploy.md).
FROM postgres:15-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15-pgvector \
 && rm -rf /var/lib/apt/lists/*
