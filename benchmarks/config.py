"""Scales, plans and targets: every number the suite compares against lives here."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ticklake.sources.quota import PLAN_CALLS_PER_MINUTE

SEED = 20240101
UNLIMITED_PLAN = "1000000"  # calls per minute: "no quota", so the local cost is measured alone
CONFIGURED_PLAN = "base"  # the plan the pipeline ships with (ITickResource.plan default)
NIGHTLY_REGIONS = ("US", "HK", "SH", "JP")  # ticklake.markets.DEFAULT_REGIONS
BACKFILL_REGION = "US"
SESSIONS_PER_YEAR = 252


@dataclass(frozen=True)
class Scale:
    name: str
    backfill_symbols: int  # one region
    backfill_sessions: int  # contiguous sessions ending at the last completed one
    memory_symbols: int  # peak-RSS-versus-history figure: this many symbols ...
    memory_sessions: tuple[int, ...]  # ... at these history lengths (in-process transport, one run each)
    nightly_symbols: int  # per region (the simulator's SH universe holds at most 3,600 codes)
    baseline_symbols: int  # the seed-article baseline is capped to the first N symbols of the backfill universe
    query_warmup: int
    query_iterations: int
    # user path (scenario 5): `dagster asset materialize` and `dagster dev` on symbols x last sessions, US
    userpath_symbols: int = 60
    userpath_sessions: int = 120
    userpath_large: tuple[int, int] | None = None  # (symbols, sessions) of the extra CLI-only run, if any
    # the lakehouse (issue 16): analyst queries on symbols x sessions (US), lake vs native DuckDB ...
    lake_symbols: int = 100
    lake_sessions: int = 126
    # ... nightly commit cost on lakes of 4 regions x symbols x sessions (one lake per entry, smallest first) ...
    lake_nightly_sizes: tuple[tuple[int, int], ...] = ((25, 63), (25, 504))
    # ... and a symbol's history after N nights of one-session appends (symbols, history sessions, nights)
    lake_nights: tuple[int, int, int] = (50, 126, 10)
    lake_s3: bool = True  # also on S3 (moto) with a PostgreSQL catalog
    # the golden copy (issue 18): arbitration of symbols x these sessions from two sources, then 1 to 3 sources
    golden_symbols: int = 5000
    golden_sessions: tuple[int, ...] = (63, 126, 252)
    # tenant deliveries (issue 19): rows/s per format from a lake of symbols x sessions (one region)
    deliveries_symbols: int = 1000
    deliveries_sessions: int = 504
    # the read API (issue 19): `ticklake serve` on symbols x sessions (US), loaded at these rates, seconds each
    api_symbols: int = 1000
    api_sessions: int = 504
    api_rates: tuple[int, ...] = (10, 25, 50, 100, 250, 500, 750, 1000)
    api_duration_s: float = 8.0

    @property
    def backfill_years(self) -> float:
        return round(self.backfill_sessions / SESSIONS_PER_YEAR, 2)

    def as_dict(self) -> dict:
        return {**asdict(self), "backfill_years": self.backfill_years}


SCALES: dict[str, Scale] = {
    s.name: s
    for s in (
        # smoke test: every scenario in well under a minute
        Scale("tiny", 60, 252, 40, (126, 252), 20, 10, 3, 30, userpath_symbols=60, userpath_sessions=120,
              golden_symbols=30, golden_sessions=(10, 20), deliveries_symbols=30, deliveries_sessions=63,
              api_symbols=30, api_sessions=40, api_rates=(20, 50), api_duration_s=2.0),
        # the default: about two minutes on 2 cores with --runs 3; the user path at the user's figure
        Scale("small", 1000, 504, 200, (630, 1260, 1890, 2520), 500, 100, 20, 200,
              userpath_symbols=500, userpath_sessions=1000,
              lake_symbols=1000, lake_sessions=1260, lake_nightly_sizes=((1100, 230), (1100, 1000)),
              lake_nights=(1000, 252, 250)),
        # the scale: 5,000 symbols x 10 years; the user path adds 5,000 symbols x 20 years (CLI)
        Scale("large", 5000, 2520, 5000, (630, 1260, 1890, 2520), 3500, 500, 20, 200,
              userpath_symbols=500, userpath_sessions=1000, userpath_large=(5000, 20 * SESSIONS_PER_YEAR),
              lake_symbols=4400, lake_sessions=2520, lake_nightly_sizes=((1100, 230), (1100, 2500), (1100, 11400)),
              lake_nights=(4400, 2520, 250), deliveries_symbols=5000),
        # toward the whole universe (issue 16): the lakehouse queries only, on 5,000 symbols x 20 years
        Scale("xlarge", 5000, 2520, 5000, (2520,), 3500, 500, 20, 200, lake_symbols=5000,
              lake_sessions=20 * SESSIONS_PER_YEAR, lake_nightly_sizes=((1100, 230), (1100, 2500)),
              lake_nights=(1000, 252, 20), lake_s3=False),
    )
}

PLANS: dict[str, int] = dict(PLAN_CALLS_PER_MINUTE)  # free, base, pro, premium -> calls per minute

# Targets from issue #3 (2 cores).
TARGET_CALL_RATIO = 1.02  # API calls / theoretical minimum
TARGET_BARS_PER_S = 500_000  # in-process, end to end, large backfill
TARGET_MEMORY_GROWTH = 1.10  # peak RSS at the longest history / the next-longest (bounded: no growth with years)
TARGET_SPEEDUP = 50.0  # versus the seed-article baseline on the same work
TARGET_429 = 0
# The user path (scenario 5): what a user runs, against the seed article's script on the same work.
TARGET_USERPATH_CLI_RATIO = 1.5  # `dagster asset materialize` wall / the seed article's wall, same symbols x sessions
TARGET_USERPATH_LARGE_S = 180.0  # 5,000 symbols x 20 years through the CLI, spawn to exit
TARGET_NIGHTLY_LAUNCH_S = 10.0  # the nightly's Materialize under `dagster dev`: launch -> SUCCESS

# Targets from issue 16 (the lakehouse).
TARGET_LAKE_QUERY_P99_MS = 50.0  # one symbol's history and one date's cross-section (aim: 25)
TARGET_LAKE_QUERY_AIM_MS = 25.0
TARGET_FRESH_ATTACH_MS = 200.0  # a fresh process's ticklake.connect() + first query
TARGET_NIGHTLY_GROWTH = 1.2  # nightly commit on the largest lake / on the smallest
TARGET_LAKE_BYTES = 1.1  # lake data + catalog / one zstd Parquet copy of the same rows
TARGET_NIGHTS_SLOWDOWN = 1.0  # symbol p99 after N nights / after 1 night ("no slower"; reported with noise)
