"""Training: labelled clips -> a class-weighted, augmented CNN, a readable report, and a registered model."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's C++ start-up chatter out of the progress output
