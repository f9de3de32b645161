"""Scenario 7: renewal of short-lived certificates by the timer's service.

The server issues HOSTCERT_TB_RENEW_TTL (default 10m) certificates. `hostcert renew`
renews when less than a third of the lifetime is left, so the test waits until then
(about 6.5 minutes with 10m) — real time, no clock tricks: the container shares the
host's kernel clock and the CA checks token times.
"""

import os
import time

import tblib

TTL = os.environ.get("HOSTCERT_TB_RENEW_TTL", "10m")


def test_renewal_by_timer_service(boot, ca, ssh_client, hostcert_deb):
    c = boot("bullseye", hostname="renew.example.test")
    server = ca(c, extra=("--host-cert-ttl", TTL))
    tblib.install_with_preseed(c, server, hostcert_deb)
    tblib.assert_enrolled(c, server, ssh_client)
    serials = c.cert_serials()
    path = next(iter(serials))
    valid_from, valid_to = c.cert_validity(path)
    lifetime = valid_to - valid_from
    assert lifetime <= 16 * 60, f"certificate lives {lifetime}s: --host-cert-ttl {TTL} ignored?"

    c.run(["hostcert", "renew"])  # early: nothing to do
    assert c.cert_serials() == serials, "renewed with most of the lifetime left"

    time.sleep(max(0, valid_to - lifetime / 3 + 10 - time.time()))
    c.run(["systemctl", "start", "hostcert-renew.service"])
    deadline = time.time() + 60
    while True:  # a oneshot service is done when start returns; allow for any other type
        renewed = c.cert_serials()
        if all(renewed[p] != serials[p] for p in serials) or time.time() > deadline:
            break
        time.sleep(1)
    assert all(renewed[p] != serials[p] for p in serials), f"{serials} -> {renewed}"
    # sshd was reloaded: it presents the new certificate(s).
    on_disk = {c.read(p).split()[0]: c.read(p).split()[1] for p in renewed}
    presented = ssh_client.presented_certificates(c)
    assert presented and all(on_disk.get(t) == blob for t, blob in presented.items()), \
        f"sshd presents {presented}, files hold {on_disk}"
    ssh_client.login(c)
