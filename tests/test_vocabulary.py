"""One control vocabulary: the socket, the CLI, the web page and OSC read one table, validate
strictly, and the daemon logs every command a client gives."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from click.testing import CliRunner

from pi_app import vocabulary as vocab
from pi_app.cli import main
from pi_app.clock import FastClock
from pi_app.control import ControlServer
from pi_app.errors import ControlError
from pi_app.outputs.sim import SimOutput
from pi_app.patch import Patch
from pi_app.show import Show


@pytest.fixture
def show(default_config, tmp_path):
    """A real Show whose frame loop is not running: handle_control validates and queues."""
    patch = Patch(default_config)
    out = SimOutput(patch.universes, blackout=patch.blackout_frames)
    s = Show(default_config, out, control=False, clock=FastClock, presets_dir=tmp_path / "p")
    s._live = True
    return s


def _apply(show: Show) -> None:
    while not show._commands.empty():
        show._commands.get_nowait()(0.0)


# -- strict validation (each of these was accepted or mangled on 58fc28d) --------------------
@pytest.mark.parametrize("cmd, args", [
    ("blackout", {"on": "false"}),            # 58fc28d: bool("false") -> blackout ON
    ("blackout", {"on": 0}),
    ("still", {"on": "yes"}),
    ("dim", {"level": -1}),
    ("dim", {"level": True}),
    ("dim", {"level": float("nan")}),
    ("seed", {"seed": 1.5}),
    ("seed", {"seed": -3}),
    ("tempo", {"tempo": 0}),
    ("dim", {"level": 0.5, "extra": 1}),      # unknown argument
    ("model", {"name": "\n"}),
    ("preset/save", {"name": "../etc/passwd"}),
    ("preset/recall", {"name": "a", "fade_s": 99}),
])
def test_bad_arguments_are_refused_in_one_line(show, cmd, args):
    with pytest.raises(ControlError) as exc:
        show.handle_control(cmd, args)
    assert "\n" not in str(exc.value) and exc.value.fix
    assert show._commands.empty()                     # nothing was queued for the loop


def test_blackout_false_means_off(show):
    assert show.handle_control("blackout", {"on": False}) == {"blackout": False}
    show.pipeline.blacked_out = True
    _apply(show)
    assert show.pipeline.blacked_out is False


def test_cli_dim_minus_one_is_a_clear_error_not_an_unknown_option(tmp_path):
    result = CliRunner().invoke(main, ["dim", "-1", "--socket", str(tmp_path / "none.sock")])
    assert result.exit_code == 2
    assert result.output.strip() == ("error: command line: dim: level: -1 is not a number in "
                                     "0..1 — e.g. `latentdmx dim 0.5`")


@pytest.mark.parametrize("argv, sent", [
    (["blackout", "off"], ("blackout", {"on": False})),
    (["blackout"], ("blackout", {})),
    (["still", "on"], ("still", {"on": True})),
    (["preset", "recall", "dusk", "4"], ("preset/recall", {"name": "dusk", "fade_s": 4.0})),
    (["preset", "save", "late night"], ("preset/save", {"name": "late night"})),
    (["playlist", "next"], ("playlist/next", {})),
    (["palette", "warm"], ("palette", {"name": "warm"})),
])
def test_cli_commands_come_from_the_table(tmp_path, argv, sent):
    calls = []
    sock = tmp_path / "c.sock"
    with ControlServer(sock, lambda c, a: calls.append((c, a)) or {"ok": 1}):
        result = CliRunner().invoke(main, [*argv, "--socket", str(sock)])
    assert result.exit_code == 0, result.output
    assert calls == [sent]


def test_every_client_command_is_logged_in_one_line(show, caplog):
    caplog.set_level(logging.DEBUG, logger="latentdmx")
    show.handle_control("dim", {"level": 0.3})                            # the socket
    show.handle_control("seed", {"seed": 9}, origin="web")
    show.handle_control("tempo", {"tempo": 2}, origin="osc 127.0.0.1:5000")
    with pytest.raises(ControlError):
        show.handle_control("dim", {"level": 7})
    show.handle_control("status", {})
    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert (logging.INFO, "socket: dim level=0.3") in lines
    assert (logging.INFO, "web: seed seed=9") in lines
    assert (logging.INFO, "osc 127.0.0.1:5000: tempo tempo=2.0") in lines
    assert any(lvl == logging.INFO and m.startswith("socket: dim level=7 refused: ")
               for lvl, m in lines)
    assert (logging.DEBUG, "socket: status ") in lines                    # polls: debug


def test_osc_conversions():
    dim, blackout, seed = vocab.lookup("dim"), vocab.lookup("blackout"), vocab.lookup("seed")
    assert dim.parse_osc([0.25]) == {"level": 0.25}
    assert blackout.parse_osc([1.0]) == {"on": True}
    assert blackout.parse_osc([0]) == {"on": False}
    assert blackout.parse_osc([False]) == {"on": False}
    assert blackout.parse_osc([]) == {"on": True}
    assert seed.parse_osc([7.0]) == {"seed": 7}                # a fader sends floats
    with pytest.raises(ControlError):
        seed.parse_osc([7.5])
    with pytest.raises(ControlError):
        blackout.parse_osc([0.5])
    assert vocab.lookup("preset recall") is vocab.lookup("preset/recall")


@pytest.fixture
def glow():
    yield
    vocab.COMMANDS.pop("glow", None)


def test_a_new_command_is_one_entry(show, glow):
    """Register one entry: the socket/web/OSC handler, the CLI and the page all have it."""

    @vocab.command("glow", vocab.Arg("level", vocab.Number(0, 1), "how much"),
                   help="Glow a little.", live=True, state="master")
    def _glow(s, a):
        return vocab.Change({"master": a["level"]}, lambda t: setattr(s.pipeline.safety,
                                                                       "master", a["level"]))

    assert show.handle_control("glow", {"level": 0.4}) == {"master": 0.4}
    from pi_app.commands import control as cc
    from pi_app.web import vocabulary_json

    assert "glow" in cc._build()
    assert "glow" in [c["name"] for c in vocabulary_json(show)["commands"]]
    assert vocab.lookup("glow").parse_osc([0.1]) == {"level": 0.1}


def test_every_command_has_help_and_examples_that_parse():
    for cmd in vocab.COMMANDS.values():
        assert cmd.summary and cmd.help.strip()[0].isupper(), cmd.name
        for a in cmd.args:
            assert a.help, (cmd.name, a.name)
        example = cmd.example()[len("e.g. `latentdmx "):-1].split()
        words = cmd.name.split("/")
        assert example[:len(words)] == words
        cmd.parse_text(example[len(words):])          # the fix text is a valid command


def test_status_record_is_typed_and_complete(show):
    snap = show.status_snapshot
    assert list(snap) == [name for name, _ in vocab.Status.labels()]
    assert snap["schedule"].startswith("always on") and snap["next_event"] == ""
    assert isinstance(snap["master"], float) and isinstance(snap["paused"], bool)


def test_live_changes_wait_for_the_frame_loop(show):
    show.handle_control("dim", {"level": 0.1})
    assert show.pipeline.safety.master == 1.0               # not applied on this thread
    _apply(show)
    assert show.pipeline.safety.master == 0.1


@pytest.mark.slow
def test_running_show_applies_commands_from_other_threads(default_config, tmp_path):
    patch = Patch(default_config)
    out = SimOutput(patch.universes, blackout=patch.blackout_frames)
    s = Show(default_config, out, control=False, duration_s=3,
             presets_dir=tmp_path / "p")
    th = threading.Thread(target=s.run)
    th.start()
    while not s.status_snapshot.get("frames"):
        time.sleep(0.01)
    s.handle_control("tempo", {"tempo": 3})
    time.sleep(0.2)
    assert s.status_snapshot["tempo"] == 3.0
    th.join(10)
