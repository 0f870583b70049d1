//! Per-patient overrides: the numeric keys of a rule one patient may set differently
//! (their validation per kind is `Rule::check_override`).

/// The numeric keys of a rule that one patient may override. Which apply depends on the
/// kind (`Rule::check_override`).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RuleOverride {
    pub above: Option<f64>,
    pub below: Option<f64>,
    pub clear: Option<f64>,
    pub hold_ms: Option<i64>,
    pub by: Option<f64>,
    pub window_ms: Option<i64>,
    pub min_samples: Option<u32>,
    pub after_ms: Option<i64>,
    pub at_least: Option<u32>,
    pub any_parameter_at_least: Option<u32>,
    /// `trend`: how far past the newest reading the line is projected.
    #[serde(default)]
    pub horizon_ms: Option<i64>,
    /// `adherence` and aggregates: distinct days with readings required.
    #[serde(default)]
    pub min_days: Option<u32>,
    /// `adherence`: the days looked back over.
    #[serde(default)]
    pub days: Option<u32>,
}
