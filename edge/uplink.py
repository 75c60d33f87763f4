"""The connection to the city broker: one aiomqtt client, reconnected for ever.

While connected it drains the outbox in order with up to `inflight` QoS 1 publishes in flight,
forgetting each message only after its PUBACK, and keeps the retained states (gateway and device
status) published. While the broker is away the outbox fills and nothing else waits. After a
connect the drain reads the outbox from disk; once it has read it to its end, it takes what
commits next from the intake's memory, for as long as it keeps up.
"""

import asyncio
import contextlib
import json
import logging
import random
import ssl
from collections import deque

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties, VariableByteIntegers
from paho.mqtt.reasoncodes import ReasonCode

from .config import BrokerConfig
from .intake import Intake
from .metrics import Metrics
from .store import Message

log = logging.getLogger("luciole.uplink")

PEEK_BATCH = 512
REMOVE_BATCH = 256


class Uplink:
    def __init__(
        self, config: BrokerConfig, client_id: str, intake: Intake, metrics: Metrics, will_topic
    ):
        self.config = config
        self.client_id = client_id
        self.intake = intake
        self.metrics = metrics
        self.will_topic = will_topic
        self.mqtt5 = config.protocol == "mqtt5"
        self.connected = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._retained: dict[str, bytes] = {}  # topic -> latest payload, republished on connect
        self.on_connect = None  # async callback(client), e.g. to subscribe to commands
        self.on_message = None  # async callback(client, message)

    def _new_client(self) -> aiomqtt.Client:
        c = self.config
        will = aiomqtt.Will(self.will_topic, json.dumps({"state": "offline"}), qos=1, retain=True)
        tls = None
        if c.tls:
            tls = aiomqtt.TLSParameters(
                ca_certs=str(c.ca_file),
                certfile=str(c.cert_file) if c.cert_file else None,
                keyfile=str(c.key_file) if c.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        options = dict(
            hostname=c.host,
            port=c.port,
            identifier=self.client_id,
            username=c.username,
            password=c.password,
            will=will,
            tls_params=tls,
            keepalive=c.keepalive_s,
            timeout=10,
            max_inflight_messages=c.inflight,
        )
        if self.mqtt5:
            connect = Properties(PacketTypes.CONNECT)
            connect.SessionExpiryInterval = c.session_expiry_s
            client = aiomqtt.Client(
                **options,
                protocol=aiomqtt.ProtocolVersion.V5,
                clean_start=False,
                properties=connect,
            )
        else:
            client = aiomqtt.Client(
                **options, protocol=aiomqtt.ProtocolVersion.V311, clean_session=False
            )
        # a full window of publishes awaiting PUBACK is the normal state, not a warning
        client.pending_calls_threshold = c.inflight + 16
        return client

    async def run(self):
        attempt = 0
        while True:
            # a fresh client each time: nothing stale from the last connection is resent
            client = self._new_client()
            try:
                async with client:
                    attempt = 0
                    self._client = client
                    self.metrics.reconnects.inc()
                    self.metrics.broker_connected.set(1)
                    self.connected.set()
                    log.info("connected to %s:%d", self.config.host, self.config.port)
                    for topic, payload in list(self._retained.items()):
                        await client.publish(topic, payload, qos=1, retain=True)
                    async with asyncio.TaskGroup() as group:
                        group.create_task(self._listen(client))
                        group.create_task(self._drain(client))
            except* aiomqtt.MqttError as group:
                attempt += 1
                # full jitter: a city's gateways must not reconnect in step after a broker restart
                delay = random.uniform(
                    0, min(self.config.reconnect_max_s, self.config.reconnect_min_s * 2**attempt)
                )
                log.warning(
                    "broker %s:%d: %s; retrying in %.1f s",
                    self.config.host,
                    self.config.port,
                    group.exceptions[0],
                    delay,
                )
            finally:
                self._client = None
                self.connected.clear()
                self.metrics.broker_connected.set(0)
            await asyncio.sleep(delay)

    async def _listen(self, client: aiomqtt.Client):
        """Delivers incoming messages; ends with MqttError when the connection drops."""
        if self.on_connect is not None:
            await self.on_connect(client)
        async for message in client.messages:
            if self.on_message is not None:
                await self.on_message(client, message)

    async def retain(self, topic: str, payload: bytes) -> None:
        """Publishes a retained state now if connected, and again after every reconnect."""
        self._retained[topic] = payload
        client = self._client
        if client is not None:
            with contextlib.suppress(aiomqtt.MqttError):  # republished on reconnect
                await client.publish(topic, payload, qos=1, retain=True)

    async def reply(self, topic: str, payload: bytes, correlation: bytes | None) -> None:
        """Answers a command; lost if the broker is away (the requester times out)."""
        client = self._client
        if client is None:
            return
        props = None
        if self.mqtt5 and correlation is not None:
            props = Properties(PacketTypes.PUBLISH)
            props.CorrelationData = correlation
        with contextlib.suppress(aiomqtt.MqttError):
            await client.publish(topic, payload, qos=1, properties=props)

    def _properties(self, message: Message):
        if not self.mqtt5:
            return None
        return _PublishProperties(message.content_type, message.seq)

    async def _drain(self, client: aiomqtt.Client):
        """Publishes the outbox in order with up to `inflight` messages awaiting PUBACK.

        aiomqtt's publish() costs an asyncio task, event and timer per message, as much CPU as
        the rest of the gateway's work on a reading; the drain instead hands messages to the
        paho client aiomqtt wraps and counts PUBACKs in paho's own callback, passing on those
        that are not its own (retained states, command replies) to aiomqtt."""
        outbox, intake = self.intake.outbox, self.intake
        paho = client._client  # private, on purpose: see the docstring
        window = asyncio.Semaphore(self.config.inflight)
        in_flight: dict[int, int] = {}  # paho message id -> outbox id
        acked: list[int] = []
        refused: list[str] = []
        aiomqtt_on_publish = paho.on_publish

        def on_publish(paho_client, userdata, mid, reason_code, properties):
            message_id = in_flight.pop(mid, None)
            if message_id is None:
                aiomqtt_on_publish(paho_client, userdata, mid, reason_code, properties)
                return
            window.release()
            if reason_code.is_failure:  # the broker refused it: it stays in the outbox
                refused.append(str(reason_code))
            else:
                acked.append(message_id)

        async def forget_acked():
            if acked:
                ids = acked[:]
                del acked[:]
                await intake.run_db(outbox.remove, ids)
                self.metrics.published.inc(len(ids))
                self.metrics.queue_depth.set(outbox.depth)

        paho.on_publish = on_publish
        cursor = 0  # the last outbox id handed to paho
        # once the outbox was read to its end: what commits next, handed over in memory
        fresh: deque[Message] | None = None
        try:
            while True:
                if refused:
                    raise aiomqtt.MqttError(f"the broker refused a message: {refused[0]}")
                intake.committed.clear()
                if fresh is not None and fresh is intake.fresh:
                    batch = list(fresh)
                    fresh.clear()
                else:
                    following = intake.follow()
                    batch = await intake.run_db(outbox.peek, cursor, PEEK_BATCH)
                    fresh = following if len(batch) < PEEK_BATCH else None
                if not batch:
                    await forget_acked()
                    waiter = asyncio.create_task(intake.committed.wait())
                    await asyncio.wait({waiter}, timeout=0.5 if in_flight else None)
                    waiter.cancel()
                    continue
                for message in batch:
                    if message.id <= cursor:  # committed during the read, and read already
                        continue
                    await window.acquire()
                    info = paho.publish(
                        message.topic,
                        message.payload,
                        qos=message.qos,
                        properties=self._properties(message),
                    )
                    if info.rc != mqtt.MQTT_ERR_SUCCESS:
                        raise aiomqtt.MqttCodeError(info.rc, "could not publish")
                    in_flight[info.mid] = cursor = message.id
                    if len(acked) >= REMOVE_BATCH:
                        await forget_acked()
        finally:
            intake.unfollow()
            paho.on_publish = aiomqtt_on_publish
            # what was acknowledged is forgotten even when the connection dropped
            if acked:
                await intake.run_db(outbox.remove, acked[:])
                self.metrics.published.inc(len(acked))
            self.metrics.queue_depth.set(outbox.depth)


_PACKED_CONTENT_TYPES: dict[str, bytes] = {}


def _utf8(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


class _PublishProperties(Properties):
    """ContentType and UserProperty seq of one message, packed to the same bytes as paho's
    Properties: building and packing one of those costs ~35 us per message (each attribute is
    looked up by name in a table), this ~2 us. `luciole bench gateway` measures the uplink."""

    def __init__(self, content_type: str, seq: int):  # no super().__init__: its tables cost
        content = _PACKED_CONTENT_TYPES.get(content_type)
        if content is None:
            content = _PACKED_CONTENT_TYPES[content_type] = b"\x03" + _utf8(content_type)
        body = content + b"\x26\x00\x03seq" + _utf8(str(seq))
        object.__setattr__(self, "packetType", PacketTypes.PUBLISH)
        object.__setattr__(self, "_packed", VariableByteIntegers.encode(len(body)) + body)
        object.__setattr__(self, "_shown", f"[ContentType: {content_type}, seq: {seq}]")

    def pack(self) -> bytes:
        return self._packed

    def __str__(self) -> str:
        return self._shown


def _share_pubacks():
    """paho decodes every PUBACK into a new ReasonCode and Properties, ~20 us of CPU per message
    (a tenth of the gateway's). The broker's usual PUBACK, a success without properties, is just
    the 2-byte message id: those share one of each. For the whole process, whose one MQTT client
    is the uplink's."""
    try:
        from paho.mqtt import _packet
    except ImportError:  # paho 2.1 decodes packets inline, where this cannot reach
        return
    success, no_properties = ReasonCode(PacketTypes.PUBACK), Properties(PacketTypes.PUBACK)
    paho_decode_puback = _packet.decode_puback

    def decode_puback(header, packet, protocol):
        if len(packet) == 2:
            return _packet.PubackPacket(int.from_bytes(packet, "big"), success, no_properties)
        return paho_decode_puback(header, packet, protocol)

    _packet.decode_puback = decode_puback


_share_pubacks()
