//! Files checked in as the record of a contract (the OpenAPI document, the metric catalog), so
//! that a change to it shows in review as a diff instead of passing unseen.

/// Asserts that the file at `path` holds `generated`. With the environment variable `bless`
/// set, writes `generated` there first: the way to accept a deliberate change, whose diff is
/// then reviewed like any other.
pub fn assert_checked_in(path: &str, generated: &str, bless: &str) {
    if std::env::var_os(bless).is_some() {
        std::fs::write(path, generated).unwrap_or_else(|e| panic!("cannot write {path}: {e}"));
    }
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        generated == checked_in,
        "{path} is not what the code generates; if the change is meant, run the test with \
         {bless}=1 and review the diff"
    );
}
