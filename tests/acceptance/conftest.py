from __future__ import annotations

import pytest

pytestmark = pytest.mark.acceptance


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "acceptance" in str(item.path):
            item.add_marker(pytest.mark.acceptance)
