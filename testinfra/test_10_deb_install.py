"""Scenarios 1 and 2: unattended .deb installs from debconf, environment and seed-file seeds."""

import pytest

import tblib

TAGS = {"env": "prod", "role": "web"}


@pytest.mark.parametrize("suite,variant", [
    ("bullseye", "stock"),       # Debian 11, sshd_config with its Include line
    ("bullseye", "targetlike"),  # as on every target: no Include, and a trailing Match block
    ("bookworm", "stock"),       # Debian 12
])
def test_debconf_preseed(boot, ca, ssh_client, hostcert_deb, suite, variant):
    c = boot(suite, hostname="host1.example.test")
    c.sshd_config_variant(variant)
    server = ca(c)
    token, _ = tblib.install_with_preseed(c, server, hostcert_deb, tags=TAGS)

    tblib.assert_enrolled(c, server, ssh_client, tags=TAGS)
    trusted = dict(c.sshd_effective())["trustedusercakeys"]
    assert trusted.startswith("/etc/hostcert/"), f"TrustedUserCAKeys is not hostcert's: {trusted}"
    assert tblib.managed_blocks(c) == 1
    sshd_config = c.read("/etc/ssh/sshd_config").splitlines()
    begin = next(i for i, ln in enumerate(sshd_config) if ln.startswith(tblib.BEGIN_MARKER))
    matches = [i for i, ln in enumerate(sshd_config) if ln.lstrip().startswith("Match")]
    assert all(begin < m for m in matches), "hostcert's block sits after a Match line"
    tblib.assert_token_nowhere(c, token)
    # The user certificate is what lets alice in: the bare key is refused.
    r = ssh_client.login(c, use_cert=False, check=False)
    assert r.returncode != 0 and "Permission denied" in r.stderr, r.stderr
    host = c.testinfra()
    assert host.package("hostcert").is_installed
    assert host.service("ssh").is_running


def test_environment_seeds(boot, ca, ssh_client, hostcert_deb):
    c = boot("bullseye", hostname="envseed.example.test")
    server = ca(c)
    token = server.token(c.hostname)
    with tblib.ArgvWatcher(token) as watch:
        c.dpkg_install(hostcert_deb, env=tblib.env_seeds(server, token, c.hostname, tags=TAGS))
    assert watch.hits == [], watch.hits
    tblib.assert_enrolled(c, server, ssh_client, tags=TAGS)
    tblib.assert_token_nowhere(c, token)


def test_seed_file(boot, ca, ssh_client, hostcert_deb):
    c = boot("bullseye", hostname="seedfile.example.test")
    server = ca(c)
    token = server.token(c.hostname)
    seed = "".join(f"{k}={v}\n" for k, v in
                   tblib.env_seeds(server, token, c.hostname, tags=TAGS).items())
    c.write("/etc/hostcert/seed", seed, mode=0o600)
    with tblib.ArgvWatcher(token) as watch:
        c.dpkg_install(hostcert_deb)
    assert watch.hits == [], watch.hits
    tblib.assert_enrolled(c, server, ssh_client, tags=TAGS)
    # enroll removed the token from the seed file (and it is nowhere else either).
    tblib.assert_token_nowhere(c, token)


def test_dpkg_reconfigure_re_enrolls(boot, ca, ssh_client, hostcert_deb):
    """`dpkg-reconfigure hostcert` with new answers re-enrolls: the new tags replace the old."""
    c = boot("bullseye", hostname="reconf.example.test")
    server = ca(c)
    tblib.install_with_preseed(c, server, hostcert_deb, tags=TAGS)
    tblib.assert_enrolled(c, server, ssh_client, tags=TAGS)

    new_tags = {"env": "prod", "role": "db"}
    c.preseed({"tags": ("string", "env=prod,role=db")})
    c.run("DEBIAN_FRONTEND=noninteractive exec dpkg-reconfigure hostcert")
    entry = server.host(c.hostname)
    assert entry is not None and entry["tags"] == new_tags, server.hosts()
    assert tblib.managed_blocks(c) == 1
    assert len([h for h in server.hosts() if h["hostname"] == c.hostname]) == 1
