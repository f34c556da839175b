"""Write the service's OpenAPI document to web/openapi.json (the web client's types are generated from it).

Usage: python scripts/dump_openapi.py [OUT]   (default: web/openapi.json). Starts nothing: the document is
built from the app's routes and models only.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from framemask.api.app import create_app
from framemask.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def document() -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        return create_app(Settings(data_dir=Path(tmp))).openapi()


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "web" / "openapi.json"
    out.write_text(json.dumps(document(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
