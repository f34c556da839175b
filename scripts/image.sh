#!/usr/bin/env bash
# Build the framemask container image with podman from the offline bundle (scripts/bundle.sh), on a Debian
# machine with apt but no container registry. Prints the image reference on stdout (last line).
#
#   scripts/image.sh            # localhost/framemask:<hash of the bundle's inputs> (+ :latest)
#   scripts/image.sh --force    # rebuild even when an image of the same inputs exists
#
# An image built from the same inputs (same lock, src/, models, deploy files) is reused without building the
# bundle at all. Installs podman, runc and mmdebstrap with apt when they are missing (root or sudo), and
# bootstraps the Debian base image with mmdebstrap when it is not in podman's storage.
#
# Environment:
#   FRAMEMASK_BASE_IMAGE  the FROM image (default localhost/debian:bookworm-slim, bootstrapped here; where a
#                         registry is reachable use debian:bookworm-slim)
#   FRAMEMASK_IMAGE       the repository of the result (default localhost/framemask)
#   CONTAINERS_CONF       podman's containers.conf; default: one with `default_ulimits = []` (containers here may
#                         not raise RLIMIT_NOFILE)
# podman runs as `podman --runtime runc --cgroup-manager=cgroupfs` (crun refuses hybrid cgroups); the same
# options are needed to run the image: see docs/deploy.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BASE="${FRAMEMASK_BASE_IMAGE:-localhost/debian:bookworm-slim}"
IMAGE="${FRAMEMASK_IMAGE:-localhost/framemask}"
FORCE=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "image.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done
log() { printf '\033[1m[image]\033[0m %s\n' "$*" >&2; }

need=()
for tool in podman runc mmdebstrap; do command -v "$tool" >/dev/null || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  log "installing podman, runc and mmdebstrap with apt (missing: ${need[*]})"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -o DPkg::Lock::Timeout=600 -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 \
    podman runc mmdebstrap uidmap fuse-overlayfs slirp4netns >/dev/null
fi
if [ -z "${CONTAINERS_CONF:-}" ]; then
  export CONTAINERS_CONF="${TMPDIR:-/tmp}/framemask-containers.conf"
  printf '[containers]\ndefault_ulimits = []\n' >"$CONTAINERS_CONF"
fi
pm() { podman --runtime runc --cgroup-manager=cgroupfs "$@"; }

# one image build at a time per checkout (the bundle folder is its build context)
mkdir -p dist
exec 8>dist/.framemask-image.lock
flock 8

key="$(scripts/bundle.sh --key)"
ref="$IMAGE:$key"
if [ "$FORCE" = 0 ] && pm image exists "$ref"; then
  log "reusing $ref (built from the same inputs)"
  echo "$ref"
  exit 0
fi

if [ "$BASE" = localhost/debian:bookworm-slim ] && ! pm image exists "$BASE"; then
  log "bootstrapping $BASE with mmdebstrap (Debian's apt registry)"
  tarball="$(mktemp --suffix=.tar)"
  mmdebstrap --quiet --variant=minbase --include=ca-certificates bookworm "$tarball" >&2
  pm import --quiet "$tarball" "$BASE" >/dev/null
  rm -f "$tarball"
fi

scripts/bundle.sh >&2
t0=$SECONDS
log "building $ref from dist/framemask-bundle (base $BASE)"
# --format docker keeps HEALTHCHECK; --network=host lets apt inside the build reach the Debian mirror
pm build --format docker --network=host --build-arg BASE_IMAGE="$BASE" \
  -f deploy/Dockerfile -t "$ref" -t "$IMAGE:latest" dist/framemask-bundle >&2
log "built $ref in $((SECONDS - t0)) s"
# older builds of this repository (other input hashes) are replaced by this one
for old in $(pm images --format '{{.Repository}}:{{.Tag}}' --filter "reference=$IMAGE" | grep -v -e ":$key\$" -e ':latest$' || true); do
  pm rmi "$old" >/dev/null 2>&1 || true
done
pm image prune -f >/dev/null 2>&1 || true  # their untagged framemask layers (the apt and dependency layers stay)
echo "$ref"
