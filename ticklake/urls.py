"""Connection URLs in messages: what may be shown of them. Standard library only, so anything may import it."""

from __future__ import annotations

from urllib.parse import SplitResult, parse_qs, parse_qsl, unquote, urlencode, urlsplit


def parsed_url(text: str, schemes: tuple[str, ...]) -> SplitResult | None:
    """`text` split, when it is a URL of one of `schemes` whose port, if any, is a number; else None."""
    try:
        url = urlsplit(text)
        url.port  # noqa: B018 - raises ValueError for a port that is not a number from 0 to 65535
    except ValueError:
        return None
    return url if url.scheme in schemes else None


def is_postgres_url(text: str) -> bool:
    """A libpq connection URI: postgresql:// or postgres://, and, if any, a numeric port."""
    return parsed_url(text, ("postgresql", "postgres")) is not None


def redact_url(text: str) -> str:
    """`text` fit for a message or a log: a password in the user part or in `?password=` becomes ***."""
    try:
        url = urlsplit(text)
        password = url.password
    except ValueError:
        return "(a URL that cannot be parsed, not shown)"
    pairs = parse_qsl(url.query, keep_blank_values=True)
    in_query = any(key == "password" for key, _ in pairs)
    if password is None and not in_query:
        return text
    netloc, query = url.netloc, url.query
    if password is not None:
        userinfo, host = netloc.rsplit("@", 1)
        netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
    if in_query:
        query = urlencode([(key, "***" if key == "password" else value) for key, value in pairs], safe="*/")
    # Not urlunsplit: it drops the empty host of postgresql:///db (a local socket).
    tail = (f"?{query}" if query else "") + (f"#{url.fragment}" if url.fragment else "")
    return f"{url.scheme}://{netloc}{url.path}{tail}"


def url_passwords(text: str) -> list[str]:
    """The passwords `text` holds (user:password@ or ?password=), as written and percent-decoded, to mask them
    wherever a driver's message may quote them."""
    try:
        url = urlsplit(text)
        found = [url.password or "", *parse_qs(url.query).get("password", [])]
    except ValueError:
        return []
    return [s for value in found if value for s in {value, unquote(value)}]
