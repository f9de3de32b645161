//! Benchmark: activate + deactivate on a stock Debian 10 tree, sshd excluded (the tree has no
//! sshd, so validation is skipped). Goal: <= 20 ms for the pair.
//! Run: `cargo bench --bench activate`.
//!
//! It runs twice: on memory (`/dev/shm`), which measures hostcert's own work, and on the disk
//! of the temp directory, which adds that disk's fsync latency (each durable write costs two
//! fsyncs: the file and its directory).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hostcert::activation::{activate, deactivate, Options};
use hostcert::paths::Root;
use hostcert::system::Real;

const ROUNDS: usize = 100;
const GOAL: Duration = Duration::from_millis(20);

fn stock_tree(parent: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir_in(parent).expect("temp dir");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/debian10/.");
    let status = Command::new("cp")
        .arg("-a")
        .arg(&fixture)
        .arg(dir.path())
        .status()
        .expect("cp");
    assert!(status.success());
    let status = Command::new("ssh-keygen")
        .arg("-A")
        .arg("-f")
        .arg(dir.path())
        .output()
        .expect("ssh-keygen");
    assert!(status.status.success());
    let modules = dir.path().join("lib/x86_64-linux-gnu/security");
    std::fs::create_dir_all(&modules).unwrap();
    std::fs::write(modules.join("pam_mkhomedir.so"), b"").unwrap();
    dir
}

fn measure(label: &str, parent: &Path) {
    let dir = stock_tree(parent);
    let root = Root::new(dir.path());
    let options = Options {
        no_reload: true,
        ..Options::default()
    };
    let mut times = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let on = activate(&root, &Real, &options).expect("activate");
        let off = deactivate(&root, &Real, &options).expect("deactivate");
        times.push(start.elapsed());
        assert!(on.changed() && off.changed());
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let median = times[ROUNDS / 2];
    println!(
        "activate+deactivate, Debian 10 stock tree, {label} ({}): median {:.2} ms, p95 {:.2} ms (goal <= {} ms: {})",
        parent.display(),
        ms(median),
        ms(times[ROUNDS * 95 / 100]),
        GOAL.as_millis(),
        if median <= GOAL { "met" } else { "not met" }
    );
}

fn main() {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        measure("in memory", shm);
    }
    measure("on disk", &std::env::temp_dir());
}
