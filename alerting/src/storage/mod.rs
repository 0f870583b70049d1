//! Storage beside the pure core: the fjall journal of alert events, rules, patients,
//! silences, consumer positions and window snapshots. The engine never calls it; it
//! reaches the disk only through the [`EventSink`](crate::event_log::EventSink) its log
//! writes to, so another log (a cluster's) can stand where this one does.

mod error;
pub mod journal;
mod positions;
mod salvage;
mod windows;

pub use positions::{PositionError, Positions};
pub use salvage::SetAside;
pub use windows::{StoredWindows, WindowWrite};
