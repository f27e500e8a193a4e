"""``python -m asynctelemetry.cli``: the same as the ``asynctelemetry`` command."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())
