"""The Kubernetes manifest is valid against the Kubernetes API schema (shipped offline by
kubernetes-validate, strict: unknown fields are errors) and wires the service as deployed."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "clientlens.yaml"
K8S_VERSION = "1.30.0"


def resources() -> list[dict]:
    return [doc for doc in yaml.safe_load_all(MANIFEST.read_text()) if doc]


@pytest.mark.parametrize("resource", resources(), ids=lambda r: f"{r['kind']}/{r['metadata']['name']}")
def test_each_resource_is_valid_against_the_schema(resource):
    kubernetes_validate.validate(resource, K8S_VERSION, strict=True)


def test_the_validator_rejects_a_broken_deployment():
    """The check can fail: a misspelt field and a probe without a handler are schema errors."""
    [deployment] = [r for r in resources() if r["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    broken = {**container, "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSecond": 5}}
    bad = {**deployment, "spec": {**deployment["spec"], "template": {**deployment["spec"]["template"],
           "spec": {**deployment["spec"]["template"]["spec"], "containers": [broken]}}}}  # fmt: skip
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_probes_secret_and_config_map_are_wired():
    by_kind = {r["kind"]: r for r in resources()}
    pod = by_kind["Deployment"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["ports"][0]["containerPort"] == 3000  # bentoml serve's port in a Bento image
    [key] = [e for e in container["env"] if e["name"] == "CLIENTLENS_API_KEY"]
    assert key["valueFrom"]["secretKeyRef"]["name"] == "clientlens-api-key"
    assert container["envFrom"] == [{"configMapRef": {"name": by_kind["ConfigMap"]["metadata"]["name"]}}]
    config = by_kind["ConfigMap"]["data"]
    assert config["MLFLOW_TRACKING_URI"].startswith("http")
    assert "CLIENTLENS_API_KEY" not in config  # the key lives in the Secret only
    # Every CLIENTLENS_* setting in the ConfigMap is one the service reads (no typo goes unnoticed).
    from core.settings import Settings

    settings = Settings.from_env({k: v for k, v in config.items() if k.startswith("CLIENTLENS_")})
    assert settings.workers == int(config["CLIENTLENS_WORKERS"])
    assert settings.reload_seconds == float(config["CLIENTLENS_RELOAD_SECONDS"])
    assert str(settings.features_table) == config["CLIENTLENS_FEATURES_TABLE"]
    selector = by_kind["Service"]["spec"]["selector"]
    assert selector.items() <= by_kind["Deployment"]["spec"]["template"]["metadata"]["labels"].items()
