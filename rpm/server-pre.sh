# %pre of hostcert-server: its own system user.
getent group hostcert-server >/dev/null || groupadd -r hostcert-server
getent passwd hostcert-server >/dev/null || \
    useradd -r -g hostcert-server -d /var/lib/hostcert-server -s /sbin/nologin \
        -c hostcert-server hostcert-server
exit 0
