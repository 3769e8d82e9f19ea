//! Bad input gets one clear line naming the file and what to do, and the documented exit code.

use crate::common::Project;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const DOCKERFILE: &str = "FROM scratch\nCOPY deps.lock ./\nRUN install\nCOPY . .\n";

#[test]
fn no_engine_names_the_endpoint_and_how_to_start_one() {
    let p = Project::new(&[("Dockerfile", DOCKERFILE), ("deps.lock", "x\n")]);
    let sock = p.tmp.path().join("no-engine.sock");
    for args in [&["prebuild"][..], &["volumes", "ensure"], &["fingerprint"]] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_dockwarm"))
            .args(args)
            .current_dir(&p.root)
            .env("DOCKWARM_STATE_DIR", &p.state)
            .env("DOCKER_HOST", format!("unix://{}", sock.display()))
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(
            err.contains(&sock.display().to_string()) && err.contains("DOCKER_HOST"),
            "{err}"
        );
        assert!(err.contains("start"), "says how to start one: {err}");
    }
}

#[test]
fn malformed_toml_gives_file_line_column_and_exit_2() {
    let p = Project::new(&[("Dockerfile", DOCKERFILE), ("deps.lock", "x\n")]);
    p.write(
        "dockwarm.toml",
        "[project]\nname = \"ok\"\n\n[[image]]\nname = \"app\"\nargs = { A = 1 }\n",
    );
    for args in [&["config"][..], &["prebuild"], &["fingerprint"]] {
        let out = p.dockwarm(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("dockwarm.toml:6:"), "{err}");
        assert!(
            err.contains("expected a string") || err.contains("string"),
            "{err}"
        );
    }
}

#[test]
fn malformed_yaml_gives_file_line_column_and_exit_2() {
    let p = Project::new(&[("Dockerfile", DOCKERFILE), ("deps.lock", "x\n")]);
    p.write(
        "compose.yaml",
        "services:\n  app:\n    build: .\n   bad: [\n",
    );
    let out = p.dockwarm(&["config"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("compose.yaml:4:"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn a_missing_dockerfile_is_named() {
    let p = Project::new(&[("compose.yaml", "services:\n  app:\n    build:\n      context: .\n      dockerfile: docker/Dockerfile.dev\n")]);
    let out = p.dockwarm(&["prebuild"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("docker/Dockerfile.dev") && err.contains("not found"),
        "{err}"
    );
}

#[test]
fn a_missing_input_file_is_named() {
    let p = Project::new(&[
        (
            "Dockerfile",
            "FROM scratch\nCOPY uv.lock pyproject.toml ./\nRUN install\nCOPY . .\n",
        ),
        ("pyproject.toml", ""),
    ]);
    let out = p.dockwarm(&["prebuild"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("uv.lock"), "{err}");
}

#[test]
fn an_unknown_image_is_a_usage_error() {
    let p = Project::new(&[("Dockerfile", DOCKERFILE), ("deps.lock", "x\n")]);
    let out = p.dockwarm(&["prebuild", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no image named `nope`; configured images: app"),
        "{}",
        stderr(&out)
    );
}
