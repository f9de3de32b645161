"""Helpers for the testbed scenarios: containers, the CA server, packages, checks.

Everything here drives real tools: `scripts/testbed` (systemd-nspawn), the real
`hostcert-server` binary from dist/, dpkg/rpm inside the containers, and the
host's OpenSSH client entering the container's network namespace.
"""

import base64
import fnmatch
import hashlib
import json
import os
import re
import shlex
import shutil
import stat
import struct
import subprocess
import threading
import time
from pathlib import Path

import testinfra
from testinfra.backend import base as tibase
from testinfra.host import Host

REPO = Path(__file__).resolve().parent.parent
TESTBED = REPO / "scripts" / "testbed"
DIST = Path(os.environ.get("HOSTCERT_DIST", REPO / "dist")).resolve()
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Port of hostcert-server inside each container's network namespace.
CA_PORT = 9443
TEST_USER = "alice"  # created in every root by scripts/testbed


class CommandFailed(AssertionError):
    """A command inside the testbed exited non-zero; the message is the whole story."""


def describe(cmd, r):
    shown = cmd if isinstance(cmd, str) else shlex.join(map(str, cmd))
    return (f"command: {shown}\nexit code: {r.returncode}\n"
            f"--- stdout ---\n{(r.stdout or '')[-6000:]}\n--- stderr ---\n{(r.stderr or '')[-6000:]}")


def host_run(cmd, check=True, **kw):
    """Run on the host, text mode, output captured; raise CommandFailed with everything on error."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    r = subprocess.run(cmd, **kw)
    if check and r.returncode != 0:
        raise CommandFailed(describe(cmd, r))
    return r


def testbed(*args, **kw):
    return host_run([str(TESTBED), *map(str, args)], **kw)


# ---------------------------------------------------------------- artifacts


def deb_version(path):
    return host_run(["dpkg-deb", "-f", str(path), "Version"]).stdout.strip()


def newest(paths, key):
    """The highest version among paths (dpkg ordering)."""
    best = None
    for p in paths:
        if best is None or subprocess.run(
                ["dpkg", "--compare-versions", key(p), "gt", key(best)]).returncode == 0:
            best = p
    return best


def find_deb(package):
    """dist/<package>_<version>-<rev>_amd64.deb (newest), or None."""
    return newest(sorted(DIST.glob(f"{package}_[0-9]*_amd64.deb")), deb_version)


def find_rpm(package, el):
    """dist/<package>-<version>-<rel>.<el>.x86_64.rpm, or None."""
    found = sorted(DIST.glob(f"{package}-[0-9]*.{el}.x86_64.rpm"))
    return found[-1] if found else None


def repack_deb(deb, out_dir, suffix="+tb1"):
    """A "newer build" of a .deb: same payload and scripts, version + suffix.

    dpkg-deb -R unpacks control and data as root-owned files; only the
    Version field changes; dpkg-deb -b packs it again (xz, which every target reads).
    """
    tree = Path(out_dir) / "repack"
    shutil.rmtree(tree, ignore_errors=True)
    host_run(["dpkg-deb", "-R", str(deb), str(tree)])
    control = tree / "DEBIAN" / "control"
    version = deb_version(deb) + suffix
    control.write_text(re.sub(r"(?m)^Version: .*$", f"Version: {version}", control.read_text()))
    out = Path(out_dir) / f"{Path(deb).name.split('_')[0]}_{version}_amd64.deb"
    host_run(["dpkg-deb", "--root-owner-group", "-Zxz", "-b", str(tree), str(out)])
    shutil.rmtree(tree)
    return out


def repack_rpm(rpm, out_dir, suffix=".tb1"):
    """A "newer build" of an .rpm: same payload and scriptlets, Release + suffix.

    rpmbuild re-packs the payload unpacked with rpm2cpio; file modes, owners and
    %config flags come from the original header; brp scripts, dependency
    generation and build-id links are off so the payload stays as it was.
    """
    work = Path(out_dir) / "rpmrepack"
    shutil.rmtree(work, ignore_errors=True)
    payload = work / "payload"
    payload.mkdir(parents=True)
    host_run(f"rpm2cpio {shlex.quote(str(rpm))} | cpio -idm --quiet --no-absolute-filenames",
             shell=True, cwd=payload)

    def q(fmt):
        return host_run(["rpm", "-qp", "--nosignature", "--qf", fmt, str(rpm)]).stdout

    name, version, release, arch = q("%{NAME}\n%{VERSION}\n%{RELEASE}\n%{ARCH}").split("\n")[:4]
    spec = [
        f"Name: {name}", f"Version: {version}", f"Release: {release}{suffix}",
        "Summary: testbed repack", "License: repack", "AutoReqProv: no",
        "%define __os_install_post %{nil}", "%define _build_id_links none",
        "%define debug_package %{nil}", "%define _binary_payload w2.xzdio",
        "%description", "Repacked by testinfra/tblib.py for the upgrade scenario.",
        "%install", f"cp -a {payload}/. %{{buildroot}}/",
    ]
    for tag, section in (("PREIN", "pre"), ("POSTIN", "post"), ("PREUN", "preun"),
                         ("POSTUN", "postun"), ("PRETRANS", "pretrans"),
                         ("POSTTRANS", "posttrans")):
        body = q(f"%{{{tag}}}")
        prog = q(f"%{{{tag}PROG}}").strip()
        if body and body != "(none)":
            custom = prog not in ("", "(none)", "/bin/sh")
            spec.append(f"%{section} -p {prog}" if custom else f"%{section}")
            spec.append(body)
    spec.append("%files")
    rows = q("[%{FILEMODES:octal} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILEFLAGS} %{FILENAMES}\n]")
    for row in rows.splitlines():
        mode, user, group, flags, path = row.split(" ", 4)
        mode = int(mode, 8)
        attr = f"%attr({stat.S_IMODE(mode):o},{user},{group})"
        kind = "%dir " if stat.S_ISDIR(mode) else ""
        if int(flags) & 1:  # RPMFILE_CONFIG
            kind += "%config(noreplace) " if int(flags) & 16 else "%config "
        spec.append(f"{attr} {kind}{path!r}".replace("'", '"'))
    spec_file = work / f"{name}.spec"
    spec_file.write_text("\n".join(spec) + "\n")
    host_run(["rpmbuild", "-bb", "--target", arch, "--define", f"_topdir {work / 'top'}",
              str(spec_file)])
    built = next((work / "top" / "RPMS" / arch).glob("*.rpm"))
    out = Path(out_dir) / built.name
    shutil.move(built, out)
    shutil.rmtree(work)
    return out


def extract_server_binary(deb, dest):
    """hostcert-server from its .deb, run on the host (it is built for glibc 2.17)."""
    host_run(["dpkg-deb", "-x", str(deb), str(dest)])
    for candidate in ("usr/bin/hostcert-server", "usr/sbin/hostcert-server"):
        if (Path(dest) / candidate).is_file():
            return Path(dest) / candidate
    raise FileNotFoundError(f"no hostcert-server binary in {deb}")


# ---------------------------------------------------------------- containers


class NsenterBackend(tibase.BaseBackend):
    """testinfra backend running commands inside a testbed container via nsenter.

    Like testinfra's chroot backend, but in all of the container's namespaces,
    so services, processes and sockets are the container's own.
    """

    NAME = "nsenter"

    def __init__(self, pid, *args, **kwargs):
        self.pid = pid
        super().__init__(f"nsenter-{pid}", *args, **kwargs)

    def run(self, command, *args, **kwargs):
        cmd = self.get_command(command, *args)
        out = self.run_local("nsenter -t %s -a env -i PATH=%s LANG=C.UTF-8 /bin/sh -c %s",
                             str(self.pid), CONTAINER_PATH, cmd)
        out.command = self.encode(cmd)
        return out


class Container:
    """A booted testbed container (scripts/testbed boot), with helpers to act inside it."""

    def __init__(self, name, suite, hostname):
        self.name, self.suite, self.hostname = name, suite, hostname
        self.pid = None
        self.history = []  # (command, CompletedProcess) for the failure report

    def boot(self):
        args = ["boot", self.name, "--suite", self.suite, "--hostname", self.hostname]
        if DIST.is_dir():
            args += ["--dist", DIST]
        self.pid = int(testbed(*args).stdout.strip().splitlines()[-1])
        return self

    def stop(self):
        testbed("stop", self.name, check=False)

    @property
    def root(self):
        """The container's file system as the host sees it (through its mount namespace)."""
        return Path(f"/proc/{self.pid}/root")

    @property
    def netns(self):
        return f"/proc/{self.pid}/ns/net"

    def path(self, p):
        return self.root / str(p).lstrip("/")

    def run(self, cmd, check=True, env=None, input=None, timeout=600):
        """Run cmd (a shell string or an argv list) inside, as root, in a clean environment
        (`scripts/testbed exec`). `env` is visible in argv: never pass a secret there."""
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(map(str, cmd))
        env_args = [a for k, v in (env or {}).items() for a in ("--env", f"{k}={v}")]
        full = [str(TESTBED), "exec", self.name, *env_args, "--", *argv]
        try:
            r = subprocess.run(full, input=input, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            r = subprocess.CompletedProcess(full, -1, e.stdout or "", f"TIMEOUT after {timeout}s")
        self.history.append((cmd, r))
        if check and r.returncode != 0:
            raise CommandFailed(f"[{self.name}] " + describe(cmd, r))
        return r

    def read(self, p):
        return self.path(p).read_text()

    def write(self, p, data, mode=0o644):
        target = self.path(p)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode() if isinstance(data, str) else data)
        os.chmod(target, mode)

    def put(self, host_file, p, mode=0o644):
        self.write(p, Path(host_file).read_bytes(), mode)

    def journal(self):
        return testbed("journal", self.name, check=False).stdout

    def testinfra(self):
        return Host(NsenterBackend(self.pid))

    def systemctl_ok(self, *args):
        return self.run(["systemctl", *args], check=False).returncode == 0

    def last_failure(self):
        for cmd, r in reversed(self.history):
            if r.returncode != 0:
                return describe(cmd, r)
        return None

    # -- sshd

    def sshd_config_variant(self, variant):
        """`stock`, or `targetlike`: no Include line (as on every target) and a trailing Match."""
        if variant == "stock":
            return
        assert variant == "targetlike", variant
        text = self.read("/etc/ssh/sshd_config")
        text = "".join(ln for ln in text.splitlines(True) if not ln.lstrip().startswith("Include"))
        text += "\nMatch User nobody\n    PasswordAuthentication no\n"
        self.write("/etc/ssh/sshd_config", text)
        self.run(["sshd", "-t"])
        self.run(["systemctl", "reload", "ssh"])
        self.wait_sshd()

    def wait_sshd(self, timeout=10):
        """sshd re-executes itself on reload: wait until it listens again."""
        self.run(f"for i in $(seq {timeout * 10}); do ss -Htln 'sport = :22' | grep -q . && exit 0;"
                 " sleep 0.1; done; exit 1")

    def sshd_effective(self):
        """`sshd -T` as a list of (keyword, value)."""
        out = self.run(["sshd", "-T"]).stdout
        return [tuple(line.split(" ", 1)) if " " in line else (line, "")
                for line in out.splitlines()]

    def host_certificates(self):
        return [v for k, v in self.sshd_effective() if k == "hostcertificate"]

    def cert_serials(self):
        """{cert path: serial} for every HostCertificate sshd uses."""
        serials = {}
        for path in self.host_certificates():
            out = self.run(["ssh-keygen", "-L", "-f", path]).stdout
            serials[path] = int(re.search(r"Serial: (\d+)", out).group(1))
        return serials

    def cert_validity(self, path):
        """(valid_from, valid_to) as epoch seconds, from ssh-keygen -L (container local time = UTC)."""
        out = self.run(["ssh-keygen", "-L", "-f", path], env={"TZ": "UTC"}).stdout
        m = re.search(r"Valid: from (\S+) to (\S+)", out)
        conv = lambda s: int(self.run(["date", "-u", "-d", s, "+%s"], env={"TZ": "UTC"}).stdout)
        return conv(m.group(1)), conv(m.group(2))

    # -- packages

    def preseed(self, answers):
        """debconf-set-selections for package hostcert: {question: (type, value)}.

        Fed on stdin, so the token is never in any argv.
        """
        lines = "".join(f"hostcert hostcert/{q} {t} {v}\n" for q, (t, v) in answers.items())
        self.run(["debconf-set-selections"], input=lines)

    def secret_env_file(self, env):
        """Write env to a root-only file on the container's tmpfs; returns a sh prefix
        that exports it and deletes it. Keeps secrets out of every argv."""
        self.write("/run/tb-env", "".join(f"{k}={shlex.quote(v)}\n" for k, v in env.items()),
                   mode=0o600)
        return "set -a; . /run/tb-env; set +a; rm -f /run/tb-env; "

    def dpkg_install(self, deb, env=None, check=True):
        """DEBIAN_FRONTEND=noninteractive dpkg -i, with optional HOSTCERT_* seeds in the environment."""
        target = self._stage(deb)
        prefix = self.secret_env_file(env) if env else ""
        return self.run(f"{prefix}DEBIAN_FRONTEND=noninteractive exec dpkg -i {target}",
                        check=check)

    def rpm(self, *args, rpm=None, env=None, check=True):
        """The root's own rpm: rpm --dbpath /var/lib/rpm [--nodeps --force-debian] ARGS [file].

        --nodeps (Debian's rpm database knows no CentOS package) and --force-debian
        (Debian's rpm refuses to install otherwise) only where rpm accepts them."""
        target = [self._stage(rpm)] if rpm else []
        prefix = self.secret_env_file(env) if env else ""
        force = [] if args[0].startswith("-q") else ["--nodeps", "--force-debian"]
        cmd = shlex.join(["rpm", "--dbpath", "/var/lib/rpm", *force, *args, *target])
        return self.run(prefix + "exec " + cmd, check=check)

    def _stage(self, pkg):
        pkg = Path(pkg)
        if pkg.parent == DIST:
            return f"/mnt/dist/{pkg.name}"
        self.put(pkg, f"/tmp/{pkg.name}")  # /tmp is the container's own tmpfs
        return f"/tmp/{pkg.name}"


# ---------------------------------------------------------------- CA server


def ssh_blob_type(blob_b64):
    blob = base64.b64decode(blob_b64)
    (n,) = struct.unpack(">I", blob[:4])
    return blob[4:4 + n].decode()


class CAServer:
    """A real hostcert-server: data on the host, listening inside a container's netns."""

    def __init__(self, binary, data_dir, port=CA_PORT):
        self.binary, self.dir, self.port = str(binary), Path(data_dir), port
        self.container = None
        self.ca_url = self.fingerprint = None

    def cmd(self, *args, **kw):
        return host_run([self.binary, *map(str, args), "--dir", str(self.dir)], **kw)

    def init(self):
        out = self.cmd("init", "--dns", "localhost", "--address", f"127.0.0.1:{self.port}").stdout
        self.ca_url = re.search(r"https://\S+", out).group(0)
        self.fingerprint = re.findall(r"\b[0-9a-fA-F]{64}\b", out)[-1].lower()
        return self

    def serve(self, container, *extra):
        """Start `serve` in the container's network namespace on 127.0.0.1 and wait for /health."""
        self.container = container
        testbed("spawn", container.name, "ca", "--", self.binary, "serve", "--dir", self.dir,
                "--listen", f"127.0.0.1:{self.port}", *extra)
        deadline = time.monotonic() + 20
        while True:
            r = self.curl("/health", check=False)
            if r.returncode == 0 and "ok" in r.stdout:
                return self
            if time.monotonic() > deadline:
                log = testbed("journal", container.name, check=False).stdout
                raise CommandFailed(f"hostcert-server did not answer /health\n{r.stderr}\n{log[-4000:]}")
            time.sleep(0.1)

    def stop(self):
        if self.container:
            testbed("kill", self.container.name, "ca", check=False)

    def curl(self, path, check=True):
        """GET path from inside the server's netns, trusting only the pinned root."""
        root_pem = self.dir / "tb-root.pem"
        if not root_pem.exists():
            r = host_run(["nsenter", f"--net={self.container.netns}", "curl", "-sSk",
                          f"https://127.0.0.1:{self.port}/root/{self.fingerprint}"], check=check)
            if r.returncode != 0:
                return r
            pem = json.loads(r.stdout)["ca"]
            der = host_run(["openssl", "x509", "-outform", "DER"], input=pem.encode(),
                           text=False).stdout
            assert hashlib.sha256(der).hexdigest() == self.fingerprint, "root fingerprint mismatch"
            root_pem.write_text(pem)
        return host_run(["nsenter", f"--net={self.container.netns}", "curl", "-sS", "--cacert",
                         str(root_pem), "--resolve", f"localhost:{self.port}:127.0.0.1",
                         f"https://localhost:{self.port}{path}"], check=check)

    def ssh_roots(self):
        return json.loads(self.curl("/ssh/roots").stdout)

    def known_hosts_line(self):
        """`@cert-authority * KEY` for each host CA key."""
        return "".join(f"@cert-authority * {ssh_blob_type(b)} {b}\n"
                       for b in self.ssh_roots()["hostKey"])

    def token(self, host, *extra):
        return self.cmd("token", "--host", host, *extra).stdout.strip().splitlines()[-1]

    def user_cert(self, user, pubkey):
        self.cmd("user-cert", "--user", user, "--pubkey", pubkey)
        cert = Path(str(pubkey).removesuffix(".pub") + "-cert.pub")
        assert cert.exists(), f"user-cert did not write {cert}"
        return cert

    def hosts(self):
        return json.loads(self.cmd("hosts", "--json").stdout)

    def host(self, hostname):
        return next((h for h in self.hosts() if h["hostname"] == hostname), None)


# ---------------------------------------------------------------- ssh client


class SshClient:
    """The host's OpenSSH client entering a container's netns, trusting only what it is given."""

    def __init__(self, workdir, user=TEST_USER):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.user = user
        self.key = self.dir / "id_ed25519"
        if not self.key.exists():
            host_run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{user}@tb",
                      "-f", str(self.key)])
        self.known_hosts = self.dir / "known_hosts"
        self.known_hosts.write_text("")
        self.cert = None

    def trust_ca(self, server):
        self.known_hosts.write_text(server.known_hosts_line())

    def trust_key(self, container, name):
        keys = "".join(f"{name} {p.read_text().split()[0]} {p.read_text().split()[1]}\n"
                       for p in sorted(container.path("/etc/ssh").glob("ssh_host_*_key.pub")))
        self.known_hosts.write_text(keys)

    def get_user_cert(self, server):
        # Moved away from the key: ssh silently loads `<key>-cert.pub` next to an identity,
        # which would defeat the certificate-less checks (use_cert=False).
        issued = server.user_cert(self.user, self.dir / "id_ed25519.pub")
        self.cert = issued.rename(self.dir / "user-cert.pub")

    def authorize_locally(self, container):
        """The old way: the user's key in ~/.ssh/authorized_keys."""
        container.run(f"install -d -m 700 -o {self.user} -g {self.user} /home/{self.user}/.ssh")
        container.write(f"/home/{self.user}/.ssh/authorized_keys",
                        (self.dir / "id_ed25519.pub").read_text(), mode=0o600)
        container.run(["chown", f"{self.user}:{self.user}",
                       f"/home/{self.user}/.ssh/authorized_keys"])

    def argv(self, container, alias, *remote, use_cert=True):
        opts = ["-F", "/dev/null", "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
                "-o", f"HostKeyAlias={alias}", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR", "-i", str(self.key)]
        if use_cert and self.cert:
            opts += ["-o", f"CertificateFile={self.cert}"]
        return ["nsenter", f"--net={container.netns}", "ssh", *opts, "-p", "22",
                f"{self.user}@127.0.0.1", *remote]

    def login(self, container, alias=None, *, use_cert=True, check=True):
        """ssh in and run `id -un`; returns the CompletedProcess."""
        argv = self.argv(container, alias or container.hostname, "id", "-un", use_cert=use_cert)
        for _ in range(50):  # sshd may be re-executing after a reload by hostcert
            r = host_run(argv, check=False, timeout=60)
            if "Connection refused" not in r.stderr:
                break
            time.sleep(0.1)
        container.history.append((argv, r))
        if check:
            assert r.returncode == 0 and r.stdout.strip() == self.user, describe(argv, r)
        return r

    def testinfra(self, container, alias=None):
        """A testinfra host over its ssh backend, logged in as the user with the same trust
        (ProxyCommand: socat entering the container's network namespace)."""
        alias = alias or container.hostname
        cfg = self.dir / f"ssh_config-{container.name}"
        lines = [f"Host {alias}", "  HostName 127.0.0.1", "  Port 22", f"  User {self.user}",
                 f"  ProxyCommand nsenter --net={container.netns} socat - TCP:127.0.0.1:22",
                 f"  UserKnownHostsFile {self.known_hosts}", "  GlobalKnownHostsFile /dev/null",
                 "  StrictHostKeyChecking yes", f"  HostKeyAlias {alias}", "  IdentitiesOnly yes",
                 f"  IdentityFile {self.key}", "  BatchMode yes", "  LogLevel ERROR"]
        if self.cert:
            lines.append(f"  CertificateFile {self.cert}")
        cfg.write_text("\n".join(lines) + "\n")
        return testinfra.get_host(f"ssh://{alias}", ssh_config=str(cfg))

    def presented_certificates(self, container):
        """Host certificates sshd actually presents (ssh-keyscan -c)."""
        r = host_run(["nsenter", f"--net={container.netns}", "ssh-keyscan", "-c", "-p", "22",
                      "127.0.0.1"], check=False)
        certs = {}  # ssh-keyscan -c prints "TYPE BLOB" (no host name) per certificate
        for line in r.stdout.splitlines():
            fields = line.split()
            for i, f in enumerate(fields[:-1]):
                if not line.startswith("#") and f.endswith("-cert-v01@openssh.com"):
                    certs[f] = fields[i + 1]
        return certs


# ---------------------------------------------------------------- state checks


def snapshot(container, top="/etc"):
    """{relative path: (kind, mode, uid, gid, sha256 or link target)} for every entry under top."""
    base = container.path(top)
    snap = {}
    for dirpath, dirnames, filenames in os.walk(base):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            st = p.lstat()
            rel = "/" + str(p.relative_to(container.root))
            if stat.S_ISLNK(st.st_mode):
                content = os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                content = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                content = None
            snap[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                         content)
    return snap


def snapshot_diff(before, after, allowed=()):
    """Paths that differ (added, removed or changed) and match no glob in `allowed`."""
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    return [p for p in changed if not any(fnmatch.fnmatch(p, a) for a in allowed)]


def files_containing(container, needle, tops=("/etc", "/var/log", "/var/lib", "/run/log")):
    """Every regular file under tops whose bytes contain needle."""
    needle = needle.encode()
    hits = []
    for top in tops:
        for dirpath, _, filenames in os.walk(container.path(top)):
            for n in filenames:
                p = Path(dirpath) / n
                try:
                    if p.is_symlink() or not p.is_file():
                        continue
                    if needle in p.read_bytes():
                        hits.append("/" + str(p.relative_to(container.root)))
                except OSError:
                    pass
    return hits


class ArgvWatcher:
    """Polls every process's argv on the machine (containers included) for a secret."""

    def __init__(self, secret):
        self.secret = secret.encode()
        self.hits = []
        self.scans = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self._stop.is_set():
            for entry in os.scandir("/proc"):
                if entry.name.isdigit():
                    try:
                        with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                            argv = f.read()
                    except OSError:
                        continue
                    if self.secret in argv:
                        self.hits.append(argv.replace(b"\0", b" ").decode(errors="replace"))
            self.scans += 1
            time.sleep(0.005)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


# ---------------------------------------------------------------- hostcert checks

BEGIN_MARKER = "# BEGIN hostcert managed block"
# What `dpkg -r` may leave under /etc by design: configuration stays until purge (conffiles,
# hostcert's pinned root and CA settings, the host certificates next to the host keys, which
# sshd no longer loads), and debhelper keeps unit enablement symlinks (and their .wants
# directories) until purge. Purge must remove all of it.
REMOVE_MAY_CHANGE = ("/etc/hostcert", "/etc/hostcert/*", "/etc/ssh/ssh_host_*_key-cert.pub",
                     "/etc/systemd/system/*hostcert*", "/etc/systemd/system/*.wants",
                     "/etc/ld.so.cache")
# After purge only the linker cache (regenerated, not byte-stable) and an emptied
# .wants directory created by enabling the timers may differ.
PURGE_MAY_CHANGE = ("/etc/systemd/system/*.wants", "/etc/ld.so.cache")


def answers(server, token, hostname, tags=None, bastion=None, is_bastion=None, fingerprint=None):
    """debconf answers (question -> (type, value)) for an unattended install."""
    a = {"ca-url": ("string", server.ca_url),
         "fingerprint": ("string", fingerprint or server.fingerprint),
         "token": ("password", token),
         "hostname": ("string", hostname)}
    if tags:
        a["tags"] = ("string", ",".join(f"{k}={v}" for k, v in tags.items()))
    if bastion:
        a["bastion"] = ("string", bastion)
    if is_bastion is not None:
        a["is-bastion"] = ("boolean", "true" if is_bastion else "false")
    return a


def env_seeds(server, token, hostname, tags=None):
    """The same settings as HOSTCERT_* environment variables."""
    env = {"HOSTCERT_CA_URL": server.ca_url, "HOSTCERT_FINGERPRINT": server.fingerprint,
           "HOSTCERT_TOKEN": token, "HOSTCERT_HOSTNAME": hostname}
    if tags:
        env["HOSTCERT_TAGS"] = ",".join(f"{k}={v}" for k, v in tags.items())
    return env


def wrong_fingerprint(fp):
    return fp[:-1] + ("0" if fp[-1] != "0" else "1")


def assert_enrolled(c, server, ssh, tags=None):
    """The host is a full member: sshd uses hostcert's certificate(s) and user CA, a client
    trusting only the CA logs in with a user certificate, the inventory lists the host."""
    eff = c.sshd_effective()
    certs = [v for k, v in eff if k == "hostcertificate"]
    trusted = [v for k, v in eff if k == "trustedusercakeys"]
    if not certs or not trusted or trusted[0] == "none":
        status = c.run(["hostcert", "status"], check=False)
        raise AssertionError(f"sshd -T: hostcertificate={certs} trustedusercakeys={trusted}\n"
                             f"hostcert status:\n{status.stdout}{status.stderr}")
    for path in certs:
        out = c.run(["ssh-keygen", "-L", "-f", path]).stdout
        assert "host certificate" in out, out
        assert re.search(rf"(?m)^\s+{re.escape(c.hostname)}$", out), f"{c.hostname} not a principal:\n{out}"
    assert ssh.presented_certificates(c), "sshd presents no host certificate (not reloaded?)"
    ssh.trust_ca(server)
    ssh.get_user_cert(server)
    ssh.login(c)
    assert ssh.testinfra(c).user().name == ssh.user  # testinfra's ssh backend, same trust
    entry = server.host(c.hostname)
    assert entry is not None, f"{c.hostname} not in the inventory: {server.hosts()}"
    if tags is not None:
        assert entry["tags"] == tags, entry
    return entry


def managed_blocks(c):
    return sum(1 for line in c.read("/etc/ssh/sshd_config").splitlines()
               if line.startswith(BEGIN_MARKER))


def assert_token_nowhere(c, token):
    """Not in any file under /etc, /var/log, /var/lib, the journal; blank in debconf."""
    hits = files_containing(c, token)
    assert hits == [], f"token found in {hits}"
    journal = c.run(["journalctl", "--no-pager", "-b", "-o", "cat"]).stdout
    assert token not in journal, "token found in the journal"
    pw = c.path("/var/cache/debconf/passwords.dat")
    if pw.exists():
        text = pw.read_text()
        assert token not in text, "token still in debconf's passwords.dat"
        m = re.search(r"(?ms)^Name: hostcert/token\n(.*?)(?:\n\n|\Z)", text)
        if m:
            value = re.search(r"(?m)^Value:(.*)$", m.group(1))
            assert value is None or value.group(1).strip() == "", m.group(0)


def install_with_preseed(c, server, deb, tags=None, **extra):
    """Preseed debconf, then `dpkg -i` while watching every argv for the token.
    Returns (token, dpkg's CompletedProcess)."""
    token = server.token(c.hostname)
    c.preseed(answers(server, token, c.hostname, tags=tags, **extra))
    with ArgvWatcher(token) as watch:
        r = c.dpkg_install(deb)
    assert watch.hits == [], f"token seen in argv during install: {watch.hits}"
    return token, r


def pkg_owned(c, package):
    """Paths dpkg says the package ships."""
    return set(c.run(["dpkg-query", "-L", package]).stdout.split())
