# %preun of hostcert ($1: 0 erase, 1 upgrade). Erase unregisters and deactivates here, while
# every module file is still on disk; an upgrade changes nothing (src/hooks.rs).
exec /usr/bin/hostcert hook rpm preun "$@"
