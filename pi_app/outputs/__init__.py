"""Outputs: where DMX frames go. One interface (`Output`), one module per backend, one table
of backends (`registry.KINDS`: kind -> module, config section, doctor checks).

Only ``outputs/ola.py`` imports ``ola`` and only ``outputs/uart.py`` imports ``serial`` and the
GPIO library, inside functions; `make_output` imports a backend's module only when that
backend is asked for.
"""

from __future__ import annotations

from .base import Frames, Output, zero_blackout

__all__ = ["Frames", "Output", "backend_kwargs", "make_output", "output_for", "zero_blackout"]


def make_output(kind: str, config, universes, *, blackout=None, **kwargs) -> Output:
    """Build the output named `kind` (a row of `registry.KINDS`) from the validated config."""
    from . import registry

    return registry.get(kind).load().build(config, universes, blackout=blackout, **kwargs)


def backend_kwargs(kind: str, config, patch) -> dict:
    """Extra arguments a backend takes from the patch (the UART: fps and its last slot)."""
    from . import registry

    return registry.get(kind).load().rig_kwargs(config, patch)


def output_for(config, patch, kind: str | None = None) -> Output:
    """The output for a patched rig: its universes, the patch's blackout, backend extras;
    with ``[[outputs]]`` (and no `kind` asked for) one `several.MultiOutput` of them all."""
    if kind is None and getattr(config, "outputs", None):
        from . import several

        return several.build(config, patch)
    kind = kind or config.output.kind
    return make_output(kind, config, patch.universes, blackout=patch.blackout_frames,
                       **backend_kwargs(kind, config, patch))
