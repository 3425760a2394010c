"""Each page test starts with no background sweep running (one started by an earlier test's page would compute,
and count, the same functions a test is watching)."""

import pytest


@pytest.fixture(autouse=True)
def no_background_sweeps():
    from ui import cache

    cache.cancel_sweeps()
    yield
