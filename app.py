"""rbd web app: inspect images, review verdicts, fine-tune and evaluate. Run `python app.py`.

The app lives in the `ui` package (one module per area); every number and picture it shows is
computed by the `rbd` package, also usable from Python and the command line.
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from ui import build_app, launch  # noqa: E402

if __name__ == "__main__":
    launch(build_app())
