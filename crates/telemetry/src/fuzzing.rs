//! Entry points for the fuzz targets (`fuzz/`), compiled only with the `fuzzing` feature: the
//! crate's private parsers of outside input, each as narrow as its target needs. Production
//! builds never have this module.

use tracing::level_filters::LevelFilter;

/// `RUST_LOG`: parses `directives` as every output's filter does ([`crate::filter::parse`]),
/// then answers, for each of `targets`, the level its `target=level` directives give it
/// (`None`: off, no directive covers it), and the filter's most verbose level.
pub fn rust_log_levels(
    directives: &str,
    targets: &[&str],
) -> Result<(Vec<Option<LevelFilter>>, Option<LevelFilter>), String> {
    let parsed = crate::filter::parse("RUST_LOG", directives).map_err(|e| e.to_string())?;
    Ok((
        targets.iter().map(|t| parsed.static_level(t)).collect(),
        parsed.max_level_hint(),
    ))
}
