"""OTA updates (SPEC 9): bundles (build, sign, inspect), the transfer engine (push) and staged
fleet rollouts (campaign). Device side: firmware/ota/ota.py, otaslots.py, otaboot.py."""
