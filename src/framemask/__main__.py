from framemask.cli import run

run()
