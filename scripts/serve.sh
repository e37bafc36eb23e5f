#!/usr/bin/env bash
# Installs the project into .venv and runs the service on the embedded default: SQLite and checkpoints under
# var/ (UNLEARN_HOME), a local executor process for the jobs, the API on http://127.0.0.1:8000. On first
# start it trains and registers a demo model: Fashion-MNIST from Debian's dataset-fashion-mnist, installed
# here when missing and this machine allows it (root and apt-get), else scikit-learn's digits.
#   bash scripts/serve.sh [python -m service run options, e.g. --port 8001 --no-demo]
set -euo pipefail
# a relative UNLEARN_HOME names a folder under the one the command was started in, not the repository root
if [ -n "${UNLEARN_HOME:-}" ] && [ "${UNLEARN_HOME#/}" = "$UNLEARN_HOME" ]; then
    export UNLEARN_HOME="$PWD/$UNLEARN_HOME"
fi
cd "$(dirname "$0")/.."
source scripts/lib.sh

fashion_mnist=${UNLEARN_DEMO_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
case " $* " in *" --no-demo "*) wants_demo=no ;; *) wants_demo=yes ;; esac
# the Debian package fills the default folder only; a demo set up before keeps its dataset
if [ "$wants_demo" = yes ] && [ ! -e "$fashion_mnist/train-images-idx3-ubyte.gz" ] \
    && [ "$fashion_mnist" = /usr/share/datasets/fashion-mnist ] && [ ! -e "${UNLEARN_HOME:-var}/demo.json" ]; then
    apt_install dataset-fashion-mnist || echo "serve: the demo uses scikit-learn's digits instead of Fashion-MNIST" >&2
fi

use_venv ""
exec python -m service run "$@"
