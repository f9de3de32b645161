"""The testbed itself, proven without any hostcert package.

A booted Debian with a real sshd, reached through the container's network
namespace with the host's OpenSSH client, and a teardown that leaves nothing.
"""

import os
import signal

import pytest

import tblib


def stray(container_name):
    """What scripts/testbed leftovers reports about this one container."""
    out = tblib.testbed("leftovers", check=False).stdout
    return [line for line in out.splitlines()
            if f"/{container_name}" in line or f"={container_name} " in line
            or f"({container_name}:" in line]


@pytest.mark.parametrize("suite", ["bullseye", "bookworm"])
def test_boot_ssh_login_and_clean_teardown(boot, ssh_client, suite):
    c = boot(suite, hostname="smoke.example.test")
    host = c.testinfra()
    assert host.check_output("hostname") == "smoke.example.test"
    assert host.check_output("systemctl is-system-running") in ("running", "degraded")
    assert host.service("ssh").is_running
    assert host.socket("tcp://0.0.0.0:22").is_listening
    assert host.file("/etc/ssh/ssh_host_ed25519_key").mode == 0o600
    assert host.file("/mnt/dist").exists or not tblib.DIST.is_dir()
    # Each container made its own host keys (the cached root carries none).
    assert host.file("/etc/ssh/ssh_host_ed25519_key.pub").exists

    ssh_client.authorize_locally(c)
    # Strict host key checking is really on: an unknown host key is refused ...
    r = ssh_client.login(c, use_cert=False, check=False)
    assert r.returncode != 0 and "Host key verification failed" in r.stderr, r.stderr
    # ... and a pinned one lets the user in with the local key.
    ssh_client.trust_key(c, c.hostname)
    ssh_client.login(c, use_cert=False)
    over_ssh = ssh_client.testinfra(c)  # testinfra's ssh backend with the same strict trust
    assert over_ssh.user().name == "alice"
    assert over_ssh.file("/home/alice/.ssh/authorized_keys").mode == 0o600

    # The target-like sshd_config (no Include, trailing Match) still accepts the login.
    c.sshd_config_variant("targetlike")
    assert "Include" not in c.read("/etc/ssh/sshd_config")
    ssh_client.login(c, use_cert=False)

    leader = c.pid
    c.stop()
    assert not os.path.exists(f"/proc/{leader}"), "container PID 1 still alive"
    assert stray(c.name) == []


def test_linked_containers_share_one_loopback_port(boot, tmp_path):
    """The bastion/security scenarios' wiring: B's 127.0.0.1:PORT reaches A's, where a
    host process (as hostcert-server will be) listens inside A's network namespace."""
    a = boot("bullseye", hostname="a.example.test")
    b = boot("bookworm", hostname="b.example.test")
    (tmp_path / "marker").write_text("served from A\n")
    tblib.testbed("spawn", a.name, "web", "--", "python3", "-m", "http.server", "--bind",
                  "127.0.0.1", "9443", "--directory", tmp_path)
    tblib.testbed("exec", a.name, "--", "sh", "-c",
                  "for i in $(seq 50); do ss -Htln | grep -q :9443 && exit 0; sleep 0.1; done; exit 1")
    tblib.testbed("link", a.name, b.name, "9443")
    r = b.run(["python3", "-c", "import urllib.request as u; "
               "print(u.urlopen('http://localhost:9443/marker').read().decode())"])
    assert r.stdout.strip() == "served from A"
    # Nothing listens on A's port from the host's own network namespace.
    assert tblib.host_run(["curl", "-s", "http://127.0.0.1:9443/marker"], check=False).stdout != r.stdout


def test_teardown_after_a_crash_leaves_nothing(boot):
    """nspawn killed hard, a helper still running: `stop` still cleans up everything."""
    c = boot("bullseye", hostname="crash.example.test")
    tblib.testbed("spawn", c.name, "sleeper", "--", "sleep", "600")
    nspawn = int(open(f"/run/hostcert-testbed/{c.name}/nspawn.pid").read())
    os.kill(nspawn, signal.SIGKILL)
    assert stray(c.name), "the crash should leave something for stop to clean"
    c.stop()
    assert not os.path.exists(f"/proc/{c.pid}")
    assert stray(c.name) == []


def test_failed_boot_leaves_nothing():
    """A boot that fails half-way (here: an impossible timeout) cleans up after itself."""
    name = f"tbfail{os.getpid() % 100000}"
    r = tblib.testbed("boot", name, "--suite", "bullseye", "--timeout", "0.05", check=False)
    assert r.returncode != 0 and "error" in r.stderr, r.stderr
    assert stray(name) == []
    assert not os.path.exists(f"/run/hostcert-testbed/{name}")
