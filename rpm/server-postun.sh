# %postun of hostcert-server: what %systemd_postun_with_restart does.
if [ -d /run/systemd/system ]; then
    /bin/systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        /bin/systemctl try-restart hostcert-server.service >/dev/null 2>&1 || :
    fi
fi
exit 0
