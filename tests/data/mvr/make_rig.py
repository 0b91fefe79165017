"""Build tests/data/mvr/rig.mvr: a small real rig from the GDTF files in tests/data/gdtf/.

Run from the project folder: ``python tests/data/mvr/make_rig.py``. The scene is written by
hand after DIN SPEC 15801 (GeneralSceneDescription 1.5); positions in millimetres, X across
the stage, Y upstage, Z up; GDTF models a fixture hanging, so a standing fixture is turned
over (rotated 180 degrees about X).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

HERE = Path(__file__).parent
GDTF = HERE.parent / "gdtf"
HUNG = "{1,0,0}{0,1,0}{0,0,1}"
STANDING = "{1,0,0}{0,-1,0}{0,0,-1}"
FILES = {
    "viva": "Robe_Lighting@Robin_Viva_CMY@13042021.gdtf",
    "acme": "ACME@ACME_AE-610_BEAM@ACME_AE-610_BEAM.gdtf",
    "par": "BlenderDMX@LED_PAR_64_RGBW.gdtf",
    "mmx": "Robe@Robin MMX Spot@r3046.gdtf",
    "jb": "JB-Lighting@P12_Spot_HP@V_1.15.gdtf",
}
# name, file, mode, fixture ID, absolute DMX address, orientation, x, y, z (mm)
RIG = [
    ("Viva SL", "viva", "Mode 2 - Reduced 8 bit", 101, 1, HUNG, -4000, 2000, 6000),
    ("Viva SR", "viva", "Mode 2 - Reduced 8 bit", 102, 27, HUNG, 4000, 2000, 6000),
    ("Beam L", "acme", "Mode 1 12 DMX", 201, 101, STANDING, -2000, 3000, 0),
    ("Beam R", "acme", "Mode 1 12 DMX", 202, 113, STANDING, 2000, 3000, 0),
    ("MMX Spot", "mmx", "1", 301, 201, HUNG, 0, 2000, 6000),
    ("P12", "jb", "Mode 1 (35 ch)", 401, 301, HUNG, 0, 0, 6000),
]
PARS = [(f"Par {i + 1}", "par", "Default", 10 + i, 513 + 5 * i, HUNG, -3000 + 2000 * i, 0, 0)
        for i in range(4)]          # inside a truss hung 5 m up, 1 m downstage


def fixture(name: str, key: str, mode: str, fid: int, addr: int, rot: str,
            x: float, y: float, z: float) -> str:
    return (f'<Fixture uuid="00000000-0000-4000-8000-{fid:012d}" name="{name}">'
            f"<Matrix>{rot}{{{x},{y},{z}}}</Matrix><GDTFSpec>{FILES[key]}</GDTFSpec>"
            f"<GDTFMode>{mode}</GDTFMode><FixtureID>{fid}</FixtureID>"
            f'<Addresses><Address break="0">{addr}</Address></Addresses></Fixture>')


def scene() -> str:
    pars = "".join(fixture(*p) for p in PARS)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<GeneralSceneDescription verMajor="1" verMinor="5"><Scene><Layers>'
            '<Layer uuid="00000000-0000-4000-8000-000000000001" name="Lights"><ChildList>'
            + "".join(fixture(*f) for f in RIG)
            + '<Truss uuid="00000000-0000-4000-8000-000000000002" name="Front truss">'
            f"<Matrix>{HUNG}{{0,-1000,5000}}</Matrix><ChildList>{pars}</ChildList></Truss>"
            "</ChildList></Layer></Layers></Scene></GeneralSceneDescription>\n")


def main() -> None:
    out = HERE / "rig.mvr"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo("GeneralSceneDescription.xml", (2026, 12, 7, 0, 0, 0)),
                   scene())
        for f in sorted(set(FILES.values())):
            z.writestr(zipfile.ZipInfo(f, (2026, 12, 7, 0, 0, 0)), (GDTF / f).read_bytes())
    print(out)


if __name__ == "__main__":
    main()
