//! Fingerprint throughput: hashing 20 lockfiles of 1 MB each (goal: at least 1 GB/s).
//!
//! `cargo bench --bench fingerprint`. Files are hot in the page cache after the first round,
//! as they are when a hook fires right after git wrote them.

use std::path::Path;
use std::time::Instant;

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut files = Vec::new();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..20 {
        let name = format!("pkg{i}/uv.lock");
        let mut bytes = Vec::with_capacity(1 << 20);
        while bytes.len() < 1 << 20 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            bytes.extend_from_slice(&seed.to_le_bytes());
        }
        let path = dir.path().join(&name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, &bytes).expect("write");
        files.push(name);
    }
    let total = 20.0 * (1u64 << 20) as f64;
    let mut rates = Vec::new();
    let env = dockwarm::env::Env::from_process();
    for _ in 0..30 {
        let started = Instant::now();
        let hashed = dockwarm::fingerprint::hash_files(dir.path(), Path::new(""), &files, &env)
            .expect("hash");
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(hashed.len(), 20);
        rates.push(total / secs / 1e9);
    }
    rates.sort_by(|a, b| a.total_cmp(b));
    let median = rates[rates.len() / 2];
    println!("fingerprint throughput, 20 x 1 MB lockfiles: median {median:.2} GB/s (min {:.2}, max {:.2}; goal >= 1 GB/s)", rates[0], rates[rates.len() - 1]);
}
