//! What every signal is stamped with: the resource (the service) and this crate's
//! instrumentation scope, with the semantic-conventions schema both carry.

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::resource::{ResourceDetector, TelemetryResourceDetector};

use crate::config::TelemetryConfig;

/// The semantic-conventions version the attribute names follow (`db.system.name`,
/// `db.query.text`, `messaging.operation.type`, `http.response.status_code`): the schema of
/// opentelemetry-semantic-conventions 0.32, stamped on the resource and on this crate's
/// instrumentation scope so a backend can translate names when the conventions move.
pub const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.36.0";

/// The name of this crate's instrumentation scope.
pub(crate) const SCOPE_NAME: &str = "vidscope";

/// The instrumentation scope of every span and metric: this crate's name for the
/// application, its version and [`SCHEMA_URL`]. (Log records are scoped by their target, as
/// the OpenTelemetry appender does, with no version: a target names a module, often a
/// dependency's.)
pub(crate) fn scope() -> opentelemetry::InstrumentationScope {
    opentelemetry::InstrumentationScope::builder(SCOPE_NAME)
        .with_version(env!("CARGO_PKG_VERSION"))
        .with_schema_url(SCHEMA_URL)
        .build()
}

/// The service's resource: its name, version and instance id, `OTEL_RESOURCE_ATTRIBUTES`, and
/// the SDK's `telemetry.sdk.*` attributes.
pub(crate) fn resource(config: &TelemetryConfig) -> Resource {
    // `builder_empty` + explicit attributes: the default detectors would read
    // `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` again behind the config's back.
    let mut attrs = vec![
        KeyValue::new("service.name", config.service_name.clone()),
        KeyValue::new("service.version", config.service_version.clone()),
        KeyValue::new("service.instance.id", uuid::Uuid::new_v4().to_string()),
    ];
    for (k, v) in &config.resource_attributes {
        attrs.push(KeyValue::new(k.clone(), v.clone()));
    }
    let sdk = TelemetryResourceDetector.detect();
    Resource::builder_empty()
        .with_schema_url(
            sdk.iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
                .chain(attrs),
            SCHEMA_URL,
        )
        .build()
}
