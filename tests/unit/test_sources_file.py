"""The sources file (TICKLAKE_SOURCES, docs/golden-copy.md): a valid file loads into the declared sources and the
arbitration policy; every fault is refused naming the file, the key and the rule; unset, iTick is the only source."""

from __future__ import annotations

import json
import re
import string
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticklake import settings
from ticklake.markets import MARKETS
from ticklake.settings import ConfigError
from ticklake.sources.declared import (
    FIELDS,
    Policy,
    RegionPolicy,
    Sources,
    SourcesFileError,
    SourceSpec,
    file_formats,
)

ROOT = Path(__file__).resolve().parents[2]
API = "itick-sim"  # the API source's name at run time (the file calls it itick)

# The contract's example (docs/golden-copy.md shows the same text).
EXAMPLE = """
[sources.itick]                 # the API source; its name in the lake is the resource's source name
kind = "api"
format = "itick"

[sources.quandl]                # a vendor file drop
kind = "file_drop"
format = "quandl_eod"           # a module of ticklake/sources/files/formats/
regions = ["US"]                # the regions its files cover; with more than one, files sit in <drop>/<REGION>/
drop = "s3://bucket/prefix/quandl"   # optional; default TICKLAKE_HOME/drop/quandl/
poll_seconds = 60               # optional; the sensor's minimum interval
[sources.quandl.symbols]        # optional vendor ticker -> symbol mapping (default: the ticker itself)
"BRK_B" = "BRK.B"

[arbitration]
priority = ["itick", "quandl"]  # default source priority, for every region and field
price_tolerance_bps = 5.0       # open/high/low/close agree within this many basis points of the priority value
volume_tolerance_pct = 1.0      # volume agrees within this percent
[arbitration.regions.US]        # optional per-region priority ...
priority = ["quandl", "itick"]
[arbitration.regions.US.fields] # ... and per-field priority inside a region
volume = ["itick", "quandl"]
"""

QUANDL = '[sources.quandl]\nkind = "file_drop"\nformat = "quandl_eod"\nregions = ["US"]\n'
ITICK = '[sources.itick]\nkind = "api"\nformat = "itick"\n'


@pytest.fixture(autouse=True)
def environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TICKLAKE_REGIONS", "US,HK")
    monkeypatch.setenv("TICKLAKE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TICKLAKE_SOURCES", raising=False)


def _load(tmp_path: Path, text: str, api_name: str = API) -> Sources:
    path = tmp_path / "sources.toml"
    path.write_text(text)
    return Sources.load(path, api_name=api_name)


def test_the_contracts_example_loads_into_the_declared_sources_and_policy(tmp_path):
    sources = _load(tmp_path, EXAMPLE)
    assert sources == Sources(
        api=SourceSpec(API, "api", "itick", ("US", "HK"), None, 0),
        vendors=(SourceSpec("quandl", "file_drop", "quandl_eod", ("US",), "s3://bucket/prefix/quandl", 60,
                            {"BRK_B": "BRK.B"}),),
        policy=Policy((API, "quandl"), 5.0, 1.0,
                      {"US": RegionPolicy(("quandl", API), {"volume": (API, "quandl")})}),
    )
    assert sources.names == (API, "quandl")
    assert sources.source("quandl").symbol("BRK_B") == "BRK.B"
    assert sources.source("quandl").symbol("AAPL") == "AAPL"
    policy = sources.policy
    assert policy.price_tolerance == pytest.approx(0.0005)
    assert policy.volume_tolerance == pytest.approx(0.01)
    assert [policy.tolerance(f) for f in FIELDS] == [0.0005] * 4 + [0.01]
    with pytest.raises(ValueError, match="unknown field 'adj_close'"):
        policy.tolerance("adj_close")


def test_unset_iticks_the_only_source(monkeypatch):
    assert settings.sources_file() is None
    sources = Sources.from_env(api_name="itick")
    assert sources == Sources(SourceSpec("itick", "api", "itick", ("US", "HK"), None, 0), (), Policy(("itick",)))
    assert sources.policy.order("US", "close") == ("itick",)
    assert Sources.load(None, api_name=API).names == (API,)


def test_defaults_the_api_entry_may_be_omitted_and_drops_default_under_the_home(tmp_path):
    text = QUANDL + '[sources.tiingo]\nkind = "file_drop"\nformat = "quandl_eod"\nregions = ["HK", "US"]\n'
    sources = _load(tmp_path, text, api_name="itick")
    home = tmp_path / "home"
    assert sources.vendors == (
        SourceSpec("quandl", "file_drop", "quandl_eod", ("US",), str(home / "drop" / "quandl"), 60),
        SourceSpec("tiingo", "file_drop", "quandl_eod", ("HK", "US"), str(home / "drop" / "tiingo"), 60),
    )
    # No [arbitration]: every source ranked in the order declared, the API first; the default tolerances.
    assert sources.policy == Policy(("itick", "quandl", "tiingo"), 5.0, 1.0, {})


def test_a_partial_default_priority_ranks_the_sources_it_leaves_out_after_it(tmp_path):
    sources = _load(tmp_path, ITICK + QUANDL + '[arbitration]\npriority = ["quandl"]\nprice_tolerance_bps = 2\n')
    assert sources.policy.priority == ("quandl", API)
    assert sources.policy.price_tolerance_bps == 2.0
    assert isinstance(sources.policy.price_tolerance_bps, float)


def test_order_falls_back_from_the_field_to_the_region_to_the_default():
    a, b, c = "itick", "quandl", "tiingo"
    policy = Policy((a, b, c), regions={
        "US": RegionPolicy((b, a, c), {"volume": (c, a, b), "close": (a,)}),
        "HK": RegionPolicy(fields={"open": (c, b, a)}),
        "JP": RegionPolicy((c,)),
    })
    assert policy.order("US", "volume") == (c, a, b)  # the field's own
    assert policy.order("US", "close") == (a, b, c)  # the field's, then the region's for the rest
    assert policy.order("US", "high") == (b, a, c)  # the region's
    assert policy.order("HK", "open") == (c, b, a)
    assert policy.order("HK", "low") == (a, b, c)  # a region without its own priority: the default
    assert policy.order("JP", "low") == (c, a, b)  # the region's, then the default for the rest
    assert policy.order("SG", "close") == (a, b, c)  # no region policy
    with pytest.raises(ValueError, match="unknown field"):
        policy.order("US", "turnover")


def test_the_known_file_formats_include_quandl_eod():
    assert "quandl_eod" in file_formats()


# (case, file text, key named, rule named)
REFUSALS = [
    ("syntax", QUANDL + "poll_seconds = \n", None, "is not valid TOML"),
    ("unknown-top-key", "[source.quandl]\nkind = 'file_drop'\n", "source", "unknown key"),
    ("unknown-source-key", QUANDL + "pol_seconds = 60\n", "sources.quandl.pol_seconds", "unknown key"),
    ("unknown-api-key", ITICK + 'regions = ["US"]\n', "sources.itick.regions", "unknown key for an api source"),
    ("unknown-arbitration-key", "[arbitration]\nprice_tolerance = 5\n", "arbitration.price_tolerance",
     "unknown key"),
    ("unknown-region-key", '[arbitration.regions.US]\npriorty = ["itick"]\n', "arbitration.regions.US.priorty",
     "unknown key"),
    ("sources-not-a-table", "sources = 3\n", "sources", "must be a table"),
    ("source-not-a-table", "[sources]\nquandl = 3\n", "sources.quandl", "must be a table"),
    ("missing-kind", '[sources.quandl]\nformat = "quandl_eod"\nregions = ["US"]\n', "sources.quandl.kind",
     "missing"),
    ("missing-format", '[sources.quandl]\nkind = "file_drop"\nregions = ["US"]\n', "sources.quandl.format",
     "missing"),
    ("bad-kind", QUANDL.replace('"file_drop"', '"ftp"'), "sources.quandl.kind", "is not a kind"),
    ("two-api-sources", ITICK + ITICK.replace("itick]", "polygon]"), "sources.polygon",
     "more than one api source"),
    ("unknown-file-format", QUANDL.replace('"quandl_eod"', '"csv"'), "sources.quandl.format", "unknown format"),
    ("unknown-api-format", ITICK.replace('"itick"\n', '"quandl_eod"\n'), "sources.itick.format",
     "unknown format"),
    ("name-uppercase", QUANDL.replace("quandl]", "Quandl]"), "sources.Quandl", "must match"),
    ("name-too-long", QUANDL.replace("quandl]", "q" * 33 + "]"), "sources." + "q" * 33, "must match"),
    ("name-with-a-dot", QUANDL.replace("[sources.quandl]", '[sources."q.eod"]'), 'sources."q.eod"', "must match"),
    ("file-drop-named-itick", QUANDL.replace("quandl]", "itick]"), "sources.itick", "is the API source's"),
    ("file-drop-named-as-the-api", QUANDL.replace("quandl]", "itick-sim]"), "sources.itick-sim",
     "is the API source's"),
    ("unknown-region", QUANDL.replace('["US"]', '["US", "XX"]'), "sources.quandl.regions", "unknown region"),
    ("lowercase-region", QUANDL.replace('["US"]', '["us"]'), "sources.quandl.regions", "unknown region"),
    ("empty-regions", QUANDL.replace('["US"]', "[]"), "sources.quandl.regions", "empty"),
    ("missing-regions", QUANDL.replace('regions = ["US"]\n', ""), "sources.quandl.regions", "missing"),
    ("regions-not-a-list", QUANDL.replace('["US"]', '"US"'), "sources.quandl.regions", "must be a list"),
    ("repeated-region", QUANDL.replace('["US"]', '["US", "US"]'), "sources.quandl.regions", "more than once"),
    ("relative-drop", QUANDL + 'drop = "drops/quandl"\n', "sources.quandl.drop", "absolute local path or s3://"),
    ("http-drop", QUANDL + 'drop = "https://example.org/x"\n', "sources.quandl.drop",
     "absolute local path or s3://"),
    ("bucketless-drop", QUANDL + 'drop = "s3:///prefix"\n', "sources.quandl.drop", "absolute local path or s3://"),
    ("drop-not-a-string", QUANDL + "drop = 3\n", "sources.quandl.drop", "absolute local path or s3://"),
    ("poll-too-short", QUANDL + "poll_seconds = 5\n", "sources.quandl.poll_seconds", ">= 10"),
    ("poll-a-string", QUANDL + 'poll_seconds = "60"\n', "sources.quandl.poll_seconds", ">= 10"),
    ("poll-a-float", QUANDL + "poll_seconds = 60.0\n", "sources.quandl.poll_seconds", "whole number"),
    ("bad-symbol", QUANDL + '[sources.quandl.symbols]\n"BRK_B" = "BRK B"\n', "sources.quandl.symbols.BRK_B",
     "is not a symbol"),
    ("symbol-not-a-string", QUANDL + '[sources.quandl.symbols]\n"X" = 1\n', "sources.quandl.symbols.X",
     "is not a symbol"),
    ("symbols-not-a-table", QUANDL + 'symbols = ["BRK.B"]\n', "sources.quandl.symbols", "must be a table"),
    ("priority-undeclared", QUANDL + '[arbitration]\npriority = ["itick", "bloomberg"]\n', "arbitration.priority",
     "names a source that is not declared: bloomberg"),
    ("priority-duplicate", QUANDL + '[arbitration]\npriority = ["itick", "quandl", "itick"]\n',
     "arbitration.priority", "more than once: itick-sim"),
    ("priority-duplicate-by-alias", '[arbitration]\npriority = ["itick", "itick-sim"]\n', "arbitration.priority",
     "more than once"),
    ("priority-empty", "[arbitration]\npriority = []\n", "arbitration.priority", "non-empty list"),
    ("priority-not-a-list", '[arbitration]\npriority = "itick"\n', "arbitration.priority", "non-empty list"),
    ("region-priority-undeclared", '[arbitration.regions.US]\npriority = ["quandl"]\n',
     "arbitration.regions.US.priority", "not declared"),
    ("field-priority-undeclared", QUANDL + '[arbitration.regions.US.fields]\nclose = ["reuters"]\n',
     "arbitration.regions.US.fields.close", "not declared"),
    ("field-priority-duplicate", QUANDL + '[arbitration.regions.US.fields]\nclose = ["quandl", "quandl"]\n',
     "arbitration.regions.US.fields.close", "more than once"),
    ("price-tolerance-negative", "[arbitration]\nprice_tolerance_bps = -1\n", "arbitration.price_tolerance_bps",
     "must be a number >= 0"),
    ("price-tolerance-nan", "[arbitration]\nprice_tolerance_bps = nan\n", "arbitration.price_tolerance_bps",
     "must be a number >= 0"),
    ("price-tolerance-inf", "[arbitration]\nprice_tolerance_bps = inf\n", "arbitration.price_tolerance_bps",
     "must be a number >= 0"),
    ("volume-tolerance-string", '[arbitration]\nvolume_tolerance_pct = "1%"\n', "arbitration.volume_tolerance_pct",
     "must be a number >= 0"),
    ("volume-tolerance-bool", "[arbitration]\nvolume_tolerance_pct = true\n", "arbitration.volume_tolerance_pct",
     "must be a number >= 0"),
    ("unknown-field", QUANDL + '[arbitration.regions.US.fields]\nadj_close = ["quandl"]\n',
     "arbitration.regions.US.fields.adj_close", "not a field"),
    ("region-policy-uncovered", QUANDL + '[arbitration.regions.SG]\npriority = ["quandl"]\n',
     "arbitration.regions.SG", "no declared source covers"),
    ("region-policy-unknown-region", '[arbitration.regions.XX]\npriority = ["itick"]\n', "arbitration.regions.XX",
     "unknown region"),
    ("region-policy-not-a-table", "[arbitration.regions]\nUS = 1\n", "arbitration.regions.US", "must be a table"),
]


@pytest.mark.parametrize(("text", "key", "rule"), [c[1:] for c in REFUSALS], ids=[c[0] for c in REFUSALS])
def test_a_bad_file_is_refused_naming_the_file_the_key_and_the_rule(tmp_path, text, key, rule):
    with pytest.raises(SourcesFileError) as err:
        _load(tmp_path, text)
    message = str(err.value)
    assert isinstance(err.value, ValueError)
    assert str(tmp_path / "sources.toml") in message
    if key is not None:
        assert f": {key}: " in message, message
    assert rule in message, message


def test_a_syntax_error_names_its_line(tmp_path):
    with pytest.raises(SourcesFileError, match=r"is not valid TOML: .*line 5"):
        _load(tmp_path, QUANDL + "poll_seconds = \n")


def test_a_file_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "sources.toml"
    path.write_bytes(b"[sources.\xff]\n")
    with pytest.raises(SourcesFileError, match="not UTF-8"):
        Sources.load(path, api_name=API)


def test_the_variable_names_an_existing_file(monkeypatch, tmp_path):
    path = tmp_path / "sources.toml"
    path.write_text(EXAMPLE)
    monkeypatch.setenv("TICKLAKE_SOURCES", str(path))
    assert settings.sources_file() == path.resolve()
    assert Sources.from_env(api_name="itick").names == ("itick", "quandl")
    for bad in (str(tmp_path / "missing.toml"), str(tmp_path)):
        monkeypatch.setenv("TICKLAKE_SOURCES", bad)
        with pytest.raises(ConfigError, match=f"TICKLAKE_SOURCES={re.escape(repr(bad))} is invalid: must be the "
                                              "path of an existing file"):
            settings.sources_file()


def test_the_docs_show_the_contracts_example():
    page = (ROOT / "docs" / "golden-copy.md").read_text()
    assert "\n## The sources file\n" in page
    assert EXAMPLE.strip() in page


# -- round trip: any well-formed file written from generated objects loads back into the same objects

_NAMES = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,31}", fullmatch=True).filter(lambda n: n not in ("itick", API))
_REGIONS = sorted(MARKETS)
_TICKERS = st.text(string.ascii_letters + string.digits + "_. -/", min_size=1, max_size=12)
_SYMBOLS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}", fullmatch=True)
_TOLERANCES = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False) | st.integers(0, 1000)


def _toml(value) -> str:
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string of ASCII is a TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


@st.composite
def _declarations(draw):
    names = draw(st.lists(_NAMES, max_size=4, unique=True))
    vendors = []
    for name in names:
        regions = tuple(draw(st.lists(st.sampled_from(_REGIONS), min_size=1, max_size=3, unique=True)))
        drop = draw(st.none() | st.sampled_from([f"/srv/drop/{name}", f"s3://bucket/vendors/{name}", "s3://b"]))
        poll = draw(st.none() | st.integers(10, 86_400))
        symbols = draw(st.dictionaries(_TICKERS, _SYMBOLS, max_size=3))
        vendors.append((name, regions, drop, poll, symbols))
    everyone = ["itick", *names]

    def ranking(min_size=1):
        return st.lists(st.sampled_from(everyone), min_size=min_size, unique=True)

    priority = draw(st.none() | ranking())
    price = draw(st.none() | _TOLERANCES)
    volume = draw(st.none() | _TOLERANCES)
    covered = sorted({"US", "HK"} | {r for _, regions, *_ in vendors for r in regions})
    regions = draw(st.dictionaries(st.sampled_from(covered), st.tuples(
        st.none() | ranking(), st.dictionaries(st.sampled_from(FIELDS), ranking(), max_size=3)), max_size=3))
    with_api_entry = draw(st.booleans())
    return vendors, priority, price, volume, regions, with_api_entry


def _write(declarations) -> str:
    vendors, priority, price, volume, regions, with_api_entry = declarations
    lines = [ITICK] if with_api_entry else []
    for name, covers, drop, poll, symbols in vendors:
        lines += [f"[sources.{name}]", 'kind = "file_drop"', 'format = "quandl_eod"', f"regions = {_toml(covers)}"]
        lines += [f"drop = {_toml(drop)}"] if drop is not None else []
        lines += [f"poll_seconds = {poll}"] if poll is not None else []
        lines += [f"[sources.{name}.symbols]", *(f"{_key(t)} = {_toml(s)}" for t, s in symbols.items())]
    lines.append("[arbitration]")
    lines += [f"priority = {_toml(priority)}"] if priority is not None else []
    lines += [f"price_tolerance_bps = {_toml(price)}"] if price is not None else []
    lines += [f"volume_tolerance_pct = {_toml(volume)}"] if volume is not None else []
    for region, (region_priority, fields) in regions.items():
        lines.append(f"[arbitration.regions.{region}]")
        lines += [f"priority = {_toml(region_priority)}"] if region_priority is not None else []
        lines += [f"fields.{f} = {_toml(names)}" for f, names in fields.items()]
    return "\n".join(lines) + "\n"


def _expected(declarations) -> Sources:
    vendors, priority, price, volume, regions, _ = declarations
    home = settings.home()
    specs = tuple(SourceSpec(name, "file_drop", "quandl_eod", covers,
                             drop if drop is not None else str(home / "drop" / name),
                             poll if poll is not None else 60, symbols)
                  for name, covers, drop, poll, symbols in vendors)

    def run_names(names) -> tuple[str, ...]:
        return tuple(API if n == "itick" else n for n in names or ())

    everyone = (API, *(s.name for s in specs))
    return Sources(
        SourceSpec(API, "api", "itick", ("US", "HK"), None, 0), specs,
        Policy(tuple(dict.fromkeys((*run_names(priority), *everyone))),
               5.0 if price is None else float(price), 1.0 if volume is None else float(volume),
               {region: RegionPolicy(run_names(p), {f: run_names(n) for f, n in fields.items()})
                for region, (p, fields) in regions.items()}))


@given(_declarations())
def test_any_well_formed_file_loads_back_into_the_objects_it_was_written_from(declarations):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sources.toml"
        path.write_text(_write(declarations))
        loaded = Sources.load(path, api_name=API)
    expected = _expected(declarations)
    assert loaded == expected
    for region in _REGIONS:
        for f in FIELDS:
            assert sorted(loaded.policy.order(region, f)) == sorted(expected.names)


def test_a_bad_sources_file_is_refused_when_the_definitions_load(tmp_path, monkeypatch):
    from definitions import build_definitions

    bad = tmp_path / "sources.toml"
    bad.write_text('[sources.quandl]\nkind = "file_drop"\nformat = "quandl_eod"\nregions = ["US"]\npoll_secs = 60\n')
    monkeypatch.setenv("TICKLAKE_SOURCES", str(bad))
    with pytest.raises(SourcesFileError, match=r"sources\.quandl\.poll_secs"):
        build_definitions()
    bad.write_text('[sources.quandl]\nkind = "file_drop"\nformat = "quandl_eod"\nregions = ["US"]\n')
    names = {s.name for s in build_definitions().sensors}
    assert "vendor_drop_quandl" in names  # a good file adds the vendor's sensor, its job and its raw asset
