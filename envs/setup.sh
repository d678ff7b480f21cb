#!/usr/bin/env bash
# Sets up .venv with the pinned stack (envs/requirements.txt). Idempotent: a stamp holding the
# requirements' hash skips the work when nothing changed. FFCV compiles against OpenCV and
# libjpeg-turbo: installed with apt-get when running as root, otherwise this says what to install
# and sets up everything else (genrobust then uses its plain PyTorch loader). It also links the
# SLURM profile to ~/.config/snakemake/slurm (envs/link-slurm-profile.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
REQUIREMENTS=envs/requirements.txt
APT_PACKAGES="libopencv-dev libturbojpeg0-dev pkg-config"
stamp="$VENV/.genrobust-installed"
want=$(cat "$REQUIREMENTS" pyproject.toml | sha256sum | cut -c1-16)

bash envs/link-slurm-profile.sh   # `snakemake --profile slurm` (README: running on a cluster)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

ffcv_libs_present() { pkg-config --exists opencv4 libturbojpeg 2>/dev/null; }
if ! ffcv_libs_present; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing the Debian packages FFCV builds against: $APT_PACKAGES"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $APT_PACKAGES >/dev/null
  else
    echo "!! FFCV needs system packages that are missing. Install them, then re-run:"
    echo "!!   sudo apt-get install -y --no-install-recommends $APT_PACKAGES"
    echo "!!   (conda: conda install -c conda-forge pkg-config libjpeg-turbo opencv)"
    echo "!! Continuing without FFCV: training reads images with the plain PyTorch loader."
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip

requirements="$REQUIREMENTS"
if ! ffcv_libs_present; then
  requirements=$(mktemp)
  grep -v '^ffcv==' "$REQUIREMENTS" > "$requirements"
fi
echo "== installing the pinned stack ($REQUIREMENTS) into $VENV (first time: a few minutes, ~7 GB)"
"$VENV/bin/python" -m pip install -q -r "$requirements"
"$VENV/bin/python" -m pip install -q --no-deps -e .
"$VENV/bin/python" -m pip check >/dev/null || { "$VENV/bin/python" -m pip check; exit 1; }
echo "$want" > "$stamp"
echo "== $VENV ready"
