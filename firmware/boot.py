# Placeholder boot.py (the firmware core replaces it): nothing to set up before main.py.
