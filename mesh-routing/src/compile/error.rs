//! [`CompileError`]: configuration a route table cannot be built from.

use std::fmt;

/// Why a table could not be compiled. Only config that cannot work at all is an error;
/// everything Istio accepts and then handles at run time (an undefined subset, a duplicate
/// host, an unreachable route) compiles, with a [`CompileNote`](crate::CompileNote) where something was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CompileError {
    /// A regex the model accepted does not compile for byte matching.
    Regex {
        /// `namespace/name` of the resource.
        resource: String,
        /// Where in the resource.
        path: String,
        /// The compiler's message.
        message: String,
    },
    /// A header-match key is not a valid header name.
    HeaderName {
        /// `namespace/name` of the resource.
        resource: String,
        /// Where in the resource.
        path: String,
        /// The name.
        name: String,
    },
    /// A route forwards to no destination with a weight above zero.
    NoDestination {
        /// `namespace/name` of the resource.
        resource: String,
        /// Where in the resource.
        path: String,
    },
    /// The config uses a feature this table does not implement.
    Unsupported {
        /// `namespace/name` of the resource.
        resource: String,
        /// Where in the resource.
        path: String,
        /// The feature.
        feature: &'static str,
    },
    /// A route or DestinationRule policy the resilience machines refuse (mesh-model accepted
    /// it; this would be a disagreement between the two, reported instead of ignored).
    Policy {
        /// `namespace/name` of the resource.
        resource: String,
        /// Where in the resource.
        path: String,
        /// What was refused.
        message: String,
    },
    /// More (host, subset) pairs than a `u32` can index.
    TooManyDestinations,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompileError::Regex {
                resource,
                path,
                message,
            } => write!(f, "{resource}: {path}: regex does not compile: {message}"),
            CompileError::HeaderName {
                resource,
                path,
                name,
            } => write!(f, "{resource}: {path}: {name:?} is not a valid header name"),
            CompileError::NoDestination { resource, path } => {
                write!(
                    f,
                    "{resource}: {path}: no destination with a weight above zero"
                )
            }
            CompileError::Unsupported {
                resource,
                path,
                feature,
            } => write!(
                f,
                "{resource}: {path}: {feature} is not supported by mesh-routing"
            ),
            CompileError::Policy {
                resource,
                path,
                message,
            } => write!(f, "{resource}: {path}: {message}"),
            CompileError::TooManyDestinations => {
                f.write_str("more than 2^32 distinct (host, subset) destinations")
            }
        }
    }
}

impl std::error::Error for CompileError {}
