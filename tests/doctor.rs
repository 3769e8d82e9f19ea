//! `dockwarm doctor`: one line per check, each failure with its fix.

use crate::common::{engine, Project};

#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn doctor_explains_what_is_wrong_and_how_to_fix_it() {
    engine();
    let p = Project::new(&[(
        "Dockerfile",
        "FROM dockwarm-test/busybox:latest\nWORKDIR /app\nCOPY . .\nRUN --mount=type=cache,target=/root/.cache/pip pip install --no-cache-dir -r requirements.txt\nRUN uv sync --frozen\n",
    )]);
    p.write(
        "compose.yaml",
        "services:\n  app:\n    build: .\n    volumes:\n      - uv:/cache/uv\nvolumes:\n  uv: {}\n",
    );
    p.write(
        "dockwarm.toml",
        &format!(
            "[project]\nname = \"{}\"\n[volumes]\nuv = \"/cache/uv\"\n",
            p.name
        ),
    );
    let out = p.dockwarm(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let has = |prefix: &str, needle: &str| {
        text.lines()
            .any(|l| l.starts_with(prefix) && l.contains(needle))
    };
    assert!(has("ok   engine reachable", "unix://"), "{text}");
    assert!(has("ok   API version", "1."), "{text}");
    assert!(has("ok   BuildKit usable", "buildx"), "{text}");
    assert!(has("ok   configuration", &p.name), "{text}");
    assert!(
        has("FAIL volumes present", &format!("{}_uv is missing", p.name)),
        "{text}"
    );
    assert!(
        text.contains("fix: run `dockwarm volumes ensure`"),
        "{text}"
    );
    assert!(has("warn hooks", "post-checkout"), "{text}");
    // compose would make `<workspace>_uv` per workspace instead of the shared volume.
    assert!(has("FAIL volumes shared", "one per workspace"), "{text}");
    assert!(
        text.contains(&format!(
            "volumes:\n         uv:\n           name: {}_uv\n           external: true",
            p.name
        )),
        "{text}"
    );
    // The source is copied before the install: no dependency stage.
    assert!(
        has(
            "FAIL dependency stage",
            "copied before the dependencies are installed"
        ),
        "{text}"
    );
    assert!(
        text.contains("COPY . ."),
        "the fix shows the reordering: {text}"
    );
    // Advice on the install steps, each with a fix.
    assert!(has("warn Dockerfile", "--no-cache-dir"), "{text}");
    assert!(
        has("warn Dockerfile", ":5:"),
        "the uv step without a cache mount: {text}"
    );
    assert!(text.matches("     fix: ").count() >= 5, "{text}");

    // Fixed: volumes ensured, hooks installed, compose sharing the named volume, Dockerfile reordered.
    p.write(
        "compose.yaml",
        &format!("services:\n  app:\n    build: .\n    volumes:\n      - uv:/cache/uv\nvolumes:\n  uv:\n    name: {}_uv\n    external: true\n", p.name),
    );
    p.write(
        "Dockerfile",
        "FROM dockwarm-test/busybox:latest\nENV UV_LINK_MODE=copy\nWORKDIR /app\nCOPY uv.lock ./\nRUN --mount=type=cache,target=/cache/uv uv sync --frozen\nCOPY . .\n",
    );
    p.write("uv.lock", "x\n");
    p.ok(&["volumes", "ensure"]);
    p.ok(&["hooks", "install"]);
    let out = p.dockwarm(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("FAIL") && !text.contains("warn"), "{text}");
}
