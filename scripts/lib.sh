# Sourced by serve.sh and test.sh (from the repository root): the project's virtual environment and the
# Debian packages they need. A venv rather than the system Python: it resolves the project's dependencies
# from nothing (what CI proves), and works where the system pip is externally managed (PEP 668).

VENV=${VENV:-.venv}
# PyTorch at the versions whose wheels lie on this project's machines: pip takes them from the local disk
# (about 1.5 minutes); elsewhere they come from the package index
TORCH_PACKAGES=${TORCH_PACKAGES:-"torch==2.14.1 torchvision==0.29.1"}

# use_venv EXTRAS [fresh]: make $VENV when missing (afresh when the second argument is "fresh"), install
# PyTorch when it lacks it, then the project with EXTRAS ('' or '[dev]') and its Python client (client/, the
# package unlearning_client that the walkthrough, the load test and the tests call the API with); its bin/
# goes first on PATH, so every `python`, `celery` or `lint-imports` below (and in the tests' subprocesses) is
# the venv's.
use_venv() {
    local extras=$1 fresh=${2:-}
    if [ "$fresh" = fresh ] && [ -e "$VENV" ]; then
        echo "setup: removing $VENV for a fresh virtual environment" >&2
        rm -rf "$VENV"
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        echo "setup: creating the virtual environment $VENV" >&2
        python3 -m venv "$VENV" || { echo "error: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2; exit 1; }
    fi
    VIRTUAL_ENV=$(cd "$VENV" && pwd)
    export VIRTUAL_ENV PATH="$VIRTUAL_ENV/bin:$PATH"
    hash -r
    if ! python -c "import torch, torchvision" >/dev/null 2>&1; then
        echo "setup: installing $TORCH_PACKAGES into $VENV" >&2
        # shellcheck disable=SC2086  # one word per package
        python -m pip install --quiet --disable-pip-version-check $TORCH_PACKAGES
    fi
    echo "setup: installing the project ('.$extras') and its client (client/) into $VENV" >&2
    python -m pip install --quiet --disable-pip-version-check -e ".$extras" -e ./client
}

# apt_install PACKAGE...: install Debian packages where this machine allows it (root and apt-get); the package
# lists of a fresh machine may be empty, so a failed install updates them once and tries again. Only warns on
# failure: the callers say what then runs without them.
apt_install() {
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "warning: cannot install $* here (needs root and apt-get)" >&2
        return 1
    fi
    echo "setup: apt-get install $*" >&2
    export DEBIAN_FRONTEND=noninteractive
    if apt-get install -y -qq "$@" >/dev/null 2>&1; then
        return 0
    fi
    if apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "$@" >/dev/null; then
        return 0
    fi
    echo "warning: could not install $*" >&2
    return 1
}
