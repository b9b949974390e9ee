"""Month arithmetic shared by the CLI and the flows (an evaluation month is named by its last day)."""

from __future__ import annotations

import calendar
import datetime as dt
from zoneinfo import ZoneInfo

# The bank's calendar: business dates, schedules and warehouse timestamps are Asia/Shanghai.
BANK_TIMEZONE = "Asia/Shanghai"
SHANGHAI = ZoneInfo(BANK_TIMEZONE)
# How every time the project renders names its zone (the Prefect UI shows the browser's zone; ours never guess).
BANK_TIME_LABEL = "Asia/Shanghai, UTC+08:00"


def bank_time(moment: dt.datetime) -> str:
    """`moment` as the bank's wall time to the second, zone labelled: `2026-03-01 06:00:07 (Asia/Shanghai,
    UTC+08:00)`. A naive datetime is already bank wall time (warehouse TIMESTAMPs are); an aware one is converted.
    """
    local = moment.astimezone(SHANGHAI) if moment.tzinfo else moment
    return f"{local:%Y-%m-%d %H:%M:%S} ({BANK_TIME_LABEL})"


def schedule_text(cron: str) -> str:
    """A daily (`M H * * *`) or monthly (`M H D * *`) cron of the bank's zone in words, with the same moment in
    UTC, which the Prefect UI shows in a UTC browser: `06:00 Asia/Shanghai on the 1st = 22:00 UTC on the last
    day of the previous month`."""
    minute, hour, day, month, weekday = cron.split()
    if (month, weekday) != ("*", "*") or not (day == "*" or day.isdigit()):
        raise ValueError(f"cron {cron!r} is neither daily nor monthly")
    local = dt.datetime(2026, 3, 2 if day == "*" else int(day), int(hour), int(minute), tzinfo=SHANGHAI)
    utc = local.astimezone(dt.UTC)
    days_back = (local.date() - utc.date()).days  # 0 or 1: the bank is ahead of UTC
    if day == "*":
        when, utc_when = "every day", ("the day before" if days_back else "the same day")
    else:
        when = f"on the {_ordinal(int(day))}"
        utc_when = (("on the last day of the previous month" if day == "1" else f"on the {_ordinal(int(day) - 1)}")
                    if days_back else when)
    return f"{local:%H:%M} {BANK_TIMEZONE} {when} = {utc:%H:%M} UTC {utc_when}"


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def month_end(day: dt.date) -> dt.date:
    """The last calendar day of `day`'s month."""
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def previous_month_end(moment: dt.datetime) -> dt.date:
    """The last day of the month before `moment`'s month on the bank's calendar (naive = already local)."""
    local = moment.astimezone(SHANGHAI) if moment.tzinfo else moment
    return local.date().replace(day=1) - dt.timedelta(days=1)


def parse_as_of(text: str | dt.date) -> dt.date:
    """The evaluation month a user named, as its last day: `YYYY-MM-DD` (the month's last day) or `YYYY-MM`.

    The one parser of `as_of`, called where the text comes in (the CLI's arguments; the monthly deployment's
    parameter, flows.deployments.AsOf); flows and functions past that edge take the `date`. A date is checked
    the same way (it must be a month's last day). Errors are one line.
    """
    if isinstance(text, dt.date) and not isinstance(text, dt.datetime):
        day, text = text, text.isoformat()
    else:
        text = str(text).strip()
        try:
            if len(text) == 7:
                return month_end(dt.date.fromisoformat(text + "-01"))
            day = dt.date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"as-of {text!r} is not a date: use the month's last day, e.g. 2026-03-31") from None
    if day != month_end(day):
        raise ValueError(f"as-of {text} is not a month's last day: did you mean {month_end(day).isoformat()}?")
    return day


def parse_date(text: str) -> dt.date:
    """A business day a user named (`--date`, `--start`, `--end`): YYYY-MM-DD or YYYYMMDD, as batch folders
    are named."""
    text = text.strip()
    try:
        if len(text) == 8 and text.isdigit():
            return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def complete_months(start: dt.date, end: dt.date) -> list[dt.date]:
    """Month ends of the months wholly inside [start, end]."""
    months = []
    first = start if start.day == 1 else month_end(start) + dt.timedelta(days=1)
    while month_end(first) <= end:
        months.append(month_end(first))
        first = month_end(first) + dt.timedelta(days=1)
    return months


def month_runs(months: list[dt.date]) -> str:
    """Month ends as runs of consecutive months, for messages: `2026-01 … 2028-12 (36 months), 2029-03`."""
    runs: list[list[dt.date]] = []
    for month in sorted(set(months)):
        if runs and month_end(runs[-1][1] + dt.timedelta(days=1)) == month:
            runs[-1][1] = month
        else:
            runs.append([month, month])
    parts = []
    for first, last in runs:
        count = (last.year - first.year) * 12 + last.month - first.month + 1
        parts.append(f"{first:%Y-%m} … {last:%Y-%m} ({count} months)" if count > 2
                     else ", ".join(sorted({f"{first:%Y-%m}", f"{last:%Y-%m}"})))
    return ", ".join(parts)
