"""Scenario 8: a bastion and a host behind it, two containers, one CA.

The CA runs in the bastion's network namespace on 127.0.0.1; `scripts/testbed link`
makes the second container's 127.0.0.1:PORT reach it, so both use the same CA URL.
"""

import tblib


def test_bastion_pair(boot, ca, hostcert_deb, tmp_path):
    bastion = boot("bullseye", hostname="bastion.example.test")
    web = boot("bookworm", hostname="web.example.test")
    server = ca(bastion)
    tblib.testbed("link", bastion.name, web.name, server.port)

    tblib.install_with_preseed(bastion, server, hostcert_deb, is_bastion=True)
    tblib.install_with_preseed(web, server, hostcert_deb, bastion=bastion.hostname)

    b = server.host(bastion.hostname)
    w = server.host(web.hostname)
    assert b is not None and w is not None, server.hosts()
    assert b["is_bastion"] is True and not b.get("bastion"), b
    assert w["is_bastion"] is False and w["bastion"] == bastion.hostname, w
    for c in (bastion, web):
        tblib.assert_enrolled(c, server, tblib.SshClient(tmp_path / c.name))
