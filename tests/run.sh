#!/usr/bin/env bash
# The whole test suite, as CI runs it: install the tools, check formatting
# and lints, then every test (unit, end-to-end against the real docker CLI,
# HAProxy and shellcheck).
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo nextest run --workspace --locked --no-fail-fast
