"""OTA updates (SPEC 9): bundles (build, sign, inspect), the transfer engine (push) and staged
fleet rollouts (campaign). Device side: firmware/lib/ota.py, otaslots.py, otaboot.py."""
