"""Scenario 10: one host cannot act on another's inventory entry; a wrong fingerprint
in the preseed changes nothing and the install says why."""

import re

import tblib

TAGS = {"team": "a"}


def test_second_host_cannot_unregister_first(boot, ca, hostcert_deb):
    h1 = boot("bullseye", hostname="host1.example.test")
    h2 = boot("bullseye", hostname="host2.example.test")
    server = ca(h1)
    tblib.testbed("link", h1.name, h2.name, server.port)
    tblib.install_with_preseed(h1, server, hostcert_deb, tags=TAGS)
    tblib.install_with_preseed(h2, server, hostcert_deb, tags={"team": "b"})
    entry = server.host(h1.hostname)
    assert entry is not None

    # h2 re-registers under h1's name: refused (its certificate names host2).
    r = h2.run(["hostcert", "register", "--hostname", h1.hostname, "--tag", "owned=yes"],
               check=False)
    assert r.returncode != 0, f"host2 re-registered host1:\n{r.stdout}{r.stderr}"
    # h2 presents h1's (public) certificate(s) with its own keys, then unregisters: refused.
    for path in h1.host_certificates():
        h2.write(path, h1.read(path))
    r = h2.run(["hostcert", "unregister"], check=False)
    assert r.returncode != 0, f"unregister with host1's certificate succeeded:\n{r.stdout}"
    # h2 names h1 in its settings: at most h2 leaves.
    h2.run(["hostcert", "unregister"], env={"HOSTCERT_HOSTNAME": h1.hostname}, check=False)

    after = server.host(h1.hostname)
    assert after is not None, "host1 was unregistered by host2"
    assert (after["tags"], after["is_bastion"], after["bastion"]) == \
        (entry["tags"], entry["is_bastion"], entry["bastion"])


def test_wrong_fingerprint_leaves_host_untouched(boot, ca, hostcert_deb):
    c = boot("bullseye", hostname="wrongfp.example.test")
    before = tblib.snapshot(c)
    server = ca(c)
    token = server.token(c.hostname)
    c.preseed(tblib.answers(server, token, c.hostname,
                            fingerprint=tblib.wrong_fingerprint(server.fingerprint)))
    r = c.dpkg_install(hostcert_deb, check=False)
    assert re.search(r"(?i)fingerprint", r.stdout + r.stderr), \
        f"the install does not say why:\n{r.stdout}{r.stderr}"
    assert c.host_certificates() == []
    assert server.host(c.hostname) is None
    # Only the package's own files appeared: sshd, PAM, NSS and the host keys are untouched.
    changed = tblib.snapshot_diff(before, tblib.snapshot(c),
                                  ("/etc/hostcert", "/etc/hostcert/*", "/etc/systemd/system/*",
                                   "/etc/ld.so.cache"))
    assert changed == [], f"files under /etc changed: {changed}"
    if r.returncode == 0:
        shipped = tblib.pkg_owned(c, "hostcert")
        extra = [p for p in tblib.snapshot(c) if p.startswith("/etc/hostcert/") and p not in shipped
                 and p != "/etc/hostcert/seed"]
        assert extra == [], f"hostcert wrote {extra} although the CA could not be pinned"
