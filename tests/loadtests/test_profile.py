"""loadtests.profile's reading of py-spy's raw (folded) stacks: samples per thread, and each event-loop sample
given to the innermost frame that names a layer."""

from loadtests.profile import summarise


def test_samples_go_to_their_thread_and_the_innermost_layer(tmp_path):
    raw = tmp_path / "worker-1.txt"
    raw.write_text(
        "\n".join(
            [
                "thread (1): MainThread;run (asyncio/runners.py:118) 10",
                "thread (1): MainThread;__call__ (_bentoml_impl/server/app.py:9);handle (service/http_api.py:150) 7",
                "thread (1): MainThread;handle (service/http_api.py:150);parse (starlette/formparsers.py:256);"
                "_parseparam (python_multipart/multipart.py:205) 3",
                "thread (1): MainThread;wrapped_send (bentoml/_internal/server/http/access.py:133);"
                "emit (logging/__init__.py:1113) 2",
                "thread (2): scorer;_score (service/scorer.py:140) 5",
            ]
        )
        + "\n"
    )
    threads, layers, total = summarise(raw)
    assert threads == {"MainThread": 22, "scorer": 5}
    assert total == 22
    assert layers == {
        "other (uvloop, asyncio)": 10,
        "our handler": 7,
        "multipart parsing": 3,
        "access log (logging)": 2,
    }
