"""Time from opening the app to the first grade on the Lesions page (synthetic example).

Run by `ctmodels bench` in a fresh process (the library itself never imports streamlit);
prints one JSON line.
"""

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402

t = time.perf_counter()
at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
at.run()
secs = time.perf_counter() - t
print(json.dumps({"seconds": secs, "ok": not at.exception and any(m.label == "Grade" for m in at.metric)}))
