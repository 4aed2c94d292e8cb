"""`edgekit flash`: from a bare board to edgekit firmware in factory state, in one command.

image.py (what goes on the board: the OTA build plus the board image), device.py (the REPL
on the other end: probe and target checks), scripts.py (the code run on the device),
installer.py (survey, plan, verified transfer), heap.py (does it fit), runtime_image.py
(MicroPython itself: esptool, UF2), flow.py (one device, callable in-process), cli.py.
"""
