"""The trainer's tests: every test trains with one torch thread and a private cache folder."""
import pytest


@pytest.fixture(autouse=True)
def _private_cache(private_cache):
    """See tests/conftest.py: class images and caches under the test's temp folder, one thread."""
    yield private_cache
