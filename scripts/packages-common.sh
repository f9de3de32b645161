# Shared by scripts/build-packages and scripts/test-packages (sourced, not run).

TRIPLE=x86_64-unknown-linux-gnu
GLIBC_CEILING=2.17
PACKAGES=(hostcert hostcert-server)
DIST=$ROOT/dist

# package_field NAME FIELD: a field (version, manifest_path) of a workspace package.
package_field() {
    cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
name, field = sys.argv[1:]
print(next(p[field] for p in json.load(sys.stdin)["packages"] if p["name"] == name))' "$1" "$2"
}

# Whether FILE is an ELF object.
is_elf() {
    [ -f "$1" ] && [ "$(head -c4 "$1" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]
}

# The highest GLIBC_x.y symbol version FILE needs, or nothing.
glibc_needed() {
    objdump -T "$1" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1
}

# Whether glibc version $1 is at most the ceiling.
within_glibc_ceiling() {
    [ -z "$1" ] || [ "$(printf '%s\n%s\n' "$1" "$GLIBC_CEILING" | sort -V | tail -n1)" = "$GLIBC_CEILING" ]
}
