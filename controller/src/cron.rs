//! Cron schedules ([`schedule`]); the jobs themselves are [`crate::domain::Cron`].

pub mod schedule;

pub use schedule::{Schedule, ScheduleError};
