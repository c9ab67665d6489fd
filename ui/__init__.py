"""The rbd web app, one module per area: the model bar, Inspect, Review, Fine-tune and Evaluate.

`app.py` at the repository root starts it; `ui.app.build_app` builds it for tests and scripts.
"""

from .app import build_app, launch

__all__ = ["build_app", "launch"]
