"""Field checks shared by the deciders; each failure names the field."""

from __future__ import annotations

import math
import re
from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ValidationError

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@\-]{0,99}")
_CURRENCY_RE = re.compile(r"[A-Z]{3}")
#: Exactly YYYY-MM-DD: date.fromisoformat would also take ISO week dates ("2026-W49-1")
#: and other forms of ten characters that the documents do not promise.
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

MAX_TITLE = 200
MAX_DESCRIPTION = 4000
MAX_REASON = 2000
MAX_COMMENT = 4000
MAX_NAME = 200
MAX_EMAIL = 254  # RFC 5321's limit of a forward path
#: The languages of the pages and messages (BCP 47 tags); empty: the tenant's.
LANGUAGES = ("en", "zh-CN")
#: A plausible address: one @, no spaces, a dot in the domain (deliverability is the
#: mail server's to judge, not ours).
_EMAIL_RE = re.compile(r"[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+")


def identifier(field: str, value) -> str:
    """An id: 1–100 letters, digits and ``_ . : @ -``, starting with a letter or digit."""
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise ValidationError(field, f"must be an id of 1-100 letters, digits, '_', '.', ':', '@' or '-', not {value!r}")
    return value


def optional_identifier(field: str, value) -> str:
    return "" if value in ("", None) else identifier(field, value)


def text(field: str, value, *, max_length: int, required: bool = True) -> str:
    """Free text, stripped; required text must not be blank."""
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise ValidationError(field, f"must be text, not {type(value).__name__}")
    value = value.strip()
    if required and not value:
        raise ValidationError(field, "must not be empty")
    if len(value) > max_length:
        raise ValidationError(field, f"must be at most {max_length} characters (got {len(value)})")
    if any(ord(c) < 32 and c not in "\n\t" for c in value):
        raise ValidationError(field, "must not contain control characters")
    return value


def person(field: str, value) -> str:
    """A person (or service principal) id: non-blank text without spaces at the ends."""
    return text(field, value, max_length=MAX_NAME)


def reason(value, *, required: bool, why: str = "", field: str = "reason") -> str:
    """The reason the method demands for an adjustment, slip, drop or correction."""
    if required and (value is None or (isinstance(value, str) and not value.strip())):
        raise ValidationError(field, f"is required {why}".rstrip() if why else "is required")
    return text(field, value, max_length=MAX_REASON, required=required)


def iso_date(field: str, value) -> date:
    """A calendar date given as ``YYYY-MM-DD`` (only that form: no week or ordinal date)."""
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not _DATE_RE.fullmatch(value):
        raise ValidationError(field, f"must be a date YYYY-MM-DD, not {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationError(field, f"must be a date YYYY-MM-DD, not {value!r}") from None


def number(field: str, value) -> float:
    """A finite number (bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(field, f"must be a number, not {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValidationError(field, "must be a finite number")
    return value


def positive(field: str, value, *, maximum: float = 1000.0) -> float:
    value = number(field, value)
    if not 0 < value <= maximum:
        raise ValidationError(field, f"must be greater than 0 and at most {maximum:g}, not {value:g}")
    return value


def confidence(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
        raise ValidationError("confidence", f"must be a whole number from 0 to 10, not {value!r}")
    return value


def currency_code(value) -> str:
    if not isinstance(value, str) or not _CURRENCY_RE.fullmatch(value):
        raise ValidationError("currency_code", f"must be an ISO 4217 code such as EUR or USD, not {value!r}")
    return value


def choice(field: str, value, options) -> str:
    if value not in options:
        raise ValidationError(field, f"must be one of {', '.join(options)}, not {value!r}")
    return value


def email(field: str, value) -> str:
    """An e-mail address, trimmed and lower-cased, at most 254 characters; may be empty."""
    value = text(field, value, max_length=MAX_EMAIL, required=False).lower()
    if value and not _EMAIL_RE.fullmatch(value):
        raise ValidationError(field, f"must be an e-mail address such as ana@example.com, not {value!r}")
    return value


def time_zone(field: str, value) -> str:
    """An IANA time zone name (``Asia/Shanghai``) the system's zone database knows; may be
    empty (the tenant's zone)."""
    value = text(field, value, max_length=100, required=False)
    if not value:
        return ""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(field, f"must be an IANA time zone such as Europe/Berlin, not {value!r}") from None
    return value


def language(field: str, value) -> str:
    """One of LANGUAGES, or empty (the tenant's language)."""
    if value in ("", None):
        return ""
    return choice(field, value, LANGUAGES)
