"""Outputs: where DMX frames go. One interface (`Output`), one module per backend.

Only ``outputs/ola.py`` imports ``ola`` and only ``outputs/uart.py`` imports ``serial`` and the
GPIO library; `make_output` imports a backend's module only when that backend is asked for.
"""

from __future__ import annotations

from .base import Frames, Output, zero_blackout

__all__ = ["Frames", "Output", "backend_kwargs", "make_output", "output_for", "zero_blackout"]


def make_output(kind: str, config, universes, *, blackout=None, **kwargs) -> Output:
    """Build the output named `kind` ('sim', 'ola' or 'uart') from the validated config."""
    from ..errors import ConfigError

    if kind == "sim":
        from .sim import SimOutput

        return SimOutput(universes, blackout=blackout, **kwargs)
    if kind == "ola":
        from .ola import OlaOutput

        return OlaOutput(universes, config=config.output.ola, blackout=blackout, **kwargs)
    if kind == "uart":
        from .uart import UartOutput

        return UartOutput(universes, config=config.output.uart, blackout=blackout, **kwargs)
    raise ConfigError(f"unknown output {kind!r}", field="output.kind",
                      fix="use one of: sim, ola, uart")


def backend_kwargs(kind: str, config, patch) -> dict:
    """Extra arguments a backend needs from the patch (the UART: fps and its last slot)."""
    if kind == "uart":
        return {"fps": config.fps, "slots": max(f.last_address for f in patch.fixtures)}
    return {}


def output_for(config, patch, kind: str | None = None) -> Output:
    """The output for a patched rig: its universes, the patch's blackout, backend extras."""
    kind = kind or config.output.kind
    return make_output(kind, config, patch.universes, blackout=patch.blackout_frames,
                       **backend_kwargs(kind, config, patch))
