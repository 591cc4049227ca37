"""The service's settings from environment variables: a bad value is refused with an error that
names the variable, the value and the rule."""

from __future__ import annotations

import pytest

from searchrank.core.errors import InputError
from searchrank.serving import settings


@pytest.mark.parametrize("value", ["0", "-3", "ten", "1.5", " 4"])
def test_a_bad_reconnect_count_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(settings.RECONNECT_ENV, value)
    with pytest.raises(InputError, match=f"{settings.RECONNECT_ENV}.*positive whole number"):
        settings.count(settings.RECONNECT_ENV, 32)


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan"])
def test_a_bad_timeout_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(settings.TIMEOUT_ENV, value)
    with pytest.raises(InputError, match=f"{settings.TIMEOUT_ENV}.*positive number of milli"):
        settings.seconds_from_ms(settings.TIMEOUT_ENV, 1000)


@pytest.mark.parametrize("value", ["yes", "true", "2"])
def test_a_bad_switch_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(settings.MODEL_SERVICE_ENV, value)
    with pytest.raises(InputError, match=f"{settings.MODEL_SERVICE_ENV}.*must be 0 or 1"):
        settings.flag(settings.MODEL_SERVICE_ENV)


def test_good_values_and_defaults_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.RECONNECT_ENV, "7")
    monkeypatch.setenv(settings.TIMEOUT_ENV, "250")
    monkeypatch.delenv(settings.MODEL_SERVICE_ENV, raising=False)
    assert settings.count(settings.RECONNECT_ENV, 32) == 7
    assert settings.seconds_from_ms(settings.TIMEOUT_ENV, 1000) == 0.25
    assert settings.flag(settings.MODEL_SERVICE_ENV) is False


@pytest.mark.parametrize("value", ["0", "-5", "often"])
def test_a_bad_refresh_period_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(settings.REFRESH_ENV, value)
    with pytest.raises(InputError, match=f"{settings.REFRESH_ENV}.*positive number of seconds"):
        settings.positive_number(settings.REFRESH_ENV, 300, "seconds")
