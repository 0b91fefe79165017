"""Views: see the show without lights.

* `draw`   — Pillow drawings shared by the pictures: the rig seen from above, labels.
* `render` — `latentdmx render`: a timeline picture (PNG) or an animated rig (GIF), offline.
* `watch`  — `latentdmx watch`: a live colour terminal view (rich).

The daemon's live web page is a control surface beside OSC (`pi_app.web`). The views
learn what the daemon sends from `pi_app.decode` (DMX frames back to what each fixture
does: colour, level, pan, tilt, through the patch).

Nothing here runs on the frame loop: viewers read the show's last frames and status from
their own threads (both are replaced, never mutated, by the loop), so a viewer cannot slow
the frame clock beyond sharing the GIL (measured by ``bench/views.py``).
"""
