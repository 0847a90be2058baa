"""What every container gives up: root, capabilities, privilege escalation, a writable root."""

from __future__ import annotations

from depot.recording import Recording
from tests.conftest import containers

CAPABILITIES = {
    "postgres": ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"],
    "console": ["CHOWN", "SETGID", "SETUID"],
}


def test_every_container_drops_all_capabilities_and_keeps_only_its_allowlist(
    stack: Recording,
) -> None:
    for service, container in containers(stack).items():
        capabilities = container.inputs["capabilities"]
        assert capabilities["drops"] == ["ALL"], service
        assert capabilities.get("adds", []) == CAPABILITIES.get(service, []), service


def test_no_container_can_gain_privileges(stack: Recording) -> None:
    for service, container in containers(stack).items():
        assert container.inputs["securityOpts"] == ["no-new-privileges:true"], service
        assert "privileged" not in container.inputs, service


def test_our_rust_services_run_as_the_images_numeric_user(stack: Recording) -> None:
    for service, container in containers(stack).items():
        if service in {"discovery", "dispatch", "splat-worker", "rtk-base"}:
            assert container.inputs["user"] == "10001:10001", service
        elif service == "backup":
            # postgres' own uid and gid: the dumps and its volume belong to the postgres user.
            assert container.inputs["user"] == "70:70"
        else:
            assert "user" not in container.inputs, service  # the image's own user


def test_root_filesystems_are_read_only_but_where_a_secret_file_is_uploaded(
    stack: Recording,
) -> None:
    # Each receives a secret file before it starts, which Docker cannot copy into a read-only
    # root; grafana also keeps its state there (README "Policy").
    writable = {service for service, c in containers(stack).items() if not c.inputs.get("readOnly")}
    assert writable == {"grafana", "postgres", "backup"}
    uploaded = {service for service, c in containers(stack).items() if c.inputs.get("uploads")}
    assert uploaded == writable
