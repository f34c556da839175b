"""radosgw's own bucket notifications reach `framemask serve` (issue 11: they cannot send a bearer token):
a topic whose HTTP push endpoint carries `?token=`, a notification on the raw bucket, an object put under
`incoming/` -> the video is registered; one put under `videos/` (the API's own keys) is ignored. The recipe
is the one `docs/service.md` ("Storage event hooks") documents."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from support.api import ADMIN, make_settings, settings_env, stop_process
from support.servers import _wait_port, free_port

pytestmark = [pytest.mark.services, pytest.mark.slow]

TOKEN = "rgw-hook-token-for-tests-0123456789"


def _videos(port: int) -> list[dict[str, object]]:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/videos", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as resp:
        return list(json.load(resp)["items"])


def test_radosgw_notifications_register_objects_through_the_url_token(tmp_path: Path, rgw_server, make) -> None:
    boto3 = pytest.importorskip("boto3")
    suffix = uuid.uuid4().hex[:6]
    settings = make_settings(
        tmp_path / "data", workers=0, webhook_url_token=TOKEN, s3_endpoint=rgw_server.endpoint,
        s3_access_key=rgw_server.access_key, s3_secret_key=rgw_server.secret_key,
        bucket_raw=f"raw-{suffix}", bucket_processed=f"processed-{suffix}", bucket_thumbnails=f"thumbs-{suffix}",
    )  # fmt: skip
    port = free_port()
    cli = Path(sys.executable).with_name("framemask")
    env = {**settings_env(settings), **{k: v for k, v in os.environ.items() if k == "FRAMEMASK_MODEL_DIR"}}
    with open(tmp_path / "serve.log", "ab") as log:
        proc = subprocess.Popen(
            [str(cli), "-v", "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        _wait_port(port, proc, 60, "framemask serve")
        keys = {"aws_access_key_id": rgw_server.access_key, "aws_secret_access_key": rgw_server.secret_key}
        sns = boto3.client("sns", endpoint_url=rgw_server.endpoint, region_name="default", **keys)
        s3 = boto3.client("s3", endpoint_url=rgw_server.endpoint, region_name="default", **keys)
        push = f"http://127.0.0.1:{port}/api/hooks/s3?token={TOKEN}"
        topic = sns.create_topic(Name=f"framemask-{suffix}", Attributes={"push-endpoint": push})["TopicArn"]
        config = {"TopicConfigurations": [{"Id": "framemask", "TopicArn": topic, "Events": ["s3:ObjectCreated:*"]}]}
        s3.put_bucket_notification_configuration(Bucket=settings.bucket_raw, NotificationConfiguration=config)

        s3.upload_file(str(make("cfr")), settings.bucket_raw, "videos/0123456789abcdef0123456789abcdef/own.mp4")
        s3.upload_file(str(make("cfr")), settings.bucket_raw, "incoming/from-rgw.mp4")
        deadline = time.monotonic() + 60
        while not (found := [v for v in _videos(port) if v["filename"] == "from-rgw.mp4"]):
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(0.5)
        assert found[0]["status"] == "queued"
        assert [v["filename"] for v in _videos(port)] == ["from-rgw.mp4"]  # the videos/ key was ignored
        served = (tmp_path / "serve.log").read_text()
        assert "ignored: keys under videos/" in served
        assert "POST /api/hooks/s3?token=[redacted]" in served and TOKEN not in served  # kept out of the log
    finally:
        stop_process(proc)
