#!/bin/bash
# A throw-away S3 server: single-node Ceph (one mon + one memstore OSD) and radosgw on loopback.
#
#   scripts/start_rgw.sh DIR [RGW_PORT] [MON_PORT]     start; prints "endpoint=... pids=..." lines
#   scripts/start_rgw.sh --stop DIR                    stop the daemons recorded in DIR/run/*.pid
#
# Debian bookworm, run as root: apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd uuid-runtime
# Data lives in RAM (memstore, MEMSTORE_BYTES, default 2 GiB); auth is off inside the cluster but
# radosgw still checks S3 signatures against the user created below (S3_ACCESS_KEY / S3_SECRET_KEY).
# Pitfall (research/infra.md): without "ms mon client mode = crc secure" rgw hangs on
# "get_initial_auth_request returned -13".
set -euo pipefail

stop() {
  local d=$1 pid
  for f in "$d"/run/*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null || true
  done
  sleep 0.5
  for f in "$d"/run/*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$f"
  done
}

if [ "${1:-}" = "--stop" ]; then stop "$2"; exit 0; fi

D=${1:?usage: start_rgw.sh DIR [RGW_PORT] [MON_PORT]}
PORT=${2:-7480}
MONPORT=${3:-13300}
MEM=${MEMSTORE_BYTES:-2147483648}
ACCESS=${S3_ACCESS_KEY:-test}
SECRET=${S3_SECRET_KEY:-testtesttest}

rm -rf "$D"
mkdir -p "$D"/{mon/a,osd/0,run,log,rgw}
cd "$D"
FSID=$(uuidgen)
cat > ceph.conf <<EOF
[global]
fsid = $FSID
mon host = v2:127.0.0.1:$MONPORT
mon initial members = a
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc secure
ms client mode = crc secure
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
mon data avail warn = 5
osd objectstore = memstore
memstore device bytes = $MEM
osd crush chooseleaf type = 0
run dir = $D/run
pid file = $D/run/\$name.pid
admin socket = $D/run/\$name.asok
log file = $D/log/\$name.log
keyring = $D/keyring
[mon.a]
mon data = $D/mon/a
[osd.0]
osd data = $D/osd/0
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$PORT
rgw data = $D/rgw
EOF
ceph-authtool --create-keyring keyring --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool keyring --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
monmaptool --create --addv a "[v2:127.0.0.1:$MONPORT]" --fsid "$FSID" monmap >/dev/null
ceph-mon -c ceph.conf --mkfs -i a --monmap monmap --keyring keyring
ceph-mon -c ceph.conf -i a
OSDU=$(uuidgen)
ID=$(timeout 60 ceph -c ceph.conf osd new "$OSDU")
ceph-osd -c ceph.conf -i "$ID" --mkfs --osd-uuid "$OSDU" 2>/dev/null
ceph-osd -c ceph.conf -i "$ID" 2>/dev/null
radosgw -c ceph.conf -n client.rgw.a
up=0
for _ in $(seq 1 240); do
  if curl -sf -o /dev/null "http://127.0.0.1:$PORT/"; then up=1; break; fi
  sleep 0.5
done
if [ "$up" != 1 ]; then echo "radosgw did not answer on port $PORT" >&2; stop "$D"; exit 1; fi
timeout 60 radosgw-admin -c ceph.conf -n client.rgw.a user create --uid test --display-name test \
  --access-key "$ACCESS" --secret "$SECRET" >/dev/null 2>&1
echo "endpoint=http://127.0.0.1:$PORT access=$ACCESS"
echo "pids=$(cat "$D"/run/*.pid | tr '\n' ' ')"
