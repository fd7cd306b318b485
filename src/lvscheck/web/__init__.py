"""The daemon's HTTP listener: the status page, ``/status.json``, live updates, ``/metrics``.

See docs/status-page.md.  Stdlib asyncio only; the page's HTML, CSS and JavaScript
are files of this package (``static/``), nothing is loaded from elsewhere.
"""
