# %post of hostcert ($1: 1 install, 2 upgrade). HOSTCERT_* variables of the rpm/yum command
# line reach this scriptlet; the agent decides what to do (src/hooks.rs). rpm resets PATH.
exec /usr/bin/hostcert hook rpm post "$@"
