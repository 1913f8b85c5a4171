"""The status page at ``/ui``: overview, timeline, schedules and runs, with their actions.

Served by the management API (``mount_ui``), over the same ``management`` operations, behind the
same tokens: a login form turns a token into a signed session cookie (``ui.session``). Pages are
rendered on the server (Jinja2, autoescaped) under a strict Content-Security-Policy; the only
scripts are the static files in ``ui/static`` (the timeline's drawing and refresh, and uPlot for
the overview's charts).
"""
