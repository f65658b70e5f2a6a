"""workflow/profiles/kubernetes against a real S3 server (moto, on 127.0.0.1).

Pods share no file system, so that profile puts every file in S3 storage. Here, on .test/small:
the profile's keys load with the real kubernetes executor and s3 storage plugins (a dry run that
checks storage), and the workflow runs for real with its files in S3, jobs run locally (a
cluster cannot be had here).
"""

import io
import socket

import pandas as pd
import pytest
import yaml
from _snakemake import REPO, install_config, job_counts, snakemake

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")
pytest.importorskip("snakemake_executor_plugin_kubernetes")
pytest.importorskip("snakemake_storage_plugin_s3")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s3():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    url = f"http://127.0.0.1:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    client.create_bucket(Bucket="imprint")
    yield url, client
    server.stop()


def profile_for(tmp_path, url, executor):
    """The shipped profile with its placeholders pointed at the local S3 server."""
    profile = yaml.safe_load((REPO / "workflow/profiles/kubernetes/config.yaml").read_text())
    assert profile["default-storage-provider"] == "s3"
    assert all(r.get("gpu_manufacturer") for r in profile["set-resources"].values())
    profile.update(
        {
            "default-storage-prefix": f"s3://imprint/{tmp_path.name}",
            "storage-s3-endpoint-url": url,
            "storage-s3-access-key": "test",
            "storage-s3-secret-key": "test",
        }
    )
    if executor != "kubernetes":
        profile.pop("executor"), profile.pop("jobs")
        profile.pop("kubernetes-namespace"), profile.pop("container-image")
    folder = tmp_path / f"profile-{executor}"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(profile))
    return folder


def test_kubernetes_profile_plans_with_the_real_plugins(tmp_path, s3):
    install_config("small", tmp_path)
    profile = profile_for(tmp_path, s3[0], "kubernetes")
    dry = snakemake(tmp_path, "-n", "--workflow-profile", str(profile))
    plan = job_counts(dry.stdout + dry.stderr)
    # small's two tasks are small: one imprinting job evaluates both (planning/batches.py).
    assert plan["imprint_grid"] == 1 and plan["extract_embeddings"] == 2
    assert "s3://imprint/" in dry.stdout + dry.stderr


def test_workflow_runs_with_every_file_in_s3(tmp_path, s3):
    url, client = s3
    install_config("small", tmp_path)
    profile = profile_for(tmp_path, url, "local")
    snakemake(tmp_path, "--workflow-profile", str(profile))
    prefix = f"{tmp_path.name}/results/"
    keys = {
        o["Key"][len(prefix) :]
        for o in client.list_objects_v2(Bucket="imprint", Prefix=prefix)["Contents"]
    }
    assert {
        "imprint/small.parquet",
        "embeddings/digits/pixels/train/embeddings.npy",
        "embeddings/digits/pixels/train/meta.json",
    } <= keys
    body = client.get_object(Bucket="imprint", Key=prefix + "imprint/small.parquet")["Body"]
    res = pd.read_parquet(io.BytesIO(body.read()))
    assert len(res) == 3 * 2 and res.accuracy.between(0, 100).all()
    # Nothing of the results stays on the local disk: storage is the only place they live.
    assert not (tmp_path / "results").exists()
