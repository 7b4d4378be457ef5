"""nua's version, in a leaf of its own.

``nua.__version__`` re-exports it; modules inside nua import it from here, since
the package root's lazy facade (``nua.start()`` and the rest) imports the daemon
layer, and importing the root from below would close a circle.
"""

from __future__ import annotations

VERSION = "0.1.0"

__all__ = ["VERSION"]
