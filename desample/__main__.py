"""`python -m desample ...` (what torchrun runs: torchrun --nproc_per_node=2 -m desample train ...)."""

import sys

from .cli import main

sys.exit(main())
