"""The team stack's S3-compatible object store: its buckets (MLflow artifacts, the DVC remote)
and, for the built-in moto server, which keeps objects in memory, a snapshot to a folder that
`down` writes and `up` loads back."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sftops.stack.settings import DVC_BUCKET, MLFLOW_BUCKET


class ObjectStore:
    """An S3 endpoint and the credentials to reach it (see ``settings.s3_credentials``)."""

    def __init__(self, endpoint: str, credentials: Mapping[str, str]) -> None:
        self.endpoint, self.credentials = endpoint, dict(credentials)

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.credentials["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.credentials["AWS_SECRET_ACCESS_KEY"],
            region_name=self.credentials["AWS_DEFAULT_REGION"],
        )

    def ensure_buckets(self) -> None:
        client = self.client()
        have = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        for bucket in (MLFLOW_BUCKET, DVC_BUCKET):
            if bucket not in have:
                client.create_bucket(Bucket=bucket)

    def keys(self, bucket: str) -> set[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return {obj["Key"] for page in pages for obj in page.get("Contents", [])}

    def snapshot(self, target: Path) -> None:
        """Every bucket's objects into ``target/<bucket>/<key>``, replacing it only once the
        new copy is complete."""
        client = self.client()
        staging = target.with_name(f"{target.name}.new")
        shutil.rmtree(staging, ignore_errors=True)
        for bucket in client.list_buckets().get("Buckets", []):
            name = bucket["Name"]
            (staging / name).mkdir(parents=True, exist_ok=True)
            for key in sorted(self.keys(name)):
                dest = staging / name / key
                dest.parent.mkdir(parents=True, exist_ok=True)
                client.download_file(name, key, str(dest))
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target) if staging.exists() else target.mkdir(parents=True)

    def restore(self, snapshot: Path) -> None:
        """Load a :meth:`snapshot` back (into a new, empty store)."""
        if not snapshot.is_dir():
            return
        client = self.client()
        for bucket_dir in sorted(p for p in snapshot.iterdir() if p.is_dir()):
            client.create_bucket(Bucket=bucket_dir.name)
            for path in sorted(p for p in bucket_dir.rglob("*") if p.is_file()):
                key = path.relative_to(bucket_dir).as_posix()
                client.upload_file(str(path), bucket_dir.name, key)
