"""A throwaway fleet keystore for a test module: edgekit.hil.devices.HilFleet's, so unit and
HIL tests make test keys one way. `keys = keystore_fixture()` in a test module gives it a
module-scoped `keys` fixture (its own keystore: tests that rotate or count never share)."""
import pytest

from edgekit.hil.devices import TEST_PASSPHRASE, HilFleet

__all__ = ["TEST_PASSPHRASE", "HilFleet", "keystore_fixture"]


def keystore_fixture():
    @pytest.fixture(scope="module")
    def keys(tmp_path_factory):
        return HilFleet(tmp_path_factory.mktemp("fleet")).keystore
    return keys
