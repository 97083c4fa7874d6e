import sys

from tracking.entrypoint import main

sys.exit(main())
