# The database services' image with backups: the official PostgreSQL image
# above, pinned by digest, plus pgBackRest from the PostgreSQL project's apt
# repository, which that image already trusts. hacompile emits no other
# change: the entrypoint, scripts and pgbackrest.conf come from the stack as
# swarm configs.
#
#   docker build -f postgres.Dockerfile -t REGISTRY/NAME:TAG .
#   docker push REGISTRY/NAME:TAG
#   hacompile lock spec.toml        # pins it; `backup.image` names it
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends pgbackrest; \
    rm -rf /var/lib/apt/lists/*; \
    install -d -o postgres -g postgres -m 0750 /var/lib/pgbackrest; \
    pgbackrest version
