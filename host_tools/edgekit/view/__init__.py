"""`edgekit view`: a local, read-only web page of the fleet (page.py draws it, server.py
serves it)."""
