#!/usr/bin/env bash
# Installs the project and runs the service on the embedded default: SQLite and checkpoints under ./var,
# a local executor process for the jobs, the API on http://127.0.0.1:8000. On first start it trains and
# registers a demo model (Fashion-MNIST when Debian's dataset-fashion-mnist is installed, else digits).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e .
exec python3 -m service run "$@"
