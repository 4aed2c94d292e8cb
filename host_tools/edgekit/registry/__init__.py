"""The device registry (SQLite) and the public sensor register export."""
