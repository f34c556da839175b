"""The image's HEALTHCHECK: for `framemask serve`, GET /healthz on its own port (200 = healthy; 503 while the
database, object store or broker is down); for other commands (worker, rtsp), the container is healthy while
its process runs, which the container runtime already knows.

The command is read from PID 1 (`tini -- framemask serve --host H --port P`), so the check follows the port
that `serve` was really started with.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from pathlib import Path


def main() -> int:
    argv = Path("/proc/1/cmdline").read_bytes().split(b"\0")
    args = [a.decode(errors="replace") for a in argv if a]
    if "serve" not in args:
        return 0
    port = "8000"
    for i, arg in enumerate(args):
        if arg == "--port" and i + 1 < len(args):
            port = args[i + 1]
        elif arg.startswith("--port="):
            port = arg.split("=", 1)[1]
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=8) as resp:
            return 0 if resp.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"healthz: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
