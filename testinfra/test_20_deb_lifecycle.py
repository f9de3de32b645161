"""Scenarios 3, 4 and 5: upgrade, remove, purge, and an admin's edits in between."""

import re

import pytest

import tblib


def test_upgrade_keeps_enrollment(boot, ca, ssh_client, hostcert_deb, tmp_path):
    """A newer build: still enrolled, one managed block, no second registration, timers on.

    The newer build is the same .deb repacked with `dpkg-deb -R`, Version + "+tb1",
    `dpkg-deb -b` (tblib.repack_deb): same payload and maintainer scripts, so dpkg runs
    the real upgrade sequence (prerm upgrade, preinst upgrade, postrm upgrade,
    postinst configure OLD)."""
    newer = tblib.repack_deb(hostcert_deb, tmp_path)
    c = boot("bullseye", hostname="upgrade.example.test")
    server = ca(c)
    tblib.install_with_preseed(c, server, hostcert_deb, tags={"env": "prod"})
    tblib.assert_enrolled(c, server, ssh_client)
    serials = c.cert_serials()
    entry = server.host(c.hostname)

    c.dpkg_install(newer)
    version = c.run(["dpkg-query", "-W", "-f", "${Version}", "hostcert"]).stdout
    assert version.endswith("+tb1"), version
    assert c.cert_serials() == serials, "the upgrade re-issued certificates"
    assert tblib.managed_blocks(c) == 1
    assert [h["hostname"] for h in server.hosts()].count(c.hostname) == 1
    after = server.host(c.hostname)
    for key in entry:
        if re.search(r"regist|serial|created", key):
            assert after[key] == entry[key], f"{key} changed: second registration?"
    assert c.systemctl_ok("is-enabled", "hostcert-renew.timer")
    assert c.systemctl_ok("is-active", "hostcert-renew.timer")
    tblib.assert_enrolled(c, server, ssh_client, tags={"env": "prod"})


@pytest.mark.parametrize("variant", ["stock", "targetlike"])
def test_remove_then_purge_restores_etc(boot, ca, ssh_client, hostcert_deb, variant):
    c = boot("bullseye", hostname="remove.example.test")
    c.sshd_config_variant(variant)
    ssh_client.authorize_locally(c)  # the old way in, kept in ~alice, outside /etc
    before = tblib.snapshot(c)
    server = ca(c)
    tblib.install_with_preseed(c, server, hostcert_deb)
    tblib.assert_enrolled(c, server, ssh_client)

    c.run("DEBIAN_FRONTEND=noninteractive dpkg -r hostcert")
    assert server.host(c.hostname) is None, "still registered after dpkg -r"
    changed = tblib.snapshot_diff(before, tblib.snapshot(c), tblib.REMOVE_MAY_CHANGE)
    assert changed == [], f"files under /etc changed by install + remove: {changed}"
    assert c.host_certificates() == []
    assert c.systemctl_ok("is-active", "ssh")
    ssh_client.cert = None
    ssh_client.trust_key(c, c.hostname)
    ssh_client.login(c, use_cert=False)

    c.run("DEBIAN_FRONTEND=noninteractive dpkg -P hostcert")
    selections = c.run("debconf-get-selections | grep -E '^hostcert[[:space:]]' || true").stdout
    assert selections == "", f"debconf answers left after purge:\n{selections}"
    assert not c.path("/var/lib/hostcert").exists()
    changed = tblib.snapshot_diff(before, tblib.snapshot(c), tblib.PURGE_MAY_CHANGE)
    assert changed == [], f"files under /etc changed by install + purge: {changed}"
    ssh_client.login(c, use_cert=False)


def admin_edit_sshd(text):
    text = text.replace("#PermitRootLogin prohibit-password", "PermitRootLogin no")
    return text + "# admin: keep me\nClientAliveInterval 120\n"


def admin_edit_pam(text):
    return text + "# admin: keep me\nauth optional pam_faildelay.so delay=2000000\n"


def test_admin_edits_survive_removal(boot, ca, ssh_client, hostcert_deb):
    c = boot("bullseye", hostname="admin.example.test")
    ssh_client.authorize_locally(c)
    sshd0, pam0 = c.read("/etc/ssh/sshd_config"), c.read("/etc/pam.d/sshd")
    assert "#PermitRootLogin prohibit-password" in sshd0
    server = ca(c)
    tblib.install_with_preseed(c, server, hostcert_deb)
    tblib.assert_enrolled(c, server, ssh_client)

    c.write("/etc/ssh/sshd_config", admin_edit_sshd(c.read("/etc/ssh/sshd_config")))
    c.write("/etc/pam.d/sshd", admin_edit_pam(c.read("/etc/pam.d/sshd")))
    c.run(["sshd", "-t"])
    c.run(["systemctl", "reload", "ssh"])
    c.wait_sshd()

    c.run("DEBIAN_FRONTEND=noninteractive dpkg -r hostcert")
    assert c.read("/etc/ssh/sshd_config") == admin_edit_sshd(sshd0)
    assert c.read("/etc/pam.d/sshd") == admin_edit_pam(pam0)
    assert "hostcert" not in c.read("/etc/ssh/sshd_config") + c.read("/etc/pam.d/sshd")
    ssh_client.cert = None
    ssh_client.trust_key(c, c.hostname)
    ssh_client.login(c, use_cert=False)
