"""A fast city consumer in its own process: appends `topic<TAB>seq<TAB>retain<TAB>payload-hex`
to OUT for every message. A file, not a pipe: a busy test process must never slow the consumer,
or the broker holds a backlog for it that a kill -9 destroys.

usage: python city_consumer.py HOST PORT CLIENT_ID FILTER OUT
"""

import sys

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def main():
    host, port, client_id, topic_filter, out_path = sys.argv[1:6]
    out = open(out_path, "a", buffering=1)  # noqa: SIM115 (open for the process's life)
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
    )

    def on_connect(client, userdata, flags, reason, properties):
        client.subscribe(topic_filter, qos=1)

    def on_subscribe(client, userdata, mid, reasons, properties):
        print("SUBSCRIBED", flush=True)

    def on_message(client, userdata, message):
        user = dict(getattr(message.properties, "UserProperty", None) or [])
        fields = (
            message.topic,
            user.get("seq", ""),
            str(int(message.retain)),
            message.payload.hex(),
        )
        out.write("\t".join(fields) + "\n")

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    client.reconnect_delay_set(0.05, 0.2)
    client.connect(host, int(port), keepalive=5, clean_start=False, properties=props)
    client.loop_forever(retry_first_connection=True)


if __name__ == "__main__":
    main()
