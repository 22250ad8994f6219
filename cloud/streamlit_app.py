"""Entry point for Streamlit Community Cloud: the same app as `streamlit run app.py`.

Why a separate folder: Cloud reads the dependency file beside the entry point before the repository root's, so
`cloud/requirements.txt` can take torch's CPU-only build (a few hundred MB instead of several GB of CUDA
libraries) while the root `requirements.txt` stays what a fresh machine installs. This file only makes the
repository root importable and runs the router.
"""

import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

runpy.run_path(str(ROOT / "app.py"), run_name="__main__")
