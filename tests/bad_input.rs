//! Bad input gets one clear line naming the file and what to do, and the documented exit code.

use crate::common::project;

const DOCKERFILE: &str = "FROM scratch\nCOPY deps.lock ./\nRUN install\nCOPY . .\n";

#[test]
fn no_engine_names_the_endpoint_and_how_to_start_one() {
    let p = project()
        .dockerfile(DOCKERFILE)
        .file("deps.lock", "x\n")
        .build();
    let sock = p.tmp.path().join("no-engine.sock");
    for args in [&["prebuild"][..], &["volumes", "ensure"], &["fingerprint"]] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_dockwarm"))
            .args(args)
            .current_dir(&p.root)
            .env("DOCKWARM_STATE_DIR", &p.state)
            .env("DOCKER_HOST", format!("unix://{}", sock.display()))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
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
    let p = project()
        .dockerfile(DOCKERFILE)
        .file("deps.lock", "x\n")
        .build();
    p.write(
        "dockwarm.toml",
        "[project]\nname = \"ok\"\n\n[[image]]\nname = \"app\"\nargs = { A = 1 }\n",
    );
    for args in [&["config"][..], &["prebuild"], &["fingerprint"]] {
        p.run(args)
            .code(2)
            .one_line_error()
            .stderr_has("dockwarm.toml:6:")
            .stderr_has("string");
    }
}

#[test]
fn malformed_yaml_gives_file_line_column_and_exit_2() {
    let p = project()
        .dockerfile(DOCKERFILE)
        .file("deps.lock", "x\n")
        .build();
    p.write(
        "compose.yaml",
        "services:\n  app:\n    build: .\n   bad: [\n",
    );
    p.run(&["config"])
        .code(2)
        .one_line_error()
        .stderr_has("compose.yaml:4:");
}

#[test]
fn a_missing_dockerfile_is_named() {
    let p = project()
        .compose("services:\n  app:\n    build:\n      context: .\n      dockerfile: docker/Dockerfile.dev\n")
        .build();
    p.run(&["prebuild"])
        .code(2)
        .stderr_has("docker/Dockerfile.dev")
        .stderr_has("not found");
}

#[test]
fn a_missing_input_file_is_named() {
    let p = project()
        .dockerfile("FROM scratch\nCOPY uv.lock pyproject.toml ./\nRUN install\nCOPY . .\n")
        .file("pyproject.toml", "")
        .build();
    p.run(&["prebuild"]).code(2).stderr_has("uv.lock");
}

#[test]
fn an_unknown_image_is_a_usage_error() {
    let p = project()
        .dockerfile(DOCKERFILE)
        .file("deps.lock", "x\n")
        .build();
    p.run(&["prebuild", "nope"])
        .code(2)
        .stderr_has("no image named `nope`; configured images: app");
}

#[test]
fn a_dockerfile_error_points_at_path_line_and_column_once() {
    let p = project()
        .dockerfile("FROM scratch\nONBUILDX foo\nCOPY deps.lock ./\nRUN install\n")
        .file("deps.lock", "x\n")
        .build();
    let run = p.run(&["fingerprint"]).code(2).one_line_error();
    let err = run.stderr();
    let expected = format!(
        "{}:2:1: unknown instruction: ONBUILDX",
        p.root.join("Dockerfile").display()
    );
    assert!(err.contains(&expected), "wanted {expected:?} in {err}");
    assert_eq!(
        err.matches("Dockerfile").count(),
        1,
        "the file is named once: {err}"
    );
}

#[test]
fn a_dockerignore_error_points_at_its_line() {
    let p = project()
        .dockerfile(DOCKERFILE)
        .file("deps.lock", "x\n")
        .file(".dockerignore", "# generated\nnode_modules\n\nsrc/[\n")
        .build();
    p.run(&["fingerprint"])
        .code(2)
        .one_line_error()
        .stderr_has(&format!(
            "{}:4:1: invalid .dockerignore pattern \"src/[\"",
            p.root.join(".dockerignore").display()
        ));
}
