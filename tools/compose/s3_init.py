"""The bucket every service writes to, on the S3 stand-in (replaces `minio-init` in `make test-compose`).

MinIO's per-consumer users and policies (deploy/minio/) have no moto counterpart: the stand-in
accepts any key, so the compose test does not verify S3 least privilege (docs/deploy.md says so).
"""

import os

import boto3

s3 = boto3.client("s3", endpoint_url=os.environ.get("S3_ENDPOINT", "http://minio:9000"),
                  aws_access_key_id="init", aws_secret_access_key="init", region_name="us-east-1")
names = {bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])}
if "autoretrain" not in names:
    s3.create_bucket(Bucket="autoretrain")
print("bucket autoretrain ready")
