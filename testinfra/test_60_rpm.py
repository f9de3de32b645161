"""Scenario 9: the el8 and el7 rpms in the Debian 11 root, with that root's own rpm.

Exercised for real: rpm's scriptlet semantics (%post $1=1; -U runs new %post $1=2 and
old %preun/%postun $1=1; -e runs %preun/%postun $1=0), environment seeds on the rpm
command line, systemd units and timers, sshd reload (Debian's ssh.service is also
sshd.service), enrollment, inventory, removal.
Cannot be exercised here (CentOS userland needed; covered by unit tests on the CentOS
fixture files): authselect-owned PAM/NSS files, SELinux labels and policy, /usr/lib64
module paths, CentOS's bash as /bin/sh (here dash, which is stricter), rpm 4.11 itself.
"""

import pytest

import tblib

TAGS = {"os": "centos"}
# rpm has no purge: like `dpkg -r`, erase may leave hostcert's configuration (pinned root,
# CA settings, .rpmsave copies) and the host certificates, which sshd no longer loads.
ERASE_MAY_CHANGE = ("/etc/hostcert", "/etc/hostcert/*", "/etc/ssh/ssh_host_*_key-cert.pub",
                    "/etc/systemd/system/*.wants", "/etc/ld.so.cache")


@pytest.mark.parametrize("el", ["el8", "el7"])
def test_rpm_install_upgrade_erase(boot, ca, ssh_client, tmp_path, el):
    rpm_file = tblib.find_rpm("hostcert", el)
    if rpm_file is None:
        pytest.skip(f"hostcert-<version>-1.{el}.x86_64.rpm not in {tblib.DIST} — "
                    "run scripts/build-packages first")
    newer = tblib.repack_rpm(rpm_file, tmp_path)
    c = boot("bullseye", hostname=f"{el}.example.test")
    ssh_client.authorize_locally(c)
    c.run(["rpm", "--dbpath", "/var/lib/rpm", "--initdb"])
    before = tblib.snapshot(c)
    server = ca(c)
    token = server.token(c.hostname)

    with tblib.ArgvWatcher(token) as watch:
        c.rpm("-i", rpm=rpm_file, env=tblib.env_seeds(server, token, c.hostname, tags=TAGS))
    assert watch.hits == [], watch.hits
    tblib.assert_enrolled(c, server, ssh_client, tags=TAGS)
    tblib.assert_token_nowhere(c, token)
    assert tblib.managed_blocks(c) == 1

    serials = c.cert_serials()
    c.rpm("-U", rpm=newer)
    release = c.rpm("-q", "--qf", "%{RELEASE}", "hostcert").stdout
    assert release == f"1.{el}.tb1", f"upgrade did not land: release {release}"
    assert c.cert_serials() == serials, "the upgrade re-issued certificates"
    assert tblib.managed_blocks(c) == 1
    assert [h["hostname"] for h in server.hosts()].count(c.hostname) == 1
    assert c.systemctl_ok("is-active", "hostcert-renew.timer")
    ssh_client.login(c)

    c.rpm("-e", "hostcert")
    assert server.host(c.hostname) is None, "still registered after rpm -e"
    changed = tblib.snapshot_diff(before, tblib.snapshot(c), ERASE_MAY_CHANGE)
    assert changed == [], f"files under /etc changed by install + erase: {changed}"
    assert c.host_certificates() == []
    assert c.systemctl_ok("is-active", "ssh")
    ssh_client.cert = None
    ssh_client.trust_key(c, c.hostname)
    ssh_client.login(c, use_cert=False)
