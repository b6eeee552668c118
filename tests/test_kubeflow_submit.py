"""kubeflow/submit.py: flags -> kfp.Client calls, with a fake client (no network).

These tests check the argument plumbing only: what reaches kfp.Client's constructor
and its run / recurring-run calls. Nothing is submitted anywhere.
"""

from __future__ import annotations

import inspect
import json

import kfp_server_api
import pytest
import yaml
from kfp.client import client as kfp_client

from kubeflow import submit

TRAINER = {"epochs": 100, "learning_rate": 0.003, "image": {"height": 32, "width": 32}}
SPEC = {
    "pipelineInfo": {"name": "digits-transfer"},
    "root": {
        "dag": {"tasks": {}},
        "inputDefinitions": {
            "parameters": {
                "data_root": {"parameterType": "STRING", "defaultValue": "gs://b/data"},
                "trainer_config": {
                    "parameterType": "STRING",
                    "defaultValue": json.dumps(TRAINER),
                },
                "push_destination": {
                    "parameterType": "STRING",
                    "defaultValue": json.dumps(
                        {"filesystem": {"baseDirectory": "gs://b/serving/digits"}}
                    ),
                },
            }
        },
    },
}
ENV = {"KFP_HOST": "https://kfp.example.com"}


class FakeClient:
    """Records kfp.Client calls; returns kfp's own response objects (no network).

    Every call, the constructor included, is bound to the signature of the real
    kfp.Client method of the same name (kfp 2.5): a misspelled or unknown keyword, or a
    missing required argument, raises TypeError as the real client would. Each call is
    recorded with the arguments the caller passed, by parameter name.
    """

    instances: list[FakeClient] = []

    def __init__(self, *args, **kwargs):
        self.kwargs = _bind("__init__", args, kwargs)
        self.calls: list[tuple[str, dict]] = []
        self.existing: list = []  # recurring runs already in the experiment, in pages of 1
        FakeClient.instances.append(self)

    def _record(self, name: str, args: tuple, kwargs: dict) -> dict:
        """Records the call; returns all its arguments, defaults included."""
        passed = _bind(name, args, kwargs)
        self.calls.append((name, passed))
        return {**_defaults(name), **passed}

    def create_run_from_pipeline_package(self, *args, **kwargs):
        self._record("create_run_from_pipeline_package", args, kwargs)
        return kfp_client.RunPipelineResult(self, kfp_server_api.V2beta1Run(run_id="run-1"))

    def create_experiment(self, *args, **kwargs):
        self._record("create_experiment", args, kwargs)
        return kfp_server_api.V2beta1Experiment(experiment_id="exp-1")

    def list_recurring_runs(self, *args, **kwargs):
        call = self._record("list_recurring_runs", args, kwargs)
        assert call["experiment_id"] == "exp-1", call
        pages = {"": (self.existing[:1], "p2"), "p2": (self.existing[1:], "")}
        runs, token = pages[call["page_token"]]
        return kfp_server_api.V2beta1ListRecurringRunsResponse(
            recurring_runs=runs, next_page_token=token
        )

    def delete_recurring_run(self, *args, **kwargs):
        self._record("delete_recurring_run", args, kwargs)
        return {}

    def create_recurring_run(self, *args, **kwargs):
        self._record("create_recurring_run", args, kwargs)
        return kfp_server_api.V2beta1RecurringRun(recurring_run_id="rr-new")


def _signature(name: str) -> inspect.Signature:
    return inspect.signature(getattr(kfp_client.Client, name))


def _bind(name: str, args: tuple, kwargs: dict) -> dict:
    """The arguments passed, by parameter name, bound to the real kfp.Client method
    (TypeError for an unknown keyword or a missing required argument)."""
    bound = _signature(name).bind(None, *args, **kwargs)  # None stands for self
    passed = dict(bound.arguments)
    del passed["self"]
    return passed


def _defaults(name: str) -> dict:
    return {
        p.name: p.default
        for p in _signature(name).parameters.values()
        if p.default is not inspect.Parameter.empty
    }


@pytest.fixture
def package(tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    return str(path)


@pytest.fixture
def client():
    FakeClient.instances.clear()
    yield
    FakeClient.instances.clear()


def _main(argv, environ=ENV, factory=FakeClient):
    return submit.main(argv, client_factory=factory, environ=dict(environ))


def _only_call(name):
    (client,) = FakeClient.instances
    return [kwargs for call, kwargs in client.calls if call == name]


def test_run_with_runtime_values(package, client, capsys):
    argv = ["run", "--package", package, "--data-root", "gs://b/new-data", "--epochs", "5"]
    argv += ["--serving-root", "gs://other/serving/", "--pipeline-root", "gs://b/root2"]
    assert _main(argv) == 0
    (call,) = _only_call("create_run_from_pipeline_package")
    assert call["pipeline_file"] == package
    assert call["pipeline_root"] == "gs://b/root2"
    assert call["experiment_name"] == "tfx-transfer"
    args = call["arguments"]
    assert args["data_root"] == "gs://b/new-data"
    assert json.loads(args["trainer_config"]) == {**TRAINER, "epochs": 5}
    assert json.loads(args["push_destination"]) == {
        "filesystem": {"baseDirectory": "gs://other/serving/digits"}
    }
    assert "run run-1 submitted" in capsys.readouterr().out


def test_no_flags_leave_the_compiled_defaults(package, client):
    assert _main(["run", "--package", package]) == 0
    (call,) = _only_call("create_run_from_pipeline_package")
    assert call["arguments"] == {}
    assert call["pipeline_root"] is None


def test_cache_can_be_turned_off_never_on(package, client):
    assert _main(["run", "--package", package]) == 0
    assert _main(["run", "--package", package, "--no-cache"]) == 0
    first, second = (c.calls[0][1] for c in FakeClient.instances)
    assert first["enable_caching"] is None  # the compiled per-step settings stand
    assert second["enable_caching"] is False


def test_endpoint_and_token_from_environment(package, client):
    env = {**ENV, "KFP_TOKEN": "tok-env", "KFP_NAMESPACE": "team-a"}
    assert _main(["run", "--package", package], environ=env) == 0
    (fake,) = FakeClient.instances
    assert fake.kwargs == {
        "host": "https://kfp.example.com",
        "existing_token": "tok-env",
        "namespace": "team-a",
    }
    (call,) = _only_call("create_run_from_pipeline_package")
    assert "tok-env" not in json.dumps(call, default=str)  # never a run parameter


def test_flags_override_environment(package, client, tmp_path):
    token = tmp_path / "token"
    token.write_text("tok-file\n")
    argv = ["run", "--package", package, "--host", "http://localhost:8080"]
    argv += ["--token-file", str(token)]
    assert _main(argv, environ={**ENV, "KFP_TOKEN": "tok-env"}) == 0
    (fake,) = FakeClient.instances
    assert fake.kwargs == {"host": "http://localhost:8080", "existing_token": "tok-file"}


def test_missing_endpoint_is_a_clear_error(package, client, capsys):
    assert _main(["run", "--package", package], environ={}) == 2
    assert "no KFP endpoint: pass --host" in capsys.readouterr().err
    assert FakeClient.instances == []


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--param", "learning_rate=0.1"], "learning_rate not declared by the pipeline"),
        (["--param", "novalue"], "expected NAME=VALUE"),
        (["--epochs", "0"], "must be an integer >= 1"),
    ],
)
def test_bad_parameters_fail_before_connecting(package, client, capsys, extra, message):
    assert _main(["run", "--package", package, *extra]) == 2
    assert message in capsys.readouterr().err
    assert FakeClient.instances == []


def test_missing_package_says_how_to_compile(tmp_path, client, capsys):
    assert _main(["run", "--package", str(tmp_path / "nope.yaml")]) == 2
    assert "tfx-transfer compile" in capsys.readouterr().err


def test_schedule_creates_a_recurring_run(package, client, capsys):
    argv = ["schedule", "--package", package, "--name", "nightly", "--cron", "0 3 * * *"]
    assert _main([*argv, "--epochs", "20"]) == 0
    (call,) = _only_call("create_recurring_run")
    assert call["cron_expression"] == "0 0 3 * * *"  # KFP's cron has seconds first
    assert call["job_name"] == "nightly"
    assert call["experiment_id"] == "exp-1"
    assert call["pipeline_package_path"] == package
    assert call["max_concurrency"] == 1 and call["no_catchup"] is True
    assert json.loads(call["params"]["trainer_config"])["epochs"] == 20
    assert _only_call("delete_recurring_run") == []
    assert "recurring run rr-new scheduled" in capsys.readouterr().out


def test_schedule_replaces_the_recurring_run_of_the_same_name(package, client):
    existing = [
        kfp_server_api.V2beta1RecurringRun(display_name="weekly", recurring_run_id="rr-0"),
        kfp_server_api.V2beta1RecurringRun(display_name="nightly", recurring_run_id="rr-1"),
    ]  # one per page: the second is only found on page 2

    def factory(**kwargs):
        fake = FakeClient(**kwargs)
        fake.existing = existing
        return fake

    argv = ["schedule", "--package", package, "--name", "nightly", "--cron", "0 0 3 * * *"]
    assert _main(argv, factory=factory) == 0
    assert [c["page_token"] for c in _only_call("list_recurring_runs")] == ["", "p2"]
    assert _only_call("delete_recurring_run") == [{"recurring_run_id": "rr-1"}]
    (fake,) = FakeClient.instances
    names = [name for name, _ in fake.calls]
    assert names.index("create_recurring_run") < names.index("delete_recurring_run")


@pytest.mark.parametrize(
    "name, args, kwargs, message",
    [
        ("__init__", (), {"hostname": "https://kfp"}, "unexpected keyword argument 'hostname'"),
        (
            "create_run_from_pipeline_package",
            (),
            {"pipeline_file": "p.yaml", "params": {}},
            "unexpected keyword argument 'params'",
        ),
        ("create_run_from_pipeline_package", (), {}, "missing a required argument"),
        (
            "create_recurring_run",
            (),
            {"experiment_id": "e", "job_name": "j", "arguments": {}},
            "unexpected keyword argument 'arguments'",
        ),
        ("create_recurring_run", ("e",), {}, "missing a required argument: 'job_name'"),
        ("delete_recurring_run", ("rr-1",), {"force": True}, "unexpected keyword argument"),
        ("delete_recurring_run", (), {"run_id": "rr-1"}, "missing a required argument"),
    ],
)
def test_the_fake_rejects_calls_the_real_client_would(client, name, args, kwargs, message):
    """The fake is only as good as its signatures: calls kfp.Client would refuse fail."""
    fake = FakeClient(host="https://kfp.example.com")
    with pytest.raises(TypeError, match=message):
        if name == "__init__":
            FakeClient(*args, **kwargs)
        else:
            getattr(fake, name)(*args, **kwargs)
    assert fake.calls == []


@pytest.mark.parametrize("cron", ["0 3 * *", "every day", "0 3 * * * * *", "0 3 * * $"])
def test_bad_cron_is_rejected(package, client, capsys, cron):
    argv = ["schedule", "--package", package, "--name", "n", "--cron", cron]
    assert _main(argv) == 2
    assert "is not a cron expression" in capsys.readouterr().err
    assert FakeClient.instances == []


def test_parse_cron():
    assert submit.parse_cron("*/15 * * * *") == "0 */15 * * * *"
    assert submit.parse_cron("0 30 2 * * MON-FRI") == "0 30 2 * * MON-FRI"
