"""The ``time_split`` setting: training, validation and test rows by absolute time.

The DSIN paper trains on the first 7 days of the Taobao display-ad log and tests on the 8th.
RecBole splits by ratios or leave-one-out per user; ``time_split`` cuts the rows at instants::

    time_split:
      time_zone: Asia/Shanghai      # an IANA time zone: the boundaries are wall-clock times there
      valid: '2017-05-12 20:00'     # rows at or after this instant, and before ``test``, validate
      test: '2017-05-13'            # rows at or after this instant test; earlier ones train

A boundary is an ISO 8601 date (its midnight) or date and time (``2017-05-13 00:00``,
``2017-05-13T00:00:00``); one that carries its own UTC offset (``2017-05-13T00:00:00+08:00``) is
that instant whatever ``time_zone`` says, and one without an offset needs ``time_zone`` - a day
boundary means nothing without the zone whose midnight it is. Unquoted YAML dates and times
(which YAML reads as date objects) are taken the same way. The row times are unix seconds.

:func:`boundaries` turns the setting into unix seconds (one :class:`ConfigError` line for anything
wrong); :func:`canonical` writes it back with string boundaries, so that a checkpoint stores plain data.
"""
import datetime
import zoneinfo

from recbole_dien.utils.errors import ConfigError

KEYS = ("time_zone", "valid", "test")
EXAMPLE = "time_split: {time_zone: Asia/Shanghai, valid: '2017-05-12 20:00', test: '2017-05-13'}"


def _zone(name):
    if name is None:
        return None
    if not isinstance(name, str):
        raise ConfigError(f"time_split's time_zone={name!r} must be an IANA time zone name such as 'Asia/Shanghai'")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"time_split's time_zone={name!r} is not a time zone this system knows (IANA names such "
                          "as 'Asia/Shanghai', 'UTC', 'Europe/Berlin')") from None


def _instant(key, value, zone, label=None):
    """A boundary -> an aware datetime; ``label`` names it in messages (default: the setting's key)."""
    label = label or f"time_split's {key}"
    if isinstance(value, datetime.datetime):
        moment = value
    elif isinstance(value, datetime.date):
        moment = datetime.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            moment = datetime.datetime.fromisoformat(value.strip())
        except ValueError:
            raise ConfigError(f"{label}={value!r} is not an ISO 8601 date or date and time (e.g. "
                              f"'2017-05-13' or '2017-05-13 00:00')") from None
    else:
        raise ConfigError(f"{label}={value!r} must be a date or date and time written as text; {EXAMPLE}")
    if moment.tzinfo is None:
        if zone is None:
            raise ConfigError(f"{label}={value!r} names no time zone, so its day boundary is ambiguous: "
                              "add time_zone (e.g. time_zone: Asia/Shanghai) or a UTC offset (+08:00)")
        moment = moment.replace(tzinfo=zone)
    return moment


def instant(value, time_zone, label):
    """One date or date and time (as a boundary is written), wall-clock in ``time_zone`` unless it
    carries an offset -> unix seconds; ``label`` names it in the one-line error."""
    return _instant(None, value, _zone(time_zone), label).timestamp()


def boundaries(setting):
    """``(valid_start, test_start)`` in unix seconds from a ``time_split`` setting (module docstring)."""
    if not isinstance(setting, dict):
        raise ConfigError(f"time_split={setting!r} must be a mapping: {EXAMPLE}")
    unknown = sorted(set(setting) - set(KEYS))
    if unknown:
        raise ConfigError(f"time_split has an unknown key '{unknown[0]}' (it takes {', '.join(KEYS)}): {EXAMPLE}")
    missing = [key for key in ("valid", "test") if setting.get(key) is None]
    if missing:
        raise ConfigError(f"time_split needs '{missing[0]}' (where the {missing[0]} rows start): {EXAMPLE}")
    zone = _zone(setting.get("time_zone"))
    valid, test = (_instant(key, setting[key], zone) for key in ("valid", "test"))
    if not valid < test:
        raise ConfigError(f"time_split's valid ({valid.isoformat()}) must come before its test ({test.isoformat()}): "
                          "validation rows lie between the two")
    return valid.timestamp(), test.timestamp()


def canonical(setting):
    """The setting with every boundary written as ISO text (a checked setting; see :func:`boundaries`)."""
    def text(value):
        if isinstance(value, datetime.datetime):
            return value.isoformat(sep=" ")
        if isinstance(value, datetime.date):
            return value.isoformat()
        return value

    return {key: text(value) for key, value in setting.items()}


def describe(setting):
    """The boundaries in words, for the log: ``valid from 2017-05-12 20:00:00+08:00 (1494590400), ...``."""
    zone = _zone(setting.get("time_zone"))
    parts = []
    for key in ("valid", "test"):
        moment = _instant(key, setting[key], zone)
        parts.append(f"{key} from {moment.isoformat(sep=' ')} ({moment.timestamp():.0f})")
    return ", ".join(parts)
