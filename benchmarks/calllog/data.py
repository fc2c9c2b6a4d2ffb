"""A deterministic, realistic call log: the same seed gives the same rows on every engine.

Shape (for N calls):
- 5 tenants, one large (~80% of the calls), the rest 8/6/4/2%;
- 20 agent profiles (12 in the large tenant, 2 in each other one), skewed use, ~3% of calls without one;
- 2 directions (65% inbound), 5 statuses (98.5% ended), 11 end reasons weighted by direction;
- ~10,000 customer numbers (mild Zipf: a few frequent callers, most call a handful of times) plus each
  tenant's own lines (inbound calls go *to* a line, outbound calls come *from* one);
- created_at over 90 days ending 2026-11-25T00:00Z, weighted to business hours, ids time-ordered like
  `phoneagent.db.base.new_id`;
- 2-6 transcript turns per call (agent greeting first, then alternating) built from phone phrases:
  names, dates, times, addresses, order/reference numbers, spoken digits; a handful of rare phrases
  (e.g. "burst pipe") appear in ~40 calls each per million.
"""

from __future__ import annotations

import bisect
import itertools
import random
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

END = datetime(2026, 11, 25, tzinfo=UTC)
DAYS = 90
START = END - timedelta(days=DAYS)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

TENANT_WEIGHTS = [80, 8, 6, 4, 2]
TENANT_NAMES = ["acme-dental", "brightside-plumbing", "citylight-clinic", "dune-motors", "evergreen-law"]
AGENT_WEIGHTS_LARGE = [30, 20, 12, 10, 8, 6, 4, 3, 3, 2, 1, 1]
AGENT_WEIGHTS_SMALL = [70, 30]
NO_AGENT_SHARE = 0.03
N_CUSTOMERS = 10_000
CUSTOMER_ZIPF = 0.3

DIRECTIONS = ["inbound", "outbound"]
DIRECTION_WEIGHTS = [65, 35]
STATUSES = ["ended", "in_progress", "ringing", "dialing", "queued"]
STATUS_WEIGHTS = [985, 6, 3, 3, 3]
END_REASONS = [
    "customer_hangup",
    "agent_hangup",
    "no_answer",
    "busy",
    "rejected",
    "failed",
    "voicemail",
    "transferred",
    "max_duration",
    "silence_timeout",
    "worker_lost",
]
END_REASON_WEIGHTS = {
    "inbound": [50, 25, 0, 0, 1, 2, 0, 12, 1, 7, 2],
    "outbound": [25, 20, 20, 8, 4, 3, 12, 3, 1, 3, 1],
}
NOT_ANSWERED = {"no_answer", "busy", "rejected", "failed"}
SIP_CODES = {"no_answer": 480, "busy": 486, "rejected": 603, "failed": 503}
DISCONNECT = {
    "customer_hangup": "CLIENT_INITIATED",
    "agent_hangup": "SERVER_SHUTDOWN",
    "transferred": "SIP_TRUNK_FAILURE",
    "worker_lost": "ROOM_DELETED",
}
HOUR_WEIGHTS = [1, 1, 1, 1, 1, 2, 4, 8, 14, 18, 18, 17, 14, 16, 17, 16, 14, 10, 7, 5, 4, 3, 2, 1]

FIRST = [
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Daniel",
    "Nancy",
    "Matthew",
    "Lisa",
    "Anthony",
    "Betty",
    "Mark",
    "Sandra",
    "Paul",
    "Ashley",
    "Steven",
    "Emily",
    "Andrew",
    "Donna",
    "Kevin",
    "Michelle",
    "Brian",
    "Carol",
    "George",
    "Amanda",
    "Priya",
    "Mohammed",
    "Wei",
    "Sofia",
    "Lucas",
    "Aisha",
    "Mateo",
    "Yuki",
    "Olga",
    "Kwame",
    "Fatima",
    "Diego",
    "Ingrid",
    "Rahul",
    "Chloe",
    "Omar",
    "Hannah",
    "Leon",
    "Mia",
    "Noah",
]
LAST = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Patel",
    "Kim",
    "Schmidt",
    "Rossi",
    "Dubois",
    "Kowalski",
]
STREETS = [
    "Main",
    "Oak",
    "Pine",
    "Maple",
    "Cedar",
    "Elm",
    "Washington",
    "Lake",
    "Hill",
    "Park",
    "Sunset",
    "Lincoln",
    "Jackson",
    "River",
    "Church",
    "Spring",
    "Highland",
    "Franklin",
    "Madison",
    "Ridge",
    "Valley",
    "Meadow",
    "Forest",
    "Chestnut",
    "Walnut",
    "Willow",
    "Harbor",
    "Bay",
    "Mill",
    "Union",
]
STREET_TYPES = ["Street", "Avenue", "Road", "Boulevard", "Lane", "Drive", "Court", "Place"]
CITIES = [
    "Springfield",
    "Riverside",
    "Fairview",
    "Franklin",
    "Greenville",
    "Bristol",
    "Clinton",
    "Salem",
    "Madison",
    "Georgetown",
    "Arlington",
    "Ashland",
    "Dover",
    "Oxford",
    "Burlington",
    "Manchester",
    "Milton",
    "Newport",
    "Auburn",
    "Dayton",
]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
ORDINALS = [
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
    "fifteenth",
    "twentieth",
    "twenty-first",
    "twenty-second",
    "thirtieth",
]
DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TIMES = [
    "nine am",
    "nine thirty",
    "ten o'clock",
    "ten fifteen",
    "eleven am",
    "noon",
    "one pm",
    "two thirty",
    "three pm",
    "three forty-five",
    "four o'clock",
    "five pm",
]
SERVICES = [
    "cleaning",
    "check-up",
    "consultation",
    "repair",
    "inspection",
    "estimate",
    "follow-up visit",
    "installation",
    "oil change",
    "filling",
    "x-ray",
    "second opinion",
]

GREETINGS = [
    "Thank you for calling {biz}, this is {agent}. How can I help you today?",
    "Hello, you've reached {biz}. My name is {agent}, what can I do for you?",
    "Good {daypart}, {biz}, {agent} speaking. How may I help?",
]
CALLER = [
    "Hi, my name is {first} {last}.",
    "I'd like to book an appointment for {weekday} the {ordinal} of {month}.",
    "Can I come in at {time} on {weekday}?",
    "My phone number is {spoken_number}.",
    "I live at {house} {street} {stype} in {city}.",
    "I need to reschedule my appointment on {month} {day}.",
    "I'm calling about order number {order}.",
    "What are your opening hours on {weekday}?",
    "Can you send someone to {house} {street} {stype}, {city}?",
    "Please cancel my booking for {weekday} at {time}.",
    "The reference you gave me is {ref}.",
    "Do you have anything available for a {service} next week?",
    "It's {first} {last}, date of birth {month} {day} {year}.",
    "My zip code is {zip}.",
    "I got a missed call from this number.",
    "Yes, that's correct, thank you.",
]
AGENT = [
    "Sure, could I have your full name please?",
    "Let me check the calendar for {weekday}.",
    "I have booked you for {weekday} the {ordinal} of {month} at {time}.",
    "Could you confirm your address please?",
    "Your reference number is {ref}.",
    "Is there anything else I can help you with?",
    "We are open from nine to five, Monday to Friday, and until noon on Saturday.",
    "I can see order {order}, it will be delivered on {weekday}.",
    "I've noted {house} {street} {stype}, {city}. Is that right?",
    "Could you spell your last name for me?",
    "I've cancelled the booking and sent a confirmation by text message.",
    "A {service} takes about forty minutes.",
    "Can I call you back on {spoken_number}?",
    "Thanks {first}, you're all set.",
]
# Two-word phrases whose words appear nowhere else in the vocabulary: the "rare phrase" searches.
RARE = [
    "burst pipe",
    "chimney sweep",
    "piano tuning",
    "passport renewal",
    "wedding cake",
    "wasp nest",
    "frozen gutter",
    "cracked windshield",
    "wisdom tooth",
    "flooded basement",
    "tow truck",
    "root canal",
    "parking ticket",
    "gas leak",
    "roof shingles",
    "septic tank",
    "hearing aid",
    "solar panels",
    "termite inspection",
    "jury duty",
]
RARE_PER_MILLION = 40  # calls carrying each rare phrase, per million calls
RARE_CALLER = [
    "I'm calling about a {rare}, is that something you handle?",
    "Hi, it's about the {rare} from last week.",
]
# Words that appear in a large share of transcripts: the "common word" searches (stemmed by both engines).
COMMON_Q = ["appointment", "address", "order", "reference", "booking", "calendar", "help", "number"]


@dataclass
class Tenant:
    id: str
    name: str
    lines: list[str]
    line_cum: list[float]
    agents: list[tuple[str, str]]  # (id, name)
    agent_cum: list[float]
    offset: int  # rotates the customer popularity ranking per tenant


@dataclass
class World:
    seed: int
    n: int
    tenants: list[Tenant]
    tenant_cum: list[float]
    customers: list[str]
    customer_cum: list[float]
    created_us: array[int] = field(repr=False)  # sorted created_at, µs since the epoch

    @property
    def large(self) -> Tenant:
        return self.tenants[0]


def _cum(weights: Sequence[float]) -> list[float]:
    return list(itertools.accumulate(weights))


def _hex_id(rnd: random.Random, prefix: str, ms: int) -> str:
    return f"{prefix}_{ms:012x}{rnd.getrandbits(64):016x}"


def _numbers(rnd: random.Random, k: int) -> list[str]:
    seen: set[str] = set()
    areas = [212, 213, 305, 312, 415, 503, 512, 617, 646, 702, 713, 718, 773, 808, 917]
    while len(seen) < k:
        r = rnd.random()
        if r < 0.85:
            num = f"+1{rnd.choice(areas)}{rnd.randrange(200, 1000)}{rnd.randrange(10000):04d}"
        elif r < 0.95:
            num = f"+44{rnd.choice([20, 161, 131])}{rnd.randrange(10**7):07d}"
        else:
            num = f"+49{rnd.choice([30, 40, 89])}{rnd.randrange(10**7):07d}"
        seen.add(num)
    out = sorted(seen)
    rnd.shuffle(out)
    return out


def build_world(n: int, seed: int = 20261125) -> World:
    rnd = random.Random(seed)
    created_ms = int((START - EPOCH).total_seconds() * 1000)
    customers = _numbers(rnd, N_CUSTOMERS)
    own = _numbers(random.Random(seed + 1), 12)
    tenants = []
    line_counts = [3, 2, 2, 1, 1]
    agent_no = itertools.count()
    for t, name in enumerate(TENANT_NAMES):
        lines = [own.pop() for _ in range(line_counts[t])]
        line_w = [70, 20, 10][: len(lines)]
        weights = AGENT_WEIGHTS_LARGE if t == 0 else AGENT_WEIGHTS_SMALL
        agents = [(_hex_id(rnd, "agt", created_ms), f"agent-{next(agent_no):02d}") for _ in weights]
        tenants.append(
            Tenant(
                id=_hex_id(rnd, "ten", created_ms),
                name=name,
                lines=lines,
                line_cum=_cum(line_w),
                agents=agents,
                agent_cum=_cum(weights),
                offset=rnd.randrange(N_CUSTOMERS),
            )
        )
    # created_at: uniform day, business-hour weighted hour, uniform within the hour; sorted ascending
    start_us = int((START - EPOCH).total_seconds()) * 1_000_000
    hours = rnd.choices(range(24), weights=HOUR_WEIGHTS, k=n)
    created = array(
        "q",
        sorted(
            start_us + rnd.randrange(DAYS) * 86_400_000_000 + h * 3_600_000_000 + rnd.randrange(3_600_000_000)
            for h in hours
        ),
    )
    return World(
        seed=seed,
        n=n,
        tenants=tenants,
        tenant_cum=_cum(TENANT_WEIGHTS),
        customers=customers,
        customer_cum=_cum([1 / (k + 1) ** CUSTOMER_ZIPF for k in range(N_CUSTOMERS)]),
        created_us=created,
    )


def to_dt(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


# Column orders used by both seeders (PostgreSQL COPY takes tuples, SQLite Core executemany dicts).
# JSON columns (calls.metadata, call_events.payload) hold Python objects: Core serialises them on
# SQLite, the COPY seeder json-encodes them itself.
CALL_COLS = (
    "id",
    "tenant_id",
    "direction",
    "status",
    "end_reason",
    "from_number",
    "to_number",
    "agent_profile_id",
    "room_name",
    "sip_call_id",
    "sip_status_code",
    "sip_status_reason",
    "disconnect_reason",
    "created_at",
    "ringing_at",
    "answered_at",
    "ended_at",
    "duration_ms",
    "recording_egress_id",
    "recording_status",
    "recording_location",
    "recording_size_bytes",
    "cost_telephony_microusd",
    "cost_speech_microusd",
    "cost_llm_microusd",
    "metadata",
    "ring_timeout_s",
)
TURN_COLS = (
    "call_id",
    "seq",
    "speaker",
    "text",
    "started_at",
    "ended_at",
    "stt_ms",
    "brain_ms",
    "tts_ms",
    "total_ms",
    "interrupted",
)
EVENT_COLS = ("call_id", "source", "event_id", "type", "payload", "occurred_at", "received_at")
SEARCH_COLS = ("call_id", "tenant_id", "body")  # what index_transcript writes on PostgreSQL


# A row of calls, call_turns or call_events in CALL_COLS / TURN_COLS / EVENT_COLS order. Its values are
# mixed (str, int, bool, datetime, dict, None) and the SQLite seeder replaces datetimes and JSON values
# with their storage form in the same positions, so a row is typed as a tuple of Any.
Row = tuple[Any, ...]
# call_id, tenant_id, body (SEARCH_COLS), then created_at in µs (the SQLite search rowid is made from it)
SearchRow = tuple[str, str, str, int]


@dataclass
class Batch:
    calls: list[Row]
    turns: list[Row]
    events: list[Row]
    search: list[SearchRow]


class _Filler(dict[str, str]):
    """Phrase template values for one call, drawn lazily (only the ones a template uses)."""

    def __init__(self, rnd: random.Random, tenant: Tenant, agent_name: str, hour: int) -> None:
        super().__init__(
            biz=tenant.name.replace("-", " ").title(),
            agent=agent_name.replace("agent-", "Agent "),
            daypart="morning" if hour < 12 else ("afternoon" if hour < 18 else "evening"),
        )
        self.r = rnd.random

    def __missing__(self, key: str) -> str:
        r = self.r
        kind, arg = _SLOTS[key]
        v: str
        if kind == "pick":
            v = arg[int(r() * len(arg))]
        elif kind == "num":
            v = str(arg[0] + int(r() * (arg[1] - arg[0])))
        elif kind == "ref":
            v = f"{arg[int(r() * len(arg))]}{100000 + int(r() * 900000)}"
        else:  # spoken digits
            v = " ".join(DIGIT_WORDS[int(r() * 10)] for _ in range(10))
        self[key] = v
        return v


_SLOTS: dict[str, tuple[str, Any]] = {
    "first": ("pick", FIRST),
    "last": ("pick", LAST),
    "weekday": ("pick", WEEKDAYS),
    "ordinal": ("pick", ORDINALS),
    "month": ("pick", MONTHS),
    "day": ("num", (1, 29)),
    "year": ("num", (1940, 2008)),
    "time": ("pick", TIMES),
    "house": ("num", (1, 9999)),
    "street": ("pick", STREETS),
    "stype": ("pick", STREET_TYPES),
    "city": ("pick", CITIES),
    "order": ("num", (10**6, 10**7)),
    "ref": ("ref", "ABCDEFGHJKLMNPQRSTUVWXYZ"),
    "service": ("pick", SERVICES),
    "zip": ("num", (10**4, 10**5)),
    "spoken_number": ("digits", None),
}


_T = TypeVar("_T")


def _cum_pick(rand: Callable[[], float], seq: Sequence[_T], cum: list[float]) -> _T:
    return seq[bisect.bisect_right(cum, rand() * cum[-1])]


STATUS_CUM = _cum(STATUS_WEIGHTS)
END_REASON_CUM = {d: _cum(w) for d, w in END_REASON_WEIGHTS.items()}
EVENT_TYPES = ("room_started", "participant_joined", "participant_left", "room_finished")


def make_batch(world: World, b: int, batch_size: int, events_per_call: int) -> Batch:
    """Batch number `b` (calls [b*batch_size, (b+1)*batch_size) in created_at order), deterministically."""
    n = world.n
    rare_p = RARE_PER_MILLION * len(RARE) / 1_000_000
    rnd = random.Random(world.seed * 1_000_003 + b)
    rand = rnd.random
    lo = b * batch_size
    hi = min(n, lo + batch_size)
    calls: list[Row] = []
    turns: list[Row] = []
    events: list[Row] = []
    search: list[SearchRow] = []
    ms = timedelta(milliseconds=1)
    tenants = world.tenants
    for j in range(lo, hi):
        t = _cum_pick(rand, tenants, world.tenant_cum)
        us = world.created_us[j]
        created = to_dt(us)
        cid = _hex_id(rnd, "call", us // 1000)
        direction = "inbound" if rand() < 0.65 else "outbound"
        status = _cum_pick(rand, STATUSES, STATUS_CUM)
        end_reason = _cum_pick(rand, END_REASONS, END_REASON_CUM[direction]) if status == "ended" else None
        rank = bisect.bisect_right(world.customer_cum, rand() * world.customer_cum[-1])
        customer = world.customers[(rank + t.offset) % N_CUSTOMERS]
        line = _cum_pick(rand, t.lines, t.line_cum)
        from_n, to_n = (customer, line) if direction == "inbound" else (line, customer)
        if rand() < NO_AGENT_SHARE:
            agent_id, agent_name = None, "agent-none"
        else:
            agent_id, agent_name = _cum_pick(rand, t.agents, t.agent_cum)
        answered = status in ("in_progress", "ended") and end_reason not in NOT_ANSWERED
        ringing = created + (300 + int(rand() * 2200)) * ms
        answered_at = ringing + (1500 + int(rand() * 13500)) * ms if answered else None
        duration = int(rnd.lognormvariate(11.5, 0.8)) if answered and status == "ended" else None
        if duration is not None and answered_at is not None:
            ended_at: datetime | None = answered_at + duration * ms
        else:
            ended_at = ringing + 30_000 * ms if status == "ended" else None
        recorded = answered and rand() < 0.1
        calls.append(
            (
                cid,
                t.id,
                direction,
                status,
                end_reason,
                from_n,
                to_n,
                agent_id,
                f"call-{cid[5:]}",
                f"SCL_{rnd.getrandbits(48):012x}",
                (200 if answered else SIP_CODES.get(end_reason or "")),
                ("OK" if answered else None),
                DISCONNECT.get(end_reason or ""),
                created,
                ringing if status != "queued" else None,
                answered_at,
                ended_at,
                duration,
                f"EG_{rnd.getrandbits(48):012x}" if recorded else None,
                "ready" if recorded else None,
                f"s3://recordings/{t.name}/{cid}.ogg" if recorded else None,
                (duration or 0) * 2 if recorded else None,
                (duration or 0) * 7 // 1000,
                (duration or 0) * 4 // 1000,
                200 + int(rand() * 8800) if answered else 0,
                {"campaign": f"c{int(rand() * 20)}"} if direction == "outbound" else {},
                30,  # the model's default ring timeout (no draw: the data set stays the same)
            )
        )
        # transcript: greeting, then caller/agent alternating; 2-6 turns
        f = _Filler(rnd, t, agent_name, created.hour)
        nturns = 2 + int(rand() * 5)
        texts = [GREETINGS[int(rand() * len(GREETINGS))].format_map(f)]
        for s in range(1, nturns):
            pool = CALLER if s % 2 else AGENT
            texts.append(pool[int(rand() * len(pool))].format_map(f))
        if rand() < rare_p:
            f["rare"] = RARE[int(rand() * len(RARE))]
            texts[1] = RARE_CALLER[int(rand() * len(RARE_CALLER))].format_map(f)
        clock = answered_at or ringing
        for s, txt in enumerate(texts):
            st = clock + (s * 4000) * ms
            en = st + (250 * txt.count(" ") + 250) * ms
            if s % 2 == 0:
                stt, brain, tts = 80 + int(rand() * 320), 200 + int(rand() * 1000), 90 + int(rand() * 410)
                turns.append((cid, s, "agent", txt, st, en, stt, brain, tts, stt + brain + tts, False))
            else:
                turns.append((cid, s, "caller", txt, st, en, None, None, None, None, False))
        search.append((cid, t.id, "\n".join(texts), us))  # us: created_at in µs
        for e in range(events_per_call):
            at = created + (e * 5000) * ms
            events.append((cid, "livekit", f"EV_{cid[5:]}_{e}", EVENT_TYPES[e % 4], {}, at, at))
    return Batch(calls=calls, turns=turns, events=events, search=search)


def n_batches(world: World, batch_size: int) -> int:
    return (world.n + batch_size - 1) // batch_size
