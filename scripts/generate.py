"""Generation job: one ensemble member (run by rule `generate`, possibly under torchrun).

Exits with 75 when a signal stopped sampling with a checkpoint written (skyquilt.jobs.generate).
"""

from skyquilt.jobs.generate import main

raise SystemExit(main())
