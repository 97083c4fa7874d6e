"""Per-process caches of the push path: the champion alias is used for at most its max age and renewed
in the background after half of it, so steady pushes do not wait on the registry."""

from __future__ import annotations

import threading
import time

ROWS = "x0,x1,y\n" + "".join(f"{10.0 + i},{50.0 + i % 7},{10.5 + i}\n" for i in range(40))


def test_alias_is_renewed_in_the_background_and_never_used_past_its_max_age(make_app, champion, auth):
    app = make_app(MONITOR_SOURCE="push", MONITOR_PUSH_ALIAS_MAX_AGE_SECONDS=4)
    registry = app.extensions["driftline"].registry
    asked: list[str] = []
    real = registry.resolve

    def counting(name, alias=None):  # the real registry call, counted and named by its thread
        asked.append(threading.current_thread().name)
        return real(name, alias)

    client = app.test_client()

    def push(batch: str) -> None:
        resp = client.post(f"/api/models/{champion}/batches", data=ROWS.encode(), content_type="text/csv",
                           headers={**auth, "X-Batch-Id": batch})
        assert resp.status_code in (201, 202), resp.get_json()

    push("warm")  # the model and its profile are loaded: the pushes below take a fraction of a second
    app.extensions["driftline"].service._aliases.clear()
    registry.resolve = counting
    push("a")
    assert len(asked) == 1  # first push: asked in the request
    push("b")
    assert len(asked) == 1  # fresh: reused
    time.sleep(2.3)  # past half the max age: the next push uses the answer and renews it behind
    push("c")
    deadline = time.monotonic() + 10
    while len(asked) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert asked[1] == "alias-renewal"
    time.sleep(4.5)  # past the max age with no push: the next one asks in the request again
    push("d")
    assert asked[-1] != "alias-renewal" and len(asked) == 3


def test_a_new_worker_preloads_the_models_in_use_so_its_first_push_loads_nothing(make_app, champion, auth):
    from monitor.preload import models_in_use, preload

    first = make_app(MONITOR_SOURCE="push")
    resp = first.test_client().post(f"/api/models/{champion}/batches", data=ROWS.encode(),
                                    content_type="text/csv", headers={**auth, "X-Batch-Id": "seen"})
    assert resp.status_code == 201
    fresh = make_app(MONITOR_SOURCE="push")  # a worker starting: nothing cached yet
    monitor = fresh.extensions["driftline"]
    assert champion in models_in_use(monitor)  # evaluated recently, though not in the config file
    assert preload(monitor) == [(champion, "1")]
    loads: list[tuple[str, str]] = []
    real = monitor.registry._load_uncached
    monitor.registry._load_uncached = lambda name, version, *rest: loads.append((name, version)) or real(
        name, version, *rest)
    resp = fresh.test_client().post(f"/api/models/{champion}/batches", data=ROWS.encode(),
                                    content_type="text/csv", headers={**auth, "X-Batch-Id": "after-preload"})
    assert resp.status_code == 201
    assert loads == []  # the model, its profile and the alias came from the preload
