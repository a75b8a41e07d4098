from __future__ import annotations

import pytest

from tests.helpers import make_settings


@pytest.fixture
def settings():  # type: ignore[no-untyped-def]
    return make_settings()
