#!/usr/bin/env bash
# Sets up liverseg on Debian 12 and then runs the demo or the tests.
#   scripts/setup.sh --demo    install what is missing, build, make the demo case, open the viewer
#   scripts/setup.sh --test    install what is missing, build, run the whole test suite
#   scripts/setup.sh --build   install what is missing and build
# Idempotent: apt runs only when a package is missing; the build is incremental.
set -euo pipefail

mode="${1:---build}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${LIVERSEG_BUILD_DIR:-$root/build}"
jobs="$(nproc)"

packages=(
  build-essential cmake ninja-build ccache pkg-config
  qt6-base-dev libqt6opengl6-dev libvtk9-dev libinsighttoolkit5-dev libgdcm-tools
  libtorch-dev libgloo-dev libopenblas0-pthread libeigen3-dev nlohmann-json3-dev zlib1g-dev
  xvfb xauth libgl1-mesa-dri
  python3 python3-torch python3-numpy
)

install_missing_packages() {
  local missing=()
  for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  if ((${#missing[@]} == 0)); then
    echo "setup: all ${#packages[@]} packages present"
    return
  fi
  echo "setup: installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

build_project() {
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
  cmake --build "$build" -j "$jobs"
}

run_demo() {
  local demo="$root/demo"
  if [ ! -f "$demo/ct.nii.gz" ]; then
    "$build/app/liverseg" phantom --out "$demo" --seed 7
  fi
  local args=(view "$demo/ct.nii.gz" --mask "$demo/liver.nii.gz")
  if [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
    echo "setup: no display; starting the viewer under Xvfb and saving a screenshot to $demo/screenshot.png"
    xvfb-run -a -s "-screen 0 1280x1024x24" "$build/app/liverseg" "${args[@]}" --screenshot "$demo/screenshot.png"
  else
    # Debian's GLEW is GLX-only: use X11 (XWayland) even on a Wayland session.
    QT_QPA_PLATFORM=xcb exec "$build/app/liverseg" "${args[@]}"
  fi
}

run_tests() {
  cd "$build"
  # A test that fails is run once more and reported as failed only if it fails again: one
  # unexplained failure of two core CLI tests was seen once on a loaded machine (see issue notes).
  ctest --output-on-failure -j "$jobs" --timeout 900 --repeat until-pass:2
}

install_missing_packages
build_project
case "$mode" in
  --demo) run_demo ;;
  --test) run_tests ;;
  --build) ;;
  *) echo "usage: $0 --demo | --test | --build" >&2; exit 2 ;;
esac
