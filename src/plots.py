"""pyplot with a Korean font: every chart the project draws goes through ``korean_pyplot()``.

NanumGothic (SIL OFL 1.1) comes from the koreanize-matplotlib package, read straight from its folder:
no system font, no network, and the package itself is not imported (importing it restyles matplotlib as a
side effect). DejaVu Sans, matplotlib's own font, stays behind it for the few glyphs NanumGothic lacks.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

FONT = "NanumGothic"
FALLBACK = "DejaVu Sans"


def font_file() -> Path:
    """NanumGothic.ttf inside the installed koreanize-matplotlib package (found, not imported)."""
    spec = importlib.util.find_spec("koreanize_matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("koreanize-matplotlib is not installed: run `uv sync`")
    path = Path(next(iter(spec.submodule_search_locations))) / "fonts" / f"{FONT}.ttf"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: koreanize-matplotlib no longer ships {FONT}")
    return path


def korean_pyplot():
    """matplotlib.pyplot on the Agg backend with NanumGothic registered and selected (idempotent)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    if FONT not in {f.name for f in font_manager.fontManager.ttflist}:
        font_manager.fontManager.addfont(str(font_file()))
    matplotlib.rcParams["font.family"] = [FONT, FALLBACK]
    # callers that ask for the generic family (networkx's labels: font_family="sans-serif") get it too
    sans = matplotlib.rcParams["font.sans-serif"]
    matplotlib.rcParams["font.sans-serif"] = [FONT, *(f for f in sans if f != FONT)]
    matplotlib.rcParams["axes.unicode_minus"] = False  # NanumGothic has no U+2212 minus sign
    return plt
