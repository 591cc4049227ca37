"""The service's settings from environment variables: a bad value is refused with an error that
names the variable, the value and the rule."""

from __future__ import annotations

import pytest

from searchrank.core.errors import InputError
from searchrank.serving import service


@pytest.mark.parametrize("value", ["0", "-3", "ten", "1.5", " 4"])
def test_a_bad_reconnect_count_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(service.RECONNECT_ENV, value)
    with pytest.raises(InputError, match=f"{service.RECONNECT_ENV}.*positive whole number"):
        service._count(service.RECONNECT_ENV, 32)


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan"])
def test_a_bad_timeout_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(service.TIMEOUT_ENV, value)
    with pytest.raises(InputError, match=f"{service.TIMEOUT_ENV}.*positive number of milli"):
        service._seconds(service.TIMEOUT_ENV, 1000)


@pytest.mark.parametrize("value", ["yes", "true", "2"])
def test_a_bad_switch_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(service.MODEL_SERVICE_ENV, value)
    with pytest.raises(InputError, match=f"{service.MODEL_SERVICE_ENV}.*must be 0 or 1"):
        service._flag(service.MODEL_SERVICE_ENV)


def test_good_values_and_defaults_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(service.RECONNECT_ENV, "7")
    monkeypatch.setenv(service.TIMEOUT_ENV, "250")
    monkeypatch.delenv(service.MODEL_SERVICE_ENV, raising=False)
    assert service._count(service.RECONNECT_ENV, 32) == 7
    assert service._seconds(service.TIMEOUT_ENV, 1000) == 0.25
    assert service._flag(service.MODEL_SERVICE_ENV) is False
