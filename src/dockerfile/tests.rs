use std::collections::BTreeMap;

use super::*;

fn no_args() -> BTreeMap<String, String> {
    BTreeMap::new()
}

fn dirs(p: &str) -> bool {
    matches!(p, "src" | "app" | "tests")
}

fn plan(text: &str) -> Result<DepsPlan, DepsError> {
    let df = parse(text).expect("parses");
    dependency_stage(&df, None, None, &no_args(), &dirs)
}

fn keywords(df: &Dockerfile) -> Vec<String> {
    df.stages
        .iter()
        .flat_map(|s| std::iter::once(&s.from).chain(s.instructions.iter()))
        .map(|i| format!("{} {}", i.keyword, i.args))
        .collect()
}

const SEED: &str = "\
FROM ghcr.io/astral-sh/uv:python3.12-bookworm-slim
WORKDIR /app
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/cache/uv uv sync --frozen --no-install-project
COPY . .
RUN uv sync --frozen
";

// ---------------------------------------------------------------- parser

#[test]
fn parses_seed_instructions_and_lines() {
    let df = parse(SEED).unwrap();
    assert_eq!(df.stages.len(), 1);
    let s = &df.stages[0];
    assert_eq!(s.base, "ghcr.io/astral-sh/uv:python3.12-bookworm-slim");
    assert_eq!(s.instructions.len(), 5);
    let run = &s.instructions[2];
    assert_eq!(run.keyword, "RUN");
    assert_eq!(run.start_line, 4);
    assert_eq!(
        run.flags,
        vec![Flag {
            name: "mount".into(),
            value: Some("type=cache,target=/cache/uv".into())
        }]
    );
    assert_eq!(run.args, "uv sync --frozen --no-install-project");
    assert!(run.has_cache_mount());
    assert_eq!(
        s.instructions[1].words(),
        vec!["pyproject.toml", "uv.lock", "./"]
    );
}

#[test]
fn comments_blank_lines_and_lowercase_keywords() {
    let df = parse(
        "# a comment\n\n  # indented comment\nfrom alpine as Base\nrun echo hi # not a comment\n",
    )
    .unwrap();
    assert_eq!(df.stages[0].name.as_deref(), Some("Base"));
    let run = &df.stages[0].instructions[0];
    assert_eq!(run.keyword, "RUN");
    assert_eq!(run.args, "echo hi # not a comment");
    assert_eq!(run.start_line, 5);
    assert!(df.directives.is_empty());
}

#[test]
fn continuations_skip_comments_and_empty_lines() {
    let text = "FROM alpine\nRUN apk add \\\n# a comment inside\n    curl \\  \n\n    git\nRUN echo done\n";
    let df = parse(text).unwrap();
    let run = &df.stages[0].instructions[0];
    assert_eq!(run.args, "apk add     curl     git");
    assert_eq!((run.start_line, run.end_line), (2, 6));
    assert_eq!(
        run.raw,
        "RUN apk add \\\n# a comment inside\n    curl \\  \n\n    git\n"
    );
    assert_eq!(df.stages[0].instructions[1].start_line, 7);
}

#[test]
fn escaped_escape_is_not_a_continuation() {
    let df = parse("FROM alpine\nRUN echo a\\\\\nRUN echo b\n").unwrap();
    assert_eq!(df.stages[0].instructions.len(), 2);
    assert_eq!(df.stages[0].instructions[0].args, "echo a\\\\");
}

#[test]
fn escape_directive_backtick() {
    let text = "# escape=`\nFROM mcr.microsoft.com/windows/servercore\nRUN dir C:\\ `\n    && echo hi\nCOPY . C:\\app\\\n";
    let df = parse(text).unwrap();
    assert_eq!(df.escape, '`');
    assert_eq!(df.directives[0].name, "escape");
    let ins = &df.stages[0].instructions;
    assert_eq!(ins[0].args, "dir C:\\     && echo hi");
    assert_eq!(ins[1].args, ". C:\\app\\");
    assert_eq!(ins[1].start_line, 5);
}

#[test]
fn directives_only_at_the_top() {
    let df = parse("# syntax=docker/dockerfile:1\n\n# escape=`\nFROM alpine\n").unwrap();
    assert_eq!(df.escape, '\\');
    assert_eq!(df.directives.len(), 1);
    assert_eq!(df.directives[0].value, "docker/dockerfile:1");
    let e = parse("# escape=x\nFROM alpine\n").unwrap_err();
    assert_eq!(e.line, 1);
}

#[test]
fn heredocs_single_chomp_and_multiple() {
    let text = "FROM alpine
RUN <<EOF
set -e
echo $HOME
EOF
RUN <<-'EOT' bash
\techo tabbed
\tEOT
COPY <<one.txt <<\"two.txt\" /dest/
first
one.txt
second
two.txt
RUN echo after
";
    let df = parse(text).unwrap();
    let ins = &df.stages[0].instructions;
    assert_eq!(ins.len(), 4);
    assert_eq!(ins[0].heredocs[0].name, "EOF");
    assert_eq!(ins[0].heredocs[0].body, "set -e\necho $HOME\n");
    assert!(ins[0].heredocs[0].expand);
    assert_eq!((ins[0].start_line, ins[0].end_line), (2, 5));
    let h = &ins[1].heredocs[0];
    assert!(h.chomp && !h.expand);
    assert_eq!(h.name, "EOT");
    assert_eq!(h.content(), "echo tabbed\n");
    assert_eq!(ins[2].keyword, "COPY");
    assert_eq!(ins[2].heredocs.len(), 2);
    assert_eq!(ins[2].heredocs[1].name, "two.txt");
    assert_eq!(ins[2].heredocs[1].body, "second\n");
    assert!(ins[2].raw.ends_with("two.txt\n"));
    assert_eq!(ins[3].start_line, 14);
}

#[test]
fn heredoc_with_a_space_after_the_operator() {
    // BuildKit >= 0.22 reads `<< EOF` and `<<- EOF` as `<<EOF` and `<<-EOF`.
    let text = "FROM alpine\nRUN << EOF\necho one\nEOF\nRUN <<- 'EOT'\n\techo two\n\tEOT\nCOPY << conf.txt /etc/\nx=1\nconf.txt\nRUN echo after\n";
    let df = parse(text).unwrap();
    let ins = &df.stages[0].instructions;
    assert_eq!(ins.len(), 4, "{ins:?}");
    assert_eq!(ins[0].heredocs[0].name, "EOF");
    assert_eq!(ins[0].heredocs[0].body, "echo one\n");
    let h = &ins[1].heredocs[0];
    assert!(h.chomp && !h.expand);
    assert_eq!(h.content(), "echo two\n");
    assert_eq!(ins[2].heredocs[0].name, "conf.txt");
    assert_eq!(ins[3].start_line, 11);
}

#[test]
fn exec_form_has_no_heredoc() {
    let df = parse("FROM alpine\nRUN [\"sh\", \"-c\", \"cat <<EOF\"]\nCMD [\"app\"]\n").unwrap();
    let run = &df.stages[0].instructions[0];
    assert_eq!(run.exec_form.as_deref().map(<[String]>::len), Some(3));
    assert!(run.heredocs.is_empty());
    assert!(parse("FROM alpine\nCMD [1, 2]\n").is_err());
    // Not valid JSON: the shell form.
    let df = parse("FROM alpine\nRUN [ -f x ] && echo y\n").unwrap();
    assert!(df.stages[0].instructions[0].exec_form.is_none());
}

#[test]
fn unterminated_heredoc() {
    let e = parse("FROM alpine\nWORKDIR /\n\n\nRUN <<EOF\necho hi\n").unwrap_err();
    assert_eq!(e.line, 5);
    assert_eq!(e.message, "unterminated heredoc <<EOF started at line 5");
}

#[test]
fn flags_parsed_into_list() {
    let df = parse("FROM --platform=$BUILDPLATFORM golang:1.22 AS build\nCOPY --link --chown=\"app:app\" --from=build /a /b\n").unwrap();
    let s = &df.stages[0];
    assert_eq!(s.platform.as_deref(), Some("$BUILDPLATFORM"));
    let c = &s.instructions[0];
    assert_eq!(c.flag("link"), Some(""));
    assert_eq!(c.flag("chown"), Some("app:app"));
    assert_eq!(c.flag("from"), Some("build"));
    assert_eq!(c.args, "/a /b");
}

#[test]
fn parse_errors() {
    let e = parse("FROM alpine\nRUNN echo\n").unwrap_err();
    assert_eq!(
        (e.line, e.message.as_str()),
        (2, "unknown instruction: RUNN")
    );
    let e = parse("ARG X=1\nRUN echo\nFROM alpine\n").unwrap_err();
    assert_eq!(e.line, 2);
    assert_eq!(e.message, "instruction before the first FROM: RUN");
    let e = parse("FROM\n").unwrap_err();
    assert_eq!(e.message, "FROM expected an image");
    assert!(parse("# only a comment\n").is_err());
    assert!(parse("FROM a AS x\nFROM b AS X\n").is_err());
    assert!(parse("FROM a AS 1x\n").is_err());
}

// ---------------------------------------------------------------- substitution

#[test]
fn substitution_forms() {
    let vars: BTreeMap<String, String> = [("A", "1"), ("E", "")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(substitute("$A ${A} x${A}y", &vars), "1 1 x1y");
    assert_eq!(
        substitute("${B:-def} ${E:-def} ${E-def} ${B-def}", &vars),
        "def def  def"
    );
    assert_eq!(
        substitute("${A:+alt} ${E:+alt} ${E+alt} ${B+alt}", &vars),
        "alt  alt "
    );
    assert_eq!(substitute("\\$A '$A' \"$A\" $ $B.", &vars), "$A $A 1 $ .");
    assert_eq!(substitute("${B:-${A}-x}", &vars), "1-x");
    assert_eq!(substitute_with_escape("`$A", &vars, '`'), "$A");
}

#[test]
fn substitution_patterns_follow_buildkit() {
    let vars: BTreeMap<String, String> = [
        ("F", "archive.tar.gz"),
        ("P", "org/team/app"),
        ("V", "a-b-c"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(substitute("${F%.*}", &vars), "archive.tar");
    assert_eq!(substitute("${F%%.*}", &vars), "archive");
    assert_eq!(substitute("${P#*/}", &vars), "team/app");
    assert_eq!(substitute("${P##*/}", &vars), "app");
    assert_eq!(substitute("${V/-/_}", &vars), "a_b-c");
    assert_eq!(substitute("${V//-/_}", &vars), "a_b_c");
    assert_eq!(substitute("${V/x/y}", &vars), "a-b-c");
    assert_eq!(substitute("${F%.[gx]z}", &vars), "archive.tar");
    assert_eq!(substitute("${F#nomatch}", &vars), "archive.tar.gz");
    assert_eq!(substitute("${NOPE%.*}x", &vars), "x");
    assert_eq!(substitute("src/${P##*/}/", &vars), "src/app/");
}

// ---------------------------------------------------------------- dependency stage

#[test]
fn seed_single_stage_is_truncated_after_install() {
    let p = plan(SEED).unwrap();
    assert!(p.truncated);
    assert_eq!(p.build_target, None);
    assert_eq!(p.context_sources, vec!["pyproject.toml", "uv.lock"]);
    assert_eq!(
        p.base_images,
        vec!["ghcr.io/astral-sh/uv:python3.12-bookworm-slim"]
    );
    assert_eq!(
        p.description,
        "stage 0 up to line 4 (RUN uv sync --frozen --no-install-project)"
    );
    // The truncated text is the original prefix, byte for byte, and re-parses.
    assert!(SEED.starts_with(&p.dockerfile_text));
    let re = parse(&p.dockerfile_text).unwrap();
    assert_eq!(
        keywords(&re),
        vec![
            "FROM ghcr.io/astral-sh/uv:python3.12-bookworm-slim",
            "WORKDIR /app",
            "COPY pyproject.toml uv.lock ./",
            "RUN uv sync --frozen --no-install-project",
        ]
    );
    assert!(p
        .definition
        .contains("RUN --mount=type=cache,target=/cache/uv uv sync --frozen --no-install-project"));
    assert!(!p.definition.contains("COPY . ."));
}

#[test]
fn definition_ignores_comments_and_layout() {
    let a = plan(SEED).unwrap();
    let b_text = SEED.replace("WORKDIR /app\n", "# where it lives\nworkdir   /app\n\n");
    let b = plan(&b_text).unwrap();
    assert_eq!(a.definition, b.definition);
    let c = plan(&SEED.replace("--no-install-project", "--no-install-project --no-dev")).unwrap();
    assert_ne!(a.definition, c.definition);
}

#[test]
fn named_deps_stage_with_from_deps_runtime() {
    let text = "\
FROM python:3.12-slim AS base
ENV PYTHONUNBUFFERED=1

FROM base AS deps
WORKDIR /app
COPY requirements.txt .
RUN --mount=type=cache,target=/root/.cache/pip pip install -r requirements.txt

FROM deps AS runtime
COPY . .
CMD [\"python\", \"-m\", \"app\"]
";
    let p = plan(text).unwrap();
    assert_eq!(p.build_target.as_deref(), Some("deps"));
    assert!(!p.truncated);
    assert_eq!(p.dockerfile_text, text);
    assert_eq!(p.description, "stage `deps` (lines 4-7)");
    assert_eq!(p.context_sources, vec!["requirements.txt"]);
    assert_eq!(p.base_images, vec!["python:3.12-slim"]);
    assert!(p.definition.contains("ENV PYTHONUNBUFFERED=1"));
}

#[test]
fn install_in_ancestor_then_source_in_same_stage_truncates() {
    let text = "\
FROM node:20 AS build
WORKDIR /app
COPY package*.json ./
RUN npm ci
COPY src/ ./src/
RUN npm run build
FROM nginx AS web
COPY --from=build /app/dist /usr/share/nginx/html
";
    let df = parse(text).unwrap();
    let p = dependency_stage(&df, Some("build"), None, &no_args(), &dirs).unwrap();
    assert!(p.truncated);
    assert_eq!(p.description, "stage `build` up to line 4 (RUN npm ci)");
    assert_eq!(p.context_sources, vec!["package*.json"]);
    assert_eq!(keywords(&parse(&p.dockerfile_text).unwrap()).len(), 4);
}

#[test]
fn builder_runtime_copy_from_pattern() {
    let text = "\
FROM python:3.12 AS builder
WORKDIR /app
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-install-project

FROM python:3.12-slim AS runtime
COPY --from=builder /app/.venv /app/.venv
COPY . .
CMD [\"/app/.venv/bin/python\", \"-m\", \"app\"]
";
    let p = plan(text).unwrap();
    assert_eq!(p.build_target.as_deref(), Some("builder"));
    assert!(!p.truncated);
    assert_eq!(p.description, "stage `builder` (lines 1-4)");
    assert_eq!(p.base_images, vec!["python:3.12"]);
    assert_eq!(p.context_sources, vec!["pyproject.toml", "uv.lock"]);
}

#[test]
fn copy_from_index_of_unnamed_stage_is_truncated_text() {
    let text = "\
FROM golang:1.22
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
FROM alpine
COPY --from=0 /go/pkg /go/pkg
COPY . .
";
    let p = plan(text).unwrap();
    assert_eq!(p.build_target, None);
    assert!(p.truncated);
    assert_eq!(p.description, "stage 0 (lines 1-4)");
    assert_eq!(parse(&p.dockerfile_text).unwrap().stages.len(), 1);
}

#[test]
fn global_arg_in_from_with_and_without_build_arg() {
    let text = "\
ARG PY=3.12
ARG VARIANT=slim
FROM python:${PY}-${VARIANT} AS deps
ARG PY
ARG REQS=requirements
COPY ${REQS}.txt ./
RUN pip install -r ${REQS}.txt
COPY . .
";
    let df = parse(text).unwrap();
    assert_eq!(df.global_args.len(), 2);
    let p = dependency_stage(&df, None, None, &no_args(), &dirs).unwrap();
    assert_eq!(p.base_images, vec!["python:3.12-slim"]);
    assert_eq!(p.context_sources, vec!["requirements.txt"]);
    assert!(p.dockerfile_text.starts_with("ARG PY=3.12\n"));

    let args: BTreeMap<String, String> = [("PY", "3.11"), ("REQS", "dev")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let q = dependency_stage(&df, None, None, &args, &dirs).unwrap();
    assert_eq!(q.base_images, vec!["python:3.11-slim"]);
    assert_eq!(q.context_sources, vec!["dev.txt"]);
    assert_ne!(p.definition, q.definition);
    assert!(q.definition.contains("build-arg PY=3.11"));
}

#[test]
fn env_and_stage_parent_substitution() {
    let text = "\
ARG BASE=deps
FROM alpine AS deps
ENV LOCK=poetry.lock
FROM ${BASE} AS app
COPY pyproject.toml $LOCK ./
RUN poetry install --no-root
COPY app ./app
";
    let p = plan(text).unwrap();
    assert_eq!(p.context_sources, vec!["pyproject.toml", "poetry.lock"]);
    assert_eq!(p.base_images, vec!["alpine"]);
    assert_eq!(
        p.description,
        "stage `app` up to line 6 (RUN poetry install --no-root)"
    );
}

#[test]
fn heredoc_copies_are_not_context_sources() {
    let text = "\
FROM python:3.12
COPY <<EOF /etc/pip.conf
[global]
EOF
COPY requirements.txt .
RUN <<EOF
pip install -r requirements.txt
EOF
COPY . .
";
    let p = plan(text).unwrap();
    assert_eq!(p.context_sources, vec!["requirements.txt"]);
    assert!(p
        .definition
        .contains("<<EOF\npip install -r requirements.txt\nEOF"));
    let re = parse(&p.dockerfile_text).unwrap();
    assert_eq!(re.stages[0].instructions.len(), 3);
    assert_eq!(re.stages[0].instructions[2].heredocs.len(), 1);
}

#[test]
fn run_mount_from_image_is_a_base_image() {
    let text = "\
FROM python:3.12-slim
COPY uv.lock pyproject.toml ./
RUN --mount=from=ghcr.io/astral-sh/uv:0.5,source=/uv,target=/bin/uv uv sync
COPY . .
";
    let p = plan(text).unwrap();
    assert_eq!(
        p.base_images,
        vec!["python:3.12-slim", "ghcr.io/astral-sh/uv:0.5"]
    );
}

#[test]
fn whole_last_stage_without_source_copy() {
    let text = "FROM node:20\nCOPY package.json yarn.lock ./\nRUN yarn install\n";
    let p = plan(text).unwrap();
    assert_eq!(p.build_target, None);
    assert!(!p.truncated);
    assert_eq!(p.dockerfile_text, text);
}

#[test]
fn source_copied_first_is_an_error() {
    let text =
        "FROM python:3.12\nWORKDIR /app\n\n\n\nCOPY . .\nRUN pip install -r requirements.txt\n";
    match plan(text).unwrap_err() {
        DepsError::NoDependencyStage {
            line,
            source_copy_line,
            input_copy_line,
            message,
        } => {
            assert_eq!(line, 6);
            assert_eq!(source_copy_line, Some(6));
            assert_eq!(input_copy_line, None);
            assert_eq!(
                message,
                "the source is copied (COPY . . at line 6) before any dependency install; copy the lockfiles and install first"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    // A directory counts as source too.
    assert!(plan("FROM python\nCOPY src /app/src\nRUN pip install .\n").is_err());
}

#[test]
fn no_run_after_last_input_copy_is_an_error() {
    let text = "FROM python\nCOPY requirements.txt .\nRUN pip install -r requirements.txt\nCOPY setup.cfg .\nCOPY . .\n";
    match plan(text).unwrap_err() {
        DepsError::NoDependencyStage {
            source_copy_line,
            input_copy_line,
            ..
        } => {
            assert_eq!(source_copy_line, Some(5));
            assert_eq!(input_copy_line, Some(4));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn deps_target_and_unknown_stages() {
    let text = "FROM python AS deps\nCOPY . .\nRUN pip install .\nFROM deps AS app\n";
    let df = parse(text).unwrap();
    let p = dependency_stage(&df, None, Some("DEPS"), &no_args(), &dirs).unwrap();
    assert_eq!(p.build_target.as_deref(), Some("deps"));
    assert_eq!(p.dockerfile_text, text);
    match dependency_stage(&df, None, Some("nope"), &no_args(), &dirs).unwrap_err() {
        DepsError::UnknownStage { name, available } => {
            assert_eq!(name, "nope");
            assert_eq!(available, vec!["deps", "app"]);
        }
        other => panic!("unexpected {other:?}"),
    }
    let e = dependency_stage(&df, Some("prod"), None, &no_args(), &dirs).unwrap_err();
    assert_eq!(
        e.to_string(),
        "no build stage named `prod`; stages: deps, app"
    );
}

#[test]
fn glob_and_path_classification() {
    let t = |copy: &str| {
        plan(&format!(
            "FROM x\nCOPY a.lock .\nRUN i\n{copy}\nRUN build\n"
        ))
        .unwrap()
    };
    // Source copies stop the walk: the plan ends at line 3.
    for copy in [
        "COPY ./ /app",
        "COPY src/ /app/src",
        "COPY * /app/",
        "COPY tests /t",
        "COPY [\".\", \"/app\"]",
    ] {
        assert!(t(copy).description.contains("up to line 3"), "{copy}");
    }
    // Input copies without a following RUN make the plan end at... the error.
    for copy in [
        "COPY *.lock ./",
        "COPY package*.json ./",
        "COPY README.md .",
    ] {
        assert!(
            plan(&format!("FROM x\nCOPY a.lock .\nRUN i\n{copy}\nCOPY . .\n")).is_err(),
            "{copy}"
        );
    }
}

// ---------------------------------------------------------------- advice

fn advice_for(text: &str) -> Vec<Advice> {
    advice(&parse(text).unwrap())
}

#[test]
fn advice_install_without_cache_mount() {
    let a =
        advice_for("FROM python\nCOPY requirements.txt .\nRUN pip install -r requirements.txt\n");
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].line, 3);
    assert!(a[0].message.contains("without a cache mount"));
    assert_eq!(
        a[0].fix,
        "RUN --mount=type=cache,target=/root/.cache/pip pip install -r requirements.txt"
    );
    for cmd in [
        "npm ci",
        "yarn install --frozen-lockfile",
        "pnpm install",
        "bundle install",
        "go mod download",
        "cargo fetch",
        "poetry install",
        "uv pip install -r r.txt",
    ] {
        assert_eq!(
            advice_for(&format!("FROM x\nRUN {cmd}\n")).len(),
            1,
            "{cmd}"
        );
    }
    assert!(advice_for("FROM x\nRUN echo hi && apt-get install -y curl\n").is_empty());
}

#[test]
fn advice_pip_no_cache_dir_under_cache_mount() {
    let a = advice_for("FROM python\nRUN --mount=type=cache,target=/root/.cache/pip pip install --no-cache-dir -r r.txt\n");
    assert_eq!(a.len(), 1);
    assert!(a[0].message.contains("--no-cache-dir"));
    assert_eq!(
        a[0].fix,
        "RUN --mount=type=cache,target=/root/.cache/pip pip install -r r.txt"
    );
    let a = advice_for("FROM python\nENV PIP_NO_CACHE_DIR=1\nRUN --mount=type=cache,target=/root/.cache/pip pip install -r r.txt\n");
    assert_eq!(a.len(), 1);
    assert!(a[0].message.contains("PIP_NO_CACHE_DIR"));
    assert!(advice_for(
        "FROM python\nRUN --mount=type=cache,target=/root/.cache/pip pip install -r r.txt\n"
    )
    .is_empty());
}

#[test]
fn advice_uv_no_cache_with_cache_mount() {
    let a = advice_for("FROM python\nENV UV_LINK_MODE=copy UV_NO_CACHE=1\nRUN --mount=type=cache,target=/root/.cache/uv uv sync\n");
    assert_eq!(a.len(), 1);
    assert!(a[0].message.contains("UV_NO_CACHE"));
    let a = advice_for("FROM python\nENV UV_LINK_MODE=copy\nRUN --mount=type=cache,target=/root/.cache/uv UV_NO_CACHE=true uv sync\n");
    assert_eq!(a.len(), 1);
}

#[test]
fn advice_uv_link_mode() {
    let a = advice_for(SEED);
    // Line 4 has a cache mount without UV_LINK_MODE; line 6 has no cache mount.
    assert_eq!(a.len(), 2);
    assert_eq!(a[0].line, 4);
    assert_eq!(a[0].fix, "ENV UV_LINK_MODE=copy");
    assert_eq!(a[1].line, 6);
    let ok = [
        "FROM python AS a\nENV UV_LINK_MODE=copy\nFROM a\nRUN --mount=type=cache,target=/root/.cache/uv uv sync\n",
        "FROM python\nARG UV_LINK_MODE=copy\nRUN --mount=type=cache,target=/root/.cache/uv uv sync\n",
        "FROM python\nRUN --mount=type=cache,target=/root/.cache/uv UV_LINK_MODE=copy uv sync\n",
        "FROM python\nRUN --mount=type=cache,target=/root/.cache/uv uv sync --link-mode=copy\n",
    ];
    for text in ok {
        assert!(advice_for(text).is_empty(), "{text}");
    }
}

#[test]
fn crlf_and_bom() {
    let text = "\u{feff}FROM alpine\r\nRUN echo a \\\r\n    b\r\nRUN <<EOF\r\necho c\r\nEOF\r\n";
    let df = parse(text).unwrap();
    let ins = &df.stages[0].instructions;
    assert_eq!(ins[0].args, "echo a     b");
    assert_eq!(ins[1].heredocs[0].body, "echo c\r\n");
    assert_eq!(ins[1].end_line, 6);
}
