//! The strings a caller sends, checked before anything stores, logs or looks them up: an
//! id is at most 128 bytes without control characters, free text at most 1 024 bytes, a
//! list at most 1 000 entries. Each refusal is `Invalid`, naming the field and the limit,
//! never echoing the value.

use super::error::AppError;

/// The most bytes of an id (patient, alert, rule, device, care team, silence, `by`).
pub const MAX_ID_BYTES: usize = 128;
/// The most bytes of free text (a note, a silence's reason).
pub const MAX_TEXT_BYTES: usize = 1024;
/// The most entries in a list of ids (a filter's patients or care teams).
pub const MAX_LIST: usize = 1000;

/// An id that may be empty (an optional field or filter).
pub fn id(field: &str, value: &str) -> Result<(), AppError> {
    if value.len() > MAX_ID_BYTES {
        return Err(too_long(field, value.len(), MAX_ID_BYTES));
    }
    if value.chars().any(char::is_control) {
        return Err(AppError::Invalid(format!(
            "{field} contains a control character"
        )));
    }
    Ok(())
}

/// An id that must be given.
pub fn required_id(field: &str, value: &str) -> Result<(), AppError> {
    if value.is_empty() {
        return Err(AppError::Invalid(format!("{field} is required")));
    }
    id(field, value)
}

/// A list of ids.
pub fn ids(field: &str, values: &[String]) -> Result<(), AppError> {
    if values.len() > MAX_LIST {
        return Err(AppError::Invalid(format!(
            "{field} has {} entries; at most {MAX_LIST} are accepted",
            values.len()
        )));
    }
    values.iter().try_for_each(|v| id(field, v))
}

/// Free text: line breaks and tabs are allowed, other control characters are not.
pub fn text(field: &str, value: &str) -> Result<(), AppError> {
    if value.len() > MAX_TEXT_BYTES {
        return Err(too_long(field, value.len(), MAX_TEXT_BYTES));
    }
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\t'))
    {
        return Err(AppError::Invalid(format!(
            "{field} contains a control character other than a line break or tab"
        )));
    }
    Ok(())
}

fn too_long(field: &str, len: usize, max: usize) -> AppError {
    AppError::Invalid(format!(
        "{field} is {len} bytes long; at most {max} are accepted"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_text_are_bounded_and_never_echoed() {
        assert!(id("patient_id", "").is_ok());
        assert!(id("patient_id", &"p".repeat(128)).is_ok());
        let long = "x".repeat(70_000);
        let err = id("alert_id", &long).unwrap_err();
        assert!(matches!(err, AppError::Invalid(_)));
        assert_eq!(
            err.to_string(),
            "alert_id is 70000 bytes long; at most 128 are accepted"
        );
        assert!(id("id", "cuff\u{0}1").is_err());
        assert!(required_id("alert_id", "").is_err());
        assert!(ids("patient_ids", &vec!["p".to_string(); MAX_LIST + 1]).is_err());
        assert!(ids("patient_ids", &["ok".into(), "bad\n".into()]).is_err());
        assert!(text("note", "called the patient\nno answer\t(2x)").is_ok());
        assert!(text("note", "\u{1b}[2J").is_err());
        assert!(text("note", &"n".repeat(MAX_TEXT_BYTES + 1)).is_err());
    }
}
