"""`fundamentals_daily` from iTick's `/stock/info`: one call per symbol (the endpoint has no batch form).

Wire fields used: `mcb` market cap, `tso` shares outstanding, `pet` P/E (may be null), `fcc` currency, `n` name,
`e` exchange, `s` sector, `i` industry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from ticklake.dictionary.fundamentals import FUNDAMENTALS_DAILY
from ticklake.sources.itick.errors import ITickUnknownSymbolError
from ticklake.sources.queries import StockInfoQuery

if TYPE_CHECKING:
    from ticklake.sources.itick.source import ITickSource

# Raw answers by code; None where the source does not know the code (absence is not data: nothing is written).
StockInfoAnswers = dict[str, dict[str, Any] | None]




class StockInfoPayloadError(ValueError):
    """A /stock/info answer lacks a field ticklake needs, or holds one that is not a number."""


class FundamentalsDailyFetcher:
    dataset = FUNDAMENTALS_DAILY

    def __init__(self, source: ITickSource):
        self.source = source

    def extract(self, query: StockInfoQuery) -> StockInfoAnswers:
        answers: StockInfoAnswers = {}
        for code in query.codes:
            try:
                answers[code] = self.source.client.stock_info(query.region, code)
            except ITickUnknownSymbolError:
                answers[code] = None
        return answers

    def transform(self, query: StockInfoQuery, raw: StockInfoAnswers) -> pd.DataFrame:
        rows = [_row(query, code, info) for code, info in raw.items() if info]
        frame = pd.DataFrame(rows, columns=["region", "symbol", "as_of", "market_cap", "shares_outstanding", "pe",
                                            "currency", "name", "exchange", "sector", "industry"])
        frame["as_of"] = pd.to_datetime(frame["as_of"]).astype("datetime64[ms]")
        for column in ("market_cap", "shares_outstanding", "pe"):
            frame[column] = frame[column].astype("float64")
        for column in ("region", "symbol", "currency", "name", "exchange", "sector", "industry"):
            frame[column] = frame[column].astype("string")
        return frame


def _number(code: str, info: Mapping[str, Any], key: str, *, nullable: bool = False) -> float | None:
    value = info.get(key)
    if value is None:
        if nullable:
            return None
        raise StockInfoPayloadError(f"/stock/info {code}: no `{key}` in the answer")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise StockInfoPayloadError(f"/stock/info {code}: `{key}` is not a number: {value!r}") from None
    if not math.isfinite(number):
        raise StockInfoPayloadError(f"/stock/info {code}: `{key}` is not finite: {value!r}")
    return number


def _text(info: Mapping[str, Any], key: str) -> str | None:
    value = info.get(key)
    return str(value).strip() or None if value is not None else None


def _row(query: StockInfoQuery, code: str, info: Mapping[str, Any]) -> dict[str, Any]:
    currency = _text(info, "fcc")
    return {
        "region": query.region, "symbol": code, "as_of": query.as_of,
        "market_cap": _number(code, info, "mcb"), "shares_outstanding": _number(code, info, "tso"),
        "pe": _number(code, info, "pet", nullable=True), "currency": currency.upper() if currency else None,
        "name": _text(info, "n"), "exchange": _text(info, "e"), "sector": _text(info, "s"),
        "industry": _text(info, "i"),
    }
