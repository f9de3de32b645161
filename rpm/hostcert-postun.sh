# %postun of hostcert: what %systemd_postun does, guarded for hosts without systemd.
if [ -d /run/systemd/system ]; then
    /bin/systemctl daemon-reload >/dev/null 2>&1 || :
fi
exit 0
