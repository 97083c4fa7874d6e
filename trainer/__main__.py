"""`python -m trainer train|promote|rollback`."""

import sys

from trainer.cli import main

sys.exit(main())
