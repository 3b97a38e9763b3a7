"""`python -m layalign ...` (also what `accelerate launch -m layalign train ...` runs)."""

import sys

from layalign.cli import main

sys.exit(main())
