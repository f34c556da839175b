#!/usr/bin/env bash
# framemask offline install bundle: one archive with the wheelhouse (every runtime dependency, pinned to the
# versions of .venv, plus framemask's own wheel with the built web editor inside), the prepared models, and
# install.sh, which installs all of it on a machine without any registry (`pip install --no-index`).
# The same unpacked bundle is the build context of deploy/Dockerfile (scripts/image.sh), so the image and an
# air-gapped install come from one path.
#
#   scripts/bundle.sh            # -> dist/framemask-bundle-<version>.tar.gz (+ dist/framemask-bundle/, unpacked)
#   scripts/bundle.sh --check    # ... then install the archive into a temp dir with no registry reachable
#   scripts/bundle.sh --key      # print the hash of the bundle's inputs (no build)
#   scripts/bundle.sh --force    # rebuild even when the inputs did not change
#
# Needs `./dev setup` first (the venv, the models, the web build). Fast when nothing changed: a stamp of the
# inputs' hash; downloaded/built wheels are kept in $FRAMEMASK_WHEEL_CACHE (default ~/.cache/framemask/wheels).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${FRAMEMASK_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
OUT="${FRAMEMASK_BUNDLE_OUT:-$ROOT/dist}"
WHEEL_CACHE="${FRAMEMASK_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/framemask/wheels}"
MODEL_DIR="${FRAMEMASK_MODEL_DIR:-$HOME/.cache/framemask/models}"
STATIC="$ROOT/src/framemask/api/static"
# what the bundle is made of (besides src/, the lock and the models): a change to any of them rebuilds it
RECIPE=(pyproject.toml scripts/requirements-extra.txt scripts/bundle.sh scripts/bundle_lock.py
        deploy/Dockerfile deploy/install.sh deploy/healthcheck.py)

log() { printf '\033[1m[bundle]\033[0m %s\n' "$*" >&2; }
die() { printf '[bundle] error: %s\n' "$*" >&2; exit 1; }

CHECK=0 FORCE=0 KEY_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --check) CHECK=1 ;;
    --force) FORCE=1 ;;
    --key) KEY_ONLY=1 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $arg (see --help)" ;;
  esac
done

[ -x "$PY" ] || die "no virtualenv at $VENV: run ./dev setup first"
[ -f "$STATIC/index.html" ] || die "the web editor is not built ($STATIC/index.html): run ./dev setup first"
# the prepared models: every model file of $MODEL_DIR that `framemask models` reports ready (with its manifest)
mapfile -t MODEL_FILES < <(FRAMEMASK_MODEL_DIR="$MODEL_DIR" "$VENV/bin/framemask" models --json | "$PY" -c '
import json, sys
from pathlib import Path
root = Path(sys.argv[1]).resolve()
models = json.load(sys.stdin)["models"]
bad = [m["name"] for m in models if not m["ready"]]
if bad:
    sys.exit("models not ready: " + ", ".join(bad) + " (run ./dev setup: framemask models --prepare)")
for m in models:
    path = Path(m["path"]).resolve()
    if path.parent == root:
        print(path.name)
        if Path(str(path) + ".json").is_file():
            print(path.name + ".json")
' "$MODEL_DIR") || die "the models are not ready"
[ ${#MODEL_FILES[@]} -gt 0 ] || die "no prepared model in $MODEL_DIR: run ./dev setup first"
VERSION="$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')"
NAME="framemask-bundle-$VERSION"
STAGE="$OUT/framemask-bundle"
ARCHIVE="$OUT/$NAME.tar.gz"
STAMP="$OUT/.framemask-bundle.stamp"

# --- the inputs' hash --------------------------------------------------------------------------------------------
LOCK="$(mktemp)"
trap 'rm -f "$LOCK"' EXIT
"$PY" scripts/bundle_lock.py >"$LOCK"
key="$( {
  cat "$LOCK" "${RECIPE[@]}"
  (cd "$MODEL_DIR" && sha256sum "${MODEL_FILES[@]}")
  find src -type f ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*.egg-info/*' -print0 | LC_ALL=C sort -z \
    | xargs -0 sha256sum
} | sha256sum | cut -c1-16)"
if [ "$KEY_ONLY" = 1 ]; then echo "$key"; exit 0; fi

check_archive() {
  # Install the archive the way an air-gapped machine would: unpack, install.sh, no registry reachable.
  local tmp; tmp="$(mktemp -d)"
  log "check: installing $ARCHIVE into a temp dir with no registry reachable"
  tar -C "$tmp" -xzf "$ARCHIVE"
  local t0=$SECONDS
  env -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL -u PIP_FIND_LINKS \
      PIP_INDEX_URL=http://127.0.0.1:9/no-registry/ http_proxy=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9 \
      HOME="$tmp/home" \
    sh "$tmp/$NAME/install.sh" --prefix "$tmp/venv" --python "${BUNDLE_PYTHON:-$(command -v python3.11 || command -v python3)}" \
    || { rm -rf "$tmp"; die "check failed: the bundle does not install offline"; }
  log "check: installed and verified in $((SECONDS - t0)) s"
  rm -rf "$tmp"
}

# one bundle build at a time per output folder (two test runs, or ./dev bundle beside scripts/image.sh)
mkdir -p "$OUT"
exec 9>"$OUT/.framemask-bundle.lock"
flock 9

if [ "$FORCE" = 0 ] && [ -f "$ARCHIVE" ] && [ -f "$STAGE/SHA256SUMS" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$key" ]; then
  log "up to date: $ARCHIVE (inputs $key)"
  [ "$CHECK" = 1 ] && check_archive
  echo "$ARCHIVE"
  exit 0
fi
t_start=$SECONDS

# --- 1. the dependency wheels (pinned to .venv's versions), cached across bundles and clones ---------------------
mkdir -p "$WHEEL_CACHE" "$OUT"
missing="$("$PY" scripts/bundle_lock.py --lock "$LOCK" --missing "$WHEEL_CACHE")"
if [ -n "$missing" ]; then
  log "fetching/building $(wc -l <<<"$missing") wheel(s) into $WHEEL_CACHE"
  # --no-deps: the lock is the whole closure already; sdists (PyGObject, pycairo) are built here, once
  # shellcheck disable=SC2086
  "$PY" -m pip wheel --disable-pip-version-check --no-deps --prefer-binary -w "$WHEEL_CACHE" $missing \
    >"$OUT/.pip-wheel.log" 2>&1 || { tail -n 30 "$OUT/.pip-wheel.log" >&2; die "pip wheel failed (log: $OUT/.pip-wheel.log)"; }
fi
mapfile -t wheels < <("$PY" scripts/bundle_lock.py --lock "$LOCK" --select "$WHEEL_CACHE")

# --- 2. framemask's own wheel (with the built editor in framemask/api/static), from a copy of the tree ------------
build="$(mktemp -d)"
trap 'rm -f "$LOCK"; rm -rf "$build"' EXIT
mkdir -p "$build/src"
cp pyproject.toml "$build/"
tar -C src --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' -cf - . | tar -C "$build/src" -xf -
log "building the framemask $VERSION wheel"
"$PY" -m pip wheel --disable-pip-version-check --no-deps -w "$build/app" "$build" >"$OUT/.pip-wheel.log" 2>&1 \
  || { tail -n 30 "$OUT/.pip-wheel.log" >&2; die "building the framemask wheel failed (log: $OUT/.pip-wheel.log)"; }
app_wheel="$(ls "$build"/app/framemask-*.whl)"
"$PY" - "$app_wheel" <<'EOF' || die "the framemask wheel lacks the web editor or the migrations"
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
need = ["framemask/api/static/index.html", "framemask/store/migrations/env.py"]
sys.exit(0 if all(n in names for n in need) else 1)
EOF

# --- 3. the unpacked bundle (also the image's build context) -----------------------------------------------------
new="$OUT/.framemask-bundle.new"
rm -rf "$new"
mkdir -p "$new/wheels" "$new/app" "$new/models"
for w in "${wheels[@]}"; do ln "$w" "$new/wheels/" 2>/dev/null || cp "$w" "$new/wheels/"; done
cp "$app_wheel" "$new/app/"
for f in "${MODEL_FILES[@]}"; do cp "$MODEL_DIR/$f" "$new/models/"; done
"$PY" scripts/bundle_lock.py --lock "$LOCK" --pin "$WHEEL_CACHE" >"$new/requirements.txt"
cp deploy/install.sh deploy/healthcheck.py "$new/"
cp deploy/Dockerfile "$new/Dockerfile"
chmod 0755 "$new/install.sh"
cat >"$new/README.txt" <<EOF
framemask $VERSION offline bundle (inputs $key)

Install on a machine without registry access (Debian 12 / Python 3.11, x86_64):
  sh install.sh --prefix /opt/framemask        # venv + wheels (--no-index), models, then a self-check
  . /opt/framemask/framemask.env && /opt/framemask/bin/framemask serve
System packages it expects: python3 python3-venv (and for RTSP: the GStreamer packages in Dockerfile).
Or build the container image from this folder: podman build -t framemask .
EOF
echo "$VERSION" >"$new/VERSION"
(cd "$new/wheels" && LC_ALL=C sha256sum -- *.whl >SHA256SUMS)
(cd "$new" && find . -type f ! -path ./SHA256SUMS ! -path './wheels/*.whl' -printf '%P\n' | LC_ALL=C sort \
  | xargs sha256sum >SHA256SUMS)
rm -rf "$STAGE"
mv "$new" "$STAGE"

# --- 4. the archive ------------------------------------------------------------------------------------------------
log "writing $ARCHIVE"
# wheels are zip files already: fast gzip; one top-level folder named after the version
tar -C "$OUT" --transform "s,^framemask-bundle,$NAME," -cf - framemask-bundle | gzip -1 >"$ARCHIVE.tmp"
mv "$ARCHIVE.tmp" "$ARCHIVE"
echo "$key" >"$STAMP"
log "bundle $key: $(du -h "$ARCHIVE" | cut -f1), ${#wheels[@]} dependency wheels, built in $((SECONDS - t_start)) s"
[ "$CHECK" = 1 ] && check_archive
echo "$ARCHIVE"
