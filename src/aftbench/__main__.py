import sys

from aftbench.cli import main

sys.exit(main())
