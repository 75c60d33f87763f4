"""The uplink over TLS with a client certificate, and over MQTT 3.1.1."""

import asyncio
import datetime
import ipaddress
import json
import ssl

import aiomqtt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from harness import GatewayProcess, Subscriber, gateway_config, wait_until

from luciole.protocols import senml
from luciole.simulators.mosquitto import Mosquitto
from luciole.simulators.serial_device import SerialDevice


def issue(name, issuer=None, issuer_key=None, server=False):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if server:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, critical=False)
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    return cert, key


def write(path, cert, key):
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path.with_suffix(".crt"), path.with_suffix(".key")


async def test_tls_with_a_client_certificate(tmp_path):
    ca, ca_key = issue("luciole test CA")
    ca_file, _ = write(tmp_path / "ca", ca, ca_key)
    server_crt, server_key = write(tmp_path / "broker", *issue("broker", ca, ca_key, server=True))
    client_crt, client_key = write(tmp_path / "gateway", *issue("gw-test", ca, ca_key))
    tls = {"ca": ca_file, "cert": server_crt, "key": server_key}
    device = SerialDevice("ps-0001", tmp_path / "ttyLUC0")
    with Mosquitto(tmp_path / "broker", tls=tls) as broker:
        config = gateway_config(tmp_path, broker, [device.path])
        text = config.read_text().replace(
            "[broker]\n",
            f'[broker]\nca_file = "{ca_file}"\ncert_file = "{client_crt}"\n'
            f'key_file = "{client_key}"\n',
        )
        config.write_text(text)
        gw = GatewayProcess(config, tmp_path / "gw.log").start()
        context = ssl.create_default_context(cafile=str(ca_file))
        context.load_cert_chain(str(client_crt), str(client_key))
        try:
            async with aiomqtt.Client(broker.host, broker.port, tls_context=context) as city:
                await city.subscribe("luciole/v1/issy/devices/+/telemetry", qos=1)
                await asyncio.wait_for(device.send_readings(20), 30)
                seqs = []
                async with asyncio.timeout(20):
                    async for message in city.messages:
                        records = senml.resolve(senml.decode_cbor(message.payload), 0)
                        seqs.append(next(r["v"] for r in records if r["n"] == "ps-0001:seq"))
                        if len(set(seqs)) == 20:
                            break
            assert sorted(set(seqs)) == list(range(20))
            # without a client certificate the broker refuses the connection
            bare = ssl.create_default_context(cafile=str(ca_file))
            try:
                async with aiomqtt.Client(broker.host, broker.port, tls_context=bare, timeout=3):
                    raise AssertionError("the broker accepted a client without a certificate")
            except aiomqtt.MqttError:
                pass
        finally:
            gw.stop()
            device.unplug()


async def test_mqtt_3_1_1_broker_connection(tmp_path):
    device = SerialDevice("ps-0001", tmp_path / "ttyLUC0")
    with Mosquitto(tmp_path / "broker") as broker:
        config = gateway_config(tmp_path, broker, [device.path])
        config.write_text(
            config.read_text().replace("[broker]\n", '[broker]\nprotocol = "mqtt3.1.1"\n')
        )
        gw = GatewayProcess(config, tmp_path / "gw.log").start()
        try:
            async with Subscriber(broker, "luciole/v1/issy/#").running() as city:
                await asyncio.wait_for(device.send_readings(50), 30)
                telemetry = lambda: [m for m in city.messages if m.seq is not None]  # noqa: E731
                await wait_until(lambda: len({m.seq for m in telemetry()}) >= 50, 10, "readings")
                # 3.1.1 has no user properties: the seq travels in the payload alone
                assert all(m.user_seq is None for m in telemetry())
                status = [m for m in city.messages if m.topic.endswith("gateways/gw-test/status")]
                assert status and json.loads(status[-1].payload)["state"] == "online"
        finally:
            gw.stop()
            device.unplug()
