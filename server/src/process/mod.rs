//! What the process does to itself at start: its file-creation mask and data directory,
//! transparent huge pages, the journal writer's CPU priority, and its logs.

pub mod cpu_priority;
pub mod data_dir;
pub mod huge_pages;
pub mod logging;
