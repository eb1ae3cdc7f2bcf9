"""The deployment files, validated without Docker or a cluster.

- docker-compose.yml against the Compose Specification's JSON schema (vendored in
  deploy/schemas/, with its licence and source), plus the platform's own rules: every
  long-running service has a health check and a restart policy, the Python processes
  share one image, the one-shot migration gates them, every variable they are given is
  in README.md's configuration table.
- deploy/k8s/*.yaml against the Kubernetes API schemas that kubernetes-validate bundles
  (strict: unknown fields are errors), plus: Deployments have replicas, probes and
  resources; Services select pods that a Deployment makes, on a named port they expose;
  every variable is in README.md's table; kustomization.yaml lists every manifest.

What this cannot check: that the image builds, that the probes pass against live
processes, that RabbitMQ and PostgreSQL are reachable, admission policies of a real
cluster (`kubectl apply --dry-run=server`), or `docker compose config`'s interpolation.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
K8S = ROOT / "deploy" / "k8s"
COMPOSE_SCHEMA = ROOT / "deploy" / "schemas" / "compose-spec.json"
KUBERNETES_VERSION = "1.30.0"  # the oldest version these manifests target (grpc probes: GA 1.27)

INFRA = {"rabbitmq", "postgres"}
ONE_SHOT = {"migrate"}
PYTHON_SERVICES = {"goal", "progress", "reporting", "notification", "directory", "relay", "gateway"}


def readme_variables() -> set[str]:
    """The variable names of README.md's "Configuration" section (backticked names;
    `OKR_JWT_PUBLIC_KEY(_FILE)` stands for both)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    names = set()
    for name, suffix in re.findall(r"`([A-Z][A-Z0-9_]+)(\(_FILE\))?", section):
        names.add(name)
        if suffix:
            names.add(name + "_FILE")
    return names


# ------------------------------------------------------------------ compose


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def compose_validator():
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_compose_file_matches_the_compose_specification(compose, compose_validator):
    errors = sorted(compose_validator.iter_errors(compose), key=lambda e: e.json_path)
    assert not errors, "\n".join(f"{e.json_path}: {e.message}" for e in errors)


def test_the_compose_schema_rejects_mistakes(compose, compose_validator):
    """The vendored schema is strict enough to catch a typo (a control for the test above)."""
    broken = json.loads(json.dumps(compose))
    broken["services"]["goal"]["restart_policy"] = "always"
    assert list(compose_validator.iter_errors(broken))
    broken = json.loads(json.dumps(compose))
    broken["services"]["goal"]["depends_on"]["migrate"]["condition"] = "service_done"
    assert list(compose_validator.iter_errors(broken))


def test_compose_has_every_process(compose):
    assert set(compose["services"]) == INFRA | ONE_SHOT | PYTHON_SERVICES


def test_developer_infrastructure_starts_alone(compose):
    """`docker compose up -d` (README.md) starts only RabbitMQ and PostgreSQL, on the ports
    and with the test database the test suite expects; the platform is profile `stack`."""
    services = compose["services"]
    for name in INFRA:
        assert "profiles" not in services[name]
        assert "depends_on" not in services[name]
    for name in ONE_SHOT | PYTHON_SERVICES:
        assert services[name]["profiles"] == ["stack"]
    assert services["rabbitmq"]["image"] == "rabbitmq:3.13-management"
    assert "5672:5672" in services["rabbitmq"]["ports"]
    assert "5432:5432" in services["postgres"]["ports"]
    assert services["postgres"]["environment"]["POSTGRES_DB"] == "test"
    assert services["postgres"]["environment"]["POSTGRES_HOST_AUTH_METHOD"] == "trust"


def test_long_running_services_have_health_checks_and_restart_policies(compose):
    for name, service in compose["services"].items():
        if name in ONE_SHOT:
            assert service["restart"] == "no", name
            assert "healthcheck" not in service, name
            continue
        assert service.get("restart") == "unless-stopped", name
        test = service["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name


def test_python_processes_share_one_image(compose):
    services = compose["services"]
    images = {services[n]["image"] for n in ONE_SHOT | PYTHON_SERVICES}
    builds = {json.dumps(services[n]["build"], sort_keys=True) for n in ONE_SHOT | PYTHON_SERVICES}
    assert len(images) == 1 and len(builds) == 1
    assert json.loads(builds.pop()) == {"context": ".", "dockerfile": "Dockerfile"}
    assert (ROOT / "Dockerfile").is_file()


def test_services_wait_for_healthy_infrastructure_and_the_migration(compose):
    services = compose["services"]
    assert services["migrate"]["command"] == ["okr", "migrate"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in PYTHON_SERVICES:
        assert services[name]["depends_on"] == {
            "rabbitmq": {"condition": "service_healthy"},
            "postgres": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }, name


def test_compose_commands_and_health_probes(compose):
    services = compose["services"]
    for name in ("goal", "progress", "reporting", "notification", "directory"):
        assert services[name]["command"] == [
            "nameko", "run", "--config", "services/config.yaml", f"okr_services.{name}.service"]
    for name in ("goal", "progress", "notification", "directory"):
        test = services[name]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"] and test[3] == compose["x-amqp-probe"]
        assert test[4] == f"rpc-{name}"  # nameko's RPC queue of the service
    assert services["relay"]["command"] == ["python", "-m", "okr_services.relay"]
    assert services["gateway"]["command"] == ["python", "-m", "okr_services.gateway"]
    assert "Health" in services["gateway"]["healthcheck"]["test"][3]
    assert "127.0.0.1:8000/" in services["reporting"]["healthcheck"]["test"][3]
    assert "50051:50051" in services["gateway"]["ports"]
    assert "8000:8000" in services["reporting"]["ports"]
    for name in PYTHON_SERVICES:  # probes are Python, compiled here (no `$`: compose would interpolate it)
        script = services[name]["healthcheck"]["test"][3]
        compile(script, f"{name} healthcheck", "exec")
        assert "$" not in script


def test_compose_configuration_is_in_the_readme(compose):
    documented = readme_variables()
    env = compose["x-okr-env"]
    for name in ONE_SHOT | PYTHON_SERVICES:
        assert compose["services"][name]["environment"] == env, name
    assert set(env) <= documented, set(env) - documented
    for key in ("OKR_DATABASE_URL", "OKR_REPORTING_DATABASE_URL", "OKR_NOTIFICATION_DATABASE_URL",
                "OKR_DIRECTORY_DATABASE_URL",
                "OKR_GATEWAY_DATABASE_URL"):
        assert "postgresql+psycopg2://" in env[key] and "@postgres:5432/" in env[key], key
    assert "@rabbitmq:5672/" in env["AMQP_URI"]


def test_compose_volumes_are_named_and_the_databases_created(compose):
    assert set(compose["volumes"]) == {"pgdata", "rabbitmq-data"}
    mounts = compose["services"]["postgres"]["volumes"]
    assert "pgdata:/var/lib/postgresql/data" in mounts
    init = [m for m in mounts if "docker-entrypoint-initdb.d" in m]
    assert init and (ROOT / init[0].split(":")[0]).is_file()
    sql = (ROOT / init[0].split(":")[0]).read_text()
    env = compose["x-okr-env"]
    for key in ("OKR_DATABASE_URL", "OKR_REPORTING_DATABASE_URL", "OKR_NOTIFICATION_DATABASE_URL",
                "OKR_DIRECTORY_DATABASE_URL",
                "OKR_GATEWAY_DATABASE_URL"):
        database = env[key].rsplit("/", 1)[1].rstrip("}")
        assert f"CREATE DATABASE {database} " in sql, key


# --------------------------------------------------------------- kubernetes


def k8s_documents() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path.name, doc))
    return docs


DOCS = k8s_documents()


def of_kind(kind: str) -> list[dict]:
    return [doc for _, doc in DOCS if doc["kind"] == kind]


@pytest.mark.parametrize("name,doc", DOCS, ids=[f"{n}:{d['kind']}/{d['metadata']['name']}" for n, d in DOCS])
def test_manifest_matches_the_kubernetes_schema(name, doc):
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_kubernetes_schema_rejects_mistakes():
    """A control: strict validation catches an unknown field and a wrong type."""
    deployment = json.loads(json.dumps(of_kind("Deployment")[0]))
    deployment["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    deployment = json.loads(json.dumps(of_kind("Deployment")[0]))
    deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"] = ["cpu"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_every_resource_is_namespaced_and_listed_in_the_kustomization():
    for _, doc in DOCS:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "okr", doc["metadata"]["name"]
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert kustomization["resources"] == files


def containers(doc: dict) -> list[dict]:
    return doc["spec"]["template"]["spec"]["containers"]


def test_a_deployment_per_service_with_replicas_probes_and_resources():
    deployments = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in of_kind("Deployment")}
    assert set(deployments) == PYTHON_SERVICES
    for name in ("goal", "progress", "reporting", "directory", "relay", "gateway"):
        assert deployments[name]["spec"]["replicas"] >= 2, name
    images = set()
    for name, doc in deployments.items():
        selector = doc["spec"]["selector"]["matchLabels"]
        labels = doc["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), name
        for container in containers(doc):
            images.add(container["image"])
            assert container["readinessProbe"] and container["livenessProbe"], name
            for key in ("cpu", "memory"):
                assert container["resources"]["requests"][key], name
            assert container["resources"]["limits"]["memory"], name
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert doc["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert containers(deployments["gateway"])[0]["readinessProbe"]["grpc"] == {"port": 50051}
    assert containers(deployments["reporting"])[0]["readinessProbe"]["httpGet"]["path"].startswith("/api/")
    assert len(images) == 1, images
    (job,) = of_kind("Job")
    assert containers(job)[0]["command"] == ["okr", "migrate"]
    assert {containers(job)[0]["image"]} == images


def test_exec_probes_are_python_that_compiles():
    for doc in of_kind("Deployment"):
        for container in containers(doc):
            for probe in ("readinessProbe", "livenessProbe"):
                command = container[probe].get("exec", {}).get("command")
                if command:
                    assert command[:2] == ["python", "-c"]
                    compile(command[2], f"{doc['metadata']['name']} {probe}", "exec")


def test_services_select_pods_on_ports_they_expose():
    services = {s["metadata"]["name"]: s for s in of_kind("Service")}
    assert {"okr-gateway", "okr-board"} <= set(services)
    assert [p["port"] for p in services["okr-gateway"]["spec"]["ports"]] == [50051]
    assert [p["port"] for p in services["okr-board"]["spec"]["ports"]] == [8000]
    for name, service in services.items():
        selector = service["spec"]["selector"]
        matches = [d for d in of_kind("Deployment")
                   if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert len(matches) == 1, name
        port_names = {p["name"] for c in containers(matches[0]) for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, (name, port)


def test_kubernetes_configuration_is_in_the_readme_and_covers_the_pods():
    documented = readme_variables()
    (config,) = of_kind("ConfigMap")
    (secret,) = of_kind("Secret")
    provided = {("ConfigMap", config["metadata"]["name"]): set(config["data"]),
                ("Secret", secret["metadata"]["name"]): set(secret["stringData"])}
    every_key = set().union(*provided.values())
    assert every_key <= documented, every_key - documented
    assert not set(config["data"]) & set(secret["stringData"])
    for key in ("OKR_DATABASE_URL", "OKR_REPORTING_DATABASE_URL", "OKR_NOTIFICATION_DATABASE_URL",
                "OKR_DIRECTORY_DATABASE_URL",
                "OKR_GATEWAY_DATABASE_URL", "AMQP_URI"):
        assert key in secret["stringData"], key  # credentials live in the Secret
    for doc in of_kind("Deployment") + of_kind("Job"):
        for container in containers(doc):
            sources = {("ConfigMap", s["configMapRef"]["name"]) if "configMapRef" in s
                       else ("Secret", s["secretRef"]["name"]) for s in container.get("envFrom", [])}
            assert sources == set(provided), doc["metadata"]["name"]
            for var in container.get("env", []):
                assert var["name"] in documented, var["name"]
                ref = var.get("valueFrom", {})
                if "configMapKeyRef" in ref:
                    assert ref["configMapKeyRef"]["key"] in config["data"]
                if "secretKeyRef" in ref:
                    assert ref["secretKeyRef"]["key"] in secret["stringData"]
    # the exec probes read these
    assert {"AMQP_URI", "OKR_DATABASE_URL"} <= every_key


def test_secret_placeholders_are_marked():
    (secret,) = of_kind("Secret")
    for key, value in secret["stringData"].items():
        assert "CHANGE-ME" in value, key
