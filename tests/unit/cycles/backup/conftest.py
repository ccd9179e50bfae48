"""The backup cycle's settings: as before KEEP_LAST_SNAPSHOT (settings), and the defaults (keeping)."""

import pytest

from tests.unit.config.test_load import settings_with


@pytest.fixture
def settings(tmp_path):
    """The cycle as it was before KEEP_LAST_SNAPSHOT and local history: every snapshot of the run is
    destroyed."""
    return settings_with(tmp_path, f"LOCK_FILE={tmp_path}/lock\nSTATE_DIR={tmp_path}/state\nHUB_SERVICE=reverseproxy\n"
                                   "KEEP_LAST_SNAPSHOT=0\nSNAPSHOT_RETENTION=off\n")


@pytest.fixture
def keeping(tmp_path):
    """The last backed-up snapshot is kept, unchanged datasets are skipped (the defaults), and no
    local history besides (SNAPSHOT_RETENTION=off; test_history.py has the defaults)."""
    return settings_with(tmp_path, f"LOCK_FILE={tmp_path}/lock\nSTATE_DIR={tmp_path}/state\nHUB_SERVICE=reverseproxy\n"
                                   "SNAPSHOT_RETENTION=off\n")
