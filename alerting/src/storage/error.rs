//! Why the journal could not be read or written.

/// The layout this build writes. A journal with a higher version was written by a newer
/// Vigil and is refused rather than misread or rewritten.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal store: {0}")]
    Store(#[from] fjall::Error),
    #[error(
        "the journal was written by a newer Vigil (format {found}, this build reads up to \
         {FORMAT_VERSION}): run that version, or move the data directory aside to start empty"
    )]
    NewerFormat { found: u32 },
    #[error("journal entry {what} '{key}' cannot be read: {source}")]
    Decode {
        what: &'static str,
        key: String,
        source: serde_json::Error,
    },
}
