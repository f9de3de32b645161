# %post of hostcert-server ($1: 1 install, 2 upgrade): data directory, a CA on first install,
# and what %systemd_post does, but enabling explicitly instead of by preset.
set -e
DIR=/var/lib/hostcert-server
install -d -m 0750 -o hostcert-server -g hostcert-server "$DIR"
# No data yet: init, as the service user, prints the CA URL and root fingerprint that hosts
# are seeded with.
if [ -z "$(ls -A "$DIR")" ]; then
    name=$(hostname --fqdn 2>/dev/null || hostname)
    runuser -u hostcert-server -- /usr/bin/hostcert-server init --dir "$DIR" --dns "$name" --dns localhost
fi
if [ "$1" -eq 1 ] && [ -x /bin/systemctl ]; then
    /bin/systemctl --no-reload enable hostcert-server.service >/dev/null 2>&1 || :
    if [ -d /run/systemd/system ]; then
        /bin/systemctl daemon-reload >/dev/null 2>&1 || :
        /bin/systemctl start hostcert-server.service >/dev/null 2>&1 || :
    fi
fi
exit 0
