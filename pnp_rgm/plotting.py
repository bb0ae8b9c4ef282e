"""matplotlib (the optional ``bench`` extra), headless, for the figures of benchmarks and examples."""
from __future__ import annotations

import sys

__all__ = ["pyplot", "save_figure"]


def pyplot(what: str = ""):
    """``matplotlib.pyplot`` on the Agg backend, or None when matplotlib is not installed; with
    ``what`` (the figure's name) that case is also said on stderr, in one line."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        if what:
            print(f"matplotlib not installed: no {what} (pip install 'pnp-rgm[bench]')", file=sys.stderr)
        return None
    return plt


def save_figure(fig, path) -> None:
    """Tight layout, 120 dpi, then close (figures of a long run must not pile up)."""
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    fig.clf()
    import matplotlib.pyplot as plt

    plt.close(fig)
