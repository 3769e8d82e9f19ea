//! `dockwarm prune` against the real engine: what it keeps, what it never touches.

use crate::common;

use std::collections::BTreeMap;
use std::process::Command;

use crate::common::{busybox, engine, sh, Project};
use dockwarm::registry::{self, ImageSeen, Workspace};
use dockwarm::state::State;

const DOCKERFILE: &str = r#"ARG BASE=dockwarm-test/busybox:latest
FROM ${BASE}
WORKDIR /app
COPY deps.lock ./
RUN cp deps.lock /app/installed
COPY . .
"#;

fn exists(tag: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", tag])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Builds the dependency stage for `count` lockfile versions, oldest first; returns their tags.
fn versions(p: &Project, count: usize) -> Vec<String> {
    let mut tags = Vec::new();
    for i in 0..count {
        p.write("deps.lock", &format!("v=={i}\n# {}\n", p.name));
        let v = p.json(&["prebuild", "--quiet"]);
        tags.push(v[0]["tag"].as_str().unwrap().to_string());
        // Image creation times have one-second resolution: keep "newest" unambiguous.
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    tags
}

#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn prune_keeps_the_newest_the_used_and_what_containers_use_and_nothing_unlabelled() {
    engine();
    busybox();
    let p = Project::new(&[
        ("Dockerfile", DOCKERFILE),
        (
            "compose.yaml",
            "services:\n  app:\n    build:\n      context: .\n",
        ),
    ]);
    let tags = versions(&p, 5);
    assert!(tags.iter().all(|t| exists(t)));

    // The workspace is registered and its current content is the last version.
    let state = State::at(&p.state);
    let fp = p.json(&["fingerprint"])[0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    registry::put(
        &state,
        &Workspace {
            name: p.name.clone(),
            path: p.root.clone(),
            project: p.name.clone(),
            compose_project: p.name.clone(),
            registered_at: 0,
            images: BTreeMap::from([(
                "app".to_string(),
                ImageSeen {
                    fingerprint: Some(fp),
                    ..Default::default()
                },
            )]),
            engine: None,
        },
    )
    .unwrap();
    // A container made from the oldest version, and an image that merely looks like ours.
    let container = format!("{}-c", p.name);
    sh(Command::new("docker").args([
        "create",
        "--name",
        &container,
        "--label",
        &format!("com.docker.compose.project={}", p.name),
        &tags[0],
        "true",
    ]));
    let lookalike = format!("dockwarm/{}-app-deps:000000000000", p.name);
    sh(Command::new("docker").args(["tag", common::BUSYBOX, &lookalike]));

    // keep 1: v5 is used, v1 has a container, v4 is the newest unused; v2 and v3 go.
    let out = p.ok(&["prune", "--keep", "1", "--dry-run"]);
    assert!(out.contains("would remove"), "{out}");
    assert!(
        tags.iter().all(|t| exists(t)),
        "--dry-run removed something"
    );
    let plan = p.json(&["prune", "--keep", "1", "--dry-run"]);
    let planned: Vec<&str> = plan["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["image"]["tags"][0].as_str().unwrap())
        .collect();
    assert_eq!(
        planned,
        vec![tags[2].as_str(), tags[1].as_str()],
        "{plan:#}"
    );

    let out = p.ok(&["prune", "--keep", "1"]);
    assert!(out.contains("removed 2 image(s)"), "{out}");
    assert!(exists(&tags[0]), "the container's image went");
    assert!(!exists(&tags[1]) && !exists(&tags[2]));
    assert!(exists(&tags[3]), "the newest unused went");
    assert!(exists(&tags[4]), "the used one went");
    assert!(exists(&lookalike), "an image without our label went");

    // --older-than spares what is younger; keep 0 then takes the newest unused too.
    let out = p.ok(&["prune", "--keep", "0", "--older-than", "1h"]);
    assert!(out.contains("removed 0 image(s)"), "{out}");
    assert!(exists(&tags[3]));
    p.ok(&["prune", "--keep", "0"]);
    assert!(!exists(&tags[3]));
    assert!(exists(&tags[0]) && exists(&tags[4]) && exists(&lookalike));

    let _ = Command::new("docker")
        .args(["rm", "-f", &container])
        .output();
    let _ = Command::new("docker").args(["rmi", &lookalike]).output();
}
