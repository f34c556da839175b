#!/bin/sh
# framemask offline installer (part of the bundle written by scripts/bundle.sh; also run by deploy/Dockerfile).
# Installs this bundle's wheels into a virtualenv with `pip install --no-index` (no registry is contacted),
# copies the prepared models, then checks the result: every model ready, the web editor present, and a short
# generated clip anonymized with its frame count kept.
#
#   sh install.sh [--prefix DIR] [--models DIR] [--python PYTHON] [--deps-only | --skip-deps] [--no-check]
#
#   --prefix     the virtualenv to create or update (default /opt/framemask)
#   --models     where the models go (default PREFIX/models); set FRAMEMASK_MODEL_DIR to it when running
#                (PREFIX/framemask.env does: `. PREFIX/framemask.env`)
#   --python     a Python 3.11 interpreter with the venv module (default python3; Debian: python3-venv)
#   --deps-only  only the dependencies (the image's first layer)
#   --skip-deps  all but the dependencies (the image's second layer: wheels/ is not there any more)
#   --no-check   skip the final check
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
PREFIX=/opt/framemask
MODELS=""
PYTHON=python3
DEPS_ONLY=0
SKIP_DEPS=0
CHECK=1
die() { echo "install.sh: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX="$2"; shift 2 ;;
    --models) MODELS="$2"; shift 2 ;;
    --python) PYTHON="$2"; shift 2 ;;
    --deps-only) DEPS_ONLY=1; shift ;;
    --skip-deps) SKIP_DEPS=1; shift ;;
    --no-check) CHECK=0; shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
MODELS="${MODELS:-$PREFIX/models}"

# the wheels are built for CPython 3.11 on x86_64 Linux
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null \
  || die "$PYTHON is not Python 3.11 (the bundle's wheels are cp311); pass --python"
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || die "$PYTHON has no venv/ensurepip (Debian: apt-get install python3-venv)"

# integrity: wheels/SHA256SUMS covers the wheels, SHA256SUMS everything else (wheels/SHA256SUMS included)
verify() {  # DIR SUMS [sha256sum options]
  (cd "$1" && shift && sha256sum --quiet --strict -c "$@") || die "the bundle is damaged: $1 does not match its SHA256SUMS"
}
if [ "$SKIP_DEPS" = 0 ]; then
  [ -f "$HERE/wheels/SHA256SUMS" ] || die "$HERE/wheels/SHA256SUMS missing: not a complete bundle"
  verify "$HERE/wheels" SHA256SUMS
fi
if [ "$DEPS_ONLY" = 0 ]; then
  [ -f "$HERE/SHA256SUMS" ] || die "$HERE/SHA256SUMS missing: not a complete bundle"
  if [ "$SKIP_DEPS" = 1 ]; then verify "$HERE" SHA256SUMS --ignore-missing; else verify "$HERE" SHA256SUMS; fi
fi

[ -x "$PREFIX/bin/python" ] || "$PYTHON" -m venv "$PREFIX"
pip_install() {
  # --no-index: only this bundle's files; --no-deps: requirements.txt is the whole, pinned closure
  # no pip configuration file (PIP_CONFIG_FILE=/dev/null) nor PIP_* variable (--isolated) of this machine applies
  PIP_CONFIG_FILE=/dev/null "$PREFIX/bin/python" -m pip --isolated install --quiet --disable-pip-version-check --no-cache-dir \
    --no-index --find-links "$HERE/wheels" --no-deps "$@"
}
[ "$SKIP_DEPS" = 1 ] || pip_install -r "$HERE/requirements.txt"
[ "$DEPS_ONLY" = 1 ] && { echo "install.sh: dependencies installed into $PREFIX"; exit 0; }

pip_install --force-reinstall "$HERE"/app/framemask-*.whl
mkdir -p "$MODELS"
cp "$HERE"/models/* "$MODELS/"
printf 'FRAMEMASK_MODEL_DIR=%s\nexport FRAMEMASK_MODEL_DIR\nPATH=%s/bin:$PATH\n' "$MODELS" "$PREFIX" >"$PREFIX/framemask.env"

if [ "$CHECK" = 1 ]; then
  FRAMEMASK_MODEL_DIR="$MODELS" "$PREFIX/bin/python" - "$PREFIX/bin/framemask" <<'EOF' || die "check failed"
import json, subprocess, sys, tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

cli = sys.argv[1]
done = subprocess.run([cli, "models", "--json"], capture_output=True, text=True, check=True)
models = json.loads(done.stdout)["models"]
not_ready = [m["name"] for m in models if not m["ready"]]
assert not not_ready, f"models not ready: {not_ready}"
import cv2, onnxruntime, psycopg, celery  # noqa: F401,E401  (the service's native dependencies load)
from framemask.api.app import STATIC_DIR

assert (STATIC_DIR / "index.html").is_file(), "the web editor is missing"
with tempfile.TemporaryDirectory() as tmp:
    src, out = Path(tmp) / "in.mp4", Path(tmp) / "out.mp4"
    with av.open(str(src), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.time_base = Fraction(1, 10)
        for i in range(12):
            frame = av.VideoFrame.from_ndarray(np.full((120, 160, 3), 20 * i, np.uint8), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    subprocess.run([cli, "anonymize", str(src), "-o", str(out)], check=True, capture_output=True, text=True)
    probe = json.loads(subprocess.run([cli, "probe", str(out)], capture_output=True, text=True, check=True).stdout)
    assert probe["endSequence"] == 12, probe
print(f"install.sh: check ok ({len(models)} models ready, web editor present, a 12-frame clip anonymized)")
EOF
fi
echo "install.sh: framemask installed into $PREFIX (models in $MODELS); run: . $PREFIX/framemask.env && framemask serve"
