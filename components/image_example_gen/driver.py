"""Driver of ImageExampleGen: a fingerprint of the input folder keys TFX's cache.

input_base alone does not change when files are added or edited; the fingerprint
(paths, sizes, mtimes, class folders; see listing.fingerprint) does.
"""

from typing import Any

from components.common.fingerprint_driver import FingerprintDriver
from components.image_example_gen import listing, spec


class Driver(FingerprintDriver):
    """Adds the input folder's fingerprint to the execution properties."""

    FINGERPRINT_KEY = spec.INPUT_FINGERPRINT_KEY

    @classmethod
    def fingerprint(cls, exec_properties: dict[str, Any]) -> str:
        """Raises ValueError if input_base does not exist (the message names the fix)."""
        return listing.fingerprint(exec_properties[spec.INPUT_BASE_KEY])
