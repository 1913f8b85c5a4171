"""Preview: when an expression or interval would fire, before it is saved."""

from __future__ import annotations

from datetime import UTC, datetime

from keeperhub_scheduler.management.models import Preview, PreviewRequest


def preview(request: PreviewRequest, now: datetime | None = None) -> Preview:
    """The next ``count`` fire times after ``after`` (default now), in UTC and in the zone, each
    flagged where the UTC offset changed since the previous one and noted where DST moved it.
    ``H`` picks its values from ``schedule_id``, as that schedule fires them."""
    # views brings SQLAlchemy; this module is imported with the package, which --help loads.
    from keeperhub_scheduler.management.views import build_timing, fire_times

    timing = build_timing(
        request.cron_expression,
        request.interval_seconds,
        timezone=request.timezone,
        anchor_at=request.anchor_at,
    )
    if request.schedule_id is not None:
        timing = timing.for_schedule(request.schedule_id)
    start = request.after or now or datetime.now(UTC)
    return Preview(
        description=timing.describe(),
        timezone=timing.timezone,
        fire_times=fire_times(timing, start, request.count),
    )
