"""Scenario 6: the CA is down at install time; the enroll timer finishes the job."""

import re

import tblib

WHY = re.compile(r"(?i)unreachable|connect|refused|not reachable|retry|timer")


def test_ca_down_at_install_then_enroll_timer(boot, ca, ssh_client, hostcert_deb):
    c = boot("bullseye", hostname="late.example.test")
    server = ca(c, serve=False)  # initialised: URL and fingerprint exist, nothing listens
    token = server.token(c.hostname)
    c.preseed(tblib.answers(server, token, c.hostname, tags={"wave": "late"}))
    r = c.dpkg_install(hostcert_deb)  # must succeed although the CA is down
    assert WHY.search(r.stdout + r.stderr), f"the install does not say why:\n{r.stdout}{r.stderr}"
    status = c.run(["hostcert", "status"], check=False)
    assert WHY.search(status.stdout + status.stderr), f"status does not say why:\n{status.stdout}"
    assert c.host_certificates() == []
    assert c.systemctl_ok("is-active", "hostcert-enroll.timer"), "no enroll retry timer"

    server.serve(c)
    c.run(["systemctl", "start", "hostcert-enroll.service"])  # what the timer runs
    tblib.assert_enrolled(c, server, ssh_client, tags={"wave": "late"})
    tblib.assert_token_nowhere(c, token)
