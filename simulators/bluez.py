"""A BlueZ stand-in for gateway tests: python-dbusmock's `bluez5` template on a private D-Bus
system bus, so that bleak's own BlueZ backend (in the gateway process) runs unchanged.

The fake also models the air: an advert reaches the adapter only while someone scans on it (an
active discovery is running, or an advertisement monitor is registered for passive scanning),
as with a real radio. `restart()` is bluetoothd crashing and coming back: every scan registration
is lost and nothing is heard until a client starts scanning again.

Adverts are Device1 objects created with properly typed dicts and then updated with
UpdateProperties (PropertiesChanged), as BlueZ does; the template's AddDevice() types
ManufacturerData/ServiceData as lists, which bleak cannot read.
"""

import os
import subprocess

import dbus
import dbusmock
from dbusmock import BusType, SpawnedMock

MOCK = dbusmock.MOCK_IFACE
OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager"
DEVICE = "org.bluez.Device1"
ADAPTER = "org.bluez.Adapter1"
TEST_IFACE = "org.luciole.Test"
BUS_ENV = "DBUS_SYSTEM_BUS_ADDRESS"

# Runs inside the mock: is this adapter listening (a discovery or a passive monitor)?
_SCANNING = (
    f"ret = bool(self.props[{ADAPTER!r}]['Discovering']) or bool(getattr(self, 'monitors', []))"
)

BTHOME = "0000fcd2-0000-1000-8000-00805f9b34fb"
EDDYSTONE = "0000feaa-0000-1000-8000-00805f9b34fb"
APPLE = 0x004C


class FakeBlueZ:
    def __init__(self, adapter="hci0", monitor_api=True, log_path=None):
        self.adapter = adapter
        self.adapter_path = f"/org/bluez/{adapter}"
        self.monitor_api = monitor_api
        self.log_path = log_path
        self.bus = None
        self.server = None
        self.paths: set[str] = set()
        self._saved_env = None

    # -- life cycle ---------------------------------------------------------------------------

    def start(self):
        self._saved_env = os.environ.get(BUS_ENV)
        self.bus = dbusmock.PrivateDBus(BusType.SYSTEM)
        self.bus.start()  # sets DBUS_SYSTEM_BUS_ADDRESS: child processes inherit it
        self.sysbus = dbus.bus.BusConnection(self.bus.address)
        self._spawn()
        return self

    def _spawn(self):
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.server = SpawnedMock.spawn_with_template(
            "bluez5",
            dbus.Dictionary({"enable_monitor_api": self.monitor_api}, signature="sv"),
            BusType.SYSTEM,
            stdout=log,
            stderr=log,
        )
        if log is not subprocess.DEVNULL:
            log.close()
        self.root = self.server.obj
        self.root.AddAdapter(self.adapter, "gateway-sim", dbus_interface="org.bluez.Mock")
        self._adapter().AddMethod(TEST_IFACE, "Scanning", "", "b", _SCANNING, dbus_interface=MOCK)
        self.paths.clear()

    def restart(self):
        """bluetoothd dies (SIGKILL, no goodbye) and starts again: scans and devices are gone."""
        self.server.process.kill()
        self.server.process.wait(5)
        self._spawn()

    def close(self):
        if self.server is not None:
            self.server.terminate()
        if self.bus is not None:
            self.bus.stop()
        if self._saved_env is None:
            os.environ.pop(BUS_ENV, None)
        else:
            os.environ[BUS_ENV] = self._saved_env

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # -- the air ------------------------------------------------------------------------------

    def _adapter(self):
        return self.sysbus.get_object("org.bluez", self.adapter_path)

    def scanning(self) -> bool:
        return bool(self._adapter().Scanning(dbus_interface=TEST_IFACE))

    def advertise(self, address, *, service_data=None, manufacturer_data=None, rssi=-60, name=None):
        """One advert on air; True when the adapter was listening (and so heard it)."""
        if not self.scanning():
            return False
        path = f"{self.adapter_path}/dev_" + address.replace(":", "_").upper()
        adv = {"RSSI": dbus.Int16(rssi)}
        if manufacturer_data is not None:
            adv["ManufacturerData"] = dbus.Dictionary(
                {dbus.UInt16(k): dbus.ByteArray(v) for k, v in manufacturer_data.items()},
                signature="qv",
            )
        if service_data is not None:
            adv["ServiceData"] = dbus.Dictionary(
                {k: dbus.ByteArray(v) for k, v in service_data.items()}, signature="sv"
            )
        if path in self.paths:
            self.sysbus.get_object("org.bluez", path).UpdateProperties(
                DEVICE, adv, dbus_interface=MOCK
            )
            return True
        props = {
            "Address": address,
            "AddressType": "public",
            "Adapter": dbus.ObjectPath(self.adapter_path),
            "Alias": name or address,
            "Paired": False,
            "Bonded": False,
            "Trusted": False,
            "Blocked": False,
            "Connected": False,
            "ServicesResolved": False,
            "LegacyPairing": False,
            "UUIDs": dbus.Array([], signature="s"),
            "ManufacturerData": dbus.Dictionary({}, signature="qv"),
            "ServiceData": dbus.Dictionary({}, signature="sv"),
        }
        if name:
            props["Name"] = name
        props.update(adv)
        self.root.AddObject(
            path,
            DEVICE,
            props,
            [("Connect", "", "", ""), ("Disconnect", "", "", "")],
            dbus_interface=MOCK,
        )
        self.root.EmitSignal(
            OBJECT_MANAGER,
            "InterfacesAdded",
            "oa{sa{sv}}",
            [
                dbus.ObjectPath(path),
                dbus.Dictionary(
                    {DEVICE: dbus.Dictionary(props, signature="sv")}, signature="sa{sv}"
                ),
            ],
            dbus_interface=MOCK,
        )
        self.paths.add(path)
        return True
