"""SPEC 13.4 on the embedded broker (amqtt plugins): every client names itself (username), a
device's client id is its username, a device publishes only on ek/<its id>/up and subscribes
only to ek/<its id>/down; the service user reads every up-topic and writes every down-topic.

The embedded broker checks no password: it is for a demo, a test or a closed site network.
A deployment's broker (Mosquitto, docs/fleet.md) adds per-device passwords or TLS client
certificates to the same rules. Why a username at all: amqtt keeps no persistent session
(queued QoS 1 messages for a sleeping device) for an anonymous client.
"""
from dataclasses import dataclass

from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin

from edgekit.fleet import topics
from edgekit.fleet.topics import SERVICE_USER


def allowed(username, topic, action):
    """May `username` do `action` (publish/subscribe/receive) on `topic`?"""
    if not username or not topic:
        return False
    parts = topic.split("/")
    if username == SERVICE_USER:
        if parts[:2] == ["$share", parts[1] if len(parts) > 1 else ""] and len(parts) > 2:
            parts = parts[2:]       # a shared subscription of the service's workers
        if action == Action.PUBLISH:
            return len(parts) == 3 and parts[0] == topics.PREFIX and parts[2] == "down" \
                and "+" not in parts[1] and "#" not in parts[1]
        return parts in (["ek", "+", "up"],) or topics.device_of_up(topic) is not None
    if action == Action.PUBLISH:
        return topic == topics.up(username)
    return topic == topics.down(username)


class DeviceAuthPlugin(BaseAuthPlugin):
    async def authenticate(self, *, session=None):
        if session is None or not session.username:
            return False    # SPEC 13.4: every client names itself
        if session.username == SERVICE_USER:
            return True
        # A device's session is its id's: nobody takes over another device's queued commands.
        return session.client_id == session.username and \
            topics.device_of_up(topics.up(session.username)) is not None

    @dataclass
    class Config:
        pass


class DeviceTopicPlugin(BaseTopicPlugin):
    async def topic_filtering(self, *, session=None, topic=None, action=None):
        return allowed(session.username if session else None, topic, action)

    @dataclass
    class Config:
        pass
