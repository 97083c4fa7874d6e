"""Silences: label matchers with a time window, as in Alertmanager.

A matcher is ``{"name", "value", "isRegex", "isEqual"}``; a silence matches an alert when every
matcher does. Regexes are anchored (full match), like Alertmanager's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

MAX_MATCHERS = 20
MAX_REGEX = 500


class SilenceLike(Protocol):
    id: str
    matchers: list[dict[str, Any]]
    starts_at: datetime
    ends_at: datetime


def normalise_matchers(raw: Any) -> list[dict[str, Any]]:
    """Validate API input into matchers; raises ValueError with a message for the client."""
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes) or not raw:
        raise ValueError("matchers must be a non-empty list")
    if len(raw) > MAX_MATCHERS:
        raise ValueError(f"at most {MAX_MATCHERS} matchers")
    out = []
    for item in raw:
        if not isinstance(item, Mapping):
            raise ValueError("each matcher is an object {name, value, isRegex, isEqual}")
        name, value = item.get("name"), item.get("value")
        if not isinstance(name, str) or not name or not isinstance(value, str):
            raise ValueError("each matcher needs a string name and a string value")
        is_regex, is_equal = item.get("isRegex", False), item.get("isEqual", True)
        if not isinstance(is_regex, bool) or not isinstance(is_equal, bool):
            raise ValueError("isRegex and isEqual are booleans")
        if is_regex:
            if len(value) > MAX_REGEX:
                raise ValueError(f"regex longer than {MAX_REGEX} characters")
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regex {value!r}: {exc}") from None
        out.append({"name": name, "value": value, "isRegex": is_regex, "isEqual": is_equal})
    if all(_matches_one(m, {}) for m in out):
        raise ValueError("matchers match every alert (even one without labels); be more specific")
    return out


def _matches_one(matcher: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    actual = labels.get(matcher["name"], "")
    if matcher.get("isRegex"):
        hit = re.fullmatch(matcher["value"], actual) is not None
    else:
        hit = actual == matcher["value"]
    return hit if matcher.get("isEqual", True) else not hit


def matches(matchers: Iterable[Mapping[str, Any]], labels: Mapping[str, str]) -> bool:
    return all(_matches_one(m, labels) for m in matchers)


def is_active(silence: SilenceLike, now: datetime) -> bool:
    return silence.starts_at <= now < silence.ends_at


def status(silence: SilenceLike, now: datetime) -> str:
    if now < silence.starts_at:
        return "pending"
    return "active" if now < silence.ends_at else "expired"


def silenced_by(silences: Iterable[SilenceLike], labels: Mapping[str, str], now: datetime) -> list[str]:
    return [s.id for s in silences if is_active(s, now) and matches(s.matchers, labels)]
