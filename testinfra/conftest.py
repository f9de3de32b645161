"""Fixtures of the testbed suite: one throwaway booted container per scenario.

Run (as root):  python3 -m pytest testinfra -v
Needs: debootstrap systemd-container zstd socat curl openssh-client rpm (host, Debian 12),
and dist/ from scripts/build-packages. A scenario whose package is missing from
dist/ is SKIPPED with the reason; the smoke scenario needs no package.
Environment: HOSTCERT_DIST (default ./dist), HOSTCERT_SERVER_BIN (a hostcert-server
binary to use instead of the one inside dist/hostcert-server_*.deb),
HOSTCERT_TB_RENEW_TTL (host certificate lifetime of the renewal scenario, default 10m).
"""

import itertools
import os
import shutil
import subprocess

import pytest

import tblib

_names = itertools.count(1)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so fixtures know whether the scenario failed."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


def _failed(node):
    return any(getattr(node, f"rep_{w}", None) is not None and getattr(node, f"rep_{w}").failed
               for w in ("setup", "call"))


@pytest.fixture(scope="session", autouse=True)
def host_tools():
    if os.geteuid() != 0:
        pytest.exit("the testbed suite must run as root (systemd-nspawn, nsenter)", returncode=2)
    missing = [t for t in ("systemd-nspawn", "debootstrap", "zstd", "socat", "curl", "ssh",
                           "ssh-keygen", "ssh-keyscan", "nsenter", "dpkg-deb", "rpmbuild",
                           "rpm2cpio", "cpio", "openssl") if shutil.which(t) is None]
    if missing:
        pytest.exit(f"missing host tools: {' '.join(missing)} (see testinfra/README.md)",
                    returncode=2)


@pytest.fixture(scope="session", autouse=True)
def roots(host_tools):
    """Build (or restore) both cached roots at once: about 3 minutes cold, instant warm.
    A crashed earlier run's containers are stopped first, so they are not blamed on this one."""
    stale = tblib.testbed("leftovers", check=False)
    if stale.returncode != 0:
        print(f"stopping what an earlier run left behind:\n{stale.stdout}")
        tblib.testbed("cleanup")
    builds = [subprocess.Popen([str(tblib.TESTBED), "build", "--suite", suite])
              for suite in ("bullseye", "bookworm")]
    if any(b.wait() != 0 for b in builds):
        pytest.exit("scripts/testbed build failed (see above)", returncode=2)


def pytest_sessionfinish(session, exitstatus):
    """The run must leave nothing behind: fail it if it did, then clean up."""
    r = tblib.testbed("leftovers", check=False)
    if r.returncode != 0:
        print(f"\ntestbed leftovers after the run:\n{r.stdout}")
        tblib.testbed("cleanup", check=False)
        session.exitstatus = 1


@pytest.fixture
def boot(request):
    """boot(suite="bullseye", hostname=...) -> a running tblib.Container.

    Torn down after the test whatever happens; on failure its journal, its
    helpers' logs and the last failing command are printed first.
    """
    booted = []

    def _boot(suite="bullseye", hostname="host1.example.test"):
        c = tblib.Container(f"tb{os.getpid() % 100000}-{next(_names)}", suite, hostname)
        booted.append(c)
        return c.boot()

    def teardown():
        failed = _failed(request.node)
        for c in reversed(booted):
            if failed and c.pid:
                print(f"\n########## {c.name} ({c.hostname}, {c.suite}) ##########")
                last = c.last_failure()
                if last:
                    print(f"---------- last failing command in {c.name} ----------\n{last}")
                print(c.journal()[-30000:])
        for c in reversed(booted):  # the second container of a pair links to the first
            c.stop()

    request.addfinalizer(teardown)
    return _boot


def require(path, what):
    if path is None:
        pytest.skip(f"{what} not in {tblib.DIST} — run scripts/build-packages first")
    return path


@pytest.fixture(scope="session")
def hostcert_deb():
    return require(tblib.find_deb("hostcert"), "hostcert_<version>-1_amd64.deb")


@pytest.fixture(scope="session")
def server_binary(tmp_path_factory):
    override = os.environ.get("HOSTCERT_SERVER_BIN")
    if override:
        return override
    deb = require(tblib.find_deb("hostcert-server"), "hostcert-server_<version>-1_amd64.deb")
    return tblib.extract_server_binary(deb, tmp_path_factory.mktemp("server-deb"))


@pytest.fixture
def ca(server_binary, tmp_path):
    """ca(container, serve=True, extra=()) -> an initialised tblib.CAServer, serving in
    container's netns unless serve=False (the CA-down scenario starts it later)."""
    servers = []

    def _ca(container, serve=True, extra=()):
        s = tblib.CAServer(server_binary, tmp_path / f"ca{len(servers)}").init()
        s.container = container
        servers.append(s)
        return s.serve(container, *extra) if serve else s

    yield _ca
    for s in servers:
        s.stop()


@pytest.fixture
def ssh_client(tmp_path):
    """An OpenSSH client for user alice with its own key pair and known_hosts."""
    return tblib.SshClient(tmp_path / "ssh")

