"""Several daemons, one show: real ``latentdmx run`` processes, each in its own network
namespace on one bridged test LAN (tests/group_lan.py: nothing leaves the machine), started
seconds apart, killed and restarted, given live changes through the CLI and the control
socket; a stranger on the LAN replays and forges group messages. What they played is read
from their recordings (DMX bytes, each frame stamped with its index and the wall clock) and
at a common receiver (their sACN, with universe sync, arriving at one socket)."""

from __future__ import annotations

import socket
import struct
import threading
import time
import uuid

import numpy as np
import pytest
from group_lan import RECEIVER_IP, GroupLan, lan_missing_reason
from lateness import MachineLateness
from lockstep_daemons import (
    FPS,
    KEY,
    Daemon,
    differing,
    group_config,
    group_frame,
    index_spread,
    steady,
)

from pi_app.sync.wire import Signer

pytestmark = pytest.mark.skipif(lan_missing_reason() is not None,
                                reason=lan_missing_reason() or "")

GROUP, PORT = "239.192.77.13", 5570
EPOCH = 1767225600.0                 # 2026-01-01T00:00:00Z, the config's


class Sniffer:
    """A stranger on the LAN (in the switch's namespace) who hears the group's datagrams."""

    def __init__(self, lan: GroupLan) -> None:
        def make() -> socket.socket:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((GROUP, PORT))
            s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, struct.pack(
                "4s4s", socket.inet_aton(GROUP), socket.inet_aton(RECEIVER_IP)))
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                         socket.inet_aton(RECEIVER_IP))
            s.settimeout(0.2)
            return s

        self.sock = lan.sw.call(make)
        self.heard: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.heard.append(self.sock.recv(65536))
            except TimeoutError:
                pass

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, (GROUP, PORT))

    def change_with(self, text: bytes) -> bytes:
        return next(d for d in self.heard if b'"type":"change"' in d and text in d)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.mark.slow
def in_step(daemon, timeout_s: float = 4.0) -> dict:
    """The daemon's status once it says its member is in step (a CPU hog beside the test can
    keep a member out of step for a moment), or the last status after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        s = daemon.request("status")
        if "1 of 1 in step" in s["group"] or time.monotonic() > deadline:
            return s
        time.sleep(0.2)


def test_two_daemons_one_show_changes_from_either_and_strangers_refused(tmp_path):
    with GroupLan(2) as lan:
        cfg = group_config(tmp_path / "rig.toml")
        sniffer = Sniffer(lan)
        a = Daemon(lan.members[0], cfg, tmp_path, "a", 20.0)
        a.wait_playing()
        time.sleep(2.0)
        b = Daemon(lan.members[1], cfg, tmp_path, "b", 15.0)
        b.wait_playing()
        time.sleep(4.5)
        # a tempo change to b through the CLI, a seed change to a through its socket
        tempo_at = int(b.cli("tempo", "2").split("frame ")[1].split()[0])
        time.sleep(1.5)
        seed_at = group_frame(a.request("seed", seed=5))
        time.sleep(1.0)
        # a stranger: replays the real seed change, forges one, replays an old one re-signed
        sniffer.send(sniffer.change_with(b'"seed":5'))
        now_k = int((time.time() - EPOCH) * FPS)
        forged = Signer("not the key of this group!", "lockstep-test").seal(
            "change", {"id": [now_k + 40, "evil", 1], "cmd": "seed",
                       "args": {"seed": 666}}, time.time())
        stale = Signer(KEY, "lockstep-test").seal(
            "change", {"id": [0, "old", 1], "cmd": "blackout", "args": {"on": True}},
            time.time() - 60.0)
        sniffer.send(forged)
        sniffer.send(stale)
        # a preset saved on b only, recalled on b: it travels with the change
        b.request("preset/save", name="only-on-b")
        recall_at = group_frame(b.request("preset/recall", name="only-on-b", fade_s=1.0))
        time.sleep(1.5)
        st = [in_step(a), in_step(b)]
        assert a.wait() == 0 and b.wait() == 0, a.log() + b.log()
        sniffer.close()

    for s in st:                        # both took both changes, and none of the stranger's
        assert (s["seed"], s["tempo"], s["blackout"], s["preset"]) == (5, 2.0, False,
                                                                       "only-on-b")
        assert "1 forged" in s["group"] and "1 stale" in s["group"], s["group"]
        assert "1 of 1 in step" in s["group"]
    assert "1 replayed" in st[1]["group"]          # (a drops its own message as its own)
    # each change took effect at the frame its reply named, on both members
    assert "group: tempo tempo=2.0 from" in a.log() and f"at frame {tempo_at}" in a.log()
    assert f"at frame {seed_at}" in b.log()
    assert "refused a message from 10.78.0.254: forged" in a.log()
    # the frames: byte for byte the same wherever both played (after b's own fade-in)
    fa, fb = a.frames(), b.frames()
    common = [k for k in steady(fb) if k in fa]
    assert len(common) > 6 * FPS and min(common) < tempo_at < seed_at < recall_at < \
        max(common)
    assert "preset/recall name='only-on-b' fade_s=1.0 from" in a.log()
    assert differing(fa, fb, common) == []
    before = fa[seed_at - 1][0]
    assert not np.array_equal(fa[seed_at + FPS][0], before)        # the show moved on
    # and at the same instants: the frame index at any wall time differs by <= 1
    spread = index_spread([a.stamps(), b.stamps()], min(common), max(common))
    # (an instant or two of a busy machine's scheduling aside: the receiver stamps arrivals)
    assert np.mean(spread <= 1) >= 0.995 and np.mean(spread <= 2) >= 0.999, np.bincount(spread)


# the group's show: the restarted member (8.5 s in, its start slower on a busy machine) still
# joins, settles and plays 4 s in step before it ends
SHOW_S = 27.0


@pytest.mark.slow
def test_four_daemons_one_killed_and_restarted_one_receiver(tmp_path):
    """Four members started 1.2 s apart send sACN (universe sync on) to one receiver; one is
    killed with SIGKILL mid-show and started again: it rejoins in phase."""
    sacn = pytest.importorskip("sacn.messages.data_packet")
    from sacn.messages.sync_packet import SyncPacket
    from udp_capture import UdpCapture

    members = 4
    with GroupLan(members) as lan, MachineLateness(FPS) as machine:
        cap = UdpCapture(5568, ns=lan.sw, bind=RECEIVER_IP)
        daemons = []
        t0 = time.monotonic()
        for i in range(members):
            cfg = group_config(
                tmp_path / f"rig{i}.toml",
                output=f'kind = "sacn"\n\n[output.sacn]\nunicast = ["{RECEIVER_IP}"]\n'
                       f'universe_map = {{ "1" = {11 + i} }}\nsync_universe = {63990 + i}\n'
                       f'cid = "{uuid.UUID(int=i + 1)}"\ninterface = "eth0"\n'
                       f"discovery = false\n",
            )
            daemons.append(Daemon(lan.members[i], cfg, tmp_path, f"m{i}", SHOW_S - 1.2 * i))
            time.sleep(1.2)
        for d in daemons:
            d.wait_playing()
        time.sleep(max(0.0, t0 + 7.0 - time.monotonic()))
        daemons[2].kill()                                   # mid-show, no goodbye
        time.sleep(1.5)
        again = Daemon(lan.members[2], tmp_path / "rig2.toml", tmp_path, "m2-again",
                       SHOW_S - (time.monotonic() - t0))
        again.wait_playing()
        for d in (d for i, d in enumerate(daemons) if i != 2):
            assert d.wait() == 0, d.log()
        assert again.wait() == 0, again.log()
        cap.settle()
        cap.close()

    assert "joined 3 members" in again.log()
    played = [d.frames() for i, d in enumerate(daemons) if i != 2] + [again.frames()]
    ref = played[0]
    for f in played[1:]:
        common = [k for k in steady(f) if k in ref]
        assert len(common) > 4 * FPS
        assert differing(ref, f, common) == []
    # at the receiver: which frame each member's packet was, by its bytes
    by_bytes = {}
    for k, frame in ref.items():
        by_bytes.setdefault(frame[0].tobytes(), []).append(k)
    arrivals: dict[int, dict[int, float]] = {11 + i: {} for i in range(members)}
    syncs: dict[int, int] = {}
    for t, _src, _dst, raw in cap.packets:
        if int.from_bytes(raw[18:22], "big") == 0x00000004:          # E1.31 data
            if raw[112] & 0x40:
                continue                                             # stream terminated
            p = sacn.DataPacket.make_data_packet(raw)
            assert p.syncAddr == 63990 + p.universe - 11             # its own sync universe
            ks = by_bytes.get(bytes(p.dmxData) + bytes(512 - len(p.dmxData)), [])
            if len(ks) == 1:
                arrivals[p.universe].setdefault(ks[0], t)
        else:
            s = SyncPacket.make_sync_packet(raw)
            syncs[s.syncAddr] = syncs.get(s.syncAddr, 0) + 1
    data_frames = {u: len(v) for u, v in arrivals.items()}
    for i in range(members):                       # one sync packet after every frame
        assert syncs[63990 + i] >= 0.9 * data_frames[11 + i] > 0
    lo = max(min(steady(dict.fromkeys(a, 0))) for a in arrivals.values())
    hi = min(max(a) for a in arrivals.values())
    spread = index_spread(list(arrivals.values()), lo, hi)
    assert len(spread) > 1000
    # (an instant or two of a busy machine's scheduling aside: the receiver stamps arrivals;
    # each stall of the machine's own, as a canary frame loop saw them, may hold up a member)
    stalled = min(0.1, members * machine.late / len(spread))
    assert np.mean(spread <= 1) >= 0.99 - stalled, (np.bincount(spread), machine.late)
    assert np.mean(spread <= 3) >= 0.999 - stalled, (np.bincount(spread), machine.late)


@pytest.mark.slow
def test_a_member_that_missed_a_change_catches_up(tmp_path):
    """Its cable is pulled while a seed change goes out; plugged back, it sees the change in
    the others' announcements and takes their state."""
    with GroupLan(2) as lan:
        cfg = group_config(tmp_path / "rig.toml")
        a = Daemon(lan.members[0], cfg, tmp_path, "a", 17.0)
        b = Daemon(lan.members[1], cfg, tmp_path, "b", 17.0)
        a.wait_playing()
        b.wait_playing()
        time.sleep(2.0)
        lan.unplug(1)
        at = group_frame(a.request("seed", seed=9))
        time.sleep(2.0)
        assert b.request("status")["seed"] == 0                  # it could not know
        lan.plug(1)
        plugged_k = int((time.time() - EPOCH) * FPS)
        time.sleep(3.0)
        st = b.request("status")
        assert a.wait() == 0 and b.wait() == 0

    assert st["seed"] == 9
    assert "took the state of" in b.log() and "missed change" in b.log(), b.log()
    fa, fb = a.frames(), b.frames()
    assert differing(fa, fb, [at + 10])                       # while unplugged: apart
    after = [k for k in steady(fb, tail_s=2.0) if k > plugged_k + 4 * FPS]
    assert len(after) > FPS
    assert differing(fa, fb, after) == []
