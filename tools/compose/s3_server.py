"""S3 stand-in for MinIO in `make test-compose`: moto's S3 server, kept on the `minio-data` volume.

moto keeps its buckets in memory. To keep objects over `podman-compose down` / `up`, as MinIO
keeps them on its volume, this records every request that changes something (moto's own request
recorder, into ``<data dir>/moto_recording``) and replays those requests at start, before the
service reports healthy (``<data dir>/.ready``). Reads are not kept: the log holds writes only.
Runs in the project image: ``python tools/compose/s3_server.py [DATA_DIR]`` (listens on :9000).
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

DATA = Path(sys.argv[1] if len(sys.argv) > 1 else "/opt/airflow/state")
RECORDING = DATA / "moto_recording"
READY = DATA / ".ready"
WRITES = {"PUT", "POST", "DELETE"}
os.environ["MOTO_ENABLE_RECORDING"] = "true"  # read when moto is imported
os.environ["MOTO_RECORDER_FILEPATH"] = str(RECORDING)

import requests  # noqa: E402 - after the recorder's environment
from moto.moto_api import recorder  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

_LOCK = threading.Lock()
_record = recorder._record_request


def _record_writes_one_at_a_time(request: Any, body: Any = None) -> None:
    """moto's recorder appends from every server thread without a lock (two requests could share a
    line of the log): one at a time here, and only the requests that change something."""
    if request.method not in WRITES:
        return
    with _LOCK:
        _record(request, body)


recorder._record_request = _record_writes_one_at_a_time  # type: ignore[method-assign]


def _entries(text: str) -> list[dict[str, Any]]:
    """Every JSON object of the log, in order (one per line; a line that holds two is read as two)."""
    decoder = json.JSONDecoder()
    entries: list[dict[str, Any]] = []
    for line in text.splitlines():
        at = 0
        while at < len(line.strip()):
            entry, end = decoder.raw_decode(line, at)
            entries.append(entry)
            at = end
    return entries


def replay(base_url: str) -> int:
    """Send the recorded writes again, in order; keep only the writes in the log. Returns how many."""
    if not RECORDING.exists():
        RECORDING.touch()
        return 0
    entries = _entries(RECORDING.read_text())
    writes = [entry for entry in entries if entry.get("method") in WRITES]
    recorder.stop_recording()  # the replay itself is not recorded again
    uploads: dict[str, str] = {}  # multipart upload id in the log -> the id this replay got
    started: dict[str, str] = {}  # object path -> id of the multipart upload just created for it
    with requests.Session() as http:
        for entry in writes:
            body = entry.get("body") or b""
            if entry.get("body_encoded"):
                body = base64.b64decode(body)
            url = urlsplit(entry["url"])
            query = parse_qsl(url.query, keep_blank_values=True)
            recorded = dict(query).get("uploadId")
            if recorded is not None:  # a part, the completion or an abort: the new upload's id
                uploads.setdefault(recorded, started.get(url.path, recorded))
                query = [(k, uploads[recorded] if k == "uploadId" else v) for k, v in query]
            path = url.path + (f"?{urlencode(query)}" if query else "")
            headers = {k: v for k, v in entry["headers"].items() if k.lower() != "transfer-encoding"}
            answer = http.request(entry["method"], base_url + path, headers=headers, data=body, timeout=60)
            if entry["method"] == "POST" and "uploads" in dict(query):  # CreateMultipartUpload
                found = re.search(r"<UploadId>([^<]+)</UploadId>", answer.text)
                if found:
                    started[url.path] = found.group(1)
    tmp = RECORDING.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(entry) + "\n" for entry in writes))
    tmp.replace(RECORDING)
    recorder.start_recording()
    return len(writes)


def main() -> None:
    READY.unlink(missing_ok=True)
    port = int(os.environ.get("S3_PORT", "9000"))
    server = ThreadedMotoServer(ip_address=os.environ.get("S3_HOST", "0.0.0.0"), port=port, verbose=False)  # noqa: S104
    server.start()
    began = time.monotonic()
    replayed = replay(f"http://127.0.0.1:{port}")
    READY.touch()
    print(f"s3 stand-in on :{port}, {replayed} recorded writes replayed in {time.monotonic() - began:.1f} s",
          flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
