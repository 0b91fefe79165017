"""`latentdmx doctor --rdm` against olad's dummy plugin RDM responders (real OLA code: moving
lights with personalities and a settable start address, a sensor device), and `compare` on
plain data."""

from __future__ import annotations

import json
import socket
import struct

import pytest
from click.testing import CliRunner

from pi_app.cli import main
from pi_app.outputs.rdm import Placed, Responder, compare
from tests.olad_fixture import Olad, olad_missing_reason

DUMMY = {"dummy_device_count": "0", "dimmer_count": "0", "moving_light_count": "4",
         "sensor_device_count": "1", "network_device_count": "0", "ack_timer_count": "0",
         "advanced_dimmer_count": "0"}
# OLA's dummy moving light: personality 1 "Full" 17 channels, 2 "Basic" 5 channels.
PROFILE = {"schema": 1, "key": "ola-moving-light", "name": "Moving Light",
           "manufacturer": "Open Lighting Project", "pan_deg": 540, "tilt_deg": 270,
           "modes": {"Full": [{"attr": "pan"}, {"attr": "tilt"}, {"attr": "dimmer"}]
                     + [{"attr": "hold", "value": 0}] * 14,
                     "Basic": [{"attr": "pan"}, {"attr": "tilt"}, {"attr": "intensity"},
                               {"attr": "hold", "value": 0}, {"attr": "hold", "value": 0}]}}
RIG = [("spot-1", "Full", 1), ("spot-2", "Full", 18), ("spot-3", "Basic", 35),
       ("spot-4", "Full", 40)]


@pytest.fixture(scope="module")
def rdm_olad():
    reason = olad_missing_reason()
    if reason:
        pytest.skip(reason)
    daemon = Olad(plugins={"dummy": DUMMY})
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.cleanup()


class Line:
    """The test's own hand on the dummy responders (SETs the doctor never sends)."""

    def __init__(self, port: int) -> None:
        from pi_app.outputs.ola import import_ola

        import_ola()
        import ola.ClientWrapper as cw

        self.sock = socket.create_connection(("127.0.0.1", port))
        self.w = cw.ClientWrapper(self.sock)
        self.c = self.w.Client()
        box: dict = {}

        def got(status, uids):
            box["uids"] = uids
            self.w.Stop()
        self.c.RunRDMDiscovery(1, True, got)
        self.w.Run()
        self.uids = box["uids"]

    def _do(self, fn, uid, pid, data=b""):
        box: dict = {}

        def cb(r):
            box["r"] = r
            self.w.Stop()
        fn(1, uid, 0, pid, cb, data)
        self.w.Run()
        assert box["r"].response_code == 0, box["r"]
        return box["r"].data

    def place(self, i: int, address: int, personality: int, label: str) -> None:
        self._do(self.c.RDMSet, self.uids[i], 0xF0, struct.pack(">H", address))
        self._do(self.c.RDMSet, self.uids[i], 0xE0, bytes([personality]))
        self._do(self.c.RDMSet, self.uids[i], 0x82, label.encode())

    def address(self, i: int) -> int:
        return struct.unpack(">H", self._do(self.c.RDMGet, self.uids[i], 0x60)[14:16])[0]


def write_rig(tmp_path, port: int, rig) -> str:
    fx = ''.join(f'[[fixtures]]\nname = "{n}"\nprofile = "ola-moving-light"\nmode = "{m}"\n'
                 f'universe = 1\naddress = {a}\n\n' for n, m, a in rig)
    path = tmp_path / "rig.toml"
    path.write_text(f'schema = 1\n\n[output]\nkind = "ola"\n\n[output.ola]\nhost = "127.0.0.1"'
                    f'\nport = {port}\n\n{fx}')
    return str(path)


@pytest.fixture
def profile(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    d = tmp_path / "xdg" / "latentdmx" / "fixtures"
    d.mkdir(parents=True)
    (d / "ola-moving-light.json").write_text(json.dumps(PROFILE))


def doctor(cfg: str):
    return CliRunner().invoke(main, ["doctor", "--rdm", "--output", "ola", "--config", cfg],
                              catch_exceptions=False)


@pytest.mark.slow
def test_doctor_rdm_on_a_matching_line_finds_nothing(rdm_olad, tmp_path, profile):
    line = Line(rdm_olad.rpc_port)
    for i, (name, mode, address) in enumerate(RIG):
        line.place(i, address, 1 if mode == "Full" else 2, name)
    r = doctor(write_rig(tmp_path, rdm_olad.rpc_port, RIG))
    assert r.exit_code == 0, r.output
    assert "universe 1: 4 RDM devices with DMX channels, each where the config puts it" \
        in r.output
    assert "FAIL" not in r.output and "no problems found" in r.output
    # the sensor device's readings are shown
    assert "Sensor Device reports Fake Temperature" in r.output and "°C" in r.output


def test_doctor_rdm_finds_wrong_address_wrong_mode_and_missing(rdm_olad, tmp_path, profile):
    line = Line(rdm_olad.rpc_port)
    line.place(0, 1, 1, "spot-1")                  # as in the config
    line.place(1, 60, 1, "spot-2")                 # config: 18
    line.place(2, 35, 1, "spot-3")                 # config: Basic (5 channels); it is Full (17)
    line.place(3, 80, 2, "gobo-x")                 # a device the config does not know
    rig = [*RIG[:3], ("spot-5", "Full", 100)]      # spot-5: nothing on the line
    r = doctor(write_rig(tmp_path, rdm_olad.rpc_port, rig))
    out = r.output
    assert r.exit_code == 1, out
    assert ("spot-2: OLA Moving Light 'spot-2' (UID 7a70:ffffff01) answers at address 60 on "
            "universe 1, the config says 18") in out
    assert "set spot-2 to address 18 on its display, or change its address in the config to 60" \
        in out
    assert ("spot-3: OLA Moving Light 'spot-3' (UID 7a70:ffffff02) at address 35 on universe 1 "
            "uses 17 channels (personality 1 'Full'); the config's mode 'Basic' uses 5") in out
    assert "set it to personality 2 'Basic' (5 channels) on its display" in out
    assert "spot-5: no RDM device answers at address 100 on universe 1" in out
    assert "OLA Moving Light 'gobo-x' (UID 7a70:ffffff03) at address 80-84 is not in the " \
        "config" in out
    # read-only: the doctor changed nothing on the line
    assert line.address(1) == 60 and line.address(3) == 80
    for ln in out.splitlines():        # one line per finding, and one line per fix
        assert len(ln) < 400


def test_doctor_rdm_guesses_a_moved_fixture_by_its_footprint(rdm_olad, tmp_path, profile):
    """An unlabelled fixture elsewhere with the footprint of a missing one: said as a guess,
    with both fixes."""
    line = Line(rdm_olad.rpc_port)
    for i, (name, mode, address) in enumerate(RIG):
        line.place(i, address, 1 if mode == "Full" else 2, name)
    line.place(3, 90, 1, "")
    r = doctor(write_rig(tmp_path, rdm_olad.rpc_port, RIG))
    assert r.exit_code == 1
    assert ("spot-4: no RDM device answers at address 40 on universe 1; OLA Moving Light (UID "
            "7a70:ffffff03) with the same footprint answers at 90-106") in r.output
    assert "if that is spot-4: set spot-4 to address 40 on its display, or change its address " \
        "in the config to 90" in r.output


def test_compare_overlap_and_unknown_device():
    found = [Responder(uid="1:1", model="Par", footprint=8, address=1, label="par-1"),
             Responder(uid="1:2", model="Par", footprint=8, address=5, label="x"),
             Responder(uid="1:3", model="Sensor", footprint=0)]
    out = compare(1, [Placed("par-1", 1, 1, 8, "8ch")], found)
    text = [f.what for f in out if not f.ok]
    assert any("overlap" in t and "1-8" in t and "5-12" in t for t in text)
    assert any("'x'" in t and "not in the config" in t for t in text)
    assert any(f.ok and "takes no DMX channels" in f.what for f in out)
    assert compare(1, [Placed("par-1", 1, 1, 8, "8ch")], found[:1])[0].ok
    # three devices over each other, one apart: one line for the run, none for the one apart
    pile = [Responder(uid=f"1:{i}", model="Par", footprint=8, address=a)
            for i, a in enumerate((1, 3, 9, 40))]
    lines = [f.what for f in compare(1, [], pile) if "overlap" in f.what]
    assert len(lines) == 1 and "1-8" in lines[0] and "9-16" in lines[0] and "40" not in lines[0]
    # nothing answers at all: one line, not one per fixture
    none = compare(1, [Placed("par-1", 1, 1, 8, "8ch"), Placed("par-2", 1, 9, 8, "8ch")], [])
    assert len(none) == 1 and "no RDM device answered" in none[0].what and "2 fixtures" in \
        none[0].what


def test_compare_dimmer_rack_sub_devices_make_one_fixture():
    """A dimmer rack whose root takes no channels and whose 4 sub-devices take one each
    (addresses 1-4): a 4-channel fixture at 1 is where the config puts it; a sub-device at
    an address the config does not use is an unknown device."""
    root = Responder(uid="7a70:1", model="OLA Dimmer", footprint=0)
    subs = [Responder(uid="7a70:1", sub_device=i, model="OLA Dimmer", footprint=1, address=i)
            for i in range(1, 5)]
    ok = compare(1, [Placed("rack", 1, 1, 4, "4ch")], [root, *subs])
    assert all(f.ok for f in ok) and "1 RDM device" not in ok[0].what
    short = compare(1, [Placed("rack", 1, 1, 3, "3ch")], [root, *subs])
    assert any(not f.ok and "sub-device 4" in f.what and "not in the config" in f.what
               for f in short)
    # a root with its own footprint: its sub-devices are inside it, not more devices
    big = Responder(uid="7a70:2", model="Rack", footprint=4, address=1)
    inside = [Responder(uid="7a70:2", sub_device=i, model="Rack", footprint=1, address=i)
              for i in range(1, 5)]
    assert all(f.ok for f in compare(1, [Placed("rack", 1, 1, 4, "4ch")], [big, *inside]))


def test_compare_device_without_device_info_is_named():
    out = compare(1, [], [Responder(uid="7a70:9", model="(no DEVICE_INFO answer)")])
    assert [f.ok for f in out] == [False] and "terminat" in out[0].fix


def test_doctor_rdm_without_olad_is_one_line(tmp_path, profile):
    from tests.olad_fixture import free_port

    r = doctor(write_rig(tmp_path, free_port(), RIG))
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "RDM: cannot reach olad" in r.output


def test_the_rdm_check_has_no_way_to_set():
    """Read-only by construction: the module that talks RDM never calls OLA's RDMSet."""
    import inspect

    import pi_app.commands.rdm_check as cmd
    import pi_app.outputs.rdm as rdm

    for mod in (rdm, cmd):
        assert "RDMSet" not in inspect.getsource(mod)
