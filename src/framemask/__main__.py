import sys

from framemask.cli import main

sys.exit(main())
