//! The one error type of job handlers: a message plus the class that decides between retry and
//! dead letter, and the low-cardinality `error.type` recorded on spans and metrics.

use vidscope_core::CoreError;
use vidscope_core::storage::StoreError;
use vidscope_telemetry::{Classify, ErrorClass};

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct JobError {
    pub class: ErrorClass,
    pub error_type: &'static str,
    pub message: String,
}

impl JobError {
    pub fn transient(error_type: &'static str, message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Transient,
            error_type,
            message: message.into(),
        }
    }

    pub fn permanent(error_type: &'static str, message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Permanent,
            error_type,
            message: message.into(),
        }
    }

    /// Keeps the class and type of any classified error.
    pub fn classified<E: Classify + std::fmt::Display>(e: &E) -> Self {
        Self {
            class: e.class(),
            error_type: e.error_type(),
            message: e.to_string(),
        }
    }
}

impl Classify for JobError {
    fn class(&self) -> ErrorClass {
        self.class
    }
    fn error_type(&self) -> &'static str {
        self.error_type
    }
}

impl From<CoreError> for JobError {
    fn from(e: CoreError) -> Self {
        Self::classified(&e)
    }
}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> Self {
        Self::classified(&e)
    }
}
