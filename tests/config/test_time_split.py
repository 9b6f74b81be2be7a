import datetime

import pytest

from recbole_dien.config.time_split import boundaries, canonical, instant
from recbole_dien.utils.errors import ConfigError

SHANGHAI_MAY_13 = 1494604800  # 2017-05-13 00:00:00 +08:00 (the DSIN authors' cut, 1494633600, is 00:00 UTC)


def test_boundaries_are_wall_clock_times_in_the_time_zone():
    valid, test = boundaries({"time_zone": "Asia/Shanghai", "valid": "2017-05-12 20:00", "test": "2017-05-13"})
    assert test == SHANGHAI_MAY_13
    assert valid == SHANGHAI_MAY_13 - 4 * 3600
    # the same texts in UTC are eight hours later
    utc = boundaries({"time_zone": "UTC", "valid": "2017-05-12 20:00", "test": "2017-05-13"})
    assert utc == (valid + 8 * 3600, test + 8 * 3600)


def test_an_offset_in_the_text_wins_and_needs_no_time_zone():
    valid, test = boundaries({"valid": "2017-05-12T20:00:00+08:00", "test": "2017-05-12T20:00:00Z"})
    assert (valid, test) == (SHANGHAI_MAY_13 - 4 * 3600, SHANGHAI_MAY_13 + 4 * 3600)
    assert boundaries({"time_zone": "UTC", "valid": "2017-05-12T20:00:00+08:00", "test": "2017-05-13"})[0] == valid


def test_yaml_dates_and_datetimes_are_read_like_text():
    setting = {"time_zone": "Asia/Shanghai", "valid": datetime.datetime(2017, 5, 12, 20, 0),
               "test": datetime.date(2017, 5, 13)}
    assert boundaries(setting) == (SHANGHAI_MAY_13 - 4 * 3600, SHANGHAI_MAY_13)
    assert canonical(setting) == {"time_zone": "Asia/Shanghai", "valid": "2017-05-12 20:00:00", "test": "2017-05-13"}


@pytest.mark.parametrize("setting, words", [
    ({"valid": "2017-05-12", "test": "2017-05-13"}, "names no time zone"),
    ({"time_zone": "Mars/Olympus", "valid": "2017-05-12", "test": "2017-05-13"}, "not a time zone"),
    ({"time_zone": "UTC", "valid": "12/05/2017", "test": "2017-05-13"}, "not an ISO 8601 date"),
    ({"time_zone": "UTC", "valid": "2017-05-13", "test": "2017-05-12"}, "must come before"),
    ({"time_zone": "UTC", "test": "2017-05-12"}, "needs 'valid'"),
    ({"time_zone": "UTC", "valid": "2017-05-12", "test": "2017-05-13", "end": "x"}, "unknown key 'end'"),
    ("2017-05-13", "must be a mapping"),
])
def test_wrong_settings_are_one_line(setting, words):
    with pytest.raises(ConfigError, match=words) as error:
        boundaries(setting)
    assert "\n" not in str(error.value)


def test_one_instant_is_named_by_its_label():
    assert instant("2017-05-06", "Asia/Shanghai", "--since") == 1494000000
    with pytest.raises(ConfigError, match="^--since='yesterday' is not an ISO 8601"):
        instant("yesterday", "Asia/Shanghai", "--since")
