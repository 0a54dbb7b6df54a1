#!/usr/bin/env bash
# Benchmark: failover of the pinned and the Patroni topologies, measured in
# the same run on loopback with real processes (PostgreSQL 15, HAProxy 2.6,
# Patroni 3.0.2, etcd 3.4) through the compiled write and read ports.
# Prints write unavailability after SIGKILL of the primary, after a graceful
# stop and after a switchover (median and max over KILLS events each),
# acknowledged writes lost (synchronous_mode on and off), failed reads during
# the failovers, and pgbench TPC-B through the write port against direct to
# the leader with the ratio.
#
#   benches/failover.sh [KILLS]      (default 5: about 19 minutes on 2 cores)
#
# Floors (issue #12): SIGKILL median <= ttl + 3 s; graceful stop and
# switchover <= 5 s; no acknowledged write lost with synchronous mode. They
# are printed beside the figures; one not met does not fail the run.
# Runs as root (the servers run as the postgres user, as in the images).
set -euo pipefail
cd "$(dirname "$0")/.."
kills="${1:-5}"
case "$kills" in
'' | *[!0-9]*) echo "usage: benches/failover.sh [KILLS]" >&2; exit 2 ;;
esac

tests/setup.sh
# The dev profile: the measured parts are the servers, not this program, and
# it reuses the test build.
cargo bench --profile dev --bench failover -- "$kills"
