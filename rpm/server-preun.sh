# %preun of hostcert-server: what %systemd_preun does on erase ($1 = 0).
if [ "$1" -eq 0 ] && [ -x /bin/systemctl ]; then
    /bin/systemctl --no-reload disable hostcert-server.service >/dev/null 2>&1 || :
    if [ -d /run/systemd/system ]; then
        /bin/systemctl stop hostcert-server.service >/dev/null 2>&1 || :
    fi
fi
exit 0
