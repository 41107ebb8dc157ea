"""The S3 stand-in of `make test-compose` keeps its objects over a restart, as MinIO does on its volume.

tools/compose/s3_server.py as a process on loopback: objects written from many threads at once
(moto's recorder appended without a lock, and one line of its log held two requests), a restart,
and every object is there with its bytes; reads are not kept in the log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3

from tests.conftest import free_port, wait_http

SERVER = Path(__file__).resolve().parents[2] / "tools" / "compose" / "s3_server.py"


def _start(data: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "S3_PORT": str(port), "S3_HOST": "127.0.0.1"}
    proc = subprocess.Popen([sys.executable, str(SERVER), str(data)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    wait_http(f"http://127.0.0.1:{port}/moto-api/", timeout=60, proc=proc)
    while not (data / ".ready").exists():
        assert proc.poll() is None
    return proc


def test_objects_survive_a_restart_and_the_log_keeps_writes_only(tmp_path: Path) -> None:
    port = free_port()
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id="k",
                      aws_secret_access_key="s", region_name="us-east-1")
    proc = _start(tmp_path, port)
    try:
        s3.create_bucket(Bucket="autoretrain")
        bodies = {f"mlflow/{i}/model.skops": os.urandom(2048 + i) for i in range(40)}
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda kv: s3.put_object(Bucket="autoretrain", Key=kv[0], Body=kv[1]), bodies.items()))
        s3.delete_object(Bucket="autoretrain", Key="mlflow/0/model.skops")
        # a multipart upload (MLflow's and boto3's way for big artifacts): the replay gets new upload ids
        big = os.urandom(6 * 1024 * 1024)
        started = s3.create_multipart_upload(Bucket="autoretrain", Key="mlflow/big/model.skops")
        parts = [s3.upload_part(Bucket="autoretrain", Key="mlflow/big/model.skops", PartNumber=n, Body=chunk,
                                UploadId=started["UploadId"])["ETag"]
                 for n, chunk in enumerate((big[:5 * 1024 * 1024], big[5 * 1024 * 1024:]), start=1)]
        s3.complete_multipart_upload(Bucket="autoretrain", Key="mlflow/big/model.skops", UploadId=started["UploadId"],
                                     MultipartUpload={"Parts": [{"ETag": e, "PartNumber": n}
                                                                for n, e in enumerate(parts, start=1)]})
        bodies["mlflow/big/model.skops"] = big
        for _ in range(5):
            s3.list_objects_v2(Bucket="autoretrain")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    methods = [json.loads(line)["method"] for line in (tmp_path / "moto_recording").read_text().splitlines()]
    assert set(methods) <= {"PUT", "POST", "DELETE"} and len(methods) == 46, methods

    proc = _start(tmp_path, port)
    try:
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="autoretrain").get("Contents", [])}
        assert keys == set(bodies) - {"mlflow/0/model.skops"}
        for key in [*sorted(keys)[:5], "mlflow/big/model.skops"]:
            assert s3.get_object(Bucket="autoretrain", Key=key)["Body"].read() == bodies[key]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
