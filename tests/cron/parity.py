"""The differential test's parts: expressions to try, cron-parser's answers, and the comparison.

`expressions()` makes a few thousand expressions of its own, the same on every run: hand-picked edge
cases, random ones from cron-parser's whole grammar (names in any case, ``?``, large steps, ``L``,
``nL``, ``n#k``, ``H`` forms, 5 and 6 fields, predefined expressions, odd whitespace), and random
mistakes. Each is asked for its next 5 fire times in a zone, from an instant, with a seed for
``H``; cron-parser is asked the same, all in one node process (`ask_cron_parser`).

`compare` says whether the answers agree, or which deliberate difference explains them (the list
is `DELIBERATE`; docs/schedules.md's "Compatibility with KeeperHub" gives the same reasons). Our DST
policy is the other deliberate difference: fire times within 26 hours of a clock change in the
zone are left out of the comparison, on both sides.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from keeperhub_scheduler.cron import next_fire_times
from keeperhub_scheduler.errors import InvalidScheduleError

ROOT = Path(__file__).resolve().parents[2]
ORACLE = ROOT / "tests" / "cron" / "cron_parser" / "oracle.js"
INSTALL = ROOT / ".cache" / "cron-parser"
FIRES = 5
NEAR_CHANGE = timedelta(hours=26)
ZONES = [
    "UTC",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "America/New_York",
    "Europe/Berlin",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/Sao_Paulo",
]

# Each deliberate difference, with the reason it is one.
DELIBERATE = {
    "repeated values": "cron-parser refuses a value listed twice (1-5,3; 0,7 in day of week); we"
    " accept it, the value is simply there",
    "n#k in a list": "cron-parser takes n#k only as the whole day of week field; we also read a"
    " list (1#1,5#3: the first Monday or the third Friday)",
    "spelling": "cron-parser wants L and H in capitals, predefined expressions exactly as listed"
    " (no @DAILY, no spaces around) and one digit before L; we read letters in any case, @midnight"
    " (Vixie cron's @daily) and 05L",
    "empty": "cron-parser reads the empty expression as every minute; we refuse it",
    "fewer than 5 fields": "cron-parser fills missing leading fields in (0 9 * * is every minute"
    " from 00:00 to 00:59 on the 9th); we refuse it as the typo it almost always is",
    "fractional n#k": "cron-parser accepts 1#2.5 and no day ever matches it; we refuse it",
    "H glued to text": "cron-parser pastes the hashed number into the text (1-H, H5, 5/H), so its"
    " meaning, and whether it is valid at all, depends on the pick; we accept H forms only as"
    " whole list items",
}


@dataclass(frozen=True)
class Query:
    expression: str
    zone: str
    after_ms: int
    seed: str

    def as_json(self) -> str:
        return json.dumps(
            {
                "e": self.expression,
                "tz": self.zone,
                "after": self.after_ms,
                "seed": self.seed,
                "n": FIRES,
            }
        )


@dataclass
class Answer:
    ok: bool
    fires: list[int] = field(default_factory=list)
    error: str = ""
    stop: str | None = None


# --- expressions ----------------------------------------------------------------------------
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
WEEKDAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
# (low, high, names) for second, minute, hour, day of month, month, day of week.
SPECS = [(0, 59, None), (0, 59, None), (0, 23, None), (1, 31, None), (1, 12, MONTHS),
         (0, 7, WEEKDAYS)]  # fmt: skip

EDGE_CASES = [
    "*/90 * * * *", "0 */45 * * *", "0 0 */40 * *", "0 9 ? * MON-FRI", "13 10 */15 1 MON-FRI",
    "* * * * *", "? * * * *", "0 0 ? * ?", "0 0 * * ?", "*/1 * * * *", "0 0 */1 * MON",
    "0 0 1 * */2", "0 0 */2 * MON", "0 0 1,15 * 1-5", "0 0 L * *", "0 0 15,L * *",
    "0 0 * * 5L", "0 0 * * FRIL", "0 0 * * 7L", "0 0 * * 0L", "0 0 * * 5#5", "0 0 * * 7#1",
    "0 0 * * *#2", "0 0 * * ?#3", "0 0 * * MON#2", "0 0 * * 1#2.0", "0 0 * * 1#0x2",
    "0 0 * * 1#+2", "0 0 * * 1#.2e1", "0 0 1 * 1#2.5", "0 0 * * 1#2.5", "0 0 * * 1#",
    "0 0 * * 1#6", "0 0 * * 1#1#1", "0 0 * * 1#1,5#2", "0 0 * * 1-5#2", "0 0 29 2 *",
    "0 0 30 2 *", "0 0 31 4 *", "0 0 31 2,4 *", "0 0 30 2 MON", "0 0 * 2 1#5", "0 0 29 2 1#5",
    "0 0 * * 1/2", "0 0 * * MON/2", "0 0 * * 5-7", "0 0 * * 7-7", "0 0 * * */7", "0 0 * * 0,7",
    "0 0 * * SUN-SAT", "0 0 * * SAT-SUN", "0 0 * jan-mar *", "0 0 * JAN/2 *", "0 0 * * sun6",
    "5-5/3 * * * *", "*/100 * * * *", "0 0-23/25 * * *", "*/0 * * * *", "60 * * * *",
    "5-3 * * * *", "1,1 * * * *", "1-5,3 * * * *", "*/5,*/7 * * * *", "00 09 * * *",
    "0 0 * * 01", "- * * * *", "1- * * * *", "/5 * * * *", "*/ * * * *", "0 0 1W * *",
    "0 0 LW * *", "0 0 L/2 * *", "0 0 1-L * *", "0 0 * * L", "0 0 * * 8", "* * * * * * *",
    "0 9 * *", "1 2 3", "5", "", "   ", "@yearly", "@annually", "@monthly", "@weekly",
    "@daily", "@hourly", "@minutely", "@secondly", "@weekdays", "@weekends", "@midnight",
    "@DAILY", " @daily", "@daily ", "@reboot", "@daily 0", "H * * * *", "H H * * *",
    "H H H * * *", "H/5 * * * *", "H(0-10) * * * *", "H(0-29)/5 * * * *", "* * * * H#3",
    "0 0 H * *", "0 0 H 2 *", "0 0 H * H", "0 0 1 H *", "H(1-5)/10 * * * *",
    "H(50-100)/60 * * * *", "0 0 H(0-5) * *", "0 0 H(0-0)/40 * *", "H(5-3) * * * *",
    "H(70-80) * * * *", "H/0 * * * *", "1-H * * * *", "H-5 * * * *", "5/H * * * *",
    "H5 * * * *", "HH * * * *", "h * * * *", "0 0 l * *", "0 0 * * 5l", "0 0 * * HL",
    "0 0 * * H(1-5)L", "H,H * * * *", "H/1,H/1,H/1,H/1,H/1 * * * * *", "0 0 H/40 2 *",
    "0 0 H(29-31) 2 *", "0 0 31 H *", "H/99999999999999999999 * * * *", "0 0 0 * * 0",
    "0\u00a09 * * *", "0 9 * * *\u3000", "\t0\t9\t*\t*\t*\t", "0 9 * * *\ufeff",
    "0\u20039 * * *", "0 9 * * MON-FRI ", "  */5   *  *  *  *  ", "0 0 * * 05L",
    "0 0 * * THU", "0 0 * * thu#2", "0 0 1 * THU-SAT", "0 0 * * MONDAY", "0 0 * JANFEB *",
]  # fmt: skip

JUNK = [
    "60", "24", "32", "13", "8", "5-3", "*/0", "1,,2", "1,", ",", "*-5", "5-*", "L", "l", "h",
    "W", "1W", "LW", "#", "1#6", "1#0", "JANUARY", "FOO", "MON", "1/0", "/5", "5/", "--", "1--2",
    "H(5-3)", "H(70-80)", "H/0", "1-H", "H5", "\u00e9", "*/", "?/0", "1-2-3", "1/2/3", "3L",
    "?-5", "**", "*?", "0x1", "1.5", "+1", "-1", "1 ,2",
]  # fmt: skip


def _number(rng: random.Random, low: int, high: int, names: list[str] | None) -> tuple[int, str]:
    value = rng.randint(low, high)
    index = value - low if names is MONTHS else value % 7
    if names and rng.random() < 0.35 and (names is not WEEKDAYS or value <= 7):
        name = names[index]
        return value, rng.choice([name, name.lower(), name.capitalize()])
    return value, f"{value:02d}" if rng.random() < 0.05 else str(value)


def _step(rng: random.Random, span: int) -> int:
    roll = rng.random()
    if roll < 0.75:
        return rng.randint(1, span)
    if roll < 0.97:
        return rng.randint(span + 1, 3 * span + 40)
    return rng.choice([100, 999, 99999])


def _item(rng: random.Random, index: int) -> str:
    low, high, names = SPECS[index]
    span = high - low + 1
    kind = rng.choices(
        ["*", "?", "*/n", "?/n", "a", "a-b", "a/n", "a-b/n", "H", "H/n", "H(a-b)", "H(a-b)/n"],
        weights=[8, 3, 10, 2, 14, 10, 5, 6, 3, 3, 2, 2],
    )[0]
    if kind in ("*", "?", "H"):
        return kind
    if kind.endswith("/n") and kind[0] in "*?H" and "(" not in kind:
        return f"{kind[0]}/{_step(rng, span)}"
    (a, a_text), (b, b_text) = _number(rng, low, high, names), _number(rng, low, high, names)
    if a > b:
        (a, a_text), (b, b_text) = (b, b_text), (a, a_text)
    if kind.startswith("H("):
        a_text, b_text = str(max(0, a - rng.randint(0, 3))), str(b + rng.randint(0, 2))
        text = f"H({a_text}-{b_text})"
        return text + (f"/{_step(rng, span)}" if kind.endswith("/n") else "")
    if kind == "a":
        return a_text
    if kind == "a/n":
        return f"{a_text}/{_step(rng, span)}"
    return f"{a_text}-{b_text}" + (f"/{_step(rng, span)}" if kind == "a-b/n" else "")


def _field(rng: random.Random, index: int) -> str:
    if index == 3 and rng.random() < 0.08:
        return rng.choice(["L", "L", f"{rng.randint(1, 28)},L"])
    if index == 5:
        roll = rng.random()
        if roll < 0.08:
            day = rng.choice([str(rng.randint(0, 7)), rng.choice(WEEKDAYS), "*", "?", "H"])
            return f"{day}#{rng.randint(1, 5)}"
        if roll < 0.14:
            return rng.choice([str(rng.randint(0, 7)), rng.choice(WEEKDAYS)]) + "L"
    if index in (3, 5) and rng.random() < 0.45:
        return rng.choice(["*", "?"])
    count = rng.choices([1, 2, 3], weights=[70, 22, 8])[0]
    if count == 1 or rng.random() < 0.15:
        return ",".join(_item(rng, index) for _ in range(count))
    # Items that overlap repeat values, which cron-parser refuses: mostly disjoint segments.
    low, high, names = SPECS[index]
    high = min(high, 6) if index == 5 else high  # 0 and 7 are both Sunday
    cuts = sorted(rng.sample(range(low + 1, high + 1), min(count - 1, high - low)))
    items = []
    for start, end in zip([low, *cuts], [c - 1 for c in cuts] + [high], strict=True):
        a, b = sorted(rng.randint(start, end) for _ in range(2))
        a_text, b_text = (
            names[v - low if index == 4 else v] if names and rng.random() < 0.3 else str(v)
            for v in (a, b)
        )
        kind = rng.random()
        if kind < 0.4 or a == b:
            items.append(a_text)
        elif kind < 0.8:
            items.append(f"{a_text}-{b_text}")
        else:
            items.append(f"{a_text}-{b_text}/{_step(rng, b - a + 1)}")
    return ",".join(items)


def _random_expression(rng: random.Random) -> str:
    fields = [_field(rng, index) for index in range(6)]
    if rng.random() < 0.7:
        fields = fields[1:]
    if rng.random() < 0.2:
        fields[rng.randrange(len(fields))] = rng.choice(JUNK)
    spaces = [" "] * (len(fields) - 1)
    if rng.random() < 0.1:
        spaces = [rng.choice([" ", "  ", "\t", "\u00a0", "\u3000"]) for _ in spaces]
    text = "".join(f + s for f, s in zip(fields, [*spaces, ""], strict=True))
    return text if rng.random() < 0.95 else f" {text}\t"


def queries(random_count: int = 4000, seed: int = 20250601) -> list[Query]:
    """The edge cases in three zones each and `random_count` random expressions in one."""
    rng = random.Random(seed)
    found: list[Query] = []

    def add(expression: str, zones: list[str]) -> None:
        for zone in zones:
            instant = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(
                seconds=rng.randrange(37 * 365 * 86400), milliseconds=rng.choice([0, 0, 250])
            )
            schedule_id = f"sch_{rng.getrandbits(48):012x}"
            found.append(Query(expression, zone, int(instant.timestamp() * 1000), schedule_id))

    for expression in EDGE_CASES:
        add(expression, rng.sample(ZONES, 3))
    for _ in range(random_count):
        add(_random_expression(rng), [rng.choice(ZONES)])
    return found


# --- the two sides --------------------------------------------------------------------------
def ask_cron_parser(batch: list[Query]) -> list[Answer]:
    """cron-parser's answers, in order, from one node process."""
    done = subprocess.run(
        ["node", str(ORACLE), str(INSTALL)],
        input="".join(query.as_json() + "\n" for query in batch),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the cron-parser oracle failed: {done.stderr.strip()[-2000:]}")
    answers = [Answer(**json.loads(line)) for line in done.stdout.splitlines()]
    assert len(answers) == len(batch), "the oracle answered a different number of queries"
    return answers


def ask_ours(query: Query) -> Answer:
    after = datetime.fromtimestamp(query.after_ms / 1000, UTC)
    try:
        fires = next_fire_times(query.expression, query.zone, after, FIRES, query.seed)
    except InvalidScheduleError as error:
        return Answer(ok=False, error=str(error))
    return Answer(ok=True, fires=[int(fire.timestamp() * 1000) for fire in fires])


# --- the comparison -------------------------------------------------------------------------
_JS_SPACE = "\t\n\x0b\x0c\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
# Summaries of this run's differential tests, printed at the end of pytest's output (conftest).
SUMMARIES: list[str] = []


def respelled(expression: str) -> str | None:
    """The expression as cron-parser wants it spelled, or None when that changes nothing."""
    text = re.sub(f"^[{_JS_SPACE}]+|[{_JS_SPACE}]+$", "", expression)
    if text.startswith("@"):
        text = "@daily" if text.lower() == "@midnight" else text.lower()
    else:
        fields = re.split(f"[{_JS_SPACE}]+", text)
        text = " ".join(re.sub(r"(?<![0-9])0+([0-7]L)", r"\1", f.upper()) for f in fields)
    return text if text != expression else None


def _near_change(zone: ZoneInfo, fire_ms: int) -> bool:
    at = datetime.fromtimestamp(fire_ms / 1000, UTC)
    return (at - NEAR_CHANGE).astimezone(zone).utcoffset() != (at + NEAR_CHANGE).astimezone(
        zone
    ).utcoffset()


def comparable(zone_name: str, ours: list[int], theirs: list[int]) -> tuple[list[int], list[int]]:
    """Both lists cut before the first fire (of either) within a day or so of a clock change."""
    zone = ZoneInfo(zone_name)
    near = [fire for fire in [*ours, *theirs] if _near_change(zone, fire)]
    cutoff = min(near, default=None)
    if cutoff is None:
        return ours, theirs
    return [f for f in ours if f < cutoff], [f for f in theirs if f < cutoff]


def _day_of_week_text(expression: str) -> str:
    fields = re.split(f"[{_JS_SPACE}]+", expression.strip(_JS_SPACE))
    return fields[-1] if fields else ""


def verdict(query: Query, ours: Answer, theirs: Answer, respelt: Answer | None) -> str:
    """ "same", a key of DELIBERATE, or "different"."""
    if ours.ok and theirs.ok:
        mine, yours = comparable(query.zone, ours.fires, theirs.fires)
        return "same" if mine == yours else "different"
    if not ours.ok and not theirs.ok:
        return "same"
    if ours.ok:
        if "duplicate values" in theirs.error or "too many values" in theirs.error:
            return "repeated values"
        incompatible = "special characters are incompatible" in theirs.error
        if incompatible and "," in _day_of_week_text(query.expression):
            return "n#k in a list"
        if respelt is None:
            return "different"
        if respelt.ok:
            mine, yours = comparable(query.zone, ours.fires, respelt.fires)
            return "spelling" if mine == yours else "different"
        # Spelled its way, cron-parser may still refuse it for another deliberate reason.
        again = verdict(query, ours, respelt, None)
        return again if again != "different" else "different"
    message = ours.error
    if message == "cron expression is empty":
        return "empty"
    if re.match(r"cron expression has [1-4] fields?;", message):
        return "fewer than 5 fields"
    if "is not a whole number" in message:
        return "fractional n#k"
    if "H stands alone" in message:
        return "H glued to text"
    return "different"
