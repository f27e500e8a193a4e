"""The dashboard: a web page and a JSON API over any call store, served from your event loop.

``Dashboard(store)`` needs the ``ui`` extra (aiohttp): ``pip install 'asynctelemetry[ui]'``.
Every asset ships in the package: the page works offline, with no CDN and no build step.
"""

from __future__ import annotations

from ._server import Dashboard

__all__ = ["Dashboard"]
