"""Audio decoding, feature extraction and the model-artifact contract, shared by training and serving.

Training and the service import this package and nothing of each other, so the features a model was trained on
are, by construction, the features it is served with.
"""

import os
from pathlib import Path

# librosa's first feature call JIT-compiles numba kernels (~35 s cold). A writable cache dir makes every later
# process start in ~3 s; set it before librosa is imported anywhere.
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "audioclf" / "numba"))
