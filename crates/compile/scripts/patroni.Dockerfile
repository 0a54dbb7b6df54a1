# The Patroni members' image: the official PostgreSQL image above, pinned by
# digest, plus Patroni and its etcd client from the PostgreSQL project's apt
# repository, which that image already trusts. hacompile emits no other
# change: the entrypoint and patroni.yml come from the stack as swarm configs.
#
#   docker build -f patroni.Dockerfile -t REGISTRY/NAME:TAG .
#   docker push REGISTRY/NAME:TAG
#   hacompile lock spec.toml        # pins it; `patroni.image` names it
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends patroni python3-etcd; \
    rm -rf /var/lib/apt/lists/*; \
    patroni --version
# PostgreSQL refuses to run as root; Patroni runs it as its own user.
USER postgres
STOPSIGNAL SIGTERM
