#!/usr/bin/env bash
# Installs the project with its test extras into .venv and runs the whole test suite: the one command CI runs.
# With CI=true the virtual environment is made afresh, so the run proves the dependency set resolves from
# nothing; elsewhere an existing .venv is reused. Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

# The tests talk to real PostgreSQL and Redis servers on loopback: start them when they are not running.
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
    for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    mkdir -p /var/lib/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis
    for _ in $(seq 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
fi

# tests/test_deploy.py validates docker-compose.yml with Debian's docker-compose (no Docker engine needed)
if ! command -v docker-compose >/dev/null 2>&1; then
    apt_install docker-compose || true
fi
# a test renders the audit page in headless chromium, driven through chromedriver
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    apt_install chromium chromium-driver || true
fi

if [ "${CI:-}" = true ]; then
    use_venv '[dev]' fresh
else
    use_venv '[dev]'
fi

# Architecture contracts (the core imports no web, database or queue code; see pyproject.toml).
lint-imports

# Two workers, each test file whole on one of them (a file's tests share its servers and fixtures); one
# thread each for PyTorch and its subprocesses, so the two workers fill the two cores without contending.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
set +e
python -m pytest -q -p no:cacheprovider -n "${PYTEST_WORKERS:-2}" --dist loadfile "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "error: pytest collected no tests" >&2
    exit 1
fi
exit "$rc"
