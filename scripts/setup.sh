#!/usr/bin/env bash
# Installs whatever lockstep needs that is missing (Debian 12 packages, through apt-get; as root or
# with sudo), then configures and builds a Release build in build/.
#   BUILD_DIR=build  CMAKE_ARGS="-DLOCKSTEP_WERROR=ON"  scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config openmpi-bin libopenmpi-dev libeigen3-dev libhdf5-dev
          libyaml-cpp-dev nlohmann-json3-dev libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev zlib1g-dev
          libpng-dev libjpeg62-turbo-dev libdnnl-dev libonnx-dev libprotobuf-dev libonnx-testdata python3-onnx)
# The demo falls back to synthetic data without the dataset; scripts/plot_metrics.py needs matplotlib.
optional=(dataset-fashion-mnist python3-matplotlib)

missing=()
for p in "${packages[@]}" "${optional[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  required_missing=()
  for p in "${missing[@]}"; do [[ " ${optional[*]} " == *" $p "* ]] || required_missing+=("$p"); done
  if [ ${#required_missing[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${required_missing[@]}"
  fi
  for p in "${optional[@]}"; do
    if [[ " ${missing[*]} " == *" $p "* ]]; then
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$p" ||
        echo "setup: could not install $p (optional: the demo uses synthetic data without the dataset, plot_metrics.py needs matplotlib)"
    fi
  done
fi

BUILD_DIR=${BUILD_DIR:-build}
# shellcheck disable=SC2086
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-} >"$BUILD_DIR.configure.log" 2>&1 ||
  { cat "$BUILD_DIR.configure.log"; exit 1; }
# The feature summary: CMake's "The following features have been enabled/disabled:" lists and
# lockstep's own line saying whether CUDA and NCCL were found.
awk '/^-- The following features have been/ { p = 1 } /^-- The following/ && !/features have been/ { p = 0 }
     /^-- Configuring done/ { p = 0 } (p || /^-- lockstep:/) && NF' "$BUILD_DIR.configure.log" || true
cmake --build "$BUILD_DIR" -j"$(nproc)"
