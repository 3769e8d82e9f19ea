//! Shared volumes against the real engine.

use crate::common;

use std::process::Command;

use crate::common::{busybox, engine, Project};

fn project() -> Project {
    let p = Project::new(&[
        ("Dockerfile", "FROM scratch\n"),
        ("compose.yaml", "services:\n  app:\n    build: .\n"),
    ]);
    p.write(
        "dockwarm.toml",
        &format!(
            "[project]\nname = \"{}\"\n[volumes]\nuv = \"/cache/uv\"\npip = \"/root/.cache/pip\"\n",
            p.name
        ),
    );
    p
}

#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn ensure_run_eight_times_at_once_leaves_one_labelled_volume_each() {
    engine();
    let p = project();
    let spawned: Vec<_> = (0..8)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_dockwarm"))
                .args(["volumes", "ensure"])
                .current_dir(&p.root)
                .env("DOCKWARM_STATE_DIR", &p.state)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in spawned {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let listed = Command::new("docker")
        .args([
            "volume",
            "ls",
            "-q",
            "--filter",
            &format!("label=dev.dockwarm.project={}", p.name),
        ])
        .output()
        .unwrap();
    let mut names: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![format!("{}_pip", p.name), format!("{}_uv", p.name)]
    );
    for name in &names {
        let labels = Command::new("docker")
            .args([
                "volume",
                "inspect",
                "--format",
                "{{index .Labels \"dev.dockwarm.managed\"}}",
                name,
            ])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&labels.stdout).trim(), "true");
    }
    let again = p.ok(&["volumes", "ensure"]);
    assert!(
        again.contains("present") && !again.contains("created"),
        "{again}"
    );
}

#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn ls_shows_sizes_and_rm_refuses_foreign_and_used_volumes() {
    engine();
    let p = project();
    p.ok(&["volumes", "ensure"]);
    let uv = format!("{}_uv", p.name);
    // Put 1 MiB into the uv volume through a container.
    let image = busybox();
    common::sh(Command::new("docker").args([
        "run", "--rm", "--label", "dev.dockwarm.test=true", "-v", &format!("{uv}:/v"), image,
        "sh", "-c", "dd if=/dev/zero of=/v/blob bs=1024 count=1024 2>/dev/null || head -c 1048576 /dev/zero > /v/blob",
    ]));
    let rows = p.json(&["volumes", "ls"]);
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == uv.as_str())
        .unwrap()
        .clone();
    assert!(row["size"].as_u64().unwrap_or(0) >= 1 << 20, "{rows}");
    let table = p.ok(&["volumes", "ls"]);
    assert!(table.contains(&uv) && table.contains("MiB"), "{table}");

    // A volume dockwarm did not create is never removed.
    let foreign = format!("{}_foreign", p.name);
    common::sh(Command::new("docker").args(["volume", "create", &foreign]));
    let out = p.dockwarm(&["volumes", "rm", &foreign]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not created by dockwarm"));

    // Nor one a container uses; and a refusal removes nothing.
    let container = format!("{}-user", p.name);
    common::sh(Command::new("docker").args([
        "create",
        "--name",
        &container,
        "-v",
        &format!("{uv}:/v"),
        image,
        "true",
    ]));
    let out = p.dockwarm(&["volumes", "rm"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&container),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let still = Command::new("docker")
        .args(["volume", "inspect", &format!("{}_pip", p.name)])
        .output()
        .unwrap();
    assert!(still.status.success());

    common::sh(Command::new("docker").args(["rm", &container]));
    p.ok(&["volumes", "rm"]);
    assert!(!Command::new("docker")
        .args(["volume", "inspect", &uv])
        .output()
        .unwrap()
        .status
        .success());
    assert!(Command::new("docker")
        .args(["volume", "inspect", &foreign])
        .output()
        .unwrap()
        .status
        .success());
    let _ = Command::new("docker")
        .args(["volume", "rm", &foreign])
        .output();
}
