"""server/wire.py, the native API's wire format: task → JSON → task and event → JSON → event round trips
(through real JSON text), every encoded task against the native OpenAPI document, and the module's purity."""

from __future__ import annotations

import ast
import json
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from core.detect import guess_kind
from core.events import (
    ConfigChanged,
    Payload,
    TaskChanged,
    TaskDeleted,
    TaskFailed,
    TaskProgress,
    TasksCreated,
    TaskStarted,
    TaskStopped,
    TaskSucceeded,
)
from core.models import Task, TaskKind, TaskOptions, TaskStatus
from server.wire import SPEC_TYPES, api_type_of, decode_event, decode_task, encode_event, encode_task

ROOT = Path(__file__).resolve().parents[2]
MAX_ID = 2**63 - 1
BIG = 2**53

# ---------------------------------------------------------------- strategies

texts = st.text(max_size=40)
some_text = st.text(min_size=1, max_size=40)
hosts = st.sampled_from(["example.org", "www.youtube.com", "www.bilibili.com", "b23.tv", "127.0.0.1", "vimeo.com"])
paths = st.tuples(texts, st.sampled_from(["", ".m3u8", ".bin", ".mp4"])).map(lambda p: quote(p[0]) + p[1])
schemes = st.sampled_from(["http", "https"])
urls = st.builds(lambda scheme, host, path: f"{scheme}://{host}/{path}", schemes, hosts, paths)
header_names = st.from_regex(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,20}", fullmatch=True)
# A value as it is stored: stripped, no control characters but tab (core/validation.py's rule).
header_values = st.text(
    st.characters(blacklist_categories=("Cc", "Zl", "Zp", "Cs"), whitelist_characters="\t"), max_size=30,
).map(str.strip)
timestamps = st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False)  # 1970 to 2100
speeds = st.floats(min_value=0, max_value=1e12, allow_nan=False)
etas = st.none() | st.floats(min_value=0, max_value=1e9, allow_nan=False)


@st.composite
def tasks(draw: st.DrawFn) -> Task:
    kind = draw(st.sampled_from(TaskKind))
    url = draw(urls)
    labels = [None, *(name for name, k in SPEC_TYPES.items() if k == kind)]
    if guess_kind(url) == kind:
        labels.append("mediago")  # what the server stores for "mediago": the kind it guessed from the URL
    downloaded = draw(st.integers(0, BIG))
    return Task(
        id=draw(st.integers(1, MAX_ID)),
        kind=kind,
        url=url,
        name=draw(texts),
        folder=draw(texts),
        headers=tuple(draw(st.lists(st.tuples(header_names, header_values), max_size=4))),
        status=draw(st.sampled_from(TaskStatus)),
        options=TaskOptions(api_type=draw(st.sampled_from(labels))),
        is_live=draw(st.booleans()),
        file=draw(st.none() | some_text),
        downloaded=downloaded,
        total=draw(st.none() | st.integers(1, BIG)),
        speed=draw(speeds),
        eta=draw(etas),
        segments_done=draw(st.integers(0, 10_000)),
        segments_total=draw(st.integers(0, 10_000)),
        error=draw(st.none() | some_text),
        note=draw(st.none() | some_text),
        created_at=draw(timestamps),
        updated_at=draw(timestamps),
    )


def through_json(value: Any) -> Any:
    """What a client parses: the bytes the server writes (server/sse.py and Quart write compact UTF-8)."""
    return json.loads(json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False))


def as_sent(task: Task) -> Task:
    """The task as the wire carries it: whole-second dates, speed and eta to 0.1, no options but the type
    name, no segment counts (a task's JSON has none; progress events do)."""
    return replace(
        task,
        options=TaskOptions(api_type=api_type_of(task)),
        speed=round(task.speed, 1),
        eta=None if task.eta is None else round(task.eta, 1),
        segments_done=0,
        segments_total=0,
        created_at=float(math.floor(task.created_at)),
        updated_at=float(math.floor(task.updated_at)),
    )


# ---------------------------------------------------------------- tasks


@settings(max_examples=300, deadline=None)
@given(tasks())
def test_task_json_task_round_trip(task: Task) -> None:
    sent = encode_task(task)
    back = decode_task(through_json(sent))
    assert back == as_sent(task)
    assert encode_task(back) == sent  # and the decoded task encodes to the same JSON


@settings(max_examples=100, deadline=None)
@given(tasks(), st.none() | some_text)
def test_a_file_found_elsewhere_is_the_file_the_client_sees(task: Task, on_disk: str | None) -> None:
    sent = encode_task(task, on_disk)
    assert sent["exists"] is (on_disk is not None)
    assert sent["file"] == (on_disk if on_disk is not None else task.file)
    assert decode_task(through_json(sent)).file == sent["file"]


def test_decoding_is_lenient_with_what_it_cannot_read() -> None:
    assert decode_task({"id": "7"}).id == 7
    odd = decode_task({"id": 3, "status": "paused", "total": 0, "headers": "not a header", "speed": "fast",
                       "createdDate": "yesterday", "isLive": "yes", "note": ""})
    assert odd.status is TaskStatus.WAITING and odd.total is None and odd.headers == () and odd.speed == 0.0
    assert odd.created_at == 0.0 and odd.is_live is False and odd.note is None
    with pytest.raises(ValueError, match="without an id"):
        decode_task({"name": "x"})


# ---------------------------------------------------------------- events

ids = st.integers(1, MAX_ID)
json_values = st.none() | st.booleans() | st.integers(-BIG, BIG) | texts
payloads: st.SearchStrategy[Payload] = st.one_of(
    st.builds(TasksCreated, st.lists(ids, max_size=5).map(tuple)),
    *(st.builds(cls, ids) for cls in (TaskStarted, TaskSucceeded, TaskStopped, TaskDeleted, TaskChanged)),
    st.builds(TaskFailed, ids, texts),
    st.builds(ConfigChanged, some_text, json_values),
    st.builds(
        TaskProgress, ids, downloaded=st.integers(0, BIG), total=st.none() | st.integers(0, BIG), speed=speeds,
        eta=etas, percent=st.floats(0, 100), segments_done=st.integers(0, 10_000),
        segments_total=st.integers(0, 10_000), note=st.none() | some_text,
    ),
)


@settings(max_examples=300, deadline=None)
@given(payloads)
def test_event_json_event_round_trip(event: Payload) -> None:
    sent = encode_event(event)
    back = decode_event(event.type.value, through_json(sent))
    if isinstance(event, TaskProgress):
        event = replace(event, speed=round(event.speed, 1), eta=None if event.eta is None else round(event.eta, 1),
                        percent=round(event.percent, 2))
    assert back == event
    assert back is not None and encode_event(back) == sent


def test_event_payloads_are_the_documented_ones() -> None:
    """The MediaGo document's shapes (tests/api/test_events.py checks them on a real stream)."""
    assert encode_event(TasksCreated((4, 5))) == {"ids": [4, 5], "count": 2}
    assert encode_event(TaskStarted(4)) == {"id": "4"}
    assert encode_event(TaskFailed(4, "HTTP 404")) == {"id": "4", "error": "HTTP 404"}
    progress = TaskProgress(4, downloaded=5, total=10, speed=1.26, eta=3.04, percent=50.0, note="retrying in 4 s")
    assert json.dumps(encode_event(progress), separators=(",", ":")) == (
        '{"id":"4","downloaded":5,"total":10,"speed":1.3,"eta":3.0,"percent":50.0,'
        '"segmentsDone":0,"segmentsTotal":0,"note":"retrying in 4 s"}'
    )
    assert decode_event("ready", {"lastEventId": 3}) is None
    assert decode_event("download-start", {"id": "x"}) is None
    assert decode_event("download-create", ["not", "an", "object"]) is None


# ---------------------------------------------------------------- the OpenAPI document


@pytest.fixture(scope="module")
def download_task_schema(tmp_path_factory: pytest.TempPathFactory) -> Draft202012Validator:
    """DownloadTask as the native API's OpenAPI document (quart-schema, GET /api/openapi.json) has it."""
    import asyncio

    from core.config import Config, DownloadConfig
    from core.engine import Engine
    from server.app import create_app

    work = tmp_path_factory.mktemp("openapi")
    config = Config(download=DownloadConfig(dir=str(work / "downloads")))
    app = create_app(Engine(work / "tasks.db", config), config, token_required=False)

    async def fetch() -> dict[str, Any]:
        response = await app.test_client().get("/api/openapi.json", headers={"Host": "127.0.0.1"})
        assert response.status_code == 200
        return await response.get_json()  # type: ignore[no-any-return]

    document = asyncio.run(fetch())
    assert document["openapi"].startswith("3.1")  # JSON Schema 2020-12 inside
    schema = {**document, "$ref": "#/components/schemas/DownloadTask"}
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@settings(max_examples=300, deadline=None)
@given(task=tasks(), on_disk=st.none() | some_text)
def test_every_encoded_task_matches_the_openapi_schema(
    download_task_schema: Draft202012Validator, task: Task, on_disk: str | None
) -> None:
    download_task_schema.validate(through_json(encode_task(task, on_disk)))


def test_the_schema_refuses_what_the_server_must_not_send(download_task_schema: Draft202012Validator) -> None:
    good = through_json(encode_task(Task(id=1, kind=TaskKind.HTTP, url="http://x/", name="a", folder="",
                                         headers=(), status=TaskStatus.WAITING, options=TaskOptions())))
    assert download_task_schema.is_valid(good)
    for broken in ({**good, "extra": 1}, {k: v for k, v in good.items() if k != "note"}, {**good, "type": "http"},
                   {**good, "status": "paused"}, {**good, "id": "1"}):
        assert not download_task_schema.is_valid(broken), broken


# ---------------------------------------------------------------- purity


def test_wire_imports_only_core_pydantic_and_the_standard_library() -> None:
    tree = ast.parse((ROOT / "server" / "wire.py").read_text(encoding="utf-8"))
    top: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            top.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            top.add(node.module.split(".")[0])
    assert top - set(sys.stdlib_module_names) - {"core", "pydantic"} == set()
