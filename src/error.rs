//! Whose move an error is: the user's, who must edit something (a file, a variable, an
//! argument) before trying again, or nobody's in particular (the engine was down, a build
//! failed), so that a retry may do. The CLI exits 2 for the first and 1 for the second, so
//! scripts can tell "fix your setup" from "try again".
//!
//! # Design
//!
//! The answer lives with each error type: a library error that can be the user's to fix
//! implements [`Classify`] next to its definition, and answers per variant (a missing
//! Dockerfile is, an unreadable one is not). The CLI's edge asks one question of every cause
//! in an error's chain, [`is_usage`], and knows no error type by name, so adding an error
//! type never means editing a list in `commands/`. (Compare `just`, whose one error enum
//! gives each variant its exit code, and cargo's `CliError`, which carries the code with the
//! error; dockwarm's errors are many small `thiserror` types that meet in `anyhow` at the
//! edge, so the classification travels with each type instead.)
//!
//! Stable Rust cannot ask a `&dyn Error` whether it implements a trait: the only question it
//! answers is "are you this concrete type?". So [`is_usage`] tries the classified types one by
//! one, from the `classified!` line at the bottom of this module. That line cannot fall out
//! of step with the impls: [`Classify`] requires a sealed supertrait that only that macro
//! implements, so an `impl Classify` whose type is not listed does not compile, and a listed
//! type without the impl does not either. An error type that is never the user's to fix needs
//! neither: anything not classified is a failure (exit 1).
//!
//! A classified error is found wherever it sits in the chain, behind `.context(...)` or a
//! `#[source]` of another error. One wrapped with `#[error(transparent)]` is not in the chain
//! (the wrapper stands in for it and forwards only its source), so a wrapper that can hold a
//! usage error transparently must be classified itself and delegate, as
//! [`crate::prebuild::PrebuildError`] does for [`crate::fingerprint::FingerprintError`].

use std::error::Error;

/// An error type that can be the user's to fix. Implement it beside the type and add the type
/// to the `classified!` line in `src/error.rs` (the compiler insists on both).
pub trait Classify: Error + registered::Registered + 'static {
    /// Whether the user must change something (edit a file, set a variable, name another
    /// revision) before a retry can succeed: exit code 2 rather than 1.
    fn is_usage(&self) -> bool;
}

/// Whether `cause`, one link of an error's chain, is an error the user must fix; false for any
/// error type that is not [`Classify`].
pub fn is_usage(cause: &(dyn Error + 'static)) -> bool {
    classify(cause) == Some(true)
}

mod registered {
    /// Implemented only by `classified!`: makes forgetting to list a [`super::Classify`]
    /// type a compile error rather than a wrong exit code.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` implements `Classify` but is not listed in `classified!`",
        label = "add `{Self}` to the `classified!` line at the bottom of src/error.rs"
    )]
    pub trait Registered {}
}

/// Lists the [`Classify`] types: implements the sealed supertrait for each, and the one
/// function that asks a `dyn Error` which of them it is.
macro_rules! classified {
    ($($t:ty),+ $(,)?) => {
        $(impl registered::Registered for $t {})+

        /// `cause`'s own answer when it is a [`Classify`] type, else None.
        fn classify(cause: &(dyn Error + 'static)) -> Option<bool> {
            $(
                if let Some(e) = cause.downcast_ref::<$t>() {
                    return Some(Classify::is_usage(e));
                }
            )+
            None
        }
    };
}

classified![
    crate::config::ConfigError,
    crate::compose::ComposeError,
    crate::conductor::ConductorError,
    crate::fingerprint::FingerprintError,
    crate::prebuild::PrebuildError,
    crate::ahead::AheadError,
    crate::ahead::AheadPrebuildError,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conductor::ConductorError;
    use crate::config::ConfigError;
    use crate::fingerprint::FingerprintError;
    use crate::prebuild::PrebuildError;

    fn chain_is_usage(e: &anyhow::Error) -> bool {
        e.chain().any(is_usage)
    }

    #[test]
    fn each_type_answers_for_itself() {
        let invalid = ConductorError::Invalid {
            path: "conductor.json".into(),
            message: "not JSON".into(),
        };
        let unreadable = ConductorError::Read {
            path: "conductor.json".into(),
            source: std::io::Error::other("denied"),
        };
        assert!(is_usage(&invalid));
        assert!(!is_usage(&unreadable));
        let missing = FingerprintError::MissingDockerfile {
            path: "Dockerfile".into(),
            image: "web".into(),
            from: "compose.yaml".into(),
        };
        let slow = FingerprintError::TooSlow {
            path: "uv.lock".into(),
            secs: 30,
        };
        assert!(is_usage(&missing));
        assert!(!is_usage(&slow));
    }

    #[test]
    fn a_transparent_wrapper_delegates_to_what_it_wraps() {
        let missing = FingerprintError::MissingDockerfile {
            path: "Dockerfile".into(),
            image: "web".into(),
            from: "compose.yaml".into(),
        };
        assert!(is_usage(&PrebuildError::Fingerprint(missing)));
        let slow = FingerprintError::TooSlow {
            path: "uv.lock".into(),
            secs: 30,
        };
        assert!(!is_usage(&PrebuildError::Fingerprint(slow)));
    }

    #[test]
    fn a_usage_error_is_found_behind_context_and_other_errors_are_failures() {
        let e = anyhow::Error::new(ConfigError::Invalid {
            path: "dockwarm.toml".into(),
            message: "bad".into(),
        })
        .context("loading the configuration");
        assert!(chain_is_usage(&e));
        let e = anyhow::Error::new(std::io::Error::other("engine down")).context("connecting");
        assert!(!chain_is_usage(&e));
    }
}
