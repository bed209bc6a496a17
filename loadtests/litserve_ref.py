"""The benchmark's reference peer: LitServe doing exactly our work, so every run shows where we stand.

    python -m loadtests.litserve_ref --model-dir runs/x/model --port 8100 [--workers 2 --batch 32 --timeout-ms 10]

`POST /classify` takes the same multipart upload as ours; each inference worker loads our model folder with
`audiocore.artifact.load` and does what our service does per clip (`audiocore.decode.decode`, then
`audiocore.features.extract` with the model's FeatureConfig), batches clips with LitServe's own batcher and
scores all their windows in one Keras call, with TensorFlow's threads set as ours are (`--model-threads`), after
the same warm-up as ours (librosa's kernels compiled, the model traced). The answer carries the same top-k
`predictions`. LitServe is a benchmark/dev dependency only (the `loadtest` extra),
never part of the service or the Bento. Health: `GET /health`.
"""

import argparse
import sys
from pathlib import Path

import litserve as ls
import numpy as np


class AudioAPI(ls.LitAPI):
    def __init__(self, folder: Path, model_threads: int, top_k: int, **kwargs):
        super().__init__(api_path="/classify", **kwargs)
        self.folder, self.model_threads, self.top_k = folder, model_threads, top_k

    def setup(self, device) -> None:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(self.model_threads)
        tf.config.threading.set_inter_op_parallelism_threads(self.model_threads)
        from audiocore import artifact

        self.model, meta, self.aggregator = artifact.load(self.folder)
        self.cfg, self.labels = meta.features, list(meta.labels)
        # As ours does before it is ready: compile librosa's kernels and trace the model on a clip.
        from audiocore.features import extract

        tone = 0.3 * np.sin(np.linspace(0, 2 * np.pi * 440, self.cfg.sample_rate)).astype(np.float32)
        for n in (1, 2, 3, 8):
            self.predict([extract(tone, self.cfg).windows] * n)

    def decode_request(self, request) -> np.ndarray:
        from audiocore.decode import decode
        from audiocore.features import extract

        data = request["audio"].file.read()
        return extract(decode(data, self.cfg.sample_rate, max_seconds=60).samples, self.cfg).windows

    def batch(self, clips: list[np.ndarray]) -> list[np.ndarray]:
        return clips  # clips have different numbers of windows: predict concatenates them

    def unbatch(self, outputs: list[np.ndarray]) -> list[np.ndarray]:
        return outputs

    def predict(self, clips: list[np.ndarray]) -> list[np.ndarray]:
        counts = [len(c) for c in clips]
        probs = np.asarray(self.model.predict_on_batch(np.concatenate(clips)))
        return np.split(probs, np.cumsum(counts)[:-1])

    def encode_response(self, window_probs: np.ndarray) -> dict:
        from audiocore.aggregate import top_k

        ranked = top_k(self.aggregator.clip(window_probs), self.labels, self.top_k)
        return {"predictions": [{"label": label, "score": round(score, 6)} for label, score in ranked]}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, required=True, help="a model folder (model.keras + metadata.json)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--workers", type=int, default=2, help="inference worker processes")
    parser.add_argument("--batch", type=int, default=32, help="LitServe's max_batch_size")
    parser.add_argument("--timeout-ms", type=float, default=10.0, help="LitServe's batch_timeout")
    parser.add_argument("--model-threads", type=int, default=1, help="TensorFlow threads per worker (as ours)")
    parser.add_argument("--top-k", type=int, default=3)
    args = parser.parse_args(argv)
    api = AudioAPI(
        args.model_dir.resolve(),
        args.model_threads,
        args.top_k,
        max_batch_size=args.batch,
        batch_timeout=args.timeout_ms / 1000,
    )
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=args.workers, timeout=60)
    # LitServe's default log level (uvicorn logs every request, as BentoML does ours)
    server.run(host=args.host, port=args.port, generate_client_file=False, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
