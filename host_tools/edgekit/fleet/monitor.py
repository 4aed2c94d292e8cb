"""`edgekit monitor --via fleet DEVICE`: what the fleet service stored for a device on the
network, printed as `edgekit monitor` prints a port's records; with --follow, each new record
as the service stores it.

It reads the registry the service writes (registry/telemetry.py), polling it, rather than
subscribing to the device's up-topic. The registry is what was verified, de-duplicated and
acknowledged: a message the service drops (a replay, a forgery) never shows, a record sent
twice shows once, and nothing here needs broker credentials or could take a message from a
worker's shared subscription. Nothing here talks to the broker, so it cannot acknowledge
anything: the service does, after storing. The price is latency: up to one poll interval
after the service's commit (--interval, default 1 s).
"""
import json
import sys
import time

from edgekit.errors import EdgekitError
from edgekit.operate import render
from edgekit.registry import telemetry as store


class StoredFeed:
    """New rows of one device since the last look, oldest first: (telemetry, events)."""

    def __init__(self, registry, device_id, since=None):
        if registry.get(device_id) is None:
            raise EdgekitError(f"no device {device_id!r} in {registry.path}: name a device of "
                               "the fleet (edgekit devices list), or its registry (--registry)")
        self.registry, self.device_id, self.since = registry, device_id, since
        self.last_pack = self.last_event = None

    def poll(self):
        records = store.telemetry(self.registry, self.device_id, since=self.since,
                                  after_seq=self.last_pack)
        events = store.device_events(self.registry, self.device_id, since=self.since,
                                     after_seq=self.last_event)
        if records:
            self.last_pack = records[-1]["journal_seq"]
        if events:
            self.last_event = events[-1]["journal_seq"]
        return records, events


def printer(device_id, as_json, out=None):
    """Print rows as monitor does: one line per record or event (render.record_line /
    event_line), or one JSON object per line with --json."""
    def show(records, events):
        stream = out or sys.stdout
        for row in records:
            print(json.dumps({"device": device_id, "record": row}, sort_keys=True)
                  if as_json else render.record_line(row), file=stream)
        for row in events:
            print(json.dumps({"device": device_id, "event": row}, sort_keys=True)
                  if as_json else render.event_line(row), file=stream)
        stream.flush()
    return show


def run(registry, device_id, show, since=None, follow=False, interval=1.0, duration=0.0,
        sleep=time.sleep):
    """Show what is stored; with `follow`, keep showing what the service stores until
    `duration` seconds pass (0: until interrupted). Returns the number of rows shown."""
    feed = StoredFeed(registry, device_id, since)
    end = time.monotonic() + duration if duration else None
    shown = 0
    while True:
        records, events = feed.poll()
        show(records, events)
        shown += len(records) + len(events)
        if not follow or (end is not None and time.monotonic() >= end):
            return shown
        sleep(interval)
