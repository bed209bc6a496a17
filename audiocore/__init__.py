"""Audio decoding, feature extraction and the model-artifact contract, shared by training and serving.

Training and the service import this package and nothing of each other, so the features a model was trained on
are, by construction, the features it is served with.

Modules, in the order a clip meets them: decode (bytes or a file -> mono waveform, or a typed error from errors),
features (waveform -> windows -> MFCC / log-mel), clip (decode -> windows in one call, with size and length limits),
aggregate (window scores -> the clip's top-k); and config (FeatureConfig), artifact (the model folder: Keras model
+ metadata.json), store (a BentoML tag -> its model folder); ops_features (the same features in keras.ops, for
any backend and device, and a model that takes waveforms; measured against librosa, not yet on the served path).
"""

import os
from pathlib import Path

# librosa's first feature call JIT-compiles numba kernels (~35 s cold). A writable cache dir makes every later
# process start in ~3 s; set it before librosa is imported anywhere.
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "audioclf" / "numba"))
