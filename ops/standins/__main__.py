"""`python -m ops.standins`: make every upstream image available, building stand-ins where none pulls."""

import sys

from ops.standins import ensure_images

if __name__ == "__main__":
    try:
        ensure_images()
    except RuntimeError as exc:
        print(f"standins: {exc}", file=sys.stderr)
        sys.exit(1)
